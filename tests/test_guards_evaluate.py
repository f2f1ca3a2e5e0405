"""Guards found by mutation testing: the importance-sampled log-likelihood with an imperfect
posterior against an exact log p(x), k-NN with k = 5 (not 1), and the labelled-subset draw.

tasks/vae_metrics.py promises (module docstring and knn_accuracy): ``ll`` = log (1/S) sum_s w_s with
log-sum-exp; ``re`` = Monte Carlo E_q log p(x|z) over the same samples; ``kl`` in closed form;
``elbo`` = re - kl; k-NN fitted on ``n_labels`` random labelled *training* points (drawn
without replacement, a fresh draw per repeat, from the run's seeded generator), scored on the
test points, averaged over repeats. It does not promise class-balanced draws, nor draws that
are disjoint across repeats, so neither is tested.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import svae_bench.tasks.vae_metrics as ev
from svae_bench.models import VAE
from svae_bench.tasks.vae_metrics import evaluate, importance_sampled, knn_accuracy

Z_TOL = 4.0


# -- log-likelihood: a linear-Gaussian model with an imperfect posterior -------------------------

D, LATENT, S_OBS = 8, 3, 0.5
# q's means off by a random map of size 0.05, its scales 1.6x the posterior's: KL(q || p(z|x))
# ~ 1.1 nats per point, while Var(w / p(x)) stays below ~5 (measured with the seeds below)
PERTURB, WIDEN = 0.05, 1.6


def linear_gaussian(perturb: float, widen: float):
    """x = W z + b + s eps, z ~ N(0, I): p(x) = N(b, W W^T + s² I) exactly.

    W has orthogonal columns, so the exact posterior N(A (x - b), diag(var)) is diagonal;
    the encoder is set to it, then its mean map is perturbed and its scales multiplied by
    ``widen`` > 1, so that q != p(z|x) while q's tails stay heavier than the posterior's
    (importance weights of finite, moderate variance).
    """
    gen = torch.Generator().manual_seed(5)
    q_, _ = torch.linalg.qr(torch.randn(D, LATENT, generator=gen, dtype=torch.float64))
    W = q_ * torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64)
    b = torch.randn(D, generator=gen, dtype=torch.float64)
    model = VAE(D, LATENT, [], "gaussian", "gaussian", S_OBS).double()
    dec = model.decoder[-1]
    dec.weight.data, dec.bias.data = W.clone(), b.clone()
    var = 1 / (1 + (W * W).sum(0) / S_OBS**2)
    A = var[:, None] * W.T / S_OBS**2
    softplus_inv = lambda y: y + torch.log(-torch.expm1(-y))  # noqa: E731
    head = model.head.linear
    A_q = A + perturb * torch.randn(A.shape, generator=gen, dtype=torch.float64)
    head.weight.data = torch.cat([A_q, torch.zeros(LATENT, D, dtype=torch.float64)])
    head.bias.data = torch.cat([-A_q @ b, softplus_inv(widen * var.sqrt() - 1e-5)])
    exact = torch.distributions.MultivariateNormal(b, W @ W.T + S_OBS**2 * torch.eye(D, dtype=torch.float64))
    posterior = lambda x: (((x - b) @ A.T), var)  # noqa: E731  exact p(z|x): mean (N, d), var (d,)
    return model, exact, posterior, W, b


@pytest.fixture(scope="module")
def imperfect():
    model, exact, posterior, W, b = linear_gaussian(perturb=PERTURB, widen=WIDEN)
    torch.manual_seed(0)
    x = exact.sample((100,))
    return model, exact, posterior, W, b, x


def test_ll_with_an_imperfect_posterior_is_the_exact_log_marginal(imperfect):
    model, exact, posterior, _, _, x = imperfect
    S = 500
    torch.manual_seed(1)
    out = importance_sampled(model, x, n_samples=S, batch_points=32)
    truth = exact.log_prob(x).mean().item()

    # Per point, log((1/S) sum w_s) - log p(x) = log(mean of r_s), r = w / p(x) with E r = 1:
    # by the delta method its sd is sqrt(Var r / S) and its bias -Var r / (2 S). Var r per
    # point from an independent, larger sample of q.
    with torch.no_grad():
        q = model.head.posterior(model.encoder(x))
        z = q.sample((20_000,))
        log_w = model.log_likelihood(x, z) + model.head.prior(z).log_prob(z) - q.log_prob(z)
        r = torch.exp(log_w - exact.log_prob(x))
    var_r = r.var(0)
    assert ((r.mean(0) - 1).abs() < Z_TOL * (var_r / z.shape[0]).sqrt()).all()  # weights are unbiased
    se = math.sqrt(var_r.sum().item() / S) / x.shape[0]
    bias = var_r.mean().item() / (2 * S)
    assert abs(out["ll"] - truth) < Z_TOL * se + bias, (out["ll"], truth, se, bias)

    # The mean of the log weights is, in expectation, log p(x) - KL(q || p(z|x)): the ELBO, far
    # below. With this q the gap is many standard errors, so it cannot pass for the LL.
    post_mean, post_var = posterior(x)
    loc, scale = q.base_dist.loc, q.base_dist.scale
    kl_post = 0.5 * (
        scale**2 / post_var + (loc - post_mean) ** 2 / post_var - 1 + post_var.log() - 2 * scale.log()
    ).sum(-1)
    gap = kl_post.mean().item()
    assert gap > 10 * (Z_TOL * se + bias), (gap, se, bias)
    mean_log_w = log_w.mean(0).mean().item()
    assert abs(mean_log_w - (truth - gap)) < 0.01 * gap  # that is what a mean of log weights gives
    assert out["ll"] - mean_log_w > 0.9 * gap
    # the LL estimate is above the ELBO (the IS bound is tighter)
    assert out["ll"] > out["elbo"] + 0.5 * gap


def test_re_kl_and_elbo_are_the_closed_form_terms(imperfect):
    model, _, _, W, b, x = imperfect
    S = 500
    torch.manual_seed(2)
    out = importance_sampled(model, x, n_samples=S, batch_points=32)
    with torch.no_grad():
        q = model.head.posterior(model.encoder(x))
        loc, scale = q.base_dist.loc, q.base_dist.scale
        # E_q log N(x; W z + b, s² I) = -(|x - W m - b|² + sum_j |W_j|² v_j) / (2 s²) - D log(s sqrt(2 pi))
        resid = x - loc @ W.T - b
        re_exact = -(resid.pow(2).sum(-1) + (scale**2 * (W * W).sum(0)).sum(-1)) / (2 * S_OBS**2) - D * (
            math.log(S_OBS) + 0.5 * math.log(2 * math.pi)
        )
        kl_exact = 0.5 * (loc**2 + scale**2 - 1 - 2 * scale.log()).sum(-1)
        per_point = model.log_likelihood(x, q.sample((S,)))  # (S, N): the MC spread of re
    se_re = math.sqrt((per_point.var(0) / S).sum().item()) / x.shape[0]
    assert abs(out["re"] - re_exact.mean().item()) < Z_TOL * se_re
    assert math.isclose(out["kl"], kl_exact.mean().item(), rel_tol=1e-12)
    assert math.isclose(out["elbo"], out["re"] - out["kl"], rel_tol=1e-12, abs_tol=1e-12)


# -- k-NN: k = 5, and the draw of the labelled points ---------------------------------------------


def knn_trap(n_clusters: int = 6):
    """Codes where 1-NN, 3-NN and 5-NN disagree, deterministically.

    Each cluster (10 apart) has two class-0 points at distance 0.1 and 0.2 from its test point
    and three class-1 points at distance 1; the test label is 1. The 1 and 3 nearest are
    mostly class 0 (accuracy 0), the 5 nearest are mostly class 1 (accuracy 1). With every
    training point labelled, every draw is the whole set.
    """
    offsets = np.array([[0.1, 0.0], [0.0, -0.2], [1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    labels = np.array([0, 0, 1, 1, 1])
    centres = np.stack([10.0 * np.arange(n_clusters), np.zeros(n_clusters)], axis=1)
    x_tr = (centres[:, None, :] + offsets[None]).reshape(-1, 2)
    y_tr = np.tile(labels, n_clusters)
    return x_tr, y_tr, centres, np.ones(n_clusters, dtype=np.int64)


def test_knn_uses_the_requested_number_of_neighbours():
    x_tr, y_tr, x_te, y_te = knn_trap()
    rng = np.random.default_rng(0)
    n = len(y_tr)
    assert knn_accuracy(x_tr, y_tr, x_te, y_te, n, 5, 3, rng) == 1.0
    assert knn_accuracy(x_tr, y_tr, x_te, y_te, n, 3, 3, rng) == 0.0
    assert knn_accuracy(x_tr, y_tr, x_te, y_te, n, 1, 3, rng) == 0.0


def test_knn_with_fewer_labels_than_neighbours_uses_them_all():
    # k = min(n_neighbors, n_labels): 3 labels and k = 5 is a 3-NN (majority 1), not an error
    x_tr, y_tr = np.array([[0.0], [1.0], [2.0]]), np.array([0, 1, 1])
    acc = knn_accuracy(x_tr, y_tr, np.array([[0.1]]), np.array([1]), 3, 5, 1, np.random.default_rng(0))
    assert acc == 1.0  # a 1-NN would say 0


def identity_ae(dim: int = 2) -> VAE:
    """An auto-encoder whose code is its input: encoder = identity, head = identity map."""
    model = VAE(dim, dim, [], "deterministic", "gaussian", 1.0).double()
    model.head.linear.weight.data = torch.eye(dim, dtype=torch.float64)
    model.head.linear.bias.data.zero_()
    return model


def eval_cfg(**kw):
    base = {"is_samples": 5, "is_batch_points": 10, "knn_labels": [30], "knn_neighbors": 5, "knn_repeats": 2}
    return OmegaConf.create({**base, **kw})


def test_evaluate_uses_the_configured_neighbours():
    x_tr, y_tr, x_te, y_te = knn_trap()
    model = identity_ae()
    t = lambda a: torch.tensor(a)  # noqa: E731
    n = len(y_tr)
    m5 = evaluate(model, t(x_tr), t(y_tr), t(x_te), t(y_te), eval_cfg(knn_labels=[n]), seed=0)
    m1 = evaluate(model, t(x_tr), t(y_tr), t(x_te), t(y_te), eval_cfg(knn_labels=[n], knn_neighbors=1), seed=0)
    assert m5["knn_acc"] == {str(n): 1.0}
    assert m1["knn_acc"] == {str(n): 0.0}


class _Recorder:
    """Replaces KNeighborsClassifier in svae_bench.tasks.vae_metrics: records each fitted set and the k
    (codes are point ids, see :func:`id_codes`); predicts class 0, the accuracy is not tested."""

    fits: list[np.ndarray] = []
    ks: list[int] = []

    def __init__(self, n_neighbors):
        _Recorder.ks.append(n_neighbors)

    def fit(self, x, y):
        assert len(x) == len(y)
        _Recorder.fits.append(np.asarray(x)[:, 0].astype(np.int64).copy())
        return self

    def predict(self, x):
        return np.zeros(len(x), dtype=np.int64)


@pytest.fixture
def recorder(monkeypatch):
    _Recorder.fits, _Recorder.ks = [], []
    monkeypatch.setattr(ev, "KNeighborsClassifier", _Recorder)
    return _Recorder


def id_codes(n_train: int, n_test: int):
    """Training codes 0..n-1 (their own ids), test codes -1, -2, ... (never a training id)."""
    rng = np.random.default_rng(1)
    x_tr = np.arange(n_train, dtype=np.float64)[:, None]
    x_te = -1.0 - np.arange(n_test, dtype=np.float64)[:, None]
    return x_tr, rng.integers(3, size=n_train), x_te, rng.integers(3, size=n_test)


def test_label_draw_is_a_uniform_sample_of_training_points_without_replacement(recorder):
    n_train, n_labels, repeats = 50, 10, 500
    x_tr, y_tr, x_te, y_te = id_codes(n_train, 20)
    knn_accuracy(x_tr, y_tr, x_te, y_te, n_labels, 5, repeats, np.random.default_rng(0))
    draws = recorder.fits
    assert len(draws) == repeats and set(recorder.ks) == {5}
    for d in draws:
        assert len(d) == n_labels and len(set(d.tolist())) == n_labels  # the right size, no repeats
        assert d.min() >= 0 and d.max() < n_train  # training points only: never a test point
    assert len({tuple(sorted(d.tolist())) for d in draws}) > 0.99 * repeats  # a fresh draw each repeat
    # every training point equally likely: count ~ Binomial(repeats, n_labels / n_train) per point
    counts = np.bincount(np.concatenate(draws), minlength=n_train)
    p = n_labels / n_train
    sd = math.sqrt(repeats * p * (1 - p))
    assert np.abs(counts - repeats * p).max() < 5 * sd, counts  # max over 50 points: 5 sd is p ~ 3e-5


def test_label_draw_follows_the_seed(recorder):
    x_tr, y_tr, x_te, y_te = id_codes(200, 20)

    def draws(seed):
        recorder.fits.clear()
        knn_accuracy(x_tr, y_tr, x_te, y_te, 20, 5, 3, np.random.default_rng(seed))
        return [d.tolist() for d in recorder.fits]

    assert draws(0) == draws(0)  # reproducible
    assert draws(0) != draws(1)  # and a function of the seed


def test_evaluate_draws_labels_from_the_run_seed(recorder):
    x_tr, y_tr, x_te, y_te = id_codes(200, 20)
    model = identity_ae(1)
    t = lambda a: torch.tensor(a)  # noqa: E731
    cfg = eval_cfg(knn_labels=[10, 30], knn_repeats=3, knn_neighbors=4)

    def from_evaluate(seed):
        recorder.fits.clear()
        metrics = evaluate(model, t(x_tr), t(y_tr), t(x_te), t(y_te), cfg, seed=seed)
        assert set(metrics["knn_acc"]) == {"10", "30"}
        return [d.tolist() for d in recorder.fits]

    # the same generator, seeded with the run's seed, serves the label counts in order
    rng = np.random.default_rng(7)
    recorder.fits.clear()
    for n in (10, 30):
        knn_accuracy(x_tr, y_tr, x_te, y_te, n, 4, 3, rng)
    expected = [d.tolist() for d in recorder.fits]
    assert [len(d) for d in expected] == [10, 10, 10, 30, 30, 30]
    assert from_evaluate(7) == expected
    assert from_evaluate(8) != expected
    assert set(recorder.ks) == {4}
