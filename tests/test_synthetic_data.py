"""The synthetic S^2 mixture: shapes, determinism, labels and speed of generation."""

from __future__ import annotations

import time

import pytest
import torch

from svae_bench.data import build_dataset
from svae_bench.errors import ConfigError

BASE = dict(
    name="synthetic",
    sphere_dim=2,
    n_components=3,
    concentration=20.0,
    directions=None,
    observed_dim=100,
    map_hidden=64,
    noise_std=0.05,
    n_train=600,
    n_val=100,
    n_test=150,
    data_seed=7,
    likelihood="gaussian",
    obs_scale=0.1,
)


def make(**kw):
    return build_dataset({**BASE, **kw})  # plain values, as the task passes them


def test_shapes_labels_and_truth():
    data = make()
    assert (len(data.train), len(data.val), len(data.test)) == (600, 100, 150)
    assert data.train.x.shape == (600, 100) and data.train.x.dtype == torch.float32
    assert data.test.truth.shape == (150, 3)
    assert torch.allclose(data.test.truth.norm(dim=-1), torch.ones(150), atol=1e-5)
    assert set(data.train.y.tolist()) == {0, 1, 2}
    # the true points cluster around their component's direction (kappa = 20: E[mu.z] ~ 0.95)
    mu = torch.tensor(data.info["directions"])
    cos = (data.train.truth * mu[data.train.y]).sum(-1)
    assert cos.mean() > 0.9


def test_deterministic_in_the_data_seed_only():
    a, b, c = make(), make(), make(data_seed=8)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert not torch.equal(a.train.x, c.train.x)
    torch.manual_seed(123)  # the global RNG does not matter
    assert torch.equal(make().val.x, a.val.x)


def test_generation_is_fast():
    t0 = time.perf_counter()
    make(n_train=6000, n_val=1000, n_test=1000)
    assert time.perf_counter() - t0 < 5.0  # typically ~0.1 s; a generous bound against machine noise


def test_bad_values_are_config_errors():
    with pytest.raises(ConfigError, match="dataset.n_train"):
        make(n_train=0)
    with pytest.raises(ConfigError, match="directions"):
        make(directions=[[1, 0, 0]])
