"""Test-set evaluation in nats per data point, with the paper's signs.

* ``re``   = E_q log p(x|z) (negative), estimated with the importance samples;
* ``kl``   = KL(q(z|x) || p(z)) in closed form;
* ``elbo`` = re - kl  (L[q] in the paper);
* ``ll``   = log p(x) estimated by importance sampling with S samples from q:
  log (1/S) sum_s p(x|z_s) p(z_s) / q(z_s|x), a lower bound in expectation that
  tightens as S grows (log-sum-exp, batched over test points);
* ``ll_tf_example`` = the "log-likelihood" of the authors' TensorFlow example (s-vae-tf,
  ``examples/mnist.py``, ``log_likelihood``), which most likely made the paper's LL column:
  log p(x|z_0) + log (1/S) sum_s p(z_s) / q(z_s|x), the reconstruction of one sample z_0 plus
  the log-mean-exp of the prior-to-posterior density ratio; the decoder is never evaluated at
  the z_s. It is NOT a likelihood estimate: its mean minus the ELBO is G(q, p) =
  E log mean_s exp(log p(z_s) - log q(z_s|x)) + KL(q||p), a function of the posterior's shape
  and the prior only, and as S grows it tends to the reconstruction term, not to log p(x). Here
  z_0 is the first of the same S samples (the example draws it separately: same expectation),
  so it costs no decoder pass beyond the honest estimate's. Use it only to compare with the
  paper's LL column (docs/table1.md, "What the paper's LL column measures");
* ``knn_acc`` = accuracy of a k-NN classifier on posterior locations, fitted on
  N labelled training points (N in ``knn_labels``), averaged over label draws.

The auto-encoder reports ``re`` (at its deterministic code) and ``knn_acc``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.neighbors import KNeighborsClassifier
from torch import Tensor

from ..errors import ConfigError
from ..models import VAE


@torch.no_grad()
def codes(model: VAE, x: Tensor, batch: int = 1000) -> Tensor:
    """Posterior locations (N, ambient_dim) for k-NN and plots."""
    return torch.cat([model.code(x[i : i + batch]) for i in range(0, x.shape[0], batch)])


@torch.no_grad()
def importance_sampled(model: VAE, x: Tensor, n_samples: int, batch_points: int = 100) -> dict[str, float]:
    """Mean over x of ll, re (Monte Carlo over the same samples), kl, elbo = re - kl and
    ll_tf_example (the TF example's estimator, from the same samples and decoder pass)."""
    if n_samples < 1:
        raise ConfigError(f"eval.is_samples={n_samples} must be a positive integer")
    if batch_points < 1:
        raise ConfigError(f"eval.is_batch_points={batch_points} must be a positive integer")
    totals = {"ll": 0.0, "re": 0.0, "kl": 0.0, "ll_tf_example": 0.0}
    log_s = math.log(n_samples)
    for i in range(0, x.shape[0], batch_points):
        xb = x[i : i + batch_points]
        q = model.head.posterior(model.encoder(xb))
        z = q.sample((n_samples,))  # (S, B, m)
        log_px = model.log_likelihood(xb, z)  # (S, B)
        log_prior, log_q = model.head.prior(z).log_prob(z), q.log_prob(z)  # (S, B) each
        log_w = log_px + log_prior - log_q
        totals["ll"] += (torch.logsumexp(log_w, dim=0) - log_s).sum().item()
        log_ratio_mean = torch.logsumexp(log_prior - log_q, dim=0) - log_s  # (B,)
        totals["ll_tf_example"] += (log_px[0] + log_ratio_mean).sum().item()
        totals["re"] += log_px.mean(0).sum().item()
        totals["kl"] += model.head.kl(q).sum().item()
    out = {k: v / x.shape[0] for k, v in totals.items()}
    out["elbo"] = out["re"] - out["kl"]
    return out


@torch.no_grad()
def reconstruction(model: VAE, x: Tensor, batch: int = 1000) -> float:
    """Mean log p(x|z) at the deterministic code (auto-encoder)."""
    total = sum(
        model.log_likelihood(x[i : i + batch], model.code(x[i : i + batch])).sum().item()
        for i in range(0, x.shape[0], batch)
    )
    return total / x.shape[0]


def knn_accuracy(
    train_codes: np.ndarray,
    train_labels: np.ndarray,
    test_codes: np.ndarray,
    test_labels: np.ndarray,
    n_labels: int,
    n_neighbors: int,
    repeats: int,
    rng: np.random.Generator,
) -> float:
    """Mean test accuracy of k-NN fitted on ``n_labels`` random labelled training points."""
    if n_labels > len(train_labels):
        raise ConfigError(f"eval.knn_labels contains {n_labels}, more than the {len(train_labels)} training points")
    if n_labels < 1 or repeats < 1 or n_neighbors < 1:
        raise ConfigError("eval.knn_labels, eval.knn_repeats and eval.knn_neighbors must be positive integers")
    accs = []
    for _ in range(repeats):
        idx = rng.choice(len(train_labels), size=n_labels, replace=False)
        clf = KNeighborsClassifier(n_neighbors=min(n_neighbors, n_labels))
        clf.fit(train_codes[idx], train_labels[idx])
        accs.append(float((clf.predict(test_codes) == test_labels).mean()))
    return float(np.mean(accs))


def evaluate(model: VAE, train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, cfg, seed: int) -> dict:
    """All test metrics for one trained model (``cfg`` is the eval config group)."""
    model.eval()
    metrics: dict = {}
    if model.stochastic:
        metrics.update(importance_sampled(model, test_x, int(cfg.is_samples), int(cfg.is_batch_points)))
    else:
        metrics["re"] = reconstruction(model, test_x)
    rng = np.random.default_rng(seed)
    train_c, test_c = codes(model, train_x).cpu().numpy(), codes(model, test_x).cpu().numpy()
    metrics["knn_acc"] = {
        str(n): knn_accuracy(
            train_c,
            train_y.cpu().numpy(),
            test_c,
            test_y.cpu().numpy(),
            int(n),
            int(cfg.knn_neighbors),
            int(cfg.knn_repeats),
            rng,
        )
        for n in cfg.knn_labels
    }
    return metrics
