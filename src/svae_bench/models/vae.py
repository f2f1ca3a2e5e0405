"""The VAE (and AE): MLP encoder -> latent head -> MLP decoder -> likelihood p(x|z)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .heads import LatentHead, build_head

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "softplus": nn.Softplus}


def mlp(sizes: list[int], activation: str) -> nn.Sequential:
    """Linear layers between consecutive ``sizes``, each followed by ``activation``."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), ACTIVATIONS[activation]()]
    return nn.Sequential(*layers)


@dataclass
class Terms:
    """Per-batch means, nats per data point: re = E_q log p(x|z), kl, elbo = re - kl."""

    re: Tensor
    kl: Tensor

    @property
    def elbo(self) -> Tensor:
        return self.re - self.kl


class VAE(nn.Module):
    """x (B, D) -> features -> q(z|x) -> z -> decoder -> log p(x|z).

    likelihood: "bernoulli" (decoder outputs logits) or "gaussian" (decoder
    outputs the mean, fixed std ``obs_scale``).
    """

    def __init__(
        self,
        observed_dim: int,
        latent_dim: int,
        hidden_dims: list[int],
        latent: str,
        likelihood: str,
        obs_scale: float = 1.0,
        activation: str = "relu",
        concentration_offset: float = 1.0,
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ConfigError(f"model.activation={activation!r} is unknown; allowed: {', '.join(ACTIVATIONS)}")
        if likelihood not in ("bernoulli", "gaussian"):
            raise ConfigError(f"dataset.likelihood={likelihood!r} is unknown; allowed: bernoulli, gaussian")
        if not obs_scale > 0:
            raise ConfigError(f"dataset.obs_scale={obs_scale} must be > 0")
        hidden = list(hidden_dims)
        self.encoder = mlp([observed_dim, *hidden], activation)
        self.head: LatentHead = build_head(
            latent, hidden[-1] if hidden else observed_dim, latent_dim, concentration_offset
        )
        self.decoder = nn.Sequential(
            mlp([self.head.ambient_dim, *reversed(hidden)], activation),
            nn.Linear(hidden[0] if hidden else self.head.ambient_dim, observed_dim),
        )
        self.likelihood = likelihood
        self.obs_scale = obs_scale

    @property
    def stochastic(self) -> bool:
        return self.head.stochastic

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x|z) summed over features; z (..., B, m), x (B, D) -> (..., B)."""
        out = self.decoder(z)
        if self.likelihood == "bernoulli":
            # log Bern(x | sigmoid(l)) = x l - softplus(l): one transcendental pass over the logits,
            # and x l summed as a batched dot product (no (S, B, D) temporary for the 500-sample LL).
            return torch.einsum("...bd,bd->...b", out, x) - F.softplus(out).sum(-1)
        sq = ((x - out) / self.obs_scale).pow(2).sum(-1)
        return -0.5 * sq - x.shape[-1] * (math.log(self.obs_scale) + 0.5 * math.log(2 * math.pi))

    def code(self, x: Tensor) -> Tensor:
        """Point estimate of the latent code (B, ambient_dim): posterior location, or z for the AE."""
        h = self.encoder(x)
        if not self.stochastic:
            return self.head.encode(h)
        return self.head.code(self.head.posterior(h))

    def terms(self, x: Tensor) -> Terms:
        """One-sample estimates of E_q log p(x|z) and the closed-form KL, averaged over the batch."""
        h = self.encoder(x)
        if not self.stochastic:
            re = self.log_likelihood(x, self.head.encode(h))
            return Terms(re.mean(), torch.zeros((), dtype=x.dtype, device=x.device))
        return self.posterior_terms(x, self.head.posterior(h))

    def posterior_terms(self, x: Tensor, q) -> Terms:
        """:meth:`terms` for a posterior ``q`` over x's codes that the caller already has (one encoder pass)."""
        re = self.log_likelihood(x, q.rsample())
        return Terms(re.mean(), self.head.kl(q).mean())


def build_model(
    *,
    latent: str,
    hidden_dims: Sequence[int],
    latent_dim: int,
    observed_dim: int,
    likelihood: str,
    obs_scale: float = 1.0,
    activation: str = "relu",
    concentration_offset: float = 1.0,
) -> VAE:
    """A :class:`VAE` from plain values (a model config group's, plus what the data say)."""
    return VAE(
        observed_dim=int(observed_dim),
        latent_dim=int(latent_dim),
        hidden_dims=[int(h) for h in hidden_dims],
        latent=str(latent),
        likelihood=likelihood,
        obs_scale=obs_scale,
        activation=str(activation),
        concentration_offset=float(concentration_offset),
    )
