"""Power Spherical: normalised density, entropy against Monte Carlo, KL identity, samples."""

from __future__ import annotations

import math

import pytest
import scipy.stats
import torch
from scipy.integrate import quad
from torch.distributions import kl_divergence

from helpers_ref import unit
from svae_bench.distributions import HypersphericalUniform, PowerSpherical, log_sphere_surface


@pytest.mark.parametrize("m,k", [(3, 0.5), (3, 20.0), (11, 5.0), (41, 100.0), (101, 1.0)])
def test_log_prob_normalised(m, k):
    q = PowerSpherical(unit(torch.ones(m)), torch.tensor(k, dtype=torch.float64))
    log_c = q.log_normalizer().item()
    # ∫ C (1 + w)^k |S^(m-2)| (1 - w²)^((m-3)/2) dw over [-1, 1]
    f = lambda w: math.exp(log_c + k * math.log1p(w) + log_sphere_surface(m - 1) + 0.5 * (m - 3) * math.log1p(-w * w))  # noqa: E731
    total, _ = quad(f, -1, 1, limit=200, epsrel=1e-11)
    assert math.isclose(total, 1.0, rel_tol=1e-8)


@pytest.mark.parametrize("m,k", [(3, 2.0), (11, 5.0), (41, 100.0)])
def test_entropy_matches_monte_carlo(m, k):
    torch.manual_seed(m)
    n = 50_000
    q = PowerSpherical(unit(torch.ones(m)), torch.full((n,), k, dtype=torch.float64))
    lp = q.log_prob(q.rsample())
    mc, se = -lp.mean().item(), lp.std().item() / math.sqrt(n)
    assert abs(mc - q.entropy()[0].item()) < 5 * se


def test_kl_identity():
    for m in (3, 11, 101):
        k = torch.tensor([1e-3, 1.0, 10.0, 1e3], dtype=torch.float64)
        q = PowerSpherical(unit(torch.ones(4, m)), k)
        kl = kl_divergence(q, HypersphericalUniform(m, dtype=torch.float64))
        assert torch.allclose(kl, log_sphere_surface(m) - q.entropy(), rtol=1e-12)
        assert (kl >= 0).all()


def test_marginal_is_the_scaled_beta():
    # (1 + mu.z) / 2 ~ Beta((m-1)/2 + k, (m-1)/2)
    torch.manual_seed(0)
    m, k, n = 11, 7.0, 60_000
    mu = unit(torch.arange(1.0, m + 1))
    z = PowerSpherical(mu, torch.full((n,), k, dtype=torch.float64)).rsample()
    u = ((1 + z @ mu) / 2).numpy()
    assert scipy.stats.kstest(u, scipy.stats.beta(0.5 * (m - 1) + k, 0.5 * (m - 1)).cdf).pvalue > 1e-3
    assert torch.allclose(z.norm(dim=-1), torch.ones(n, dtype=torch.float64), atol=1e-12)


def test_gradients_flow_and_are_finite_in_float32():
    torch.manual_seed(1)
    for m in (3, 101):
        for k in (1e-4, 1.0, 1e3, 1e5):
            raw = torch.randn(16, m, requires_grad=True)
            kk = torch.full((16,), k, requires_grad=True)
            q = PowerSpherical(torch.nn.functional.normalize(raw, dim=-1), kk)
            z = q.rsample()
            loss = (z @ torch.randn(m)).sum() + kl_divergence(q, HypersphericalUniform(m)).sum() + q.log_prob(z).sum()
            g_raw, g_k = torch.autograd.grad(loss, (raw, kk))
            assert torch.isfinite(z).all() and torch.isfinite(g_raw).all() and torch.isfinite(g_k).all()


def test_mean_matches_samples():
    torch.manual_seed(2)
    m, k, n = 5, 3.0, 60_000
    q = PowerSpherical(unit(torch.ones(m)), torch.full((n,), k, dtype=torch.float64))
    z = q.rsample()
    se = z.std(0) / math.sqrt(n)
    assert ((z.mean(0) - q.mean[0]).abs() < 4 * se).all()


def test_uniform_sampling_and_density():
    torch.manual_seed(3)
    u = HypersphericalUniform(4, dtype=torch.float64)
    x = u.sample((60_000,))
    assert torch.allclose(x.norm(dim=-1), torch.ones(60_000, dtype=torch.float64))
    assert scipy.stats.kstest((x[:, 0] ** 2).numpy(), scipy.stats.beta(0.5, 1.5).cdf).pvalue > 1e-3
    assert torch.allclose(u.log_prob(x), torch.full((60_000,), -log_sphere_surface(4), dtype=torch.float64))
    assert math.isclose(u.entropy().item(), math.log(2 * math.pi**2))  # |S^3| = 2 pi²
    with pytest.raises(ValueError, match="dim"):
        HypersphericalUniform(0)
