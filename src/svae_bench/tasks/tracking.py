"""Experiment trackers: what a run tells TensorBoard or MLflow (the ``logger`` config group).

The harness (:mod:`svae_bench.tasks.harness`) drives one :class:`Tracker` per run, for every task
alike, from outside the training loop: :meth:`~Tracker.start` when the run starts (the resolved
config as parameters), :meth:`~Tracker.log_epoch` after every completed epoch (the row the loop
has just written to metrics.csv), :meth:`~Tracker.finish` with the record's metrics and the run's
figures, or :meth:`~Tracker.fail` with the reason. The tracker run is named after the run
directory (relative to the runs root: ``table1_paper/mnist/svae/d=10/beta=1/seed=0``), so a sweep
gives one tracker run per cell, and a resumed run continues its tracker run: MLflow's run id is
kept in the run directory (``tracker.json``), TensorBoard appends to the run's own log directory.

Trackers are observers: the record (result.json) stays the only result. A tracker call that
fails (a locked database, a full disk) is logged as a warning and switches the tracker off for
the rest of the run; it never fails the run. A tracker whose package is missing is refused up
front, with the extra that installs it (:func:`check_logger`).

logger groups (conf/logger/): ``none`` (default); ``tensorboard`` (event files under
``logger.save_dir``, default ``<runs_root>/tensorboard``); ``mlflow`` (``logger.tracking_uri``,
default a SQLite database ``<runs_root>/mlflow.db``, artefacts under ``logger.artifact_location``,
default ``<runs_root>/mlflow-artifacts``; experiment ``logger.experiment``, default the run's
experiment name).
"""

from __future__ import annotations

import csv
import importlib.util
import io
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..records import METRICS_FILE, write_json_atomic
from ..records.atomic import read_json_file

log = logging.getLogger("svae_bench")

#: logger.name -> (the module it needs, the extra that installs it)
NEEDS = {"tensorboard": ("tensorboard", "tensorboard"), "mlflow": ("mlflow", "mlflow")}
LOGGERS = ("none", *NEEDS)
#: where a run keeps its tracker run's identity (MLflow's run id), for a resumed run
TRACKER_FILE = "tracker.json"
#: the figures a run's directory may hold, logged as artefacts
FIGURES = ("latent.png", "figure.png", "curves.png")
#: MLflow's limit on a parameter value
MAX_PARAM = 6000


def check_logger(logger: Any) -> None:
    """ConfigError (one line) unless ``logger`` (the config's logger group, or None) names a known
    tracker whose package is installed."""
    if logger is None:
        return
    name = logger.get("name", "none") if isinstance(logger, Mapping) else logger
    if name not in LOGGERS:
        raise ConfigError(f"logger={name!r} is unknown; allowed: {', '.join(LOGGERS)}")
    if name in NEEDS:
        module, extra = NEEDS[name]
        if importlib.util.find_spec(module) is None:
            raise ConfigError(
                f"logger={name} needs the {module} package, which is not installed: pip install 'svae-bench[{extra}]'"
            )


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config or metrics dict as {"trainer.lr": 0.001, "knn_acc.100": 0.9, ...}."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def numbers(values: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers among flattened ``values`` (booleans and text left out)."""
    out = {}
    for key, value in flatten(values).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value)):
            out[key] = float(value)
    return out


def metrics_rows(run_dir: Path) -> list[dict[str, float]]:
    """The rows of the run's metrics.csv (one per completed epoch), numbers only; [] if none."""
    try:
        text = (run_dir / METRICS_FILE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    out = []
    for row in csv.DictReader(io.StringIO(text)):
        values = {}
        for key, value in row.items():
            try:
                x = float(value)
            except (TypeError, ValueError):
                continue
            if math.isfinite(x):
                values[key] = x
        if "epoch" in values:
            out.append(values)
    return out


class Tracker:
    """The no-op tracker (``logger=none``) and the interface of the others."""

    name = "none"

    def __init__(self, logger: Mapping[str, Any], run_dir: Path, run_name: str, experiment: str, fresh: bool):
        self.logger, self.run_dir, self.run_name, self.experiment = dict(logger), run_dir, run_name, experiment
        self.active = True
        self.fresh = fresh  # no training state to resume: a new tracker run, whatever tracker.json says
        self.saved = _read_tracker_file(run_dir) if self.name != "none" and not fresh else {}
        last = self.saved.get("epoch", 0)
        self.last_epoch = last if isinstance(last, int) and not isinstance(last, bool) else 0

    def _save(self, **fields: Any) -> None:
        """tracker.json: the tracker run's identity and the last epoch it has, for a resumed run."""
        self.saved = {**self.saved, **fields}
        write_json_atomic(self.run_dir / TRACKER_FILE, self.saved)

    def _guard(self, what: str, call, *args) -> None:
        if not self.active:
            return
        try:
            call(*args)
        except Exception as err:  # an observer never fails the run
            self.active = False
            log.warning("logger=%s: %s failed (%s); the run goes on without it", self.name, what, err)

    def start(self, params: Mapping[str, Any]) -> None:
        self._guard("start", self._start, params)

    def log_epochs(self, rows: list[dict[str, float]]) -> None:
        """Log the metrics.csv rows the tracker does not have yet (epochs after the last it logged:
        a run killed between its state and its tracker catches up when it resumes)."""
        for row in rows:
            epoch = int(row["epoch"])
            if epoch > self.last_epoch and self.active:
                self._guard("logging an epoch", self._log_epoch, epoch, row)
                if self.active and self.name != "none":
                    self.last_epoch = epoch
                    self._guard("saving tracker.json", lambda e: self._save(epoch=e), epoch)

    def finish(self, metrics: Mapping[str, Any]) -> None:
        self._guard(
            "finishing", self._finish, metrics, [self.run_dir / f for f in FIGURES if (self.run_dir / f).is_file()]
        )

    def fail(self, reason: str) -> None:
        self._guard("marking the run failed", self._fail, reason)

    def _start(self, params: Mapping[str, Any]) -> None:
        pass

    def _log_epoch(self, epoch: int, row: Mapping[str, float]) -> None:
        pass

    def _finish(self, metrics: Mapping[str, Any], figures: list[Path]) -> None:
        pass

    def _fail(self, reason: str) -> None:
        pass


class TensorBoardTracker(Tracker):
    """Event files in ``<save_dir>/<run name>/``: config as text and hparams, per-epoch scalars
    (``epoch/<column>``), test metrics (``test/<metric>``), figures as images, status as text."""

    name = "tensorboard"

    def _writer(self):
        if getattr(self, "writer", None) is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(Path(str(self.logger["save_dir"])) / self.run_name))
        return self.writer

    def _start(self, params: Mapping[str, Any]) -> None:
        self.params = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in flatten(params).items()}
        if not self.saved:  # a resumed run has its config logged already; a fresh one starts clean
            log_dir = Path(str(self.logger["save_dir"])) / self.run_name
            for old in log_dir.glob("events.out.tfevents.*"):
                old.unlink()
            self._writer().add_text("config", "\n".join(f"    {k}: {v}" for k, v in self.params.items()))
            self.writer.flush()
            self._save(log_dir=str(Path(str(self.logger["save_dir"])) / self.run_name), epoch=0)

    def _log_epoch(self, epoch: int, row: Mapping[str, float]) -> None:
        for key, value in row.items():
            if key != "epoch":
                self._writer().add_scalar(f"epoch/{key}", value, epoch)
        self.writer.flush()

    def _finish(self, metrics: Mapping[str, Any], figures: list[Path]) -> None:
        from matplotlib import image
        from torch.utils.tensorboard.summary import hparams

        writer = self._writer()
        final = {f"test/{k}": v for k, v in numbers(metrics).items()}
        for key, value in final.items():
            writer.add_scalar(key, value, 0)
        # hparams in the run's own directory (SummaryWriter.add_hparams would open a sub-run)
        for summary in hparams(getattr(self, "params", {}), final):
            writer.file_writer.add_summary(summary)
        for path in figures:
            picture = image.imread(str(path))
            writer.add_image(f"figures/{path.stem}", picture[..., :3], 0, dataformats="HWC")
        writer.add_text("status", "complete")
        writer.close()

    def _fail(self, reason: str) -> None:
        self._writer().add_text("status", f"failed: {reason}")
        self.writer.close()


class MlflowTracker(Tracker):
    """One MLflow run per run directory, in experiment ``logger.experiment``: params (the flattened
    config), per-epoch metrics (step = epoch), ``test.<metric>`` at the end, figures and result.json
    as artefacts, status FINISHED or FAILED. The run id is kept in tracker.json for a resume."""

    name = "mlflow"

    def _client(self):
        if getattr(self, "client", None) is None:
            from mlflow.tracking import MlflowClient

            self.client = MlflowClient(tracking_uri=str(self.logger["tracking_uri"]))
        return self.client

    def _start(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        client = self._client()
        saved = self.saved
        run_id = saved.get("mlflow_run_id")
        if isinstance(run_id, str) and saved.get("tracking_uri") == str(self.logger["tracking_uri"]):
            try:
                client.update_run(run_id, status="RUNNING")
                self.run_id = run_id
                return  # a resumed run continues its MLflow run; its params are logged already
            except Exception:  # the store no longer has it: a new run
                pass
        experiment = client.get_experiment_by_name(self.experiment)
        if experiment is not None:
            experiment_id = experiment.experiment_id
        else:
            where = self.logger.get("artifact_location")
            experiment_id = client.create_experiment(
                self.experiment, artifact_location=None if where is None else Path(str(where)).absolute().as_uri()
            )
        run = client.create_run(experiment_id, run_name=self.run_name, tags={"svae_bench.run_dir": str(self.run_dir)})
        self.run_id = run.info.run_id
        self.last_epoch = 0
        self._save(mlflow_run_id=self.run_id, tracking_uri=str(self.logger["tracking_uri"]), epoch=0)
        flat = [Param(k, str(v)[:MAX_PARAM]) for k, v in flatten(params).items()]
        for i in range(0, len(flat), 100):  # MLflow takes at most 100 params per batch
            client.log_batch(self.run_id, params=flat[i : i + 100])

    def _log_epoch(self, epoch: int, row: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        stamp = _now_ms()
        values = [Metric(k, v, stamp, epoch) for k, v in row.items() if k != "epoch"]
        self._client().log_batch(self.run_id, metrics=values)

    def _finish(self, metrics: Mapping[str, Any], figures: list[Path]) -> None:
        from mlflow.entities import Metric

        client = self._client()
        stamp = _now_ms()
        client.log_batch(self.run_id, metrics=[Metric(f"test.{k}", v, stamp, 0) for k, v in numbers(metrics).items()])
        for path in [*figures, self.run_dir / "result.json"]:
            if path.is_file():
                client.log_artifact(self.run_id, str(path))
        client.set_terminated(self.run_id, "FINISHED")

    def _fail(self, reason: str) -> None:
        client = self._client()
        client.set_tag(self.run_id, "svae_bench.failure", reason[:MAX_PARAM])
        client.set_terminated(self.run_id, "FAILED")


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def _read_tracker_file(run_dir: Path) -> dict:
    try:
        data = read_json_file(run_dir / TRACKER_FILE)
    except Exception:
        return {}
    return data if isinstance(data, dict) else {}


TRACKERS: dict[str, type[Tracker]] = {"none": Tracker, "tensorboard": TensorBoardTracker, "mlflow": MlflowTracker}


def open_tracker(logger: Any, run_dir: Path, runs_root: Path, experiment: str, fresh: bool) -> Tracker:
    """The tracker the config's ``logger`` group names, for the run in ``run_dir`` (checked first);
    ``fresh``: the run starts from scratch (a new tracker run), else it resumes (the same one)."""
    check_logger(logger)
    values = dict(logger) if isinstance(logger, Mapping) else {"name": "none"}
    try:
        name = run_dir.absolute().relative_to(runs_root.absolute()).as_posix()
    except ValueError:
        name = run_dir.name
    values.setdefault("experiment", experiment)
    experiment = str(values.get("experiment") or experiment)
    return TRACKERS[values.get("name", "none")](values, run_dir, name, experiment, fresh)
