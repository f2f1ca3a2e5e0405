"""Evaluation: the KL terms, the importance-sampled log-likelihood against an exact marginal, k-NN."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from svae_bench.models import VAE
from svae_bench.tasks.vae_metrics import importance_sampled, knn_accuracy


def test_gaussian_kl_matches_closed_form():
    torch.manual_seed(0)
    model = VAE(20, 4, [16], "gaussian", "gaussian", 0.5).double()
    x = torch.randn(32, 20, dtype=torch.float64)
    q = model.head.posterior(model.encoder(x))
    loc, scale = q.base_dist.loc, q.base_dist.scale
    closed = 0.5 * (loc**2 + scale**2 - 1 - 2 * scale.log()).sum(-1)
    assert torch.allclose(model.head.kl(q), closed, rtol=1e-12)


def linear_gaussian_model(d=3, D=8, s=0.5, perturb=0.0):
    """A VAE whose decoder is x = W z + b + s eps, z ~ N(0, I): p(x) = N(b, W W^T + s^2 I).

    W has orthogonal columns, so the exact posterior is a diagonal Gaussian and the
    encoder is set to it (plus ``perturb`` noise on its weights).
    """
    gen = torch.Generator().manual_seed(1)
    q_, _ = torch.linalg.qr(torch.randn(D, d, generator=gen, dtype=torch.float64))
    W = q_ * torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64)
    b = torch.randn(D, generator=gen, dtype=torch.float64)
    model = VAE(D, d, [], "gaussian", "gaussian", s).double()
    dec = model.decoder[-1]
    dec.weight.data, dec.bias.data = W.clone(), b.clone()
    # posterior: Sigma = (I + W^T W / s^2)^-1 (diagonal), mean = Sigma W^T (x - b) / s^2
    var = 1 / (1 + (W * W).sum(0) / s**2)
    A = var[:, None] * W.T / s**2
    softplus_inv = lambda y: y + torch.log(-torch.expm1(-y))  # noqa: E731
    head = model.head.linear
    head.weight.data = torch.cat([A, torch.zeros(d, D, dtype=torch.float64)])
    head.bias.data = torch.cat([-A @ b, softplus_inv(var.sqrt() - 1e-5)])
    if perturb:
        head.weight.data += perturb * torch.randn(head.weight.shape, generator=gen, dtype=torch.float64)
    exact = torch.distributions.MultivariateNormal(b, W @ W.T + s**2 * torch.eye(D, dtype=torch.float64))
    return model, exact


def test_ll_is_exact_with_the_exact_posterior():
    # with q = p(z|x) every importance weight equals p(x): the estimate is exact for any S
    model, exact = linear_gaussian_model()
    torch.manual_seed(0)
    x = exact.sample((50,))
    out = importance_sampled(model, x, n_samples=400, batch_points=16)
    assert math.isclose(out["ll"], exact.log_prob(x).mean().item(), rel_tol=1e-9)
    # and the ELBO gap is KL(q || posterior) = 0, up to the Monte Carlo error of re
    q = model.head.posterior(model.encoder(x))
    per_sample = model.log_likelihood(x, q.sample((400,))).mean(1)  # (S,) batch means of log p(x|z)
    se = per_sample.std().item() / math.sqrt(400)
    assert abs(out["ll"] - out["elbo"]) < 4 * se


def test_importance_weights_unbiased_and_ll_above_elbo():
    # with an imperfect q, mean_s w_s estimates p(x) without bias: check p_hat / p(x) = 1 within 4 SE
    model, exact = linear_gaussian_model(perturb=0.05)
    torch.manual_seed(1)
    x = exact.sample((4,))
    q = model.head.posterior(model.encoder(x))
    z = q.sample((40_000,)).detach()
    log_w = model.log_likelihood(x, z) + model.head.prior(z).log_prob(z) - q.log_prob(z)
    ratio = torch.exp(log_w - exact.log_prob(x))  # w / p(x), mean 1
    se = ratio.std(0) / math.sqrt(z.shape[0])
    assert ((ratio.mean(0) - 1).abs() < 4 * se).all(), (ratio.mean(0), se)
    out = importance_sampled(model, exact.sample((200,)), n_samples=200, batch_points=64)
    assert out["ll"] > out["elbo"]


def test_knn_on_separable_and_on_random_labels():
    rng = np.random.default_rng(0)
    centers = np.array([[5.0, 0.0], [-5.0, 0.0], [0.0, 5.0]])
    y_tr, y_te = rng.integers(3, size=2000), rng.integers(3, size=500)
    x_tr = centers[y_tr] + rng.normal(size=(2000, 2))
    x_te = centers[y_te] + rng.normal(size=(500, 2))
    assert knn_accuracy(x_tr, y_tr, x_te, y_te, 100, 5, 5, rng) > 0.99
    # shuffled labels carry no information: accuracy ~ 1/3, SE over 5 x 500 predictions ~ 0.01
    acc = knn_accuracy(x_tr, rng.permutation(y_tr), x_te, y_te, 1000, 5, 5, rng)
    assert abs(acc - 1 / 3) < 0.06


def test_knn_rejects_more_labels_than_points():
    from svae_bench.errors import ConfigError

    with pytest.raises(ConfigError, match="knn_labels"):
        knn_accuracy(
            np.zeros((10, 2)), np.zeros(10), np.zeros((3, 2)), np.zeros(3), 100, 5, 1, np.random.default_rng(0)
        )
