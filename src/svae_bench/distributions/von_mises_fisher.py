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

from .constraints import unit_sphere
from .hyperspherical_uniform import HypersphericalUniform
from .special import log_normalized_bessel
from .sphere import log_sphere_surface, polar_to_sphere, uniform_tangent
from .vmf_marginal import marginal_dw_dk, pathwise_t, sample_t

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
        if loc.dim() < 1 or loc.shape[-1] < 2:
            raise ValueError(f"loc must have shape (..., m) with m >= 2, got {tuple(loc.shape)}")
        if rsample_grad not in ("implicit", "pathwise"):
            raise ValueError(f"rsample_grad must be 'implicit' or 'pathwise', got {rsample_grad!r}")
        if not isinstance(concentration, Tensor):
            concentration = torch.as_tensor(concentration, dtype=loc.dtype, device=loc.device)
        batch_shape = torch.broadcast_shapes(loc.shape[:-1], concentration.shape)
        self.dim = loc.shape[-1]
        self.loc = loc.expand(*batch_shape, self.dim)
        self.concentration = concentration.expand(batch_shape)
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

    # -- special functions, cached: (log Ĩ_v(k), A_m(k)) in float64 ---------------------
    @lazy_property
    def _bessel(self) -> tuple[Tensor, Tensor]:
        return log_normalized_bessel(0.5 * self.dim - 1, self.concentration)

    @property
    def mean_resultant_length(self) -> Tensor:
        """A_m(k) = I_{m/2}(k) / I_{m/2-1}(k) = E[mu.z], shape batch_shape."""
        return self._bessel[1].to(self.loc.dtype)

    @property
    def mean(self) -> Tensor:
        return self.mean_resultant_length.unsqueeze(-1) * self.loc

    @property
    def mode(self) -> Tensor:
        return self.loc

    def log_normalizer(self) -> Tensor:
        """log C_m(k) = -log|S^(m-1)| - log Ĩ_v(k), shape batch_shape (float64)."""
        return -log_sphere_surface(self.dim) - self._bessel[0]

    # -- densities ------------------------------------------------------------------------
    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        k64 = self.concentration.to(torch.float64)
        # log C + k mu.z written as (log C + k) - k (1 - mu.z): no cancellation at large k
        log_c_plus_k = (self.log_normalizer() + k64).to(value.dtype)
        return log_c_plus_k - self.concentration * (1 - (self.loc * value).sum(-1))

    def entropy(self) -> Tensor:
        log_i, mean_w = self._bessel
        k64 = self.concentration.to(torch.float64)
        return (log_sphere_surface(self.dim) + log_i - k64 * mean_w).to(self.loc.dtype)

    def kl_to_uniform(self) -> Tensor:
        """KL(vMF || Uniform(S^(m-1))) = k A_m(k) - log Ĩ_v(k) >= 0, shape batch_shape."""
        log_i, mean_w = self._bessel
        k64 = self.concentration.to(torch.float64)
        return (k64 * mean_w - log_i).to(self.loc.dtype)

    # -- sampling ------------------------------------------------------------------------
    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        shape = self._extended_shape(sample_shape)[:-1]
        k = self.concentration.expand(shape)
        t, noise = sample_t(k.detach(), self.dim)
        t = t.clamp_min(torch.finfo(t.dtype).tiny)  # keeps d rho / dt finite at the mode
        v = uniform_tangent(shape, self.dim, self.loc.dtype, self.loc.device)
        loc = self.loc.expand(*shape, self.dim)
        if self.rsample_grad == "pathwise":
            return polar_to_sphere(loc, pathwise_t(k, self.dim, noise).clamp_min(torch.finfo(t.dtype).tiny), v)
        if not k.requires_grad:
            return polar_to_sphere(loc, t, v)
        mean_w = self._bessel[1].detach()

        def dt_dk() -> Tensor:  # exact derivative of the sample, by implicit reparameterisation
            k64 = k.detach().to(torch.float64)
            return (-marginal_dw_dk(t.to(torch.float64), k64, self.dim, mean_w.expand(shape))).to(t.dtype)

        return polar_to_sphere(loc, t, v, k, dt_dk)


@register_kl(VonMisesFisher, HypersphericalUniform)
def _kl_vmf_uniform(p: VonMisesFisher, q: HypersphericalUniform) -> Tensor:
    if p.dim != q.dim:
        raise ValueError(f"KL between a vMF on S^{p.dim - 1} and a uniform on S^{q.dim - 1}: dimensions differ")
    return p.kl_to_uniform()
