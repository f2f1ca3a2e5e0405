"""Crash safety with real processes: SIGKILL at several points, then the same command resumes and
ends with exactly the numbers of an uninterrupted run; corrupt checkpoints; injected NaNs (the same
run in this process, with the fault-injection hook of svae_bench.training.hooks installed)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from svae_bench.records import run_state
from svae_bench.tasks.harness import run_one
from svae_bench.training import TrainingFailed
from svae_bench.training.hooks import inject_nan

# Synthetic data, 6 epochs of ~0.5 s: slow enough to kill between epochs, quick overall.
ARGS = [
    "model=svae",
    "latent_dim=2",
    "trainer.max_epochs=6",
    "trainer.patience=100",
    "eval.is_samples=50",
    "eval.knn_repeats=2",
    "dataset.n_train=3000",
    "dataset.n_val=300",
    "dataset.n_test=300",
    "trainer.progress=false",
    "trainer.num_threads=1",
]
RUN = Path("runs/default/synthetic/svae/d=2/beta=1/seed=0")


def command(*extra: str) -> list[str]:
    return [sys.executable, "-m", "svae_bench", "run", *ARGS, *extra]


def run(cwd: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(command(*extra), cwd=cwd, capture_output=True, text=True, timeout=600)


def run_with_nan(cwd: Path, at_step: int, *extra: str, times: int = 1) -> None:
    """The run of ``run(cwd, *extra)`` (the harness, as the command calls it) in this process, with
    the objective made NaN at global step ``at_step`` on its first ``times`` passes; raises what the
    harness raises (TrainingFailed: the command's exit status 1)."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module("svae_bench.conf", version_base="1.3"):
            cfg = compose("config", overrides=[*ARGS, *extra])
    finally:
        GlobalHydra.instance().clear()
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        with pytest.MonkeyPatch.context() as mp, inject_nan(at_step, times):
            mp.chdir(cwd)  # runs_root=runs, relative, as for the command
            run_one(cfg, cwd / RUN)
    finally:  # what the run set for the whole process
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)


def result(cwd: Path) -> dict:
    return json.loads((cwd / RUN / "result.json").read_text())


def kill_when(cwd: Path, ready, *extra: str, timeout: float = 300) -> None:
    """Start the run, SIGKILL it as soon as ready(run_dir) holds (polled every 20 ms)."""
    proc = subprocess.Popen(command(*extra), cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while not ready(cwd / RUN):
            assert proc.poll() is None, "the run ended before the kill point"
            assert time.monotonic() < deadline, "kill point not reached"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def status_epoch(run_dir: Path) -> int:
    try:
        return int(json.loads((run_dir / "status.json").read_text()).get("epoch", -1))
    except (OSError, ValueError):
        return -1


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The uninterrupted run."""
    root = tmp_path_factory.mktemp("reference")
    out = run(root)
    assert out.returncode == 0, out.stderr[-3000:]
    record = result(root)
    assert record["epochs"] == 6 and record["resumed_from_epoch"] == 0
    assert not (root / RUN / "state.pt").exists()  # removed once the record is complete
    return record


def same_numbers(a: dict, b: dict) -> None:
    assert a["metrics"] == b["metrics"]  # exact: same floats
    assert (a["epochs"], a["best_epoch"]) == (b["epochs"], b["best_epoch"])


# after_epoch_2 in the default suite; the two other kill points (40 s together) under `make test-slow`
@pytest.mark.parametrize(
    "point",
    [
        pytest.param("before_first_epoch", marks=pytest.mark.slow),
        "after_epoch_2",
        pytest.param("during_evaluation", marks=pytest.mark.slow),
    ],
)
def test_sigkill_then_rerun_resumes_to_the_same_result(reference, tmp_path, point):
    ready = {
        "before_first_epoch": lambda d: (d / "config.yaml").exists(),
        "after_epoch_2": lambda d: status_epoch(d) >= 2,
        "during_evaluation": lambda d: (d / "checkpoint.pt").exists(),
    }[point]
    extra = ["eval.is_samples=3000"] if point == "during_evaluation" else []  # a longer evaluation to hit
    kill_when(tmp_path, ready, *extra)
    state, status = run_state(tmp_path / RUN)
    assert state == "interrupted"
    assert not (tmp_path / RUN / "result.json").exists()
    out = run(tmp_path, *extra)
    assert out.returncode == 0, out.stderr[-3000:]
    record = result(tmp_path)
    if point == "during_evaluation":
        assert record["resumed_from_epoch"] == 6
        (tmp_path / "u").mkdir()
        uninterrupted = run(tmp_path / "u", *extra)  # the same settings, never killed
        assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
        same_numbers(record, result(tmp_path / "u"))
    else:
        same_numbers(record, reference)
        expected = 0 if point == "before_first_epoch" else status["epoch"]
        assert record["resumed_from_epoch"] == expected
        if expected:
            assert "resuming after epoch" in out.stderr + out.stdout
    assert run_state(tmp_path / RUN)[0] == "complete"


def test_corrupt_checkpoint_restarts_from_scratch(reference, tmp_path):
    kill_when(tmp_path, lambda d: status_epoch(d) >= 2)
    (tmp_path / RUN / "state.pt").write_bytes(b"not a checkpoint")
    out = run(tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "restarting this run from scratch" in out.stderr + out.stdout
    record = result(tmp_path)
    same_numbers(record, reference)
    assert record["resumed_from_epoch"] == 0
    assert [e["event"] for e in record["events"]] == ["corrupt_checkpoint"]


def test_changed_config_restarts_instead_of_resuming(tmp_path):
    kill_when(tmp_path, lambda d: status_epoch(d) >= 1)
    out = run(tmp_path, "trainer.lr=0.002")
    assert out.returncode == 0, out.stderr[-3000:]
    record = result(tmp_path)
    assert record["resumed_from_epoch"] == 0 and record["events"][0]["event"] == "config_changed"


def test_injected_nan_rolls_back_and_retries(reference, tmp_path):
    # step 150 is in epoch 4 (47 steps per epoch): roll back to epoch 3, fresh noise, lr halved
    run_with_nan(tmp_path, 150)
    record = result(tmp_path)
    assert record["status"] == "complete" and record["epochs"] == 6
    (event,) = [e for e in record["events"] if e["event"] == "non_finite"]
    assert event["epoch"] == 4 and event["step"] == 150 and event["attempt"] == 1 and event["lr"] == 5e-4
    assert record["metrics"] != reference["metrics"]  # fresh noise and a lower lr from there on


def test_persistent_nan_fails_the_run_without_a_result(tmp_path):
    with pytest.raises(TrainingFailed):
        run_with_nan(tmp_path, 60, "trainer.nan_retries=2", times=100)
    failed = result(tmp_path)
    assert failed["status"] == "failed" and "metrics" not in failed and "non-finite objective" in failed["reason"]
    from svae_bench.commands import tables as tables_cmd

    assert tables_cmd.main(["--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "t")]) == 2  # no complete run
    state, status = run_state(tmp_path / RUN)
    assert state == "failed" and "non-finite objective" in status["reason"]
    assert [e["attempt"] for e in status["events"] if e["event"] == "non_finite"] == [1, 2, 3]


def test_a_second_process_does_not_touch_a_running_run(tmp_path):
    long = ["trainer.max_epochs=60"]  # still running while the second process starts
    first = subprocess.Popen(command(*long), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while status_epoch(tmp_path / RUN) < 1:
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        second = run(tmp_path, *long)
        assert second.returncode == 0
        assert "is being run by process" in second.stderr + second.stdout
        assert first.poll() is None, "the first run ended before the second started: nothing was tested"
    finally:
        assert first.wait(timeout=600) == 0
    record = result(tmp_path)
    assert record["epochs"] == 60 and record["resumed_from_epoch"] == 0 and record["events"] == []


def test_two_faults_in_one_epoch_compound_the_lr_cut(tmp_path):
    run_with_nan(tmp_path, 150, times=2)
    faults = [e for e in result(tmp_path)["events"] if e["event"] == "non_finite"]
    assert [(e["epoch"], e["attempt"], e["lr"]) for e in faults] == [(4, 1, 5e-4), (4, 2, 2.5e-4)]
