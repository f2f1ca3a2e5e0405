"""`svae-bench evaluate`: a complete run evaluated again from its checkpoint, without training.

It reproduces the run's own metrics digit for digit (same weights, seeds and settings), adds the
metrics a record predates (ll_tf_example) without changing any other field or any file training
wrote, replaces the metrics when the settings change (keeping the old ones in the entry), and
refuses bad input with one line and exit status 2, writing nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from svae_bench.commands import evaluate as evaluate_cmd

FAST = [
    "trainer.max_epochs=2",
    "eval.is_samples=20",
    "eval.knn_repeats=2",
    "dataset.n_train=1200",
    "dataset.n_val=200",
    "dataset.n_test=200",
    "trainer.progress=false",
]
RUN = Path("runs/default/synthetic/svae/d=2/beta=1/seed=0")
TRAINING_FILES = ("config.yaml", "metrics.csv", "checkpoint.pt", "status.json")


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "svae_bench", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("trained")
    out = cli("run", "model=svae", "latent_dim=2", *FAST, cwd=root)
    assert out.returncode == 0, out.stderr[-3000:]
    return root


@pytest.fixture
def work(trained, tmp_path) -> Path:
    """A copy of the trained run's root, for one test to change."""
    shutil.copytree(trained / "runs", tmp_path / "runs")
    return tmp_path


def digests(run_dir: Path) -> dict[str, str]:
    return {name: hashlib.sha256((run_dir / name).read_bytes()).hexdigest() for name in TRAINING_FILES}


def record(run_dir: Path) -> dict:
    return json.loads((run_dir / "result.json").read_text())


def test_adds_the_missing_estimator_and_changes_nothing_else(work):
    run_dir = work / RUN
    original = record(run_dir)
    assert "ll_tf_example" in original["metrics"]
    older = json.loads(json.dumps(original))
    del older["metrics"]["ll_tf_example"]  # a record made before the estimator existed
    (run_dir / "result.json").write_text(json.dumps(older, indent=2))
    files = digests(run_dir)

    out = cli("evaluate", str(RUN), cwd=work)
    assert out.returncode == 0, out.stderr
    assert "added ll_tf_example" in out.stdout and "same settings" in out.stdout
    new = record(run_dir)
    entry = new.pop("evaluations")
    # the run's own evaluation, reproduced digit for digit: ll, re, kl, elbo, k-NN and the new estimator
    assert new == original
    assert entry[-1]["added"] == ["ll_tf_example"] and entry[-1]["differs"] == {}
    assert entry[-1]["eval"]["is_samples"] == 20
    # the evaluating code's commit, found the way the run found its own (None for a copy outside a checkout)
    assert "git_commit" in entry[-1] and entry[-1]["git_commit"] == original["git_commit"]
    assert digests(run_dir) == files  # nothing training wrote is touched
    assert not list(run_dir.glob(".*.tmp"))


def test_other_settings_replace_the_metrics_and_keep_the_old_ones(work):
    run_dir = work / RUN
    before = record(run_dir)
    out = cli("evaluate", str(RUN), "eval.is_samples=7", "eval.knn_labels=[50]", cwd=work)
    assert out.returncode == 0, out.stderr
    assert "new settings, metrics replaced" in out.stdout
    after = record(run_dir)
    entry = after["evaluations"][-1]
    assert entry["replaced"] is True and entry["previous_metrics"] == before["metrics"]
    assert entry["previous_eval"]["is_samples"] == 20 and entry["eval"]["is_samples"] == 7
    assert after["config"]["eval"]["is_samples"] == 7 and set(after["metrics"]["knn_acc"]) == {"50"}
    assert after["metrics"]["ll"] != before["metrics"]["ll"]  # 7 importance samples, not 20
    assert after["metrics"]["kl"] == before["metrics"]["kl"]  # closed form: the same weights
    for key in ("epochs", "best_epoch", "train_seconds", "git_commit", "versions"):
        assert after[key] == before[key]


def test_filters_select_runs_under_the_root(work):
    out = cli("evaluate", "--runs", "runs", "--model", "svae", "--latent-dim", "2", cwd=work)
    assert out.returncode == 0, out.stderr
    assert "[1/1]" in out.stdout
    assert len(record(work / RUN)["evaluations"]) == 1


def refused(work: Path, capsys, *args: str) -> str:
    """Run the command in-process from ``work``; assert exit 2, one line on stderr, the record unchanged."""
    run_dir = work / RUN
    before = (run_dir / "result.json").read_bytes() if (run_dir / "result.json").is_file() else None
    cwd = os.getcwd()
    os.chdir(work)
    try:
        status = evaluate_cmd.main(list(args))
    finally:
        os.chdir(cwd)
    err = capsys.readouterr().err
    assert status == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err
    if before is not None:
        assert (run_dir / "result.json").read_bytes() == before
    return err


def test_refuses_a_run_without_its_checkpoint(work, capsys):
    (work / RUN / "checkpoint.pt").unlink()
    assert "has no checkpoint.pt" in refused(work, capsys, str(RUN))
    assert "has no checkpoint.pt" in refused(work, capsys, "--runs", "runs")  # in bulk too


def test_refuses_a_failed_run(work, capsys):
    rec = record(work / RUN)
    rec.update(status="failed", reason="NaN")
    rec.pop("metrics")
    (work / RUN / "result.json").write_text(json.dumps(rec))
    (work / RUN / "status.json").write_text(json.dumps({"status": "failed", "reason": "NaN"}))
    assert "failed" in refused(work, capsys, str(RUN))


def test_refuses_a_running_run(work, capsys):
    (work / RUN / "result.json").unlink()
    status = {"status": "running", "host": os.uname().nodename, "pid": os.getpid(), "updated": 4e9, "epoch": 1}
    (work / RUN / "status.json").write_text(json.dumps(status))
    assert "is running" in refused(work, capsys, str(RUN))


def test_refuses_a_directory_outside_the_runs_root(work, capsys, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    shutil.copytree(work / RUN, elsewhere / "run")
    assert "outside the runs root" in refused(work, capsys, str(elsewhere / "run"))
    assert "outside the runs root" in refused(work, capsys, "runs/../..")


def test_refuses_overrides_that_describe_another_run(work, capsys):
    assert "cannot change at evaluation" in refused(work, capsys, str(RUN), "trainer.lr=0.1")
    assert "eval.is_samples" in refused(work, capsys, str(RUN), "eval.is_samples=0")


def test_refuses_weights_the_config_no_longer_fits(work, capsys):
    rec = record(work / RUN)
    rec["config"]["model"]["hidden_dims"] = [7]
    (work / RUN / "result.json").write_text(json.dumps(rec))
    before = (work / RUN / "result.json").read_bytes()
    out = cli("evaluate", str(RUN), cwd=work)  # in a subprocess: the refusal comes after the model is built
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "does not fit the model" in out.stderr and "checkpoint.pt" in out.stderr
    assert (work / RUN / "result.json").read_bytes() == before


def test_refuses_an_empty_selection(work, capsys):
    assert "no complete VAE run" in refused(work, capsys, "--runs", "runs", "--model", "nvae")


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 not a zip", b"\x80\x04K\x01."])
def test_refuses_an_unreadable_checkpoint_in_one_line(work, content):
    (work / RUN / "checkpoint.pt").write_bytes(content)
    before = (work / RUN / "result.json").read_bytes()
    out = cli("evaluate", str(RUN), cwd=work)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "checkpoint.pt" in out.stderr and "Traceback" not in out.stderr
    assert (work / RUN / "result.json").read_bytes() == before
