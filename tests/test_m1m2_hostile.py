"""Hostile and out-of-range input to an M1+M2 cell (Table 3): each gets one line naming the file or the
key, exit status 2, no traceback, no hang, and nothing written; a pickle in an M1 checkpoint runs no
code. Most cases go through ``svae-bench run`` in this process (its preflight refuses them before
Hydra starts); the ones that must reach a Hydra job run as real processes."""

from __future__ import annotations

import copy
import functools
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from svae_bench.cli import main as cli_main
from svae_bench.data import build_dataset
from svae_bench.data.labels import labelled_subset, training_labels
from svae_bench.errors import ConfigError
from svae_bench.launch.sweep import compose_jobs
from svae_bench.tasks import get_task
from svae_bench.tasks.m1m2 import m1_values, m1_without_data

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_mnist = pytest.mark.skipif(not (SHARED / "MNIST/raw").is_dir(), reason="../shared/data/MNIST/raw not present")

# the synthetic mixture of tests/test_m1m2.py: 2000 training points, classes of 677, 635 and 688
OVERRIDES = [
    "experiment=table3",
    "dataset=synthetic",
    "dataset.n_train=2000",
    "dataset.n_val=300",
    "dataset.n_test=300",
    "semisup.labels=30",
    "semisup.hidden_dims=[64]",
    "family=S+N",
    "latent_dim=2",
    "semisup.z2_dim=2",
    "trainer.max_epochs=3",
    "semisup.trainer.max_epochs=2",
    "eval.is_samples=10",
    "eval.knn_repeats=1",
    "eval.knn_labels=[30]",
    "n_seeds=1",
    "trainer.progress=false",
    "trainer.num_threads=1",
]
ARGS = ["-m", *OVERRIDES]
M1_REL = "table1_paper/synthetic/svae/d=2/beta=1/seed=0"


class RunsSystem:
    """A pickle that calls os.system when unpickled (what weights_only loading must refuse)."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) if root.exists() else []


def refused(capsys, *args: str) -> str:
    """``svae-bench run ARGS`` in this process: exit 2 and one line on stderr; the line."""
    code = cli_main(["run", *args])
    out = capsys.readouterr()
    lines = [line for line in out.err.splitlines() if line.strip()]
    assert code == 2, out.err[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), out.err
    assert "Traceback" not in out.out + out.err
    return lines[0]


@functools.cache
def cell_values() -> dict:
    """The cell's resolved config (composed once: Hydra takes about a second), runs_root "runs"."""
    (job,) = compose_jobs([*OVERRIDES, "runs_root=runs"], multirun=True)
    return job.values


def complete_m1(runs: Path, checkpoint=None) -> Path:
    """A complete M1 record at the cell's M1 directory made with the cell's M1 settings, and its
    checkpoint.pt (``checkpoint``: an object to torch.save, or bytes; default: weights that fit)."""
    values = {**copy.deepcopy(cell_values()), "runs_root": str(runs)}
    (directory,) = get_task("m1m2").dependencies(values)
    assert directory == runs / M1_REL
    directory.mkdir(parents=True)
    record = {"status": "complete", "task": "vae", "metrics": {"ll": -1.0}, "config": m1_values(values)}
    (directory / "result.json").write_text(json.dumps(record))
    if checkpoint is None:
        checkpoint = {"model": m1_without_data(values).state_dict(), "epoch": 3}
    if isinstance(checkpoint, bytes):
        (directory / "checkpoint.pt").write_bytes(checkpoint)
    else:
        torch.save(checkpoint, directory / "checkpoint.pt")
    return directory


def m1_state_dict() -> dict:
    return m1_without_data(cell_values()).state_dict()


# --------------------------------------------------------------------------- the M1's files


def test_an_m1_checkpoint_whose_pickle_calls_os_system_is_refused_and_runs_nothing(tmp_path, capsys) -> None:
    runs, marker = tmp_path / "runs", tmp_path / "pwned"
    directory = complete_m1(runs, {"model": RunsSystem(f"touch {marker}"), "epoch": 3})
    before = files_under(runs)
    line = refused(capsys, *ARGS, f"runs_root={runs}")
    assert str(directory / "checkpoint.pt") in line and "cannot be loaded as weights" in line
    assert not marker.exists()  # no code ran
    assert files_under(runs) == before


def test_an_m1_checkpoint_with_wrong_shapes_is_refused_by_the_command_in_one_line(tmp_path, capsys) -> None:
    runs = tmp_path / "runs"
    directory = complete_m1(runs, {"model": {k: torch.zeros(1) for k in m1_state_dict()}, "epoch": 3})
    before = files_under(runs)
    line = refused(capsys, *ARGS, f"runs_root={runs}")
    assert str(directory / "checkpoint.pt") in line and "does not fit the model" in line, line
    assert "semisup.m1_experiment=NAME" in line  # and what to do
    assert files_under(runs) == before


def test_every_kind_of_m1_checkpoint_that_is_not_m1s_weights_is_refused_by_the_check_in_one_line(tmp_path) -> None:
    """The task's check_data (what the preflight above calls for every cell) on each kind of bad file."""
    state = m1_state_dict()
    torch.save({"model": state, "epoch": 3}, tmp_path / "whole.pt")
    cases = [
        ("wrong shapes", {"model": {k: torch.zeros(1) for k in state}, "epoch": 3}, "does not fit the model"),
        ("a key missing", {"model": dict(list(state.items())[1:]), "epoch": 3}, "does not fit the model"),
        ("a key too many", {"model": {**state, "extra": torch.zeros(1)}, "epoch": 3}, "does not fit the model"),
        ("not tensors", {"model": dict.fromkeys(state, 1.0), "epoch": 3}, "does not fit the model"),
        ("not a dict", [1, 2, 3], "is not a checkpoint of this project"),
        ("no model", {"weights": state}, "is not a checkpoint of this project"),
        ("model not a dict", {"model": [torch.zeros(2)]}, "is not a checkpoint of this project"),
        ("garbage", b"this is not a torch file", "cannot be loaded as weights"),
        ("truncated", (tmp_path / "whole.pt").read_bytes()[:300], "cannot be loaded as weights"),
        ("empty", b"", "cannot be loaded as weights"),
    ]
    task = get_task("m1m2")
    for i, (name, checkpoint, says) in enumerate(cases):
        runs = tmp_path / str(i) / "runs"
        directory = complete_m1(runs, checkpoint)
        with pytest.raises(ConfigError) as err:
            task.check_data({**copy.deepcopy(cell_values()), "runs_root": str(runs)})
        message = str(err.value)
        assert str(directory / "checkpoint.pt") in message and says in message and "\n" not in message, name


def test_an_m1_checkpoint_with_m1s_weights_passes_the_preflight(tmp_path) -> None:
    """The control of the cases above: the same record with weights that fit is reusable."""
    from svae_bench.launch.preflight import check_run_overrides

    runs = tmp_path / "runs"
    complete_m1(runs)
    assert check_run_overrides([*ARGS, f"runs_root={runs}"]) is None


@pytest.mark.parametrize(
    "what", ["result.json is a directory", "result.json links to a directory", "M1 dir is a file", "a parent is a file"]
)
def test_an_m1_run_directory_that_cannot_hold_a_run_is_refused_in_one_line(tmp_path, capsys, what) -> None:
    runs = tmp_path / "runs"
    directory = runs / M1_REL
    if what == "M1 dir is a file":
        directory.parent.mkdir(parents=True)
        directory.write_text("")
        named = directory
    elif what == "a parent is a file":
        named = runs / "table1_paper" / "synthetic"
        named.parent.mkdir(parents=True)
        named.write_text("")
    else:
        directory.mkdir(parents=True)
        named = directory / "result.json"
        if what.endswith("is a directory"):
            named.mkdir()
        else:
            (tmp_path / "elsewhere").mkdir()
            named.symlink_to(tmp_path / "elsewhere")
    before = files_under(runs)
    line = refused(capsys, *ARGS, f"runs_root={runs}")
    assert str(named) in line, line
    assert files_under(runs) == before


# --------------------------------------------------------------------------- semisup.labels


def test_more_labels_than_a_class_of_the_training_split_allows_are_refused_by_the_preflight(tmp_path, capsys):
    """2000 training points in classes of 677, 635 and 688: 3 x 635 labels fit, 3 x 636 do not,
    although both are fewer than the training points (the check before this one)."""
    from svae_bench.launch.preflight import check_run_overrides

    runs = tmp_path / "runs"
    line = refused(capsys, *ARGS, f"runs_root={runs}", "semisup.labels=1908")
    assert line == (
        "error: semisup.labels=1908 needs 636 training points of each of the 3 classes; class 1 has 635 in the "
        "training split (allowed: at most 1905 labels)"
    )
    assert not runs.exists()
    assert check_run_overrides([*ARGS, f"runs_root={runs}", "semisup.labels=1905"]) is None


@needs_mnist
def test_more_mnist_labels_than_its_smallest_class_allows_are_refused_by_the_preflight(tmp_path, capsys):
    """MNIST's 50k training split has 4491 fives: 44,910 labels fit, 45,000 (fewer than 50,000) do not."""
    from svae_bench.launch.preflight import check_run_overrides

    args = ["-m", "experiment=table3", "budget=laptop", "family=S+N", "latent_dim=10", "semisup.z2_dim=10"]
    args += ["n_seeds=1", f"dataset.data_root={SHARED}", f"runs_root={tmp_path / 'runs'}"]
    line = refused(capsys, *args, "semisup.labels=45000")
    assert "semisup.labels=45000 needs 4500 training points of each of the 10 classes; class 5 has 4491" in line
    assert "at most 44910 labels" in line and not (tmp_path / "runs").exists()
    assert check_run_overrides([*args, "semisup.labels=44910"]) is None


def _fake_mnist(root: Path) -> np.ndarray:
    """MNIST's four files under root/MNIST/raw: blank images, random labels (returned)."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels = {"train": rng.integers(0, 10, 60000, dtype=np.uint8), "t10k": rng.integers(0, 10, 10000, dtype=np.uint8)}
    for split, n in (("train", 60000), ("t10k", 10000)):
        header = np.array([2051, n, 28, 28], dtype=">u4").tobytes()
        (raw / f"{split}-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + bytes(n * 784), 1))
        header = np.array([2049, n], dtype=">u4").tobytes()
        (raw / f"{split}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(header + labels[split].tobytes()))
    return labels["train"]


def test_the_training_labels_the_check_counts_are_the_training_split_the_run_loads(tmp_path) -> None:
    """What the labels check counts (MNIST: the labels file and the split, without the images) is
    the training split build_dataset makes, for MNIST (here a blank stand-in) and the mixture."""
    _fake_mnist(tmp_path)
    n_val = 1234
    mnist = {"name": "mnist", "data_root": str(tmp_path), "n_val": n_val, "split_seed": 3, "binarize_seed": 0}
    assert torch.equal(training_labels(mnist), build_dataset(mnist).train.y)
    synthetic = {**cell_values()["dataset"], "n_train": 500 + n_val // 10}
    assert torch.equal(training_labels(synthetic), build_dataset(synthetic).train.y)


def test_labels_messages_name_the_semisup_key() -> None:
    labels = torch.arange(300) % 3
    with pytest.raises(ConfigError, match=r"^semisup\.labels=35 must be a positive multiple of the 3 classes"):
        labelled_subset(labels, 35, seed=0, n_classes=3)
    with pytest.raises(ConfigError, match=r"^semisup\.labels=303 needs 101 training points of each of the 3 classes"):
        labelled_subset(labels, 303, seed=0, n_classes=3)
    without_class_2 = torch.arange(300) % 2
    with pytest.raises(
        ConfigError, match=r"^semisup\.labels=3 needs 1 training points .* class 2 has 0 in the training"
    ):
        labelled_subset(without_class_2, 3, seed=0, n_classes=3)


# --------------------------------------------------------------------------- out-of-range values


def test_a_warm_up_of_10_to_the_12_epochs_is_refused_with_the_whole_range(tmp_path, capsys) -> None:
    line = refused(capsys, *ARGS, f"runs_root={tmp_path / 'runs'}", "semisup.warmup_epochs=1000000000000")
    assert line == "error: semisup.warmup_epochs=1000000000000 must be an integer >= 0 (at most 10000000)"
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("warmup_epochs", 10**7 + 1, "must be an integer >= 0 (at most 10000000)"),
        ("trainer.patience", 10**12, "must be a positive integer (at most 10000000)"),
        ("trainer.batch_size", 10**12, "must be a positive integer (at most 100000000)"),
        ("trainer.max_epochs", 10**12, "must be a positive integer (at most 10000000)"),
        ("trainer.nan_retries", -1, "must be an integer >= 0 (at most 1000)"),
        ("labels", 10**12, "must be a positive integer (at most 100000000)"),
        ("z2_dim", 10**12, "must be a positive integer (at most 100000)"),
    ],
)
def test_every_semisup_count_out_of_range_is_refused_with_its_whole_range(key, value, message) -> None:
    values = copy.deepcopy(cell_values())
    *parents, leaf = ["semisup", *key.split(".")]
    node = values
    for part in parents:
        node = node[part]
    node[leaf] = value
    with pytest.raises(ConfigError) as err:
        get_task("m1m2").check(values)
    assert str(err.value) == f"semisup.{key}={value} {message}"


def test_m2_takes_no_retries_as_the_trainer_does() -> None:
    """semisup.trainer.nan_retries defaults to trainer.nan_retries, which may be 0: so may M2's."""
    values = copy.deepcopy(cell_values())
    values["trainer"]["nan_retries"] = values["semisup"]["trainer"]["nan_retries"] = 0
    get_task("m1m2").check(values)


# --------------------------------------------------------------------------- the cell's own directory


def test_a_cell_whose_run_directory_is_its_own_m1_run_directory_is_refused_not_left_waiting(tmp_path) -> None:
    """hydra.sweep.subdir naming the cell's M1 directory: the cell would hold the lock its M1 needs
    and wait for it for ever; it stops with one line and exit 2, training nothing."""
    out = subprocess.run(
        [sys.executable, "-m", "svae_bench", "run", *ARGS, "runs_root=runs", f"hydra.sweep.subdir='{M1_REL}'"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,  # a hang fails here
    )
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2, out.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: the run directory ") and "own M1 run directory" in lines[0]
    assert "Traceback" not in out.stdout + out.stderr
    m1 = tmp_path / "runs" / M1_REL
    assert not any((m1 / name).exists() for name in ("result.json", "checkpoint.pt", "metrics.csv", "state.pt"))


def test_a_cell_whose_run_directory_is_its_own_m1_run_directory_is_refused_before_anything_is_written(tmp_path):
    from svae_bench.launch.preflight import check_run_overrides

    runs = tmp_path / "runs"
    problem = check_run_overrides([*ARGS, f"runs_root={runs}", f"hydra.sweep.subdir='{M1_REL}'"])
    assert problem is not None and "its own M1 run directory" in problem and "\n" not in problem
    assert not runs.exists()
