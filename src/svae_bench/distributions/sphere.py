"""Geometry shared by the hyperspherical distributions.

Both the vMF and the Power Spherical distribution sample in "polar" form: a
scalar t = 1 - mu.z in [0, 2] (the distance to the mode along mu, kept instead
of w = mu.z because it is exact near the mode) and a direction e uniform on the
great subsphere orthogonal to mu:

    z = (1 - t) mu + rho(t) e,   rho(t) = sqrt(t (2 - t)).

e is the normalised projection of a standard normal vector g in R^m onto the
tangent space of mu: the projection of an isotropic Gaussian is isotropic in
that space, so e is exactly uniform for every mu (mu = +-e1 included), with no
reflection to construct and nothing to special-case.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._fast import constants, refuse_double_backward


def log_sphere_surface(m: int) -> float:
    """log |S^(m-1)|, the surface area of the unit sphere in R^m (nats)."""
    return math.log(2.0) + 0.5 * m * math.log(math.pi) - math.lgamma(0.5 * m)


def uniform_tangent(loc: Tensor, noise: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Direction uniform on the great subsphere orthogonal to each row of ``loc``.

    Args:
        loc: (..., m) unit vectors mu.
        noise: (..., m) standard normal vectors g.

    Returns:
        (p, s, n): p = g - (g.mu) mu, s = g.mu (..., 1) and n = |p| (..., 1), so
        that e = p / n. For m = 2 the tangent "sphere" is two points and e is a
        random sign times the perpendicular of mu.
    """
    s = torch.linalg.vecdot(noise, loc).unsqueeze(-1)
    p = torch.addcmul(noise, s, loc, value=-1)
    # Project twice ("twice is enough", Kahan/Parlett): when g is nearly parallel
    # to mu, p has a rounding error along mu of relative size eps |g| / |p|.
    s_again = torch.linalg.vecdot(p, loc).unsqueeze(-1)
    p = torch.addcmul(p, s_again, loc, value=-1)
    s = s + s_again
    n = torch.linalg.vector_norm(p, dim=-1, keepdim=True).clamp_min(torch.finfo(p.dtype).tiny)
    return p, s, n


class _PolarToSphere(torch.autograd.Function):
    """z = (1 - t) mu + rho(t) p / |p|, with a hand-written backward in mu and t.

    The backward is a few fused tensor expressions instead of ~30 autograd
    nodes; this matters because per-op overhead dominates at VAE batch sizes.
    Everything the backward needs is a saved tensor (no Python-side state), so
    it is right under any tracer.
    """

    @staticmethod
    def forward(ctx, loc: Tensor, t: Tensor, noise: Tensor):  # type: ignore[override]
        one, two = constants((1.0, 2.0), t.dtype, t.device)
        p, s, n = uniform_tangent(loc, noise)
        t = t.unsqueeze(-1)
        one_minus_t = torch.sub(one, t)
        rho = torch.sqrt(t * torch.sub(two, t))
        a = rho / n
        ctx.save_for_backward(loc, noise, p, s, n, one_minus_t, rho, a)
        return torch.addcmul(one_minus_t * loc, a, p)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        refuse_double_backward("polar_to_sphere")
        loc, noise, p, s, n, one_minus_t, rho, a = ctx.saved_tensors
        grad_loc = grad_t = None
        g_mu = torch.linalg.vecdot(grad, loc).unsqueeze(-1)
        g_p = torch.linalg.vecdot(grad, p).unsqueeze(-1)
        if ctx.needs_input_grad[1]:
            # dz/dt = -mu + ((1 - t) / rho) e, with e = p / n. At the end points t = 0, 2
            # (rho = 0; a float32 uniform of exactly 0 gives t = 2 for m = 3) the e term is
            # unbounded, but there every sampler pins t (dt/dk = 0) and z = +-mu does not move
            # along e: take that term as 0 instead of inf * 0 = NaN.
            e_coef = torch.where(rho > 0, one_minus_t / (rho * n), torch.zeros_like(rho))
            grad_t = (e_coef * g_p - g_mu).squeeze(-1)
        if ctx.needs_input_grad[0]:
            # With e = p / n, p = g - s mu, s = g.mu, and mu.e = 0:
            # dL/dmu = (1 - t) G - a s (G - (G.p / n²) p) - a (G.mu) g,   a = rho / n
            a_s = a * s
            grad_loc = torch.addcmul((one_minus_t - a_s) * grad, a_s * g_p / (n * n), p)
            grad_loc = torch.addcmul(grad_loc, a * g_mu, noise, value=-1)
        return grad_loc, grad_t, None


def polar_to_sphere(loc: Tensor, t: Tensor, noise: Tensor) -> Tensor:
    """Point z on S^(m-1) with mu.z = 1 - t and a tangent direction drawn from ``noise``.

    Args:
        loc: (..., m) unit mean directions mu.
        t: (...) values of 1 - mu.z in (0, 2].
        noise: (..., m) standard normal vectors; their projection orthogonal to
            mu, normalised, is the tangent direction (uniform for Gaussian noise).

    Returns:
        z: (..., m) = (1 - t) mu + sqrt(t (2 - t)) e, unit to rounding for every
        mu. Differentiable in loc and t (t may carry the implicit gradient of a
        sampler, see :func:`.vmf_marginal.implicit_t`).
    """
    return _PolarToSphere.apply(loc, t, noise)
