#!/usr/bin/env python
"""Mutation testing for svae_bench: a fixed catalogue of plausible bugs, one at a time.

Why not mutmut or cosmic-ray: both generate every mutant their operators allow (hundreds for
these modules) and run the tests once per mutant; mutmut 3 also runs the whole suite once to
map tests to functions. With test files that take 5-60 s each on this project's 2 shared
cores, that is hours. Instead this script applies a hand-written list of mutants, each a bug
someone could plausibly write (a flipped comparison or sign, an off-by-one, a dropped term,
logsumexp replaced by a mean, a generator not restored, ...), and runs only the test files
relevant to the mutated module, stopping at the first failure.

How it runs:

1. copies src/svae_bench (with conf/ inside it as svae_bench/conf, so Hydra's
   pkg://svae_bench.conf resolves inside the copy) to a scratch directory, and checks that
   ``import svae_bench`` with PYTHONPATH=<copy> really picks up the copy;
2. runs the union of the relevant test files once on the unmutated copy (a mutant only
   counts as killed against a green baseline);
3. for each mutant: replaces exactly one occurrence of ``old`` by ``new`` in the copy, runs
   ``python -m pytest -x -q -p no:cacheprovider <files>`` in the repository root (so
   pyproject's pytest settings apply) with PYTHONPATH=<copy> and a timeout, records
   killed / survived / timeout, and restores the file.

The working tree is never modified. Usage:

    python scripts/mutation.py                  # everything; writes results/mutation/report.md
    python scripts/mutation.py --list           # the catalogue
    python scripts/mutation.py --check          # does every mutant still apply? (no test run, ~1 s)
    python scripts/mutation.py --only ID [ID]   # some mutants (e.g. to check a new test kills one)
    python scripts/mutation.py --module training/loop.py

Mutated modules (paths relative to src/svae_bench; before the layered package of 8f655c7..4daed48
they were evaluate.py, train.py, checkpoint.py, records.py and run.py): distributions/*,
tasks/vae_metrics.py, training/loop.py, training/state.py, tasks/vae_objective.py (the warm-up and
the validation objective, in training/loop.py before issue 13), records/record.py, records/atomic.py,
tasks/harness.py (run_one's skip decision). After a source change (or a reformat), run ``--check``
first: a mutant whose ``old`` text no longer matches is reported there, and in a run as "stale".

Exit status: 0 when every mutant was run against a green baseline (survivors are reported,
not failures), 1 if a baseline failed or a mutant's ``old`` text is missing (the catalogue
needs updating after a source change), 2 on bad arguments. With ``--check``: 0 if every chosen
mutant applies and every test named in GROUPS exists, else 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = "src/svae_bench"

# -- test groups: the test files relevant to each mutated module, the fastest killers first -----
T_DIST_GUARDS = "tests/test_guards_distributions.py"
T_RESUME = [
    "tests/test_resume.py::test_two_faults_in_one_epoch_compound_the_lr_cut",
    "tests/test_resume.py::test_injected_nan_rolls_back_and_retries",
    "tests/test_resume.py::test_sigkill_then_rerun_resumes_to_the_same_result[after_epoch_2]",
]
T_ARCH_HARNESS = [
    "tests/test_architecture.py::test_a_new_task_runs_through_the_unchanged_harness",
    "tests/test_architecture.py::test_the_harness_records_a_new_task_s_failure_and_refuses_bad_values",
]
GROUPS: dict[str, list[str]] = {
    "special": [T_DIST_GUARDS, "tests/test_special.py", "tests/test_vmf_density.py"],
    "vmf": [T_DIST_GUARDS, "tests/test_vmf_density.py", "tests/test_vmf_gradients.py"],
    "sampling": [T_DIST_GUARDS, "tests/test_vmf_gradients.py", "tests/test_vmf_sampling.py"],
    "sphere": [
        T_DIST_GUARDS,
        "tests/test_power_spherical.py",
        "tests/test_vmf_gradients.py",
        "tests/test_vmf_sampling.py",
    ],
    "power_spherical": [T_DIST_GUARDS, "tests/test_power_spherical.py"],
    "evaluate": ["tests/test_guards_evaluate.py", "tests/test_evaluation.py"],  # tasks/vae_metrics.py
    # training/loop.py and the VAE objective it is given. test_resume.py starts ~15 real runs (10+ min
    # on 2 busy cores): only the tests that can see a training-loop bug the guards miss (a rollback
    # after a NaN, the compounding lr cut, a kill between epochs) run per mutant; then
    # test_hardening's two tests of a fault inside a step
    "train": [
        "tests/test_guards_training.py",
        *T_RESUME,
        "tests/test_hardening.py::test_an_unrelated_error_in_a_step_is_not_swallowed",
        "tests/test_hardening.py::test_a_value_error_from_non_finite_weights_is_rolled_back",
    ],
    # training/state.py: the training guards (resume, a state missing keys), a state.pt that is a
    # directory, and the resume tests that compare a resumed run with an uninterrupted one
    "state": [
        "tests/test_guards_training.py",
        "tests/test_hardening.py::test_a_state_pt_directory_is_set_aside",
        *T_RESUME,
    ],
    # records/record.py, records/atomic.py: then the toy task of test_architecture.py, whose runs go
    # through the harness into ordinary records (0.2 s)
    "records": [
        "tests/test_guards_records.py",
        "tests/test_records.py",
        "tests/test_status.py",
        *T_ARCH_HARNESS,
    ],
    # tasks/harness.py (run_one): the skip/rerun guards, the toy task's skip and force, and the
    # clean-up a skipped complete run finishes (test_hardening.py, ~17 s: two real runs)
    "harness": [
        "tests/test_guards_records.py",
        *T_ARCH_HARNESS,
        "tests/test_hardening.py::test_skipping_a_complete_run_finishes_its_cleanup",
    ],
}


@dataclass
class Mutant:
    id: str
    file: str  # relative to src/svae_bench
    old: str  # must occur exactly once in the file
    new: str
    what: str  # the bug, in words
    group: str  # key of GROUPS
    count: int = 1  # how many occurrences of ``old`` there are; all of them are replaced


M = Mutant
MUTANTS: list[Mutant] = [
    # ---- distributions/special.py -------------------------------------------------------------
    M(
        "special-debye-4",
        "distributions/special.py",
        "_DEBYE_TERMS = 16",
        "_DEBYE_TERMS = 4",
        "uniform asymptotic (Debye) expansion truncated to 4 terms",
        "special",
    ),
    M(
        "special-series-30",
        "distributions/special.py",
        "_SERIES_TERMS = 48",
        "_SERIES_TERMS = 30",
        "power series truncated to 30 terms",
        "special",
    ),
    M(
        "special-series-4",
        "distributions/special.py",
        "_SERIES_TERMS = 48",
        "_SERIES_TERMS = 4",
        "power series truncated to 4 terms",
        "special",
    ),
    M(
        "special-switch-10",
        "distributions/special.py",
        "_SWITCH = 20.0",
        "_SWITCH = 10.0",
        "series/asymptotic switch moved to x = 10",
        "special",
    ),
    M(
        "special-ratio-deriv",
        "distributions/special.py",
        "d = 1 - ratio * ratio - (2 * v + 1) * ratio / safe_x",
        "d = 1 - ratio * ratio - (2 * v) * ratio / safe_x",
        "R_v'(x): (2v+1) -> 2v",
        "special",
    ),
    M(
        "special-ratio-deriv-limit",
        "distributions/special.py",
        "return torch.where(x > 0, d, 1 / (2 * v + 2))",
        "return torch.where(x > 0, d, 1 / (2 * v + 1))",
        "R_v'(0) limit 1/(2v+2) -> 1/(2v+1)",
        "special",
    ),
    M(
        "special-series-deriv",
        "distributions/special.py",
        "deriv = deriv + 1 / (v + 1)",
        "deriv = deriv + 1 / (v + 2)",
        "scalar-order series derivative: first term 1/(v+1) -> 1/(v+2)",
        "special",
    ),
    M(
        "special-debye-ratio-sign",
        "distributions/special.py",
        "ratio = x * (torch.reciprocal(v_plus_r) - (t / s + 0.5) / (r * r))",
        "ratio = x * (torch.reciprocal(v_plus_r) - (t / s - 0.5) / (r * r))",
        "Debye ratio (fast path): +1/2 -> -1/2",
        "special",
    ),
    M(
        "special-ive-drop-x",
        "distributions/special.py",
        "return (log_i - x64 + _log_scale(v, x64)).to(x.dtype)",
        "return (log_i + _log_scale(v, x64)).to(x.dtype)",
        "log_bessel_ive drops the -x term",
        "special",
    ),
    M(
        "special-backward-drop-ratio-term",
        "distributions/special.py",
        "grad = grad + grad_ratio * ratio_derivative(v, x64, ratio)",
        "grad = grad",
        "backward ignores gradients flowing into the ratio output",
        "special",
    ),
    M(
        "special-log-scale-lgamma",
        "distributions/special.py",
        "return torch.xlogy(torch.tensor(v, dtype=torch.float64), x64 / 2) - math.lgamma(v + 1)",
        "return torch.xlogy(torch.tensor(v, dtype=torch.float64), x64 / 2) - math.lgamma(v)",
        "log I scale: lgamma(v+1) -> lgamma(v) (scalar order)",
        "special",
    ),
    # ---- distributions/von_mises_fisher.py ------------------------------------------------------
    M(
        "vmf-dtdk-sign",
        "distributions/vmf_marginal.py",
        "dt_dk = marginal_dw_dk(t.to(torch.float64), k64, ctx.m, mean_w).neg_()",
        "dt_dk = marginal_dw_dk(t.to(torch.float64), k64, ctx.m, mean_w)",
        "d t/dk with the wrong sign (dw/dk used as dt/dk)",
        "vmf",
    ),
    M(
        "vmf-kdadk",
        "distributions/von_mises_fisher.py",
        "k64 - (self.dim - 1) * mean_w, k64 * mean_w",
        "k64 - self.dim * mean_w, k64 * mean_w",
        "k A'(k): (m-1) -> m (KL and entropy gradients)",
        "vmf",
    ),
    M(
        "vmf-logprob-sign",
        "distributions/von_mises_fisher.py",
        "return log_c_plus_k - self.concentration * (1 - (self.loc * value).sum(-1))",
        "return log_c_plus_k + self.concentration * (1 - (self.loc * value).sum(-1))",
        "log_prob: - k (1 - mu.z) -> + k (1 - mu.z)",
        "vmf",
    ),
    M(
        "vmf-logprob-dk",
        "distributions/von_mises_fisher.py",
        "lambda: 1 - mean_w)",
        "lambda: 1 + mean_w)",
        "d/dk of (log C + k): 1 - A -> 1 + A",
        "vmf",
    ),
    M(
        "vmf-entropy-sign",
        "distributions/von_mises_fisher.py",
        "log_sphere_surface(self.dim) + log_i - k64 * mean_w",
        "log_sphere_surface(self.dim) + log_i + k64 * mean_w",
        "entropy: - k A -> + k A",
        "vmf",
    ),
    M(
        "vmf-kl-sign",
        "distributions/von_mises_fisher.py",
        "self._of_concentration(k64 * mean_w - log_i, self._k_dA_dk)",
        "self._of_concentration(k64 * mean_w + log_i, self._k_dA_dk)",
        "KL to uniform: - log I -> + log I",
        "vmf",
    ),
    M(
        "vmf-bessel-order",
        "distributions/von_mises_fisher.py",
        "bessel_values(0.5 * self.dim - 1, k64)",
        "bessel_values(0.5 * self.dim, k64)",
        "Bessel order m/2 - 1 -> m/2",
        "vmf",
    ),
    M(
        "vmf-lognorm-dk",
        "distributions/von_mises_fisher.py",
        "lambda: -self._bessel[2])",
        "lambda: self._bessel[2])",
        "d/dk log C: -A -> +A",
        "vmf",
    ),
    M(
        "vmf-mean-is-loc",
        "distributions/von_mises_fisher.py",
        "return self.mean_resultant_length.unsqueeze(-1) * self.loc",
        "return self.loc",
        "mean = loc (drops A(k))",
        "vmf",
    ),
    M(
        "vmf-no-t-clamp",
        "distributions/vmf_marginal.py",
        "t = t.clamp_min(torch.finfo(t.dtype).tiny)  # keeps",
        "t = t  # keeps",
        "t not clamped away from 0 before the polar map",
        "vmf",
    ),
    # ---- distributions/vmf_marginal.py ----------------------------------------------------------
    M(
        "marginal-wood-b",
        "distributions/vmf_marginal.py",
        "    two_k = k + k\n    return",
        "    two_k = k\n    return",
        "Wood's b with k instead of 2k",
        "sampling",
    ),
    M(
        "marginal-tail-branch",
        "distributions/vmf_marginal.py",
        "h = torch.where(w >= mean_w, t,",
        "h = torch.where(w <= mean_w, t,",
        "dw/dk quadrature on the tail where s - A changes sign",
        "sampling",
    ),
    M(
        "marginal-truncation-5",
        "distributions/vmf_marginal.py",
        "_TRUNCATION_LOG = 40.0",
        "_TRUNCATION_LOG = 5.0",
        "lower-tail integral truncated at e^-5 instead of e^-40",
        "sampling",
    ),
    M(
        "marginal-accept-all",
        "distributions/vmf_marginal.py",
        "return ratio.gather(0, first)[0], accepted[0] > 0",
        "return ratio.gather(0, first)[0], accepted[0] >= 0",
        "small-batch rejection step accepts every proposal",
        "sampling",
    ),
    M(
        "marginal-m3-icdf",
        "distributions/vmf_marginal.py",
        "one_minus_u * torch.expm1(-2 * k)",
        "one_minus_u * torch.expm1(-k)",
        "m = 3 inverse CDF: e^{-2k} -> e^{-k}",
        "sampling",
    ),
    M(
        "marginal-half-exponent",
        "distributions/vmf_marginal.py",
        "half = 0.5 * (m - 3)\n",
        "half = 0.5 * (m - 2)\n",
        "dw/dk integrand exponent (m-3)/2 -> (m-2)/2",
        "sampling",
    ),
    M(
        "marginal-exp-rate",
        "distributions/vmf_marginal.py",
        "score += torch.empty_like(score).exponential_(m - 1.0)\n"
        "        if valid is not None:  # an invalid gamma draw",
        "score += torch.empty_like(score).exponential_(m)\n        if valid is not None:  # an invalid gamma draw",
        "acceptance test: Exp(1)/(m-1) -> Exp(1)/m (small batches)",
        "sampling",
    ),
    # ---- distributions/sphere.py ----------------------------------------------------------------
    M(
        "sphere-tangent-sign",
        "distributions/sphere.py",
        "grad_t = (e_coef * g_p - g_mu)",
        "grad_t = (-e_coef * g_p - g_mu)",
        "d z/dt: sign of the tangent term flipped (vMF and PS d z/dk)",
        "sphere",
    ),
    M(
        "sphere-one-projection",
        "distributions/sphere.py",
        "    p = torch.addcmul(p, s_again, loc, value=-1)\n",
        "",
        "tangent projected once instead of twice (Kahan/Parlett re-orthogonalisation dropped)",
        "sphere",
    ),
    M(
        "sphere-grad-loc-n",
        "distributions/sphere.py",
        "a_s * g_p / (n * n), p)",
        "a_s * g_p / n, p)",
        "dL/dmu: G.p / n^2 -> G.p / n",
        "sphere",
    ),
    # ---- distributions/power_spherical.py -------------------------------------------------------
    M(
        "ps-beta-swapped",
        "distributions/power_spherical.py",
        "Beta(torch.full_like(alpha, beta), alpha)",
        "Beta(alpha, torch.full_like(alpha, beta))",
        "t = 2B with B ~ Beta(alpha, beta) instead of Beta(beta, alpha)",
        "power_spherical",
    ),
    M(
        "ps-entropy-log2",
        "distributions/power_spherical.py",
        "expected_log = math.log(2.0) + torch.digamma(alpha)",
        "expected_log = torch.digamma(alpha)",
        "entropy: E log(1 + mu.z) drops log 2",
        "power_spherical",
    ),
    M(
        "ps-mean",
        "distributions/power_spherical.py",
        "(self.concentration + self.dim - 1)",
        "(self.concentration + self.dim)",
        "mean: k/(k+m-1) -> k/(k+m)",
        "power_spherical",
    ),
    # ---- tasks/vae_metrics.py (was evaluate.py) -------------------------------------------------
    M(
        "eval-ll-mean-log-w",
        "tasks/vae_metrics.py",
        "(torch.logsumexp(log_w, dim=0) - log_s)",
        "log_w.mean(0)",
        "LL as the mean of the log weights instead of log-mean-exp",
        "evaluate",
    ),
    M(
        "eval-ll-no-log-s",
        "tasks/vae_metrics.py",
        "(torch.logsumexp(log_w, dim=0) - log_s)",
        "torch.logsumexp(log_w, dim=0)",
        "LL without the - log S",
        "evaluate",
    ),
    M(
        "eval-ll-max",
        "tasks/vae_metrics.py",
        "(torch.logsumexp(log_w, dim=0) - log_s)",
        "log_w.max(0).values",
        "LL as the largest log weight",
        "evaluate",
    ),
    M(
        "eval-re-from-log-w",
        "tasks/vae_metrics.py",
        'totals["re"] += log_px.mean(0)',
        'totals["re"] += log_w.mean(0)',
        "re from the log weights instead of log p(x|z)",
        "evaluate",
    ),
    M(
        "eval-kl-mean",
        "tasks/vae_metrics.py",
        'totals["kl"] += model.head.kl(q).sum()',
        'totals["kl"] += model.head.kl(q).mean()',
        "KL summed per batch as a mean",
        "evaluate",
    ),
    M(
        "eval-elbo-sign",
        "tasks/vae_metrics.py",
        'out["elbo"] = out["re"] - out["kl"]',
        'out["elbo"] = out["re"] + out["kl"]',
        "elbo = re + kl",
        "evaluate",
    ),
    M(
        "eval-knn-k1",
        "tasks/vae_metrics.py",
        "KNeighborsClassifier(n_neighbors=min(n_neighbors, n_labels))",
        "KNeighborsClassifier(n_neighbors=1)",
        "k-NN with k = 1 instead of the requested k",
        "evaluate",
    ),
    M(
        "eval-knn-no-min",
        "tasks/vae_metrics.py",
        "KNeighborsClassifier(n_neighbors=min(n_neighbors, n_labels))",
        "KNeighborsClassifier(n_neighbors=n_neighbors)",
        "k not capped at the number of labels",
        "evaluate",
    ),
    M(
        "eval-evaluate-k1",
        "tasks/vae_metrics.py",
        "            int(cfg.knn_neighbors),\n",
        "            1,\n",
        "evaluate() passes k = 1",
        "evaluate",
    ),
    M(
        "eval-seed-ignored",
        "tasks/vae_metrics.py",
        "rng = np.random.default_rng(seed)",
        "rng = np.random.default_rng(0)",
        "label draw ignores the run's seed",
        "evaluate",
    ),
    M(
        "eval-draw-with-replacement",
        "tasks/vae_metrics.py",
        "size=n_labels, replace=False)",
        "size=n_labels, replace=True)",
        "labelled points drawn with replacement",
        "evaluate",
    ),
    M(
        "eval-draw-first-points",
        "tasks/vae_metrics.py",
        "rng.choice(len(train_labels), size=n_labels",
        "rng.choice(n_labels, size=n_labels",
        "labelled points drawn from the first n_labels only",
        "evaluate",
    ),
    M(
        "eval-draw-once",
        "tasks/vae_metrics.py",
        "    accs = []\n    for _ in range(repeats):\n"
        "        idx = rng.choice(len(train_labels), size=n_labels, replace=False)\n",
        "    accs = []\n    idx = rng.choice(len(train_labels), size=n_labels, replace=False)\n"
        "    for _ in range(repeats):\n",
        "one label draw reused for every repeat",
        "evaluate",
    ),
    # ---- training/loop.py (was train.py) --------------------------------------------------------
    M(
        "train-stop-off-by-one",
        "training/loop.py",
        "stopped = state.since_best >= settings.patience\n",
        "stopped = state.since_best > settings.patience\n",
        "early stopping one epoch late",
        "train",
    ),
    M(
        "train-warmup-count",
        "training/loop.py",
        "elif epoch > objective.warmup_epochs:",
        "elif epoch >= objective.warmup_epochs:",
        "epochs without improvement counted from the last warm-up epoch",
        "train",
    ),
    M(
        "train-last-weights",
        "training/loop.py",
        "    if state.best_weights is not None:\n        model.load_state_dict(state.best_weights)\n",
        "",
        "the last epoch's weights returned instead of the best",
        "train",
    ),
    M(
        "train-improve-ties",
        "training/loop.py",
        "improved = val_objective > state.best",
        "improved = val_objective >= state.best",
        "a tie counts as an improvement",
        "train",
    ),
    M(
        "train-beta-warmup",
        "tasks/vae_objective.py",
        "self.beta * min(1.0, epoch / self.warmup_epochs)",
        "self.beta * min(1.0, (epoch - 1) / self.warmup_epochs)",
        "warm-up schedule one epoch behind",
        "train",
    ),
    M(
        "train-val-beta-t",
        "tasks/vae_objective.py",
        "objective = re - self.beta * kl",
        "objective = re - self.beta_t(1) * kl",
        "validation objective at a warm-up beta_t (the first epoch's) instead of beta",
        "train",
    ),
    M(
        "train-max-epochs",
        "training/loop.py",
        "while (epoch := state.epoch + 1) <= settings.max_epochs and not stopped:",
        "while (epoch := state.epoch + 1) < settings.max_epochs and not stopped:",
        "one epoch fewer than max_epochs",
        "train",
    ),
    M(
        "train-resume-epoch",
        "training/loop.py",
        'state.events[:0] = saved["events"]\n',
        'state.events[:0] = saved["events"]\n        state.epoch -= 1\n',
        "resume repeats the last completed epoch",
        "train",
    ),
    M(
        "train-resume-stopped",
        "training/loop.py",
        "stopped = bool(state.history) and state.since_best >= settings.patience",
        "stopped = False",
        "resuming a run that had already stopped early trains on",
        "train",
    ),
    M(
        "train-restore-since-best",
        "training/state.py",
        'self.since_best = int(state["since_best"])',
        "self.since_best = 0",
        "resume resets the early-stopping counter",
        "train",
    ),
    M(
        "train-lr-compounding",
        "training/loop.py",
        "settings.nan_lr_factor**faults_since_good",
        "settings.nan_lr_factor",
        "lr cut does not compound over faults in one epoch",
        "train",
    ),
    # ---- training/state.py (the resume path; was checkpoint.py) ---------------------------------
    M(
        "ckpt-binarize-not-restored",
        "training/state.py",
        '    binarize_gen.set_state(state["binarize"])\n',
        "",
        "binarisation generator not restored on resume",
        "state",
    ),
    M(
        "ckpt-order-not-restored",
        "training/state.py",
        '    order_gen.set_state(state["order"])\n',
        "",
        "data-order generator not restored on resume",
        "state",
    ),
    M(
        "ckpt-torch-not-restored",
        "training/state.py",
        '    torch.set_rng_state(state["torch"])\n',
        "",
        "torch's global generator (posterior noise) not restored on resume",
        "state",
    ),
    M(
        "ckpt-numpy-not-restored",
        "training/state.py",
        "    np.random.set_state(",
        "    (",
        "numpy's global generator not restored on resume",
        "state",
    ),
    M(
        "ckpt-required-keys",
        "training/state.py",
        "missing = [key for key in _REQUIRED if key not in state]",
        "missing = []",
        "a state.pt lacking keys is not reported as corrupt",
        "state",
    ),
    # ---- records/record.py (what counts as complete, the safe reader) ---------------------------
    M(
        "records-complete-ignores-status",
        "records/record.py",
        'return result is not None and result.get("status") == "complete" and isinstance(result.get("metrics"), dict)',
        'return result is not None and isinstance(result.get("metrics"), dict)',
        "a record counts as complete whatever its status",
        "records",
    ),
    M(
        "records-complete-ignores-metrics",
        "records/record.py",
        'return result is not None and result.get("status") == "complete" and isinstance(result.get("metrics"), dict)',
        'return result is not None and result.get("status") == "complete"',
        "a record without metrics counts as complete",
        "records",
    ),
    M(
        "records-read-non-dict",
        "records/record.py",
        "return obj if isinstance(obj, dict) else None",
        "return obj",
        "read_result returns a JSON value that is not an object",
        "records",
    ),
    # ---- records/atomic.py (the atomic writer) --------------------------------------------------
    M(
        "records-tmp-outside-dir",
        "records/atomic.py",
        "tempfile.mkstemp(dir=path.parent, ",
        "tempfile.mkstemp(",
        "atomic writer's temporary file made in the system temp dir",
        "records",
    ),
    M(
        "records-no-fsync",
        "records/atomic.py",
        "            os.fsync(f.fileno())\n",
        "",
        "atomic writer does not fsync before the rename",
        "records",
    ),
    # ---- tasks/harness.py (run_one's skip decision; was run.py) ---------------------------------
    M(
        "run-skip-any-record",
        "tasks/harness.py",
        "if is_complete_record(previous) and not cfg.force:",
        "if previous is not None and not cfg.force:",
        "run_one skips any readable record, failed ones too",
        "harness",
        count=2,
    ),
]


@dataclass
class Outcome:
    id: str
    file: str
    what: str
    status: str  # killed | survived | timeout | error
    seconds: float
    detail: str


def copy_tree(dest: Path, rev: str | None) -> Path:
    """src/svae_bench and conf/ (as svae_bench/conf) under dest/src, from the working tree or from
    the git revision ``rev``; returns dest/src."""
    src = dest / "src"
    if rev is None:
        shutil.copytree(ROOT / PKG, src / "svae_bench", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(ROOT / "conf", src / "svae_bench" / "conf", ignore=shutil.ignore_patterns("__pycache__"))
        return src
    export = dest / "export"
    export.mkdir()
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev, PKG, "conf"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(export)], input=archive, check=True)
    shutil.copytree(export / PKG, src / "svae_bench")
    shutil.copytree(export / "conf", src / "svae_bench" / "conf")
    return src


def env_for(src: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(src) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no stale .pyc of a mutant in the copy
    return env


def check_import(src: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import svae_bench, svae_bench.conf, svae_bench.tasks.vae_metrics as e;"
            "print(svae_bench.__file__); print(svae_bench.conf.__file__); print(e.__file__)",
        ],
        env=env_for(src),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    paths = out.stdout.split()
    if out.returncode != 0 or len(paths) != 3 or not all(Path(p).is_relative_to(src) for p in paths):
        raise SystemExit(f"the copy is not what gets imported: {out.stdout} {out.stderr[-2000:]}")


def run_tests(files: list[str], src: Path, timeout: float, stop_at_first: bool = True) -> tuple[str, float, str]:
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        *(["-x"] if stop_at_first else []),
        "-q",
        "-p",
        "no:cacheprovider",
        "--no-header",
        "-W",
        "ignore",
        *files,
    ]
    t0 = time.monotonic()
    try:
        out = subprocess.run(cmd, env=env_for(src), cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - t0, f"no result within {timeout:.0f} s"
    seconds = time.monotonic() - t0
    lines = [ln for ln in out.stdout.splitlines() if ln.strip()]
    failed = [ln.split(" ", 1)[1].split(" - ")[0] for ln in lines if ln.startswith(("FAILED ", "ERROR "))]
    summary = lines[-1] if lines else out.stderr.strip()[-300:]
    if out.returncode == 0:
        return "survived", seconds, summary
    if out.returncode == 1:
        return "killed", seconds, (failed[0] if failed else summary)
    return "error", seconds, f"pytest exit {out.returncode}: {(failed[0] if failed else summary)}"


def apply(src: Path, mutant: Mutant) -> str:
    """Write the mutant into the copy; returns the original text to restore."""
    path = src / "svae_bench" / mutant.file
    text = path.read_text()
    count = text.count(mutant.old)
    if count != mutant.count:
        raise LookupError(
            f"{mutant.id}: the text to mutate occurs {count} times in {mutant.file}, expected {mutant.count}"
        )
    path.write_text(text.replace(mutant.old, mutant.new))
    return text


def source_text(file: str, rev: str | None) -> str | None:
    """The text of src/svae_bench/<file> in the working tree or at ``rev``; None if it does not exist."""
    if rev is None:
        path = ROOT / PKG / file
        return path.read_text() if path.is_file() else None
    out = subprocess.run(["git", "show", f"{rev}:{PKG}/{file}"], cwd=ROOT, capture_output=True, text=True)
    return out.stdout if out.returncode == 0 else None


def check_catalogue(mutants: list[Mutant], rev: str | None) -> list[str]:
    """What is wrong with the catalogue against the current source, without running a test: a file
    that is gone, an ``old`` text that does not occur exactly ``count`` times, a mutant that changes
    nothing or does not compile, an unknown group, a test file or test function that is gone."""
    problems = []
    for m in mutants:
        text = source_text(m.file, rev)
        if text is None:
            problems.append(f"{m.id}: {m.file} does not exist")
            continue
        found = text.count(m.old)
        if found != m.count:
            problems.append(f"{m.id}: the text to mutate occurs {found} times in {m.file}, expected {m.count}")
            continue
        if m.old == m.new:
            problems.append(f"{m.id}: old and new are the same")
        try:
            compile(text.replace(m.old, m.new), m.file, "exec")
        except SyntaxError as err:
            problems.append(f"{m.id}: the mutated {m.file} does not compile ({err.msg}, line {err.lineno})")
        if m.group not in GROUPS:
            problems.append(f"{m.id}: unknown test group {m.group!r}")
    for group, tests in GROUPS.items():
        for test in tests:
            file, _, node = test.partition("::")
            path = ROOT / file
            if not path.is_file():
                problems.append(f"group {group}: {file} does not exist")
            elif node and f"def {node.split('[')[0]}(" not in path.read_text():
                problems.append(f"group {group}: no test {node.split('[')[0]} in {file}")
    return problems


def source_version(rev: str | None) -> str:
    """The commit the mutated package comes from ('+ uncommitted changes' for a dirty working tree)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", rev or "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        if rev is not None:
            return head
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", PKG, "conf"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        return head + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_report(
    out_dir: Path, outcomes: list[Outcome], baseline: dict, command: str, started: str, wall: float, version: str
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(
        json.dumps(
            {
                "command": command,
                "source": version,
                "started": started,
                "wall_seconds": round(wall, 1),
                "baseline": baseline,
                "python": platform.python_version(),
                "outcomes": [asdict(o) for o in outcomes],
            },
            indent=2,
        )
        + "\n"
    )
    by_file: dict[str, list[Outcome]] = {}
    for o in outcomes:
        by_file.setdefault(o.file, []).append(o)
    stale = [o for o in outcomes if o.status == "stale"]
    outcomes = [o for o in outcomes if o.status != "stale"]
    killed_all = sum(o.status in ("killed", "timeout", "error") for o in outcomes)
    lines = [
        "# Mutation testing: svae_bench",
        "",
        f"Command: `{command}` (from the repository root; started {started}, {wall / 60:.1f} min of wall time, "
        f"{os.cpu_count()} CPU cores shared with other work). Package mutated: src/svae_bench at {version}.",
        "",
        "Tool: `scripts/mutation.py`, a fixed catalogue of hand-written mutants applied one at a time to a copy of "
        "`src/svae_bench`; each mutant runs only the test files relevant to its module (`pytest -x`, default tier, "
        "slow tests excluded). Killed = a test failed (or timed out / errored); survived = all passed.",
        "",
        f"**Score: {killed_all}/{len(outcomes)} killed.**",
        "",
        "| module | killed | total |",
        "|---|---:|---:|",
    ]
    for file, group in by_file.items():
        lines.append(f"| {file} | {sum(o.status != 'survived' for o in group)} | {len(group)} |")
    lines += [
        "",
        "## Every mutant",
        "",
        "| id | module | bug | result | s | first failing test / summary |",
        "|---|---|---|---|---:|---|",
    ]
    for o in outcomes:
        lines.append(f"| {o.id} | {o.file} | {o.what} | {o.status} | {o.seconds:.0f} | {o.detail.replace('|', '/')} |")
    survivors = [o for o in outcomes if o.status == "survived"]
    lines += ["", "## Survivors", ""]
    lines += [f"- `{o.id}` ({o.file}): {o.what}" for o in survivors] or ["none"]
    if stale:
        lines += ["", "## Not run (catalogue out of date)", ""] + [f"- `{o.id}`: {o.detail}" for o in stale]
    lines += ["", "## Baseline (unmutated copy)", ""]
    lines += [f"- {group}: {res}" for group, res in baseline.items()]
    (out_dir / "report.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="ID", help="run only these mutants")
    parser.add_argument(
        "--module", help="run only mutants of this file (e.g. training/loop.py, loop.py, distributions/special.py)"
    )
    parser.add_argument("--list", action="store_true", help="print the catalogue and exit")
    parser.add_argument(
        "--check",
        action="store_true",
        help="only check the catalogue against the source (each old text found exactly as often as expected, "
        "each mutant compiles, every test file and test exists); runs no test; exit 0 if all is well, else 1",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per test run (default 600)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where report.md and results.json go (default results/mutation/ for a full run; "
        "none for --only/--module unless given)",
    )
    parser.add_argument(
        "--rev",
        help="mutate the package as committed at this git revision (e.g. HEAD) "
        "instead of the working tree (the tests always come from the working tree)",
    )
    parser.add_argument(
        "--tests",
        nargs="+",
        metavar="PYTEST_ARG",
        help="run these test files / node ids for every chosen mutant instead of its module's group",
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the green-baseline runs (faster re-checks)")
    args = parser.parse_args(argv)

    ids = [m.id for m in MUTANTS]
    assert len(ids) == len(set(ids)), "duplicate mutant ids"
    chosen = MUTANTS
    if args.only:
        unknown = sorted(set(args.only) - set(ids))
        if unknown:
            parser.error(f"unknown mutant ids: {', '.join(unknown)} (see --list)")
        chosen = [m for m in MUTANTS if m.id in args.only]
    if args.module:
        chosen = [m for m in chosen if m.file == args.module or m.file.endswith("/" + args.module)]
        if not chosen:
            parser.error(f"no mutant of {args.module!r}")
    if args.check:
        problems = check_catalogue(chosen, args.rev)
        for problem in problems:
            print(problem, file=sys.stderr)
        where = f"src/svae_bench at {args.rev}" if args.rev else "the working tree's src/svae_bench"
        print(
            f"{len(chosen) - len({p.split(':')[0] for p in problems if not p.startswith('group ')})}/{len(chosen)} "
            f"mutants apply to {where}; {len(problems)} problem(s)"
        )
        return 1 if problems else 0
    if args.list:
        for m in chosen:
            print(f"{m.id:34s} {m.file:36s} {m.what}  [{m.group}]")
        return 0
    out_dir = (
        args.out
        if args.out is not None
        else (ROOT / "results" / "mutation" if not (args.only or args.module) else None)
    )
    command = "python scripts/mutation.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    t_start = time.monotonic()
    version = source_version(args.rev)
    outcomes: list[Outcome] = []
    baseline: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="svae-mutation-") as tmp:
        src = copy_tree(Path(tmp), args.rev)
        check_import(src)
        print(f"copy of the package: {src / 'svae_bench'} (imported from there)", flush=True)
        ok = True
        if not args.no_baseline:
            # one run over the union of the chosen groups' tests (each file once)
            union = args.tests or list(dict.fromkeys(t for m in chosen for t in GROUPS[m.group]))
            union = [t for t in union if "::" not in t or t.split("::")[0] not in union]
            status, seconds, detail = run_tests(union, src, args.timeout * 3, stop_at_first=False)
            baseline["all relevant tests"] = (
                f"{'green' if status == 'survived' else status.upper()} in "
                f"{seconds:.0f} s ({detail}): {' '.join(union)}"
            )
            print(f"baseline: {baseline['all relevant tests']}", flush=True)
            ok &= status == "survived"
            if not ok:
                print("a baseline is not green: mutants would be counted as killed for nothing", file=sys.stderr)
                return 1
        for i, m in enumerate(chosen, 1):
            try:
                original = apply(src, m)
            except LookupError as err:
                print(f"[{i}/{len(chosen)}] {err}", file=sys.stderr, flush=True)
                outcomes.append(Outcome(m.id, m.file, m.what, "stale", 0.0, str(err)))
                ok = False
                continue
            try:
                status, seconds, detail = run_tests(args.tests or GROUPS[m.group], src, args.timeout)
            finally:
                (src / "svae_bench" / m.file).write_text(original)
            outcomes.append(Outcome(m.id, m.file, m.what, status, seconds, detail))
            print(f"[{i}/{len(chosen)}] {status:8s} {seconds:6.0f}s  {m.id}: {detail}", flush=True)
    wall = time.monotonic() - t_start
    by_file: dict[str, list[Outcome]] = {}
    for o in outcomes:
        if o.status == "stale":
            continue
        by_file.setdefault(o.file, []).append(o)
    print(f"\nmutation score ({wall / 60:.1f} min):")
    for file, group in by_file.items():
        print(f"  {file:36s} {sum(o.status in ('killed', 'timeout', 'error') for o in group)}/{len(group)} killed")
    survivors = [o for o in outcomes if o.status == "survived"]
    for o in survivors:
        print(f"  survived: {o.id} ({o.file}): {o.what}")
    if out_dir is not None:
        write_report(out_dir, outcomes, baseline, command, started, wall, version)
        print(f"report: {out_dir / 'report.md'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
