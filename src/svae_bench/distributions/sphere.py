"""Geometry shared by the hyperspherical distributions.

Both the vMF and the Power Spherical distribution sample in "polar" form: a
scalar t = 1 - mu.z in [0, 2] (the distance to the mode along mu, kept instead
of w = mu.z because it is exact near the mode), a direction v uniform on the
tangent sphere S^(m-2), and an orthogonal map taking e1 to mu.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def log_sphere_surface(m: int) -> float:
    """log |S^(m-1)|, the surface area of the unit sphere in R^m (nats)."""
    return math.log(2.0) + 0.5 * m * math.log(math.pi) - math.lgamma(0.5 * m)


def uniform_tangent(shape: torch.Size, m: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Directions uniform on S^(m-2), shape (*shape, m-1). For m = 2 this is a random sign."""
    v = torch.randn(*shape, m - 1, dtype=dtype, device=device)
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(torch.finfo(dtype).tiny)


def _householder_parts(loc: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """sigma, 1 + |mu_1|, c = (mu_rest . v) / (1 + |mu_1|), and Q (0, v) (see polar_to_sphere)."""
    first = loc[..., :1]
    sigma = torch.where(first >= 0, 1.0, -1.0).to(loc.dtype)
    denom = 1 + first.abs()
    c = (loc[..., 1:] * v).sum(-1, keepdim=True) / denom
    # Q (0, v) = -sigma (0, v) + (e1 + sigma mu) c
    rotated = sigma * c * loc + torch.nn.functional.pad(-sigma * v, (1, 0))
    rotated[..., :1] += c
    return sigma, denom, c, rotated


class _PolarToSphere(torch.autograd.Function):
    """z = (1 - t) mu + rho(t) Q_mu (0, v), with a hand-written backward in mu and t.

    The backward is a few fused tensor expressions instead of ~40 autograd
    nodes; this matters because per-op overhead dominates at VAE batch sizes.
    If ``dt_dk`` is given, t is a function of the concentration k with that
    derivative (computed lazily, only when a gradient is needed), and the
    gradient is returned for k instead of t.
    """

    @staticmethod
    def forward(ctx, loc: Tensor, t: Tensor, v: Tensor, k: Tensor | None, dt_dk):  # type: ignore[override]
        sigma, denom, c, rotated = _householder_parts(loc, v)
        rho = torch.sqrt(t * (2 - t)).unsqueeze(-1)
        ctx.save_for_backward(loc, t, v, sigma, denom, c, rotated, rho)
        ctx.dt_dk = dt_dk
        return (1 - t).unsqueeze(-1) * loc + rho * rotated

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        loc, t, v, sigma, denom, c, rotated, rho = ctx.saved_tensors
        grad_loc = grad_t = grad_k = None
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[3]:
            # dz/dt = -mu + (1 - t) / rho * Q(0, v)
            drho = (1 - t).unsqueeze(-1) / rho
            grad_t = ((drho * rotated - loc) * grad).sum(-1)
            if ctx.needs_input_grad[3]:
                grad_k, grad_t = grad_t * ctx.dt_dk(), None
        if ctx.needs_input_grad[0]:
            # z = (1-t) mu + rho (-sigma (0,v) + u c), u = e1 + sigma mu,
            # dc/dmu_rest = v / denom, dc/dmu_1 = -sigma c / denom
            g_dot_u = grad[..., :1] + sigma * (grad * loc).sum(-1, keepdim=True)
            scale = rho * g_dot_u / denom
            grad_loc = (1 - t).unsqueeze(-1) * grad + rho * sigma * c * grad
            grad_loc = grad_loc + torch.nn.functional.pad(scale * v, (1, 0))
            grad_loc[..., :1] -= scale * sigma * c
        return grad_loc, grad_t, None, grad_k, None


def polar_to_sphere(loc: Tensor, t: Tensor, v: Tensor, k: Tensor | None = None, dt_dk=None) -> Tensor:
    """Point z on S^(m-1) with mu.z = 1 - t and tangent direction v, rotated to loc.

    Args:
        loc: (..., m) unit mean directions mu.
        t: (...) values of 1 - mu.z in (0, 2].
        v: (..., m-1) unit tangent directions (uniform on S^(m-2) for sampling).

    Returns:
        z: (..., m), computed as Q (1 - t, rho v) with rho = sqrt(t (2 - t)) and
        Q = -sigma H, where H is the Householder reflection along e1 + sigma mu and
        sigma = sign(mu_1) (+1 at 0). Choosing the sign this way keeps the
        reflection vector far from zero, so the map is exact to rounding for
        every mu, mu = +-e1 included (no 1e-5 fudge as in the official code).
        Differentiable in loc and t; or, if ``k`` and ``dt_dk`` (a callable
        returning dt/dk with t's shape) are given, in loc and k.
    """
    return _PolarToSphere.apply(loc, t, v, k, dt_dk)
