"""log_bessel_iv against mpmath, in float64 and float32, values and derivatives."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch

from svae_bench.distributions import bessel_iv_ratio, log_bessel_iv, log_bessel_ive

mpmath.mp.dps = 40
ORDERS = [0.0, 0.5, 1.0, 1.5, 2.5, 4.0, 9.5, 20.0, 49.5, 100.0, 199.5, 500.0]
ARGS = np.unique(np.concatenate([np.logspace(-4, 5, 55), [19.99, 20.0, 20.01, 25.0, 50.0]]))


def reference(v: float, x: float) -> tuple[float, float]:
    """log I_v(x) and d/dx log I_v(x) = I_{v+1}/I_v + v/x, with 40 digits."""
    i0, i1 = mpmath.besseli(v, x), mpmath.besseli(v + 1, x)
    return float(mpmath.log(i0)), float(i1 / i0 + mpmath.mpf(v) / x)


@pytest.fixture(scope="module")
def grid():
    vs, xs, vals, ders = [], [], [], []
    for v in ORDERS:
        for x in ARGS:
            x = float(x)
            val, der = reference(v, x)
            vs.append(v), xs.append(x), vals.append(val), ders.append(der)
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    return t(vs), t(xs), t(vals), t(ders)


@pytest.mark.parametrize("scalar_order", [False, True], ids=["tensor-v", "scalar-v"])
def test_float64_matches_mpmath(grid, scalar_order):
    v, x, ref, dref = grid
    if scalar_order:  # the fast path the vMF uses: one Python float order per call
        outs, grads = [], []
        for order in ORDERS:
            sel = v == order
            xs = x[sel].clone().requires_grad_()
            out = log_bessel_iv(order, xs)
            outs.append(out.detach()), grads.append(torch.autograd.grad(out.sum(), xs)[0])
        out, grad = torch.cat(outs), torch.cat(grads)
    else:
        xs = x.clone().requires_grad_()
        out = log_bessel_iv(v, xs)
        (grad,) = torch.autograd.grad(out.sum(), xs)
        out = out.detach()
    assert out.dtype == torch.float64
    rel = ((out - ref).abs() / ref.abs()).max().item()
    drel = ((grad - dref).abs() / dref.abs()).max().item()
    assert rel < 1e-8, rel
    assert drel < 1e-6, drel


def test_float32_finite_and_accurate():
    # compare against mpmath at the float32-rounded arguments, which is what float32 input means
    v = torch.tensor([o for o in ORDERS for _ in ARGS], dtype=torch.float32)
    x32 = torch.tensor([float(a) for _ in ORDERS for a in ARGS], dtype=torch.float32, requires_grad=True)
    out = log_bessel_iv(v, x32)
    (grad,) = torch.autograd.grad(out.sum(), x32)
    assert out.dtype == grad.dtype == torch.float32
    assert torch.isfinite(out).all() and torch.isfinite(grad).all()
    refs = torch.tensor([reference(float(a), float(b)) for a, b in zip(v.tolist(), x32.detach().tolist())])
    rel = ((out.double() - refs[:, 0]).abs() / refs[:, 0].abs()).max().item()
    drel = ((grad.double() - refs[:, 1]).abs() / refs[:, 1].abs()).max().item()
    assert rel < 1e-4 and drel < 1e-4, (rel, drel)


def test_ive_and_ratio_consistent_with_log_iv():
    x = torch.logspace(-3, 4, 50, dtype=torch.float64)
    for v in (0.0, 3.5, 120.0):
        assert torch.allclose(log_bessel_ive(v, x), log_bessel_iv(v, x) - x, rtol=1e-13, atol=1e-12)
        ratio = bessel_iv_ratio(v, x)
        direct = torch.exp(log_bessel_iv(v + 1, x) - log_bessel_iv(v, x))
        assert torch.allclose(ratio, direct, rtol=1e-10)
        assert ((ratio >= 0) & (ratio < 1)).all()


def test_second_derivative_of_log_normaliser_through_ratio():
    # d/dx R_v(x) = 1 - R² - (2v+1) R / x: checked by central differences in float64
    x = torch.tensor([0.3, 5.0, 19.0, 21.0, 300.0], dtype=torch.float64, requires_grad=True)
    v = 4.5
    (g,) = torch.autograd.grad(bessel_iv_ratio(v, x).sum(), x)
    h = 1e-5 * x.detach()
    fd = (bessel_iv_ratio(v, x.detach() + h) - bessel_iv_ratio(v, x.detach() - h)) / (2 * h)
    assert torch.allclose(g, fd, rtol=1e-6)


def test_broadcasting_and_limits():
    v = torch.tensor([[0.0], [1.0], [10.0]], dtype=torch.float64)
    x = torch.tensor([0.0, 1e-300, 1.0], dtype=torch.float64)
    out = log_bessel_iv(v, x)
    assert out.shape == (3, 3)
    assert out[0, 0] == 0.0  # I_0(0) = 1
    assert out[1, 0] == -math.inf  # I_1(0) = 0
    assert torch.isfinite(out[:, 1:]).all()


def test_order_gradient_rejected():
    with pytest.raises(ValueError, match="order"):
        log_bessel_iv(torch.tensor([1.0], requires_grad=True), torch.tensor([2.0]))
    with pytest.raises(ValueError, match=">= 0"):
        log_bessel_iv(-1.0, torch.tensor([2.0]))
