"""Exactness of vMF samples: KS tests of mu.z, unit norms, uniform tangent directions."""

from __future__ import annotations

import math

import pytest
import scipy.stats
import torch

from helpers_ref import marginal_cdf, unit
from svae_bench.distributions import VonMisesFisher, vmf_marginal
from svae_bench.distributions.vmf_marginal import sample_t, wood_b

N = 60_000
# A correct sampler fails each KS test with probability 1e-3; seeds are fixed, so
# the outcome is deterministic, and a biased sampler (e.g. the official b blend,
# E[w] = 0.046 instead of 0.252 at m = 41, k = 11) gives p-values of ~0.
KS_ALPHA = 1e-3
GRID = [
    (3, 1e-3),
    (3, 5.0),
    (3, 1e4),
    (41, 11.0),
    (101, 11.0),
    (101, 1000.0),
    (11, 1e5),
    (1001, 100.0),
    (5, 2.0),
    (6, 0.5),
]


@pytest.mark.parametrize("path", ["rounds_of_8", "large_batch"])
@pytest.mark.parametrize("m,k", GRID)
def test_marginal_ks(m, k, path, monkeypatch):
    # N samples in one call take the large-batch path (rounds over the pending samples);
    # raising its threshold forces the 8-proposals-per-round path used at training batch sizes.
    if path == "rounds_of_8":
        monkeypatch.setattr(vmf_marginal, "LARGE_BATCH", 10**9)
    torch.manual_seed(m + int(k))
    mu = unit(torch.linspace(-1, 1, m) + 0.1)
    q = VonMisesFisher(mu, torch.full((N,), k, dtype=torch.float64))
    z = q.rsample()
    t = (1 - z @ mu).clamp(0, 2).numpy()
    p = scipy.stats.kstest(marginal_cdf(t, m, k), "uniform").pvalue
    assert p > KS_ALPHA, f"KS p-value {p:.2e} for m={m}, k={k}"


def test_ks_detects_the_official_b_blend():
    # the test above has power: the official sampler's b for k > 10 fails it
    m, k = 41, 11.0
    kk = torch.full((N,), k, dtype=torch.float64)
    b_official = (m - 1) / (4 * kk)  # Taylor form the official code blends to for k > 10
    torch.manual_seed(0)
    beta = torch.distributions.Beta(torch.tensor(0.5 * (m - 1)), torch.tensor(0.5 * (m - 1)))
    out = torch.empty(N, dtype=torch.float64)
    todo = torch.ones(N, dtype=torch.bool)
    while todo.any():  # the official algorithm, for reference only
        z = beta.sample((N,)).double()
        w = (1 - (1 + b_official) * z) / (1 - (1 - b_official) * z)
        x0 = (1 - b_official) / (1 + b_official)
        c = kk * x0 + (m - 1) * torch.log(1 - x0**2)
        acc = kk * w + (m - 1) * torch.log(1 - x0 * w) - c >= torch.log(torch.rand(N, dtype=torch.float64))
        new = acc & todo
        out[new] = w[new]
        todo &= ~acc
    p = scipy.stats.kstest(marginal_cdf((1 - out).numpy(), m, k), "uniform").pvalue
    assert p < 1e-10


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-9), (torch.float32, 1e-5)])
@pytest.mark.parametrize("m", [2, 3, 11, 101, 1001])
def test_unit_norm_including_poles(dtype, tol, m):
    torch.manual_seed(1)
    e1 = torch.zeros(m, dtype=dtype)
    e1[0] = 1
    locs = torch.stack([e1, -e1, unit(torch.randn(m)).to(dtype)])
    for k in [1e-4, 1.0, 50.0, 1e5]:
        q = VonMisesFisher(locs.repeat(200, 1), torch.tensor(k, dtype=dtype))
        z = q.rsample()
        assert z.dtype == dtype
        assert (z.norm(dim=-1) - 1).abs().max().item() < tol
        # and it sits near the right pole when the vMF is concentrated
        if k >= 10 * m:
            assert ((z * q.loc).sum(-1) > 0).all()


@pytest.mark.parametrize("m", [2, 3, 11])
@pytest.mark.parametrize("pole", ["e1", "-e1", "random"])
def test_tangent_direction_uniform(m, pole):
    torch.manual_seed(2)
    if pole == "random":
        mu = unit(torch.randn(m))
    else:
        mu = torch.zeros(m, dtype=torch.float64)
        mu[0] = 1.0 if pole == "e1" else -1.0
    z = VonMisesFisher(mu, torch.full((20_000,), 3.0, dtype=torch.float64)).rsample()
    tangent = z - (z @ mu)[:, None] * mu
    tangent = tangent / tangent.norm(dim=-1, keepdim=True)
    # an orthonormal basis of the tangent space at mu
    basis = torch.linalg.qr(torch.cat([mu[:, None], torch.randn(m, m - 1, dtype=torch.float64)], 1))[0][:, 1:]
    coords = tangent @ basis  # uniform on S^(m-2)
    if m == 2:  # S^0: a fair sign
        assert scipy.stats.binomtest(int((coords[:, 0] > 0).sum()), len(coords)).pvalue > KS_ALPHA
    elif m == 3:  # uniform angle on the circle
        angle = torch.atan2(coords[:, 1], coords[:, 0]).numpy()
        assert scipy.stats.kstest(angle, scipy.stats.uniform(-math.pi, 2 * math.pi).cdf).pvalue > KS_ALPHA
    else:  # squared coordinate of a uniform direction on S^(m-2) is Beta(1/2, (m-2)/2)
        for j in range(2):
            x2 = (coords[:, j] ** 2).numpy()
            assert scipy.stats.kstest(x2, scipy.stats.beta(0.5, 0.5 * (m - 2)).cdf).pvalue > KS_ALPHA


def test_wood_acceptance_rate_bound():
    # PROPOSALS_PER_ROUND relies on an acceptance rate above 0.65 for all m, k
    torch.manual_seed(3)
    n = 40_000
    for m in [2, 4, 11, 101, 1001]:
        for k in [1e-3, 1.0, 10.0, 1e3, 1e5]:
            kk = torch.full((n,), k, dtype=torch.float64)
            b = wood_b(kk, m)
            x0, om = (1 - b) / (1 + b), 2 * b / (1 + b)
            g = torch._standard_gamma(torch.full((2, n), 0.5 * (m - 1), dtype=torch.float64))
            br = b * g[0] / g[1]
            t = 2 * br / (1 + br)
            la = kk * (om - t) + (m - 1) * (torch.log(om + x0 * t) - torch.log(om * 2 / (1 + b)))
            rate = (la >= torch.log(torch.rand(n, dtype=torch.float64))).double().mean().item()
            assert rate > 0.65 - 4 * math.sqrt(0.25 / n), (m, k, rate)


@pytest.mark.parametrize("n", [2, vmf_marginal.LARGE_BATCH])
def test_bad_concentration_raises_instead_of_looping(n):
    k = torch.ones(n, dtype=torch.float64)
    k[1] = float("nan")
    with pytest.raises(RuntimeError, match="no proposal accepted"):
        sample_t(k, 11)


def test_stable_b_has_no_cancellation():
    # b = (m-1)/(2k + sqrt(4k² + (m-1)²)): relative accuracy at huge k, where the
    # textbook (-2k + sqrt(4k² + (m-1)²))/(m-1) cancels to 0 in float32
    k = torch.tensor([1e5], dtype=torch.float32)
    b = wood_b(k, 11)
    assert math.isclose(b.item(), 10 / (2e5 + math.sqrt(4e10 + 100)), rel_tol=1e-6)


def test_mean_direction_statistics():
    # E[z] = A_m(k) mu within 4 standard errors per coordinate
    torch.manual_seed(4)
    m, k, n = 7, 4.0, 50_000
    mu = unit(torch.arange(1.0, m + 1))
    q = VonMisesFisher(mu, torch.full((n,), k, dtype=torch.float64))
    z = q.rsample()
    se = z.std(0) / math.sqrt(n)
    assert ((z.mean(0) - q.mean[0]).abs() < 4 * se).all()
