"""The von Mises-Fisher distribution on S^(m-1), for every m >= 2.

    f(z; mu, k) = exp(k mu.z) / (|S^(m-1)| Ĩ_v(k)),   v = m/2 - 1,

with Ĩ_v(k) = Γ(v+1)(2/k)^v I_v(k) (see :mod:`.special`), so that
C_m(k) = k^v / ((2π)^(m/2) I_v(k)) = 1 / (|S^(m-1)| Ĩ_v(k)). Scalar
per-distribution quantities (normaliser, entropy, KL) are computed in float64
and cast, which keeps them exact where e.g. k A_m(k) and log I_v(k) nearly
cancel.

References: Wood (1994) for sampling; Davidson et al. (2018) for the S-VAE;
Figurnov, Mohamed & Mnih (2018) for the implicit reparameterisation gradient.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints
from torch.distributions.kl import register_kl
from torch.distributions.utils import lazy_property

from ._fast import refuse_double_backward
from .constraints import unit_sphere
from .hyperspherical_uniform import HypersphericalUniform
from .special import bessel_values, ratio_derivative
from .sphere import log_sphere_surface, polar_to_sphere
from .vmf_marginal import implicit_t, pathwise_t, sample_t

RsampleGrad = Literal["implicit", "pathwise"]


class VonMisesFisher(Distribution):
    """vMF(loc, concentration) on the unit sphere in R^m.

    Args:
        loc: (..., m) unit mean directions mu, m >= 2.
        concentration: (...) positive concentrations k (broadcast against loc's
            batch dimensions).
        validate_args: as in ``torch.distributions``.
        rsample_grad: how ``rsample`` differentiates w.r.t. the concentration.
            ``"implicit"`` (default) gives the exact derivative of each sample
            (implicit reparameterisation of the marginal mu.z): unbiased for any
            loss. ``"pathwise"`` reproduces the official S-VAE code, which
            differentiates only through the accepted proposal and is biased for
            m != 3; it exists for comparison.

    ``rsample`` returns (*sample_shape, *batch_shape, m); ``log_prob`` is in nats
    with respect to the surface measure of S^(m-1).
    """

    arg_constraints = {"loc": unit_sphere, "concentration": constraints.positive}
    support = unit_sphere
    has_rsample = True

    def __init__(
        self,
        loc: Tensor,
        concentration: Tensor | float,
        validate_args: bool | None = None,
        rsample_grad: RsampleGrad = "implicit",
    ):
        m = int(loc.shape[-1]) if loc.dim() >= 1 else 0  # static: a constant of any trace or compiled graph
        if m < 2:
            raise ValueError(f"loc must have shape (..., m) with m >= 2, got {tuple(loc.shape)}")
        if rsample_grad not in ("implicit", "pathwise"):
            raise ValueError(f"rsample_grad must be 'implicit' or 'pathwise', got {rsample_grad!r}")
        if not isinstance(concentration, Tensor):
            concentration = torch.as_tensor(concentration, dtype=loc.dtype, device=loc.device)
        batch_shape = loc.shape[:-1]
        if concentration.shape != batch_shape:  # (the common case skips two autograd nodes)
            batch_shape = torch.broadcast_shapes(batch_shape, concentration.shape)
            loc = loc.expand(*batch_shape, loc.shape[-1])
            concentration = concentration.expand(batch_shape)
        self.dim = m
        self.loc = loc
        self.concentration = concentration
        self.rsample_grad = rsample_grad
        super().__init__(batch_shape, torch.Size([self.dim]), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(VonMisesFisher, _instance)
        batch_shape = torch.Size(batch_shape)
        new.dim = self.dim
        new.loc = self.loc.expand(*batch_shape, self.dim)
        new.concentration = self.concentration.expand(batch_shape)
        new.rsample_grad = self.rsample_grad
        super(VonMisesFisher, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    # -- special functions, cached: k, log Ĩ_v(k), A_m(k) in float64, no graph ---------
    @lazy_property
    def _bessel(self) -> tuple[Tensor, Tensor, Tensor]:
        with torch.no_grad():
            k64 = self.concentration.to(torch.float64)
            return (k64, *bessel_values(0.5 * self.dim - 1, k64))

    def _of_concentration(self, value: Tensor, derivative) -> Tensor:
        """``value`` (float64, batch_shape) cast to loc's dtype, with d/dk = ``derivative()`` (float64).

        ``derivative`` is called here, and only if a graph is being built (k requires
        grad, or torch.jit.trace records); the autograd function gets its result as a
        tensor, never the callable, so its backward is right under any tracer.
        """
        k = self.concentration
        if not (k.requires_grad or torch.jit.is_tracing()):
            return value.to(self.loc.dtype)
        return _OfConcentration.apply(k, value, derivative(), self.loc.dtype)

    def _dA_dk(self) -> Tensor:
        """A'(k) = 1 - A² - (m-1) A / k (float64; limit 1/m at k = 0)."""
        k64, _, mean_w = self._bessel
        return ratio_derivative(0.5 * self.dim - 1, k64, mean_w)

    def _k_dA_dk(self) -> Tensor:
        """k A'(k) = k (1 - A²) - (m-1) A (float64), with no division: d KL / dk."""
        k64, _, mean_w = self._bessel
        return torch.addcmul(k64 - (self.dim - 1) * mean_w, k64 * mean_w, mean_w, value=-1)

    @property
    def mean_resultant_length(self) -> Tensor:
        """A_m(k) = I_{m/2}(k) / I_{m/2-1}(k) = E[mu.z], shape batch_shape."""
        return self._of_concentration(self._bessel[2], self._dA_dk)

    @property
    def mean(self) -> Tensor:
        return self.mean_resultant_length.unsqueeze(-1) * self.loc

    @property
    def mode(self) -> Tensor:
        return self.loc

    def log_normalizer(self) -> Tensor:
        """log C_m(k) = -log|S^(m-1)| - log Ĩ_v(k), shape batch_shape, in loc's dtype."""
        return self._of_concentration(-log_sphere_surface(self.dim) - self._bessel[1], lambda: -self._bessel[2])

    # -- densities ------------------------------------------------------------------------
    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        k64, log_i, mean_w = self._bessel
        # log C + k mu.z written as (log C + k) - k (1 - mu.z): no cancellation at large k
        log_c_plus_k = self._of_concentration(k64 - log_i - log_sphere_surface(self.dim), lambda: 1 - mean_w)
        return log_c_plus_k - self.concentration * (1 - (self.loc * value).sum(-1))

    def entropy(self) -> Tensor:
        k64, log_i, mean_w = self._bessel
        return self._of_concentration(log_sphere_surface(self.dim) + log_i - k64 * mean_w, lambda: -self._k_dA_dk())

    def kl_to_uniform(self) -> Tensor:
        """KL(vMF || Uniform(S^(m-1))) = k A_m(k) - log Ĩ_v(k) >= 0, shape batch_shape.

        d KL / dk = k A'(k); value and derivative in float64, then cast.
        """
        k64, log_i, mean_w = self._bessel
        return self._of_concentration(k64 * mean_w - log_i, self._k_dA_dk)

    # -- sampling ------------------------------------------------------------------------
    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        """Exact samples (*sample_shape, *batch_shape, m), differentiable in loc and concentration.

        The rejection sampler reads one flag on the host per call (were all
        proposals of the first round accepted?), in :func:`.vmf_marginal.sample_t`.
        Under torch.compile all of a call's random draws run eagerly, outside the
        graph (one graph break), so compiled and eager code give the same samples
        for the same seed; torch.jit.trace cannot record that decision and is refused.
        """
        if torch.jit.is_tracing():
            raise RuntimeError(
                "VonMisesFisher.rsample cannot be recorded by torch.jit.trace: the rejection sampler "
                "decides on the host how many rounds to draw, and a trace would replay the trace-time "
                "decision. Sample outside the traced function, or use torch.compile (which runs the "
                "sampler's draws outside its graph)."
            )
        shape = self._extended_shape(sample_shape)
        k = self.concentration if not sample_shape else self.concentration.expand(shape[:-1])
        draw = _draw_outside_graph if torch.compiler.is_compiling() else _draw
        t, noise, tangent = draw(k.detach(), self.dim, shape, self.loc.dtype)
        loc = self.loc if not sample_shape else self.loc.expand(shape)
        tiny = torch.finfo(t.dtype).tiny  # t >= tiny keeps d rho / dt finite at the mode
        if self.rsample_grad == "pathwise":
            return polar_to_sphere(loc, pathwise_t(k, self.dim, noise).clamp_min(tiny), tangent)
        if not k.requires_grad:
            return polar_to_sphere(loc, t.clamp_min(tiny), tangent)
        k64, _, mean_w = self._bessel
        # exact derivative of each sample, by implicit reparameterisation
        return polar_to_sphere(loc, implicit_t(k, t, k64, mean_w, self.dim), tangent)


def _draw(k: Tensor, m: int, shape: torch.Size, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    """All random draws of one rsample call, in a fixed order: t (and the sampler's noise), then the
    tangent noise (shape ``shape``, ``dtype``). No graph; the sampler's host read happens in here."""
    t, noise = sample_t(k, m)
    return t, noise, torch.randn(shape, dtype=dtype, device=k.device)


#: what compiled code calls instead: a graph break, and the draws run eagerly with torch's own
#: generator (inductor would otherwise substitute its own random streams for randn and rand)
_draw_outside_graph = torch.compiler.disable(_draw)


class _OfConcentration(torch.autograd.Function):
    """A per-distribution quantity computed without a graph, given its derivative in k.

    Forward casts ``value`` (float64) to ``dtype``; backward returns
    grad * derivative. Both are tensors and the dtype a static value. One node
    instead of a dozen: per-op overhead dominates at VAE sizes.
    """

    @staticmethod
    def forward(ctx, k: Tensor, value: Tensor, derivative: Tensor, dtype: torch.dtype):  # type: ignore[override]
        ctx.save_for_backward(derivative)
        return value.to(dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        refuse_double_backward("VonMisesFisher")
        (derivative,) = ctx.saved_tensors
        return grad * derivative.to(grad.dtype), None, None, None


@register_kl(VonMisesFisher, HypersphericalUniform)
def _kl_vmf_uniform(p: VonMisesFisher, q: HypersphericalUniform) -> Tensor:
    if p.dim != q.dim:
        raise ValueError(f"KL between a vMF on S^{p.dim - 1} and a uniform on S^{q.dim - 1}: dimensions differ")
    kl = p.kl_to_uniform()
    if q.batch_shape:  # a uniform with a batch shape (made by expand): broadcast as torch's KLs do
        kl = kl.expand(torch.broadcast_shapes(p.batch_shape, q.batch_shape))
    return kl
