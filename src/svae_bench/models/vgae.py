"""Variational graph auto-encoders (Kipf & Welling 2016): the N-VGAE and the S-VGAE of Table 4.

Encoder: GCN layers on the normalised adjacency A~ = D^-1/2 (A + I) D^-1/2 (sparse, (N, N)) and the
node features X (sparse, (N, F)): H = relu(A~ X W0) (more hidden layers: relu(A~ H W)), then the
posterior's parameters from two GCN heads on H (linear, no bias, Glorot-uniform weights, as in
Kipf's code):

* ``gaussian`` (N-VGAE): q(z_i) = N(mu_i, diag(exp(log_sigma_i))^2), mu = A~ H W_mu,
  log_sigma = A~ H W_sigma, in R^d; prior N(0, I).
* ``vmf`` (S-VGAE): q(z_i) = vMF(mu_i, k_i), mu = normalise(A~ H W_mu) on S^d in R^(d+1) (e_1 for
  a node whose A~ H W_mu is 0: :func:`unit_rows`),
  k = softplus(A~ H W_k) + ``concentration_offset``; prior uniform on S^d.

``latent_dim`` = d is the number of latent degrees of freedom, as everywhere in svae-bench: the
N-VGAE's codes live in R^d, the S-VGAE's on S^d in R^(d+1) (``ambient_dim``).

Decoder: p(A_ij = 1 | z) = sigmoid(s z_i . z_j). For the Gaussian s = 1 (Kipf's inner product);
for the vMF s is one learnable scalar (unit vectors give inner products in [-1, 1] only), stored as
``log_scale`` (s = exp(log_scale), positive) or directly as ``scale`` (``scale_param``).

The reconstruction term over all N^2 node pairs is :func:`weighted_bce` (Kipf's weighted
cross-entropy) computed without an (N, N) matrix: the sum of softplus over all pairs is
:class:`AllPairsSoftplus`, evaluated and differentiated in row blocks of at most
``chunk_elements`` entries, and the correction for the positive entries is a gather over them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, Normal, kl_divergence

from ..distributions import HypersphericalUniform, VonMisesFisher
from ..errors import ConfigError

LATENTS = ("gaussian", "vmf")
SCALE_PARAMS = ("log", "linear")
#: default block size of the all-pairs sum: 2^24 entries (64 MiB in float32) per block
CHUNK_ELEMENTS = 1 << 24


def glorot(fan_in: int, fan_out: int) -> nn.Parameter:
    """A (fan_in, fan_out) weight, uniform in +-sqrt(6 / (fan_in + fan_out)) (Kipf's initialisation)."""
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return nn.Parameter(torch.empty(fan_in, fan_out).uniform_(-bound, bound))


def _rows_per_block(n: int, chunk_elements: int) -> int:
    return max(1, min(n, chunk_elements // max(n, 1)))


class AllPairsSoftplus(torch.autograd.Function):
    """sum_{i,j} softplus(s z_i . z_j) over all N^2 pairs, in blocks of rows: every temporary holds at
    most ``chunk_elements`` entries (``rows x N``), so no (N, N) matrix exists once N^2 exceeds it.

    The gradient is computed in the same pass (L = s Z Z^T is symmetric): d/dZ = 2 s sigmoid(L) Z and
    d/ds = sum sigmoid(L) * (Z Z^T), so each block's Gram matrix is computed once. Only the (N, m)
    product sigmoid(L) Z and a scalar are kept for the backward pass."""

    @staticmethod
    def forward(ctx, z: Tensor, scale: Tensor, chunk_elements: int) -> Tensor:
        n = z.shape[0]
        rows = _rows_per_block(n, chunk_elements)
        want_z, want_s = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        total = z.new_zeros(())
        sig_z = torch.empty_like(z) if want_z else None
        sig_gram = z.new_zeros(())
        for a in range(0, n, rows):
            gram = z[a : a + rows] @ z.T
            logits = gram * scale
            total = total + F.softplus(logits).sum()
            if want_z or want_s:
                sig = torch.sigmoid(logits)
                if want_z:
                    sig_z[a : a + rows] = sig @ z
                if want_s:
                    sig_gram = sig_gram + (sig * gram).sum()
        ctx.save_for_backward(scale, sig_z if want_z else None, sig_gram)
        return total

    @staticmethod
    def backward(ctx, grad: Tensor):
        scale, sig_z, sig_gram = ctx.saved_tensors
        grad_z = grad * (2 * scale) * sig_z if ctx.needs_input_grad[0] else None
        grad_s = (grad * sig_gram).reshape(scale.shape) if ctx.needs_input_grad[1] else None
        return grad_z, grad_s, None


def unit_rows(x: Tensor, eps: float = 1e-12) -> Tensor:
    """Each row of ``x`` (N, m) divided by its norm; a row whose norm is below ``eps`` becomes e_1.

    A GCN without biases maps a node with no features and no edges to exactly 0 (Citeseer has 15
    such nodes): it has no direction, so it gets a fixed one; its concentration is learnt as usual."""
    norm = x.norm(dim=-1, keepdim=True)
    e1 = torch.zeros_like(x[:1])
    e1[0, 0] = 1
    return torch.where(norm > eps, x / norm.clamp_min(eps), e1)


def pair_logits(z: Tensor, scale: Tensor, pairs: Tensor) -> Tensor:
    """s z_i . z_j for each row (i, j) of ``pairs`` (k, 2) -> (k,)."""
    return scale * (z[pairs[:, 0]] * z[pairs[:, 1]]).sum(-1)


def weighted_bce(
    z: Tensor, scale: Tensor, positives: Tensor, pos_weight: float, norm: float, chunk_elements: int = CHUNK_ELEMENTS
) -> Tensor:
    """Kipf's reconstruction loss: norm * mean over all N^2 pairs of the weighted cross-entropy
    pos_weight * a_ij * softplus(-l_ij) + (1 - a_ij) * softplus(l_ij), l = s Z Z^T, a_ij = 1 exactly at
    the rows of ``positives`` (P, 2, distinct). Equal to sum_all softplus(l) + sum_pos ((pos_weight - 1)
    softplus(-l) - l), which needs no (N, N) matrix."""
    n = z.shape[0]
    all_pairs = AllPairsSoftplus.apply(z, scale, chunk_elements)
    lp = pair_logits(z, scale, positives)
    correction = ((pos_weight - 1.0) * F.softplus(-lp) - lp).sum()
    return norm * (all_pairs + correction) / (n * n)


class VGAE(nn.Module):
    """GCN encoder, Gaussian or vMF posterior, inner-product decoder (see the module docstring)."""

    def __init__(
        self,
        n_features: int,
        hidden_dims: list[int],
        latent: str,
        latent_dim: int,
        concentration_offset: float = 1.0,
        scale_init: float = 1.0,
        scale_param: str = "log",
        chunk_elements: int = CHUNK_ELEMENTS,
    ):
        super().__init__()
        if latent not in LATENTS:
            raise ConfigError(f"model.latent={latent!r} is not a graph latent; allowed: {', '.join(LATENTS)}")
        if int(latent_dim) < 1:
            raise ConfigError(f"latent_dim={latent_dim} must be a positive integer")
        if scale_param not in SCALE_PARAMS:
            raise ConfigError(f"model.scale_param={scale_param!r} is unknown; allowed: {', '.join(SCALE_PARAMS)}")
        self.latent = latent
        self.latent_dim = int(latent_dim)
        self.ambient_dim = self.latent_dim + (1 if latent == "vmf" else 0)
        self.geometry = "sphere" if latent == "vmf" else "euclidean"
        self.offset = float(concentration_offset)
        self.chunk_elements = int(chunk_elements)
        if not hidden_dims:
            raise ConfigError("model.hidden_dims must name at least one GCN layer")
        sizes = [n_features, *hidden_dims]
        self.hidden = nn.ParameterList([glorot(a, b) for a, b in zip(sizes[:-1], sizes[1:])])
        last = sizes[-1]
        self.w_loc = glorot(last, self.ambient_dim)
        self.w_spread = glorot(last, self.latent_dim if latent == "gaussian" else 1)
        self.scale_param = scale_param
        if latent == "vmf":
            if not scale_init > 0:
                raise ConfigError(f"model.scale_init={scale_init} must be > 0")
            value = math.log(scale_init) if scale_param == "log" else float(scale_init)
            self.decoder_scale = nn.Parameter(torch.tensor(value))
        else:
            self.register_buffer("decoder_scale", torch.tensor(0.0 if scale_param == "log" else 1.0))
        # optimiser steps taken: lets a validation value prefer the latest weights (Kipf keeps the last)
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))

    def scale(self) -> Tensor:
        """The decoder's s (a 0-dim tensor; 1 for the Gaussian)."""
        return self.decoder_scale.exp() if self.scale_param == "log" else self.decoder_scale

    def posterior(self, features: Tensor, adjacency: Tensor) -> Distribution:
        """q(Z | X, A): batch_shape (N,), event_shape (ambient_dim,)."""
        h = features
        for w in self.hidden:
            xw = torch.sparse.mm(h, w) if h.is_sparse else h @ w
            h = F.relu(torch.sparse.mm(adjacency, xw))
        loc = torch.sparse.mm(adjacency, h @ self.w_loc)
        spread = torch.sparse.mm(adjacency, h @ self.w_spread)
        if self.latent == "gaussian":
            return Independent(Normal(loc, spread.exp()), 1)
        return VonMisesFisher(unit_rows(loc), F.softplus(spread[:, 0]) + self.offset)

    def prior(self, like: Tensor) -> Distribution:
        if self.latent == "gaussian":
            zero = torch.zeros((), dtype=like.dtype, device=like.device)
            return Independent(Normal(zero.expand(self.ambient_dim), (zero + 1).expand(self.ambient_dim)), 1)
        return HypersphericalUniform(self.ambient_dim, dtype=like.dtype, device=like.device)

    @staticmethod
    def location(q: Distribution) -> Tensor:
        """The posterior's location (N, ambient_dim): the Gaussian's mean, the vMF's mean direction
        (what Kipf scores links with)."""
        return q.base_dist.loc if isinstance(q, Independent) else q.loc

    def terms(
        self, features: Tensor, adjacency: Tensor, positives: Tensor, pos_weight: float, norm: float
    ) -> tuple[Tensor, Tensor]:
        """(reconstruction loss, KL per node (N,)) with one sample of q."""
        q = self.posterior(features, adjacency)
        z = q.rsample()
        recon = weighted_bce(z, self.scale(), positives, pos_weight, norm, self.chunk_elements)
        return recon, kl_divergence(q, self.prior(z))

    @torch.no_grad()
    def scores(self, features: Tensor, adjacency: Tensor, pairs: Tensor) -> Tensor:
        """sigmoid(s mu_i . mu_j) for each row of ``pairs`` (k, 2), from the posterior's location."""
        loc = self.location(self.posterior(features, adjacency))
        return torch.sigmoid(pair_logits(loc, self.scale(), pairs))
