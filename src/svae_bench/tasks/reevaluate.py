"""Re-evaluating a complete run from its checkpoint, without training (``svae-bench evaluate``).

:func:`check_reevaluable` says, in one line, why a run directory cannot be re-evaluated (not a
complete record, a run another process holds, no checkpoint.pt); :func:`reevaluate_run` rebuilds
the model the record's config describes, loads its best-validation weights (``weights_only``),
evaluates it with the record's evaluation settings (keys the record predates take today's
defaults; ``eval.*`` overrides on top) and rewrites result.json atomically, under the run's lock:

* same settings as the run's own evaluation: metrics the record lacks are added (e.g.
  ``ll_tf_example`` for records made before it existed); the record's values stay as they are,
  and a recomputed value that differs from them is reported (another machine's kernels);
* other settings (an ``eval.*`` override): the record's metrics become the new evaluation's and
  its ``config.eval`` the new settings; the previous metrics and settings are kept in the entry.

Either way one entry is appended to the record's ``evaluations`` list: when (UTC), the commit and
versions that evaluated it, the device, the settings, the seconds, which metrics were added,
replaced or differ. Nothing that training wrote (config.yaml, metrics.csv, checkpoint.pt, the
epochs and seconds of the record) is touched.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from ..errors import ConfigError
from ..records import (
    CHECKPOINT_FILE,
    RESULT_FILE,
    RunLock,
    git_commit,
    is_complete_record,
    read_result,
    run_state,
    versions,
    write_json_atomic,
)
from ..schema import migrate_config
from .registry import get_task

#: config keys an evaluation may change: the evaluation settings, and where and how it runs
CHANGEABLE = ("eval.", "dataset.data_root", "device", "trainer.num_threads")


@dataclass
class Reevaluation:
    """What one re-evaluation did: the new metrics and how the record changed."""

    run_dir: Path
    metrics: dict[str, Any]
    added: list[str] = field(default_factory=list)
    replaced: bool = False
    differs: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def parse_overrides(overrides: list[str]) -> list[str]:
    """The ``KEY=VALUE`` words, checked: ConfigError (one line) for a malformed word or a key that
    would make the evaluation describe another run than the one trained."""
    for word in overrides:
        key, sep, _ = word.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {word!r} is not KEY=VALUE (e.g. eval.is_samples=1000)")
        if not any(key == c or (c.endswith(".") and key.startswith(c)) for c in CHANGEABLE):
            raise ConfigError(
                f"override {key!r} cannot change at evaluation; allowed: eval.*, dataset.data_root, device, "
                "trainer.num_threads (anything else describes another run: train it with svae-bench run)"
            )
    return list(overrides)


def check_reevaluable(run_dir: Path) -> dict:
    """The run's complete record, or ConfigError saying in one line why it cannot be re-evaluated."""
    state, status = run_state(run_dir)
    record = read_result(run_dir)
    if state != "complete" or not is_complete_record(record):
        why = {"running": "is running", "failed": "failed", "interrupted": "is unfinished (interrupted)"}
        raise ConfigError(f"{run_dir} {why.get(state, 'has no complete result.json')}: only complete runs re-evaluate")
    if not isinstance(record.get("config"), dict):
        raise ConfigError(f"{run_dir / RESULT_FILE} has no config object to rebuild the model from")
    task = get_task(record.get("task", "vae"))
    if not task.reevaluates:
        raise ConfigError(f"{run_dir} is a {task.name!r} run; only VAE runs (Tables 1 and 2, M1s) re-evaluate")
    if not (run_dir / CHECKPOINT_FILE).is_file():
        raise ConfigError(
            f"{run_dir} has no {CHECKPOINT_FILE} (its weights; committed records leave them out): "
            "it cannot be re-evaluated, only trained again"
        )
    return record


def evaluation_config(record: dict, overrides: list[str]) -> Any:
    """The record's config in today's form (:func:`~svae_bench.schema.migrate_config`: evaluation
    keys it predates take today's defaults), then ``overrides``."""
    values = migrate_config(record["config"])
    try:
        return OmegaConf.merge(OmegaConf.create(values), OmegaConf.from_dotlist(overrides))
    except Exception as err:  # omegaconf's grammar and type errors: one line
        raise ConfigError(f"overrides {' '.join(overrides)!r} do not apply: {str(err).splitlines()[0]}") from None


def reevaluate_run(run_dir: Path, overrides: list[str]) -> Reevaluation:
    """Evaluate a complete run again from its checkpoint and rewrite its record (module docstring)."""
    record = check_reevaluable(run_dir)
    task = get_task(record.get("task", "vae"))
    cfg = evaluation_config(record, overrides)
    task.check(cfg)  # every value, before anything is read: a bad eval.* value is one line
    lock = RunLock(run_dir)
    if not lock.acquire():
        raise ConfigError(f"{run_dir} is held by {lock.holder()}: try again when it is done")
    with lock:
        record = check_reevaluable(run_dir)  # as it is now that this process holds it
        t0 = time.perf_counter()
        metrics = task.reevaluate(cfg, run_dir)
        seconds = round(time.perf_counter() - t0, 3)
        settings = OmegaConf.to_container(cfg.eval, resolve=True)
        before = migrate_config(record["config"])["eval"]
        result = Reevaluation(run_dir, metrics, seconds=seconds)
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "git_commit": git_commit(),
            "versions": versions(),
            "device": str(cfg.device),
            "eval": settings,
            "seconds": seconds,
        }
        new = copy.deepcopy(record)
        if settings == before:
            result.added = [k for k in metrics if k not in record["metrics"]]
            result.differs = {k: v for k, v in metrics.items() if k in record["metrics"] and record["metrics"][k] != v}
            new["metrics"] = {**record["metrics"], **{k: metrics[k] for k in result.added}}
            entry.update(added=result.added, differs=result.differs)
        else:
            result.replaced = True
            result.added = [k for k in metrics if k not in record["metrics"]]
            new["metrics"] = metrics
            new["config"]["eval"] = settings
            entry.update(added=result.added, replaced=True, previous_metrics=record["metrics"], previous_eval=before)
        new["evaluations"] = [*record.get("evaluations", []), entry]
        write_json_atomic(run_dir / RESULT_FILE, new)
    return result
