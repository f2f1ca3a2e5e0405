"""The M1+M2 task (Table 3) end to end on synthetic data: M1 trained first or reused, never reused with
other settings, resumable after kill -9, and bad values refused before anything is written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers_kill import kill_at_epoch
from svae_bench.records import run_state

# Three classes (the synthetic mixture's components), 10 labels each; a few epochs of ~0.3 s.
ARGS = [
    "-m",
    "experiment=table3",
    "dataset=synthetic",
    "dataset.n_train=2000",
    "dataset.n_val=300",
    "dataset.n_test=300",
    "semisup.labels=30",
    "semisup.hidden_dims=[64]",
    "family=S+N",
    "latent_dim=2",
    "trainer.max_epochs=3",
    "semisup.trainer.max_epochs=5",
    "semisup.trainer.patience=100",
    "eval.is_samples=10",
    "eval.knn_repeats=1",
    "eval.knn_labels=[30]",
    "n_seeds=1",
    "trainer.progress=false",
    "trainer.num_threads=1",
]
M1 = Path("runs/table1_paper/synthetic/svae/d=2/beta=1/seed=0")


def cell(z2: int) -> Path:
    return Path(f"runs/table3_paper/synthetic/S+N/z1=2/z2={z2}/seed=0")


def command(*extra: str) -> list[str]:
    return [sys.executable, "-m", "svae_bench", "run", *ARGS, *extra]


def run(cwd: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(command(*extra), cwd=cwd, capture_output=True, text=True, timeout=900)


def record(path: Path) -> dict:
    return json.loads((path / "result.json").read_text())


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """Two cells that share one M1: the first trains it, the second reuses it."""
    root = tmp_path_factory.mktemp("m1m2")
    # two-stage here: the accuracy check below is about M2 on a fixed M1 (joint runs in the resume test)
    out = run(root, "semisup.z2_dim=2,3", "semisup.training=two_stage")
    assert out.returncode == 0, out.stderr[-3000:]
    return root


def test_two_cells_share_one_m1_trained_once(sweep: Path) -> None:
    m1 = record(sweep / M1)
    assert m1["task"] == "vae" and m1["experiment"] == "table1_paper" and m1["epochs"] == 3  # a Table 1 run
    first, second = record(sweep / cell(2)), record(sweep / cell(3))
    for rec, z2 in ((first, 2), (second, 3)):
        assert rec["task"] == "m1m2" and rec["model"] == "S+N" and rec["z2_dim"] == z2 and rec["labels"] == 30
        assert rec["m1_run"] == "table1_paper/synthetic/svae/d=2/beta=1/seed=0"
        assert 0.0 <= rec["metrics"]["acc"]["30"] <= 1.0 and rec["epochs"] == 5
    assert first["m1_trained_by_this_run"] is True and second["m1_trained_by_this_run"] is False
    assert first["metrics"]["acc"]["30"] > 0.9  # three well-separated components, 10 labels each
    header = (sweep / cell(2) / "metrics.csv").read_text().splitlines()[0]
    assert header.startswith("epoch,train_objective,train_unlabelled,train_labelled")


def test_an_m1_made_with_other_settings_is_not_reused(sweep: Path) -> None:
    out = run(sweep, "semisup.z2_dim=4", "trainer.max_epochs=4")
    assert out.returncode == 2
    assert "made with other settings (trainer.max_epochs)" in out.stderr
    assert not (sweep / cell(4)).exists()
    assert record(sweep / M1)["epochs"] == 3  # untouched


def test_kill_during_m2_then_rerun_ends_with_the_same_numbers(sweep: Path, tmp_path: Path) -> None:
    (tmp_path / "runs").symlink_to(sweep / "runs", target_is_directory=True)  # the same complete M1
    extra = ("semisup.z2_dim=5", "semisup.trainer.max_epochs=8")
    run_dir = tmp_path / cell(5)
    kill_at_epoch(command(*extra), tmp_path, run_dir, 2)
    assert run_state(run_dir)[0] == "interrupted"
    out = run(tmp_path, *extra)
    assert out.returncode == 0, out.stderr[-3000:]
    resumed = record(run_dir)
    assert resumed["resumed_from_epoch"] >= 2
    (tmp_path / "u").mkdir()
    (tmp_path / "u" / "runs").mkdir()
    (tmp_path / "u" / "runs" / "table1_paper").symlink_to(sweep / "runs" / "table1_paper", target_is_directory=True)
    uninterrupted = run(tmp_path / "u", *extra)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
    assert resumed["metrics"] == record(tmp_path / "u" / cell(5))["metrics"]


def test_kill_while_the_cell_trains_its_m1_then_rerun_resumes_the_m1(tmp_path: Path) -> None:
    """A cell killed while it trains its M1 leaves that M1 run interrupted (not failed, not
    complete); the same command resumes the M1 after its last epoch, then trains M2."""
    extra = ("semisup.z2_dim=2", "trainer.max_epochs=8")
    m1_dir = tmp_path / M1
    kill_at_epoch(command(*extra), tmp_path, m1_dir, 2)
    assert run_state(m1_dir)[0] == "interrupted"
    assert not (tmp_path / cell(2) / "result.json").exists()
    out = run(tmp_path, *extra)
    assert out.returncode == 0, out.stderr[-3000:]
    m1 = record(m1_dir)
    assert m1["status"] == "complete" and m1["resumed_from_epoch"] >= 2 and m1["epochs"] == 8
    assert record(tmp_path / cell(2))["m1_trained_by_this_run"] is True


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("family=X+Y", "family=X+Y is unknown; allowed: N+N, S+N, S+S"),
        ("semisup.labels=35", "semisup.labels=35 must be a positive multiple of the 3 classes"),
        ("semisup.labels=3000", "semisup.labels=3000 must be fewer than the 2000 training points"),
        ("semisup.z2_dim=0", "semisup.z2_dim=0 must be a positive integer"),
        ("semisup.warmup_epochs=-1", "semisup.warmup_epochs=-1 must be an integer >= 0"),
        ("model=nvae", "family=S+N needs model.latent=vmf and semisup.z2_latent=gaussian"),
        ("semisup.z1=median", "semisup.z1='median' must be one of mean, sample"),
        ("semisup.prune_below=0.1", "family=S+N has a spherical M1, whose coordinates cannot be dropped (allowed: 0)"),
        ("semisup.prune_below=-1", "semisup.prune_below=-1 must be a number >= 0"),
    ],
)
def test_bad_values_exit_2_before_anything_is_written(tmp_path: Path, override: str, message: str) -> None:
    """The sweep's preflight (what ``svae-bench run`` calls first) refuses each value with one line."""
    from svae_bench.launch.preflight import check_run_overrides

    problem = check_run_overrides([*ARGS, f"runs_root={tmp_path / 'runs'}", override])
    assert problem is not None and message in problem and "\n" not in problem
    assert not (tmp_path / "runs").exists()


def test_a_complete_m1_record_without_its_weights_is_refused_in_one_line(sweep: Path, tmp_path: Path) -> None:
    """A complete M1 record copied without checkpoint.pt (as results/ commits records) cannot be
    reused: the preflight says so in one line instead of the cell failing at torch.load."""
    import shutil

    from svae_bench.launch.preflight import check_run_overrides

    copy = tmp_path / M1
    shutil.copytree(sweep / M1, copy)
    (copy / "checkpoint.pt").unlink()
    problem = check_run_overrides([*ARGS, f"runs_root={tmp_path / 'runs'}", "semisup.z2_dim=2"])
    assert problem is not None and "is complete but has no checkpoint.pt" in problem and "\n" not in problem


def test_a_bad_value_through_the_command_is_exit_2_and_one_line(tmp_path: Path) -> None:
    out = run(tmp_path, "semisup.labels=35")
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.startswith("error: semisup.labels=35 must be a positive multiple of the 3 classes")
    assert len(out.stderr.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()


def test_an_m1_differing_only_in_speed_settings_is_reused() -> None:
    """trainer.compile/num_threads/progress do not change what an M1 learns: a record made before
    trainer.compile existed, or with other speed settings, is reused; a changed lr is not."""
    from svae_bench.tasks.m1m2 import m1_mismatch, m1_values

    values = {
        "semisup": {"m1_experiment": "table1_laptop"},
        "runs_root": "runs",
        "dataset": {"name": "mnist"},
        "model": {"name": "svae"},
        "latent_dim": 10,
        "seed": 0,
        "trainer": {"lr": 1e-3, "compile": True, "num_threads": 1},
        "family": "S+N",
        "task": "m1m2",
        "experiment_name": "table3_laptop",
    }
    old = m1_values(values)
    old["trainer"] = {"lr": 1e-3, "num_threads": 2}  # no compile key: made before the option existed
    assert m1_mismatch({"config": old}, values) == []
    old["trainer"]["lr"] = 3e-4
    assert m1_mismatch({"config": old}, values) != []


def test_n_plus_n_with_pruning_runs_end_to_end_and_logs_what_m2_sees(tmp_path: Path) -> None:
    """family=N+N with semisup.prune_below: the cell trains its Gaussian M1, keeps the coordinates
    that vary, trains M2 on those and writes a complete record (the wiring, not the numbers)."""
    out = run(tmp_path, "family=N+N", "latent_dim=3", "semisup.z2_dim=2", "semisup.prune_below=1e-6")
    assert out.returncode == 0, out.stderr[-3000:]
    done = record(tmp_path / "runs/table3_paper/synthetic/N+N/z1=3/z2=2/seed=0")
    assert done["status"] == "complete" and done["config"]["semisup"]["prune_below"] == 1e-6
    assert "M2 sees " in out.stderr + out.stdout and "of M1's 3 coordinates" in out.stderr + out.stdout
