"""Latent heads: map the encoder's features to a posterior q(z|x) and give the prior p(z).

latent_dim d is the number of degrees of freedom: Euclidean heads live in R^d,
spherical heads on S^d in R^(d+1) (``ambient_dim``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, Normal, kl_divergence

from ..distributions import HypersphericalUniform, PowerSpherical, VonMisesFisher
from ..errors import ConfigError


class LatentHead(nn.Module):
    """Base class. Subclasses set ``ambient_dim``, ``geometry`` and ``stochastic``."""

    geometry = "euclidean"
    stochastic = True

    def __init__(self, in_features: int, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.ambient_dim = latent_dim

    def posterior(self, h: Tensor) -> Distribution:
        """q(z|x) with batch_shape (B,) and event_shape (ambient_dim,)."""
        raise NotImplementedError

    def prior(self, like: Tensor) -> Distribution:
        """p(z), event_shape (ambient_dim,), in ``like``'s dtype and device."""
        raise NotImplementedError

    def kl(self, q: Distribution) -> Tensor:
        """KL(q || p) per data point, (B,) nats."""
        return kl_divergence(q, self.prior(self.code(q)))

    @staticmethod
    def code(q: Distribution) -> Tensor:
        """The point estimate used for k-NN and plots (B, ambient_dim): the posterior's location."""
        return q.loc if not isinstance(q, Independent) else q.base_dist.loc


class GaussianHead(LatentHead):
    """Diagonal Gaussian posterior N(mu, diag(sigma²)), sigma = softplus(.) + 1e-5; N(0, I) prior."""

    def __init__(self, in_features: int, latent_dim: int):
        super().__init__(in_features, latent_dim)
        self.linear = nn.Linear(in_features, 2 * latent_dim)

    def posterior(self, h: Tensor) -> Distribution:
        loc, scale = self.linear(h).chunk(2, dim=-1)
        return Independent(Normal(loc, F.softplus(scale) + 1e-5), 1)

    def prior(self, like: Tensor) -> Distribution:
        zero = torch.zeros((), dtype=like.dtype, device=like.device)
        return Independent(Normal(zero.expand(self.ambient_dim), (zero + 1).expand(self.ambient_dim)), 1)


class _SphericalHead(LatentHead):
    """mu = normalise(linear), k = softplus(linear) + offset; uniform prior on S^d."""

    geometry = "sphere"
    family: type[Distribution]

    def __init__(self, in_features: int, latent_dim: int, concentration_offset: float = 1.0):
        super().__init__(in_features, latent_dim)
        self.ambient_dim = latent_dim + 1
        self.offset = concentration_offset
        self.linear = nn.Linear(in_features, self.ambient_dim + 1)

    def posterior(self, h: Tensor) -> Distribution:
        out = self.linear(h)
        loc = F.normalize(out[..., :-1], dim=-1)
        return self.family(loc, F.softplus(out[..., -1]) + self.offset)

    def prior(self, like: Tensor) -> Distribution:
        return HypersphericalUniform(self.ambient_dim, dtype=like.dtype, device=like.device)


class VMFHead(_SphericalHead):
    family = VonMisesFisher


class PowerSphericalHead(_SphericalHead):
    family = PowerSpherical


class DeterministicHead(LatentHead):
    """z = linear(h): the auto-encoder baseline (no posterior, no KL)."""

    stochastic = False

    def __init__(self, in_features: int, latent_dim: int):
        super().__init__(in_features, latent_dim)
        self.linear = nn.Linear(in_features, latent_dim)

    def encode(self, h: Tensor) -> Tensor:
        return self.linear(h)


HEADS: dict[str, type[LatentHead]] = {
    "gaussian": GaussianHead,
    "vmf": VMFHead,
    "power_spherical": PowerSphericalHead,
    "deterministic": DeterministicHead,
}


def build_head(latent: str, in_features: int, latent_dim: int, concentration_offset: float = 1.0) -> LatentHead:
    if latent not in HEADS:
        raise ConfigError(f"model.latent={latent!r} is unknown; allowed: {', '.join(HEADS)}")
    if latent in ("vmf", "power_spherical"):
        if not concentration_offset >= 0:
            raise ConfigError(f"model.concentration_offset={concentration_offset} must be >= 0")
        return HEADS[latent](in_features, latent_dim, concentration_offset)
    return HEADS[latent](in_features, latent_dim)
