"""vMF log_prob, entropy, KL and mean against SciPy and exact identities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
from torch.distributions import kl_divergence

from helpers_ref import unit
from svae_bench.distributions import HypersphericalUniform, VonMisesFisher, log_sphere_surface

DIMS = [3, 5, 11, 41, 101]
CONCENTRATIONS = [1e-3, 0.5, 5.0, 50.0, 500.0, 5000.0]


@pytest.mark.parametrize("m", DIMS)
@pytest.mark.parametrize("k", CONCENTRATIONS)
def test_log_prob_and_entropy_match_scipy(m, k):
    rng = np.random.default_rng(m * 1000 + int(k * 10))
    mu = rng.normal(size=m)
    mu /= np.linalg.norm(mu)
    ref = scipy.stats.vonmises_fisher(mu, k)
    z = ref.rvs(20, random_state=rng)
    z = np.concatenate([z, mu[None], -mu[None]])  # include the mode and the antipode
    q = VonMisesFisher(torch.tensor(mu), torch.tensor(k, dtype=torch.float64))
    ours = q.log_prob(torch.tensor(z)).numpy()
    theirs = ref.logpdf(z)
    np.testing.assert_allclose(ours, theirs, rtol=1e-7)
    np.testing.assert_allclose(q.entropy().item(), ref.entropy(), rtol=1e-7)


@pytest.mark.parametrize("m", DIMS)
def test_kl_identity_nonnegative_and_vanishing(m):
    k = torch.tensor(CONCENTRATIONS + [1e-6, 1e5], dtype=torch.float64)
    q = VonMisesFisher(unit(torch.ones(len(k), m)), k)
    kl = kl_divergence(q, HypersphericalUniform(m, dtype=torch.float64))
    assert torch.allclose(kl, -q.entropy() + log_sphere_surface(m), rtol=1e-9, atol=1e-12)
    assert (kl >= 0).all()
    # small-k expansion: KL = k² / (2m) + O(k⁴)
    small = VonMisesFisher(unit(torch.ones(m)), torch.tensor(1e-3, dtype=torch.float64))
    kl_small = kl_divergence(small, HypersphericalUniform(m, dtype=torch.float64))
    assert math.isclose(kl_small.item(), 1e-6 / (2 * m), rel_tol=1e-4)
    # KL increases with k
    assert (kl[:6].diff() > 0).all()


def test_log_prob_normalised_over_the_sphere():
    # ∫ f = |S^(m-2)| ∫ exp(log f(w)) (1 - w²)^((m-3)/2) dw = 1, by quadrature in w
    from scipy.integrate import quad

    for m, k in [(3, 5.0), (5, 0.5), (11, 50.0), (41, 11.0)]:
        q = VonMisesFisher(unit(torch.ones(m)), torch.tensor(k, dtype=torch.float64))
        mu = q.loc
        e2 = torch.zeros(m, dtype=torch.float64)
        e2[0], e2[1] = -mu[1], mu[0]
        e2 = e2 / e2.norm()

        def integrand(w, mu=mu, e2=e2, q=q, m=m):
            z = w * mu + math.sqrt(max(1 - w * w, 0.0)) * e2
            return math.exp(q.log_prob(z).item() + log_sphere_surface(m - 1)) * (1 - w * w) ** (0.5 * (m - 3))

        total, _ = quad(integrand, -1, 1, points=[1 - 1 / k] if k > 1 else None, limit=200)
        assert math.isclose(total, 1.0, rel_tol=1e-7)


def test_mean_mode_shapes_and_broadcasting():
    loc = unit(torch.randn(4, 1, 6, generator=torch.Generator().manual_seed(0)))
    k = torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64)
    q = VonMisesFisher(loc, k)
    assert q.batch_shape == (4, 3) and q.event_shape == (6,)
    assert q.mean.shape == (4, 3, 6) and torch.equal(q.mode, q.loc)
    z = q.rsample((2,))
    assert z.shape == (2, 4, 3, 6)
    assert q.log_prob(z).shape == (2, 4, 3)
    expanded = q.expand((5, 4, 3))
    assert expanded.batch_shape == (5, 4, 3) and expanded.rsample().shape == (5, 4, 3, 6)
    assert torch.allclose(expanded.entropy()[0], q.entropy())


def test_validation_errors():
    with pytest.raises(ValueError):
        VonMisesFisher(torch.tensor([1.0, 1.0]), torch.tensor(1.0), validate_args=True)  # not unit
    with pytest.raises(ValueError):
        VonMisesFisher(unit([1.0, 0.0]), torch.tensor(-1.0), validate_args=True)
    with pytest.raises(ValueError, match="m >= 2"):
        VonMisesFisher(torch.tensor([1.0]), torch.tensor(1.0))
    with pytest.raises(ValueError, match="rsample_grad"):
        VonMisesFisher(unit([1.0, 0.0]), 1.0, rsample_grad="score")
    q = VonMisesFisher(unit([1.0, 0.0, 0.0]), torch.tensor(1.0, dtype=torch.float64), validate_args=True)
    with pytest.raises(ValueError):
        q.log_prob(torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64))


def test_kl_dimension_mismatch():
    q = VonMisesFisher(unit([1.0, 0.0, 0.0]), 1.0)
    with pytest.raises(ValueError, match="dimensions differ"):
        kl_divergence(q, HypersphericalUniform(4, dtype=torch.float64))
