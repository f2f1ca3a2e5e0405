"""M2 of Kingma et al. (2014), "Semi-supervised learning with deep generative models", on M1's codes.

The generative model of an M1 code z1 (B, n1) with a class y (10 classes) and a second latent z2:

    p(y) = 1/10,   p(z2) = N(0, I) or uniform on S^d2,   p(z1 | y, z2) in z1's own family:
    a diagonal Gaussian with learned scale (N-VAE M1) or a vMF with learned concentration
    on S^(n1 - 1) (S-VAE M1).

Inference: q(z2 | z1, y) (Gaussian or vMF head, as in the VAE) and the classifier q(y | z1).
Bounds, nats per point:

    labelled    L(z1, y) = E_q(z2|z1,y) log p(z1 | y, z2) + log p(y) - KL(q(z2|z1,y) || p(z2))
    unlabelled  U(z1)    = sum_y q(y | z1) L(z1, y) + H(q(y | z1))

U is computed for the 10 classes in one batched pass (the batch repeated 10 times), not a loop.
Every network is an MLP with the given hidden sizes (Kingma et al.: one layer of 500 softplus units).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, Normal

from ..distributions import VonMisesFisher
from ..errors import ConfigError
from .heads import build_head
from .vae import ACTIVATIONS, mlp

#: the families of z1 and z2 an M2 takes
FAMILIES = ("gaussian", "vmf")


class M2(nn.Module):
    """Kingma et al.'s M2 over M1 codes.

    Args:
        z1_ambient: the size n1 of an M1 code (d1 for a Gaussian M1, d1 + 1 for a spherical one).
        z1_family: "gaussian" or "vmf": the family of p(z1 | y, z2) (the M1 posterior's).
        z2_dim: degrees of freedom of z2 (R^d2, or S^d2 in R^(d2+1)).
        z2_family: "gaussian" (N(0, I) prior) or "vmf" (uniform prior on the sphere).
        hidden_dims: hidden sizes of each of the three MLPs.
        n_classes: number of classes (10 for MNIST).
        concentration_offset: added to softplus for every vMF concentration (as in the VAE's head).
    """

    def __init__(
        self,
        z1_ambient: int,
        z1_family: str,
        z2_dim: int,
        z2_family: str,
        hidden_dims: Sequence[int] = (500,),
        activation: str = "softplus",
        n_classes: int = 10,
        concentration_offset: float = 1.0,
    ):
        super().__init__()
        for what, family in (("z1", z1_family), ("z2", z2_family)):
            if family not in FAMILIES:
                raise ConfigError(f"{what} family {family!r} is unknown; allowed: {', '.join(FAMILIES)}")
        if activation not in ACTIVATIONS:
            raise ConfigError(f"activation={activation!r} is unknown; allowed: {', '.join(ACTIVATIONS)}")
        hidden = [int(h) for h in hidden_dims]
        if not hidden or min(hidden) < 1:
            raise ConfigError(f"hidden_dims={hidden} must be a non-empty list of positive sizes")
        if z1_family == "vmf" and z1_ambient < 2:
            raise ConfigError("a spherical z1 needs at least 2 coordinates")
        self.n1, self.z1_family, self.n_classes = int(z1_ambient), z1_family, int(n_classes)
        self.offset = float(concentration_offset)
        last = hidden[-1]
        self.classifier = nn.Sequential(mlp([self.n1, *hidden], activation), nn.Linear(last, self.n_classes))
        self.encoder = mlp([self.n1 + self.n_classes, *hidden], activation)
        self.z2_head = build_head(z2_family, last, int(z2_dim), self.offset)
        self.decoder = mlp([self.z2_head.ambient_dim + self.n_classes, *hidden], activation)
        out = 2 * self.n1 if z1_family == "gaussian" else self.n1 + 1
        self.z1_params = nn.Linear(last, out)

    # ------------------------------------------------------------------ pieces

    def classify(self, z1: Tensor) -> Tensor:
        """Logits of q(y | z1): (B, n1) -> (B, n_classes)."""
        return self.classifier(z1)

    def q_z2(self, z1: Tensor, y: Tensor) -> Distribution:
        """q(z2 | z1, y); y one-hot (B, n_classes); batch_shape (B,)."""
        return self.z2_head.posterior(self.encoder(torch.cat([z1, y], dim=-1)))

    def p_z1(self, y: Tensor, z2: Tensor) -> Distribution:
        """p(z1 | y, z2) with batch_shape (B,) and event_shape (n1,)."""
        out = self.z1_params(self.decoder(torch.cat([z2, y], dim=-1)))
        if self.z1_family == "gaussian":
            loc, scale = out.chunk(2, dim=-1)
            return Independent(Normal(loc, F.softplus(scale) + 1e-5), 1)
        return VonMisesFisher(F.normalize(out[..., :-1], dim=-1), F.softplus(out[..., -1]) + self.offset)

    # ------------------------------------------------------------------ bounds

    def labelled_bound(self, z1: Tensor, y: Tensor, sample: bool = True, kl_weight: float = 1.0) -> Tensor:
        """L(z1, y) per point (B,) in nats; y one-hot (B, n_classes). One reparameterised z2 sample
        (``sample=False``: z2 = the posterior's location, a deterministic bound for tests).
        ``kl_weight`` < 1 scales KL(q(z2 | z1, y) || p(z2)) during a KL warm-up (1: the bound)."""
        q = self.q_z2(z1, y)
        z2 = q.rsample() if sample else self.z2_head.code(q)
        log_py = -math.log(self.n_classes)
        return self.p_z1(y, z2).log_prob(z1) + log_py - kl_weight * self.z2_head.kl(q)

    def unlabelled_bound(
        self, z1: Tensor, sample: bool = True, logits: Tensor | None = None, kl_weight: float = 1.0
    ) -> Tensor:
        """U(z1) per point (B,) in nats: the label summed out under q(y | z1), plus its entropy.

        All classes in one pass: the batch is repeated n_classes times (n_classes * B rows).
        ``kl_weight``: as in :meth:`labelled_bound`."""
        b, k = z1.shape[0], self.n_classes
        logits = self.classify(z1) if logits is None else logits
        log_q = F.log_softmax(logits, dim=-1)  # (B, K)
        eye = torch.eye(k, dtype=z1.dtype, device=z1.device)
        ys = eye.repeat_interleave(b, dim=0)  # (K * B, K): class 0 for every point, then class 1, ...
        bounds = self.labelled_bound(z1.repeat(k, 1), ys, sample, kl_weight).view(k, b).T  # (B, K)
        q = log_q.exp()
        return (q * bounds).sum(-1) - (q * log_q).sum(-1)


def build_m2(
    *,
    z1_ambient: int,
    z1_family: str,
    z2_dim: int,
    z2_family: str,
    hidden_dims: Sequence[int],
    activation: str = "softplus",
    n_classes: int = 10,
    concentration_offset: float = 1.0,
) -> M2:
    """An :class:`M2` from plain values."""
    return M2(
        int(z1_ambient),
        str(z1_family),
        int(z2_dim),
        str(z2_family),
        [int(h) for h in hidden_dims],
        str(activation),
        int(n_classes),
        float(concentration_offset),
    )
