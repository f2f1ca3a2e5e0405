"""The Power Spherical distribution (De Cao & Aziz, 2020) on S^(m-1).

    f(z; mu, k) = C_m(k) (1 + mu.z)^k,
    log C_m(k) = -[(α+β) log 2 + β log π + lgamma(α) - lgamma(α+β)],
    α = (m-1)/2 + k,  β = (m-1)/2.

Sampling: (1 + mu.z)/2 ~ Beta(α, β), so t = 1 - mu.z = 2 B with B ~ Beta(β, α),
reparameterised through torch's Beta (no rejection, no Bessel function); then
the same tangent direction and reflection as the vMF.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Beta, Distribution, constraints
from torch.distributions.kl import register_kl

from .constraints import unit_sphere
from .hyperspherical_uniform import HypersphericalUniform
from .sphere import log_sphere_surface, polar_to_sphere


class PowerSpherical(Distribution):
    """PowerSpherical(loc, concentration): loc (..., m) unit, concentration (...) > 0."""

    arg_constraints = {"loc": unit_sphere, "concentration": constraints.positive}
    support = unit_sphere
    has_rsample = True

    def __init__(self, loc: Tensor, concentration: Tensor | float, validate_args: bool | None = None):
        m = int(loc.shape[-1]) if loc.dim() >= 1 else 0  # static: a constant of any trace or compiled graph
        if m < 2:
            raise ValueError(f"loc must have shape (..., m) with m >= 2, got {tuple(loc.shape)}")
        if not isinstance(concentration, Tensor):
            concentration = torch.as_tensor(concentration, dtype=loc.dtype, device=loc.device)
        batch_shape = torch.broadcast_shapes(loc.shape[:-1], concentration.shape)
        self.dim = m
        self.loc = loc.expand(*batch_shape, self.dim)
        self.concentration = concentration.expand(batch_shape)
        super().__init__(batch_shape, torch.Size([self.dim]), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(PowerSpherical, _instance)
        batch_shape = torch.Size(batch_shape)
        new.dim = self.dim
        new.loc = self.loc.expand(*batch_shape, self.dim)
        new.concentration = self.concentration.expand(batch_shape)
        super(PowerSpherical, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def _alpha_beta(self) -> tuple[Tensor, float]:
        beta = 0.5 * (self.dim - 1)
        return self.concentration + beta, beta

    @property
    def mean(self) -> Tensor:
        return (self.concentration / (self.concentration + self.dim - 1)).unsqueeze(-1) * self.loc

    @property
    def mode(self) -> Tensor:
        return self.loc

    def log_normalizer(self) -> Tensor:
        """log C_m(k), shape batch_shape."""
        alpha, beta = self._alpha_beta
        return -(
            (alpha + beta) * math.log(2.0) + beta * math.log(math.pi) + torch.lgamma(alpha) - torch.lgamma(alpha + beta)
        )

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return self.log_normalizer() + self.concentration * torch.log1p((self.loc * value).sum(-1))

    def entropy(self) -> Tensor:
        alpha, beta = self._alpha_beta
        expected_log = math.log(2.0) + torch.digamma(alpha) - torch.digamma(alpha + beta)  # E log(1 + mu.z)
        return -(self.log_normalizer() + self.concentration * expected_log)

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        shape = self._extended_shape(sample_shape)[:-1]
        alpha, beta = self._alpha_beta
        b = Beta(torch.full_like(alpha, beta), alpha).rsample(sample_shape)
        t = (2 * b).clamp_min(torch.finfo(b.dtype).tiny)
        tangent = torch.randn(*shape, self.dim, dtype=self.loc.dtype, device=self.loc.device)
        return polar_to_sphere(self.loc.expand(*shape, self.dim), t, tangent)


@register_kl(PowerSpherical, HypersphericalUniform)
def _kl_power_spherical_uniform(p: PowerSpherical, q: HypersphericalUniform) -> Tensor:
    if p.dim != q.dim:
        raise ValueError(
            f"KL between a Power Spherical on S^{p.dim - 1} and a uniform on S^{q.dim - 1}: dimensions differ"
        )
    kl = log_sphere_surface(p.dim) - p.entropy()
    if q.batch_shape:  # a uniform with a batch shape (made by expand): broadcast as torch's KLs do
        kl = kl.expand(torch.broadcast_shapes(p.batch_shape, q.batch_shape))
    return kl
