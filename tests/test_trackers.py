"""Experiment trackers (the ``logger`` group), read back offline: TensorBoard's event files through
TensorBoard's own reader, MLflow through MlflowClient on a real SQLite store. One tracker run per
cell, named after the run directory; the config as parameters, every epoch's metrics row, the
record's metrics and the figures; a resumed run continues its tracker run; a failed run is marked
failed; a missing package is refused in one line before anything is written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from helpers_kill import kill_at_epoch
from svae_bench.records import METRICS_FILE, write_csv_atomic
from svae_bench.tasks import TASKS, RunContext, Task, TaskOutput, register_task
from svae_bench.tasks.harness import run_one
from svae_bench.training import TrainingFailed

pytest.importorskip("mlflow", reason="the test extra installs mlflow (pip install -e '.[test]')")
pytest.importorskip("tensorboard", reason="the test extra installs tensorboard (pip install -e '.[test]')")

from mlflow.tracking import MlflowClient  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

TINY = [
    "eval.is_samples=10",
    "eval.knn_repeats=1",
    "eval.knn_labels=[30]",
    "dataset.n_train=600",
    "dataset.n_val=100",
    "dataset.n_test=100",
    "trainer.progress=false",
    "trainer.num_threads=1",
]


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "svae_bench", "run", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def cell(seed: int) -> str:
    return f"default/synthetic/svae/d=2/beta=1/seed={seed}"


def record(path: Path) -> dict:
    return json.loads((path / "result.json").read_text())


def mlflow_runs(uri: str, experiment: str = "default") -> list:
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else client.search_runs([found.experiment_id])


def test_tensorboard_gets_one_log_dir_per_cell_with_epochs_metrics_config_and_figures(tmp_path):
    out = cli(tmp_path, "-m", "logger=tensorboard", "seed=0,1", "trainer.max_epochs=3", *TINY)
    assert out.returncode == 0, out.stderr[-3000:]
    logs = tmp_path / "runs" / "tensorboard"
    assert sorted(p.parent.relative_to(logs).as_posix() for p in logs.rglob("events.out.tfevents.*")) == [
        cell(0),
        cell(1),
    ]
    for seed in (0, 1):
        acc = EventAccumulator(str(logs / cell(seed)), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
        acc.Reload()
        tags = acc.Tags()
        val = acc.Scalars("epoch/val_elbo")
        rows = (tmp_path / "runs" / cell(seed) / METRICS_FILE).read_text().splitlines()
        header = rows[0].split(",")
        expected = [float(r.split(",")[header.index("val_elbo")]) for r in rows[1:]]
        assert [e.step for e in val] == [1, 2, 3]
        assert [e.value for e in val] == pytest.approx(expected, rel=1e-6)  # float32 in the event file
        ll = record(tmp_path / "runs" / cell(seed))["metrics"]["ll"]
        assert acc.Scalars("test/ll")[0].value == pytest.approx(ll, rel=1e-6)
        assert "figures/latent" in tags["images"]
        texts = {tag: acc.Tensors(tag)[-1].tensor_proto.string_val[0].decode() for tag in tags["tensors"]}
        assert any("trainer.lr: 0.001" in text for text in texts.values())
        assert any(text == "complete" for text in texts.values())


def test_mlflow_gets_one_run_per_cell_and_a_resumed_run_continues_its_own(tmp_path):
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    args = ["logger=mlflow", f"logger.tracking_uri={uri}", "trainer.max_epochs=4", *TINY]
    # seed 0: killed after epoch 2, then resumed; seed 1: a plain run of the same sweep
    kill_at_epoch(
        [sys.executable, "-m", "svae_bench", "run", *args],
        cwd=tmp_path,
        run_dir=tmp_path / "runs" / cell(0),
        epoch=2,
    )
    out = cli(tmp_path, "-m", "seed=0,1", *args)
    assert out.returncode == 0, out.stderr[-3000:]
    runs = {r.info.run_name: r for r in mlflow_runs(uri)}
    assert sorted(runs) == [cell(0), cell(1)]  # one MLflow run per cell, the resumed one not doubled
    client = MlflowClient(tracking_uri=uri)
    for seed in (0, 1):
        run = runs[cell(seed)]
        rec = record(tmp_path / "runs" / cell(seed))
        assert run.info.status == "FINISHED"
        assert run.data.params["trainer.lr"] == "0.001" and run.data.params["seed"] == str(seed)
        assert run.data.metrics["test.ll"] == pytest.approx(rec["metrics"]["ll"], rel=1e-12)
        assert run.data.metrics["test.knn_acc.30"] == pytest.approx(rec["metrics"]["knn_acc"]["30"])
        history = client.get_metric_history(run.info.run_id, "val_elbo")
        assert sorted(m.step for m in history) == [1, 2, 3, 4]  # every epoch once, across the kill
        artefacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"latent.png", "result.json"} <= artefacts
    assert record(tmp_path / "runs" / cell(0))["resumed_from_epoch"] >= 2


class TwoEpochTask(Task):
    """A toy task writing two metrics.csv rows; ``explode`` makes it fail after the first."""

    name = "two_epochs"

    def check(self, cfg):
        return OmegaConf.to_container(cfg, resolve=True)

    def identity(self, cfg):
        return {"task": self.name, "experiment": str(cfg.experiment_name), "seed": int(cfg.seed)}

    def prepare(self, cfg):
        return None

    def run(self, cfg, prepared, ctx: RunContext) -> TaskOutput:
        rows = []
        for epoch in (1, 2):
            rows.append({"epoch": epoch, "loss": 1.0 / epoch})
            write_csv_atomic(ctx.out_dir / METRICS_FILE, ["epoch", "loss"], rows)
            ctx.on_epoch(epoch)
            if cfg.get("explode"):
                raise TrainingFailed("the loss went to NaN", [{"event": "nan"}])
        return TaskOutput(metrics={"loss": 0.5}, fields={"epochs": 2})


@pytest.fixture
def two_epochs():
    task = register_task(TwoEpochTask())
    yield task
    TASKS.pop(task.name)


def toy_cfg(tmp_path: Path, **kw):
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    logger = {"name": "mlflow", "tracking_uri": uri, "experiment": "toy", "artifact_location": str(tmp_path / "art")}
    values = {"task": "two_epochs", "experiment_name": "toy", "seed": 1, "force": False, "runs_root": str(tmp_path)}
    return OmegaConf.create({**values, "logger": logger, **kw}), uri


def test_a_failed_run_is_marked_failed_with_its_reason(tmp_path, two_epochs):
    cfg, uri = toy_cfg(tmp_path, explode=True)
    with pytest.raises(TrainingFailed):
        run_one(cfg, tmp_path / "toy" / "seed=1")
    (run,) = mlflow_runs(uri, "toy")
    assert run.info.status == "FAILED" and run.data.tags["svae_bench.failure"] == "the loss went to NaN"
    assert run.info.run_name == "toy/seed=1"
    history = MlflowClient(tracking_uri=uri).get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(1, 1.0)]


def test_a_forced_rerun_is_a_new_tracker_run(tmp_path, two_epochs):
    cfg, uri = toy_cfg(tmp_path)
    run_one(cfg, tmp_path / "toy" / "seed=1")
    run_one(OmegaConf.merge(cfg, {"force": True}), tmp_path / "toy" / "seed=1")
    runs = mlflow_runs(uri, "toy")
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    for run in runs:
        history = MlflowClient(tracking_uri=uri).get_metric_history(run.info.run_id, "loss")
        assert sorted(m.step for m in history) == [1, 2]


def test_a_broken_store_never_fails_the_run(tmp_path, two_epochs, caplog):
    cfg, _ = toy_cfg(tmp_path)
    (tmp_path / "blocker").write_text("a file where the store's directory should be")
    cfg.logger.tracking_uri = f"sqlite:///{tmp_path / 'blocker' / 'store.db'}"
    rec = run_one(cfg, tmp_path / "toy" / "seed=1")
    assert rec is not None and rec["status"] == "complete" and rec["metrics"] == {"loss": 0.5}
    assert "logger=mlflow" in caplog.text and "the run goes on without it" in caplog.text


HIDE_MLFLOW = """
import importlib.util, sys
find = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a, **k: None if name.split('.')[0] == 'mlflow' else find(name, *a, **k)
from svae_bench.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_missing_tracker_package_is_one_line_naming_the_extra_before_anything_is_written(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", HIDE_MLFLOW, "run", "-m", "seed=0,1", "logger=mlflow", "trainer.max_epochs=1", *TINY],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.strip().splitlines() == [
        "error: logger=mlflow needs the mlflow package, which is not installed: pip install 'svae-bench[mlflow]'"
        " (sweep job runs/default/synthetic/svae/d=2/beta=1/seed=0)"
    ]
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_logger_is_refused_in_one_line(tmp_path):
    out = cli(tmp_path, "logger=wandbx", *TINY)
    assert out.returncode == 2 and "logger=wandbx is unknown" in out.stderr and list(tmp_path.iterdir()) == []
