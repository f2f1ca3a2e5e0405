"""Gradients of vMF samples: unbiased in k through rsample alone, exact in loc, finite in float32."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.integrate import quad
from torch.distributions import kl_divergence

from helpers_ref import unit
from svae_bench.distributions import HypersphericalUniform, VonMisesFisher, bessel_iv_ratio
from svae_bench.distributions.vmf_marginal import marginal_dw_dk


def exact_dA_dk(m: int, k: float) -> float:
    """d/dk E[mu.z] = A'(k) = 1 - A² - (m-1) A / k."""
    a = bessel_iv_ratio(0.5 * m - 1, torch.tensor(k, dtype=torch.float64)).item()
    return 1 - a * a - (m - 1) * a / k


def grad_estimate(m: int, k: float, n: int, mode: str, seed: int) -> tuple[float, float]:
    """Mean and standard error of per-sample d(mu.z)/dk from autograd on rsample()."""
    torch.manual_seed(seed)
    mu = unit(torch.ones(m))
    kk = torch.full((n,), k, dtype=torch.float64, requires_grad=True)
    z = VonMisesFisher(mu, kk, rsample_grad=mode).rsample()
    (g,) = torch.autograd.grad((z @ mu).sum(), kk)  # entry i = d(mu.z_i)/dk_i
    return g.mean().item(), g.std().item() / math.sqrt(n)


@pytest.mark.parametrize("m,k", [(5, 2.0), (6, 2.0), (11, 5.0), (3, 10.0), (101, 11.0), (1001, 100.0), (2, 3.0)])
def test_implicit_gradient_unbiased(m, k):
    est, se = grad_estimate(m, k, 60_000, "implicit", seed=m)
    exact = exact_dA_dk(m, k)
    assert abs(est - exact) < 4 * se, (est, exact, se)


def test_mean_of_user_loss_gradient():
    # exactly the recipe: autograd on (q.rsample() @ mu).mean() w.r.t. a shared k
    torch.manual_seed(0)
    m, k, n = 5, 2.0, 60_000
    mu = unit(torch.ones(m))
    kk = torch.tensor(k, dtype=torch.float64, requires_grad=True)
    q = VonMisesFisher(mu.expand(n, m), kk.expand(n))
    (q.rsample() @ mu).mean().backward()
    _, se = grad_estimate(m, k, n, "implicit", seed=1)
    assert abs(kk.grad.item() - exact_dA_dk(m, k)) < 4 * se


def test_pathwise_option_reproduces_official_bias():
    # official g_rep: 0.1276 at (5, 2) against the exact 0.1474
    est, se = grad_estimate(5, 2.0, 60_000, "pathwise", seed=5)
    assert abs(est - 0.1276) < 4 * se + 5e-5  # 5e-5: rounding of the published value
    assert abs(est - exact_dA_dk(5, 2.0)) > 20 * se


@pytest.mark.parametrize("m,k", [(2, 0.7), (3, 4.0), (5, 2.0), (11, 50.0), (101, 11.0), (1001, 100.0), (11, 1e4)])
def test_per_sample_derivative_matches_quadrature(m, k):
    # dw/dk = -(∫_{-1}^{w} (s - A) g(s) ds) / g(w), with SciPy's adaptive quad as reference
    a = bessel_iv_ratio(0.5 * m - 1, torch.tensor(k, dtype=torch.float64)).item()
    half = 0.5 * (m - 3)
    torch.manual_seed(0)
    q = VonMisesFisher(unit(torch.ones(m)), torch.full((12,), k, dtype=torch.float64))
    t = (1 - q.rsample() @ q.loc[0]).clamp_min(1e-300)
    ours = marginal_dw_dk(t, torch.full_like(t, k), m, torch.full_like(t, a))
    for ti, oi in zip(t.tolist(), ours.tolist()):
        w = 1 - ti

        def ratio(s, ti=ti):  # g(s) / g(w), written in t-space for accuracy near the mode
            ts = 1 - s
            return math.exp(-k * (ts - ti) + half * (math.log(ts * (2 - ts)) - math.log(ti * (2 - ti))))

        if w >= a:
            val, _ = quad(lambda s: (s - a) * ratio(s), w, 1, limit=200, epsabs=0, epsrel=1e-11)
        else:
            val, _ = quad(lambda s: (a - s) * ratio(s), -1, w, limit=200, epsabs=0, epsrel=1e-11)
        assert math.isclose(oi, val, rel_tol=1e-6), (m, k, w, oi, val)


def test_loc_gradient_matches_finite_differences():
    # same noise (common random numbers): z is a smooth function of loc away from mu_1 = 0
    m, k = 6, 7.0
    raw = torch.tensor([0.8, -0.3, 0.5, 0.1, -0.6, 0.2], dtype=torch.float64, requires_grad=True)
    a = torch.linspace(-1, 1, m, dtype=torch.float64)

    def f(r):
        torch.manual_seed(11)
        q = VonMisesFisher(torch.nn.functional.normalize(r, dim=-1).expand(64, m), torch.tensor(k, dtype=torch.float64))
        return (q.rsample() @ a).sum()

    (g,) = torch.autograd.grad(f(raw), raw)
    fd = torch.zeros(m, dtype=torch.float64)
    for i in range(m):
        e = torch.zeros(m, dtype=torch.float64)
        e[i] = 1e-6
        fd[i] = (f(raw.detach() + e) - f(raw.detach() - e)) / 2e-6
    assert torch.allclose(g, fd, rtol=1e-6, atol=1e-8)


def test_loc_gradient_unbiased_in_expectation():
    # d/d raw E[a.z] = A (I - mu mu^T) a / |raw| for mu = raw / |raw|
    torch.manual_seed(12)
    m, k, n = 5, 3.0, 40_000
    raw = torch.tensor([0.3, -1.2, 0.4, 0.9, -0.2], dtype=torch.float64, requires_grad=True)
    a = torch.tensor([1.0, 0.5, -0.3, 0.2, 0.7], dtype=torch.float64)
    mu = torch.nn.functional.normalize(raw, dim=-1)
    z = VonMisesFisher(mu.expand(n, m), torch.tensor(k, dtype=torch.float64)).rsample()
    per_sample = z @ a
    jac = torch.stack([torch.autograd.grad(per_sample[i], raw, retain_graph=True)[0] for i in range(200)])
    (g,) = torch.autograd.grad(per_sample.mean(), raw)
    A = bessel_iv_ratio(0.5 * m - 1, torch.tensor(k, dtype=torch.float64))
    mu_d = mu.detach()
    exact = A * (a - mu_d * (mu_d @ a)) / raw.detach().norm()
    se = jac.std(0) / math.sqrt(n)
    assert ((g - exact).abs() < 4 * se).all(), (g, exact, se)


def test_kl_gradient_matches_closed_form():
    # d KL / dk = k A'(k)
    k = torch.tensor([1e-3, 0.5, 5.0, 50.0, 500.0], dtype=torch.float64, requires_grad=True)
    m = 11
    kl = kl_divergence(VonMisesFisher(unit(torch.ones(5, m)), k), HypersphericalUniform(m, dtype=torch.float64))
    (g,) = torch.autograd.grad(kl.sum(), k)
    exact = torch.tensor([kk * exact_dA_dk(m, kk) for kk in k.tolist()], dtype=torch.float64)
    assert torch.allclose(g, exact, rtol=1e-8)


@pytest.mark.parametrize("m", [3, 11, 101, 1001])
@pytest.mark.parametrize("k", [1e-4, 1.0, 1e3, 1e5])
def test_float32_everything_finite(m, k):
    torch.manual_seed(13)
    raw = torch.randn(32, m, requires_grad=True)
    kk = torch.full((32,), k, requires_grad=True)
    q = VonMisesFisher(torch.nn.functional.normalize(raw, dim=-1), kk)
    z = q.rsample()
    lp = q.log_prob(z)
    kl = kl_divergence(q, HypersphericalUniform(m))
    ent = q.entropy()
    for value in (z, lp, kl, ent, q.mean):
        assert value.dtype == torch.float32 and torch.isfinite(value).all()
    loss = (z @ torch.randn(m)).sum() + lp.sum() + kl.sum() + ent.sum()
    g_raw, g_k = torch.autograd.grad(loss, (raw, kk))
    assert torch.isfinite(g_raw).all() and torch.isfinite(g_k).all()
    assert (kl >= 0).all()


def test_float32_and_float64_agree():
    m, k = 11, 30.0
    for dtype in (torch.float32, torch.float64):
        q = VonMisesFisher(unit(torch.ones(m)).to(dtype), torch.tensor(k, dtype=dtype))
        kl = kl_divergence(q, HypersphericalUniform(m, dtype=dtype))
        if dtype == torch.float32:
            kl32 = kl.item()
        else:
            assert math.isclose(kl32, kl.item(), rel_tol=1e-6)


def test_cuda_matches_cpu(device):
    if device.type != "cuda":
        pytest.skip("CUDA not available")
    m, k = 11, 50.0
    q_cpu = VonMisesFisher(unit(torch.ones(m)).float(), torch.tensor(k))
    q_gpu = VonMisesFisher(unit(torch.ones(m)).float().to(device), torch.tensor(k, device=device))
    kl_gpu = kl_divergence(q_gpu, HypersphericalUniform(m, device=device))
    assert kl_gpu.device.type == "cuda"
    assert math.isclose(kl_gpu.item(), kl_divergence(q_cpu, HypersphericalUniform(m)).item(), rel_tol=1e-6)
    z = q_gpu.rsample((1000,))
    assert z.device.type == "cuda" and torch.isfinite(z).all()


def test_double_backward_is_refused_not_silently_wrong():
    # the hand-written backwards are first-order exact only; create_graph must raise
    mu = unit(torch.ones(5, dtype=torch.float64))
    k = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    q = VonMisesFisher(mu, k)
    with pytest.raises(RuntimeError, match="first derivatives only"):
        torch.autograd.grad(q.rsample().sum(), k, create_graph=True)
    with pytest.raises(RuntimeError, match="first derivatives only"):
        torch.autograd.grad(kl_divergence(q, HypersphericalUniform(5)), k, create_graph=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("uniform", [0.0, 1.0 - 2.0**-24])
def test_gradients_finite_when_the_m3_uniform_hits_an_end_point(monkeypatch, dtype, uniform):
    """torch.rand returns exactly 0 with probability 2^-24 (float32): the m = 3 inverse CDF then
    gives t = 2 (z = -mu), where dz/dt is unbounded but dt/dk = 0. Seen in a real MNIST run
    (S-VAE, d = 2, k = 816): the gradient was inf * 0 = NaN and the weights became NaN."""
    monkeypatch.setattr(torch, "rand_like", lambda k: torch.full_like(k, uniform))
    raw = torch.randn(4, 3, dtype=dtype, requires_grad=True)
    kk = torch.tensor([1.0, 10.0, 815.6, 1e4], dtype=dtype, requires_grad=True)
    loc = torch.nn.functional.normalize(raw, dim=-1)
    z = VonMisesFisher(loc, kk).rsample()
    g_raw, g_k = torch.autograd.grad((z * torch.randn(4, 3, dtype=dtype)).sum(), (raw, kk))
    assert torch.isfinite(g_raw).all() and torch.isfinite(g_k).all()
    if uniform == 0.0:
        assert torch.allclose(z, -loc.detach())  # the antipode, for every k
        assert (g_k == 0).all()  # ... which does not move with k
