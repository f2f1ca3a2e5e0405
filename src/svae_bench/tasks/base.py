"""What a task is: one kind of experiment, run by the harness (:mod:`svae_bench.tasks.harness`).

A task says what a run computes and records; the harness owns the run
directory's lifecycle (skip complete, force, busy, resume, status.json, failed
records, result.json last) and the training loop owns steps, rollback and
resume. A new experiment is a new task class registered by name
(:func:`svae_bench.tasks.register_task`), selected by the config's ``task`` key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..records import CHECKPOINT_FILE, METRICS_FILE, save_torch_atomic

if TYPE_CHECKING:
    from torch import nn

    from ..training import TrainResult


@dataclass
class RunContext:
    """What the harness gives a running task.

    out_dir: the run directory (the task writes its artefacts there, atomically).
    resume_config: the values a saved training state must have been made with to be resumed.
    on_epoch: call as ``on_epoch(epoch)`` after each completed epoch (updates status.json).
    """

    out_dir: Path
    resume_config: dict
    on_epoch: Callable[[int], None]

    def loop_kwargs(self) -> dict[str, Any]:
        """The keyword arguments that tie :func:`svae_bench.training.train` to this run: metrics.csv
        and state.pt in ``out_dir``, resumed only when made with ``resume_config``; ``on_epoch``."""
        return {
            "metrics_path": self.out_dir / METRICS_FILE,
            "run_dir": self.out_dir,
            "resume_config": self.resume_config,
            "on_epoch": self.on_epoch,
        }

    def save_checkpoint(self, model: nn.Module, epoch: int) -> None:
        """checkpoint.pt in ``out_dir``: the weights the run evaluates and the epoch they are from."""
        save_torch_atomic(self.out_dir / CHECKPOINT_FILE, {"model": model.state_dict(), "epoch": epoch})


@dataclass
class TaskOutput:
    """What a finished task returns: its metrics and the record fields beside them.

    metrics: the numbers tables use (nats, fractions...), a JSON object.
    fields: record fields that describe the run (epochs, best_epoch, seconds, events, ...).
    identity: extra identity fields known only after preparing (e.g. ambient_dim).
    """

    metrics: dict[str, Any]
    fields: dict[str, Any] = field(default_factory=dict)
    identity: dict[str, Any] = field(default_factory=dict)
    summary: str = ""


def model_identity(task: str, cfg: Any) -> dict[str, Any]:
    """The identity of a run of one model on one data set, in result.json's order: task, experiment,
    model, dataset, latent_dim (d), beta, seed."""
    return {
        "task": task,
        "experiment": str(cfg.experiment_name),
        "model": str(cfg.model.name),
        "dataset": str(cfg.dataset.name),
        "latent_dim": int(cfg.latent_dim),
        "beta": float(cfg.beta),
        "seed": int(cfg.seed),
    }


def loop_fields(result: TrainResult) -> dict[str, Any]:
    """The record fields of the training loop's result, in result.json's order: epochs, best_epoch
    (the epoch of the weights kept), resumed_from_epoch, events (what the loop did besides
    training: NaN rollbacks, discarded states)."""
    return {
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "resumed_from_epoch": result.resumed_from,
        "events": result.events,
    }


class Task:
    """Base class of tasks; subclasses set ``name`` and implement the methods below."""

    #: the value of the config's ``task`` key that selects this task
    name: str = ""
    #: config keys (dotted) that may change between an interrupted run and its resumption
    resume_ignored: tuple[str, ...] = ("force", "runs_root")

    def check(self, cfg: Any) -> dict:
        """Check every value the run uses (ConfigError, one line) before anything is written;
        return the resolved config as a plain dict. Must not read data files or write anything."""
        raise NotImplementedError

    def check_data(self, values: dict) -> None:
        """Check the data the run reads as the run would (ConfigError naming the file), as cheaply as
        that can be known (existence, sizes, checksums); a sweep's preflight calls it once per
        :meth:`data_key`, before the first job."""

    def data_key(self, values: dict) -> Any:
        """What :meth:`check_data` depends on (hashable): a sweep's preflight checks the data once per
        key. None (the default): check it for every job."""
        return None

    def dependencies(self, values: dict) -> list[Path]:
        """Run directories of other runs this run needs complete and trains first when they are not
        (an M1+M2 cell's M1), for its resolved config ``values``: ``svae-bench status`` lists them
        with the sweep's own cells. Default: none."""
        return []

    def identity(self, cfg: Any) -> dict[str, Any]:
        """The record fields that name a run (tables group by them): at least experiment and seed."""
        raise NotImplementedError

    def prepare(self, cfg: Any) -> Any:
        """Load data and build the model (may raise ConfigError; writes nothing). Called before the
        run's lock is taken; the result is handed to :meth:`run`."""
        raise NotImplementedError

    def describe(self, cfg: Any, prepared: Any) -> str:
        """One log line saying what the run is."""
        return ""

    def run(self, cfg: Any, prepared: Any, ctx: RunContext) -> TaskOutput:
        """Train and evaluate; write artefacts into ``ctx.out_dir``. Raise
        :class:`svae_bench.training.TrainingFailed` when training gives up (the harness records it)."""
        raise NotImplementedError

    #: whether :meth:`reevaluate` is implemented (``svae-bench evaluate``)
    reevaluates: bool = False

    def reevaluate(self, cfg: Any, run_dir: Path) -> dict[str, Any]:
        """The metrics of the complete run in ``run_dir`` evaluated again from its checkpoint with
        ``cfg`` (the record's config, evaluation settings possibly changed); writes nothing."""
        raise NotImplementedError
