"""The synthetic experiment of the paper: a vMF mixture on S^s seen through a noisy non-linear map.

Samples z from a mixture of K von Mises-Fisher components on S^s (equal
weights, common concentration), then x = W2 tanh(W1 z + b1) + b2 + noise in
R^observed_dim, with the map's weights drawn once from the data seed. Labels
are the component ids; the true sphere points are kept for plots. Everything
is a deterministic function of ``data_seed`` (and not of the run's seed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..distributions import VonMisesFisher
from ..errors import ConfigError
from .bundle import DataBundle, Split


def default_directions(n_components: int, ambient: int, generator: torch.Generator) -> torch.Tensor:
    """K well-separated unit vectors in R^ambient: +-e_i first, random ones beyond 2 * ambient."""
    eye = torch.eye(ambient)
    fixed = torch.cat([eye, -eye])[:n_components]
    extra = max(0, n_components - fixed.shape[0])
    rand = torch.randn(extra, ambient, generator=generator)
    return torch.cat([fixed, rand / rand.norm(dim=-1, keepdim=True)])


def make_synthetic(
    *,
    sphere_dim: int,
    n_components: int,
    concentration: float,
    observed_dim: int,
    map_hidden: int,
    noise_std: float,
    n_train: int,
    n_val: int,
    n_test: int,
    data_seed: int,
    likelihood: str,
    obs_scale: float,
    directions: Sequence[Sequence[float]] | None = None,
) -> DataBundle:
    """The mixture's splits (conf/dataset/synthetic.yaml says what each value is): x (N,
    observed_dim) float32, y (N,) int64 component ids, truth (N, sphere_dim + 1) float32."""
    s = int(sphere_dim)
    k_comp = int(n_components)
    sizes = {
        "n_train": n_train,
        "n_val": n_val,
        "n_test": n_test,
        "observed_dim": observed_dim,
        "map_hidden": map_hidden,
        "n_components": n_components,
        "sphere_dim": sphere_dim,
    }
    for key, value in sizes.items():
        if int(value) < 1:
            raise ConfigError(f"dataset.{key}={value} must be a positive integer")
    if not float(concentration) > 0:
        raise ConfigError(f"dataset.concentration={concentration} must be > 0")
    ambient = s + 1
    gen = torch.Generator().manual_seed(int(data_seed))
    if directions is None:
        mu = default_directions(k_comp, ambient, gen)
    else:
        mu = torch.tensor([list(map(float, d)) for d in directions])
        if mu.shape != (k_comp, ambient):
            raise ConfigError(
                f"dataset.directions must be {k_comp} vectors of length {ambient}, got shape {tuple(mu.shape)}"
            )
        mu = mu / mu.norm(dim=-1, keepdim=True)

    n = int(n_train) + int(n_val) + int(n_test)
    labels = torch.randint(k_comp, (n,), generator=gen)
    with torch.random.fork_rng(devices=[]):  # the vMF sampler draws from the global CPU stream
        torch.default_generator.manual_seed(int(data_seed))  # not manual_seed: that reseeds CUDA too
        z = VonMisesFisher(mu[labels].double(), torch.tensor(float(concentration), dtype=torch.float64)).sample()
    z = z.float()

    hidden, out = int(map_hidden), int(observed_dim)
    w1 = torch.randn(hidden, ambient, generator=gen) * 2.0
    b1 = torch.randn(hidden, generator=gen) * 0.5
    w2 = torch.randn(out, hidden, generator=gen) / math.sqrt(hidden)
    b2 = torch.randn(out, generator=gen) * 0.1
    x = torch.tanh(z @ w1.T + b1) @ w2.T + b2
    x = x + float(noise_std) * torch.randn(x.shape, generator=gen)

    a, b = int(n_train), int(n_train) + int(n_val)
    split = lambda lo, hi: Split(x[lo:hi].contiguous(), labels[lo:hi].contiguous(), z[lo:hi].contiguous())  # noqa: E731
    return DataBundle(
        name="synthetic",
        train=split(0, a),
        val=split(a, b),
        test=split(b, n),
        likelihood=str(likelihood),
        obs_scale=float(obs_scale),
        info={"directions": mu.tolist(), "sphere_dim": s},
    )
