"""The harness: one run's directory lifecycle, the same for every task.

``run_one(cfg, out_dir)``: check every value (the task's :meth:`~Task.check`)
before anything is read or written; skip a complete run (finishing a clean-up a
kill cut short) unless ``force=true``; prepare the task (data, model); take the
run's exclusive lock (a busy run is skipped); write config.yaml and status.json;
run the task, which resumes from its saved state; on a training failure write a
failed record; write result.json last, then status.json complete, then drop the
resumable state. Records are built by :mod:`svae_bench.records`.
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ..errors import ConfigError
from ..records import (
    CONFIG_FILE,
    RESULT_FILE,
    STATE_FILE,
    STATUS_FILE,
    RunLock,
    complete_record,
    failed_record,
    git_commit,
    is_complete_record,
    read_result,
    read_status,
    versions,
    write_bytes_atomic,
    write_json_atomic,
    write_status,
)
from ..training import TrainingFailed, remove_state
from .base import RunContext, Task
from .registry import get_task
from .tracking import check_logger, metrics_rows, open_tracker

log = logging.getLogger("svae_bench")
#: config keys that never make two runs different: bookkeeping, and the tracker a run reports to
NEVER_COMPARED = ("force", "runs_root", "logger")


def config_differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts (bookkeeping keys ignored)."""
    keys = sorted(set(old) | set(new), key=str)
    out: list[str] = []
    for key in keys:
        name = f"{prefix}{key}"
        if name in NEVER_COMPARED:
            continue
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, f"{name}.")
        elif a != b:
            out.append(name)
    return out


def without_keys(values: dict, dotted_keys: tuple[str, ...]) -> dict:
    """``values`` (a plain nested dict, left untouched) without the ``dotted_keys`` ("trainer.progress")."""
    values = copy.deepcopy(values)
    for dotted in dotted_keys:
        *parents, leaf = dotted.split(".")
        node = values
        for key in parents:
            node = node.get(key, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(leaf, None)
    return values


def resume_values(cfg: DictConfig, ignored: tuple[str, ...]) -> dict:
    """The resolved config without the values that do not affect training (a task's resume_ignored,
    and the tracker it reports to)."""
    return without_keys(OmegaConf.to_container(cfg, resolve=True), ("logger", *ignored))


def run_one(cfg: DictConfig, out_dir: Path) -> dict | None:
    """Run the config's task in ``out_dir`` and record it; returns the record (None if skipped)."""
    task = get_task(cfg.get("task", "vae"))
    values = task.check(cfg)  # every value, before anything is read or written
    check_logger(cfg.get("logger"))  # a tracker whose package is missing: refused here, not after training
    check_run_place(task, values, out_dir)
    previous = read_result(out_dir)
    if is_complete_record(previous) and not cfg.force:
        skip_complete(cfg, out_dir, previous)
        return None
    prepared = task.prepare(cfg)
    lock = RunLock(out_dir)
    if not lock.acquire():
        log.warning("skip: %s is being run by %s (svae-bench status shows it)", out_dir, lock.holder())
        return None
    with lock:
        previous = read_result(out_dir)
        if is_complete_record(previous) and not cfg.force:  # finished while this process loaded its data
            skip_complete(cfg, out_dir, previous, locked=True)
            return None
        return _run_and_record(task, cfg, out_dir, prepared)


def check_run_place(task: Task, values: dict, out_dir: Path) -> None:
    """ConfigError when the run cannot live in ``out_dir``: a path in it that a run writes is a
    directory (result.json, status.json, config.yaml: the record could never be written), or it is
    also the directory of a run this one depends on (a Table 3 cell put in its own M1's directory
    would wait for its own lock, or skip as that run)."""
    for name in (RESULT_FILE, STATUS_FILE, CONFIG_FILE):
        path = Path(out_dir) / name
        if path.is_dir():
            raise ConfigError(
                f"{path} is a directory, where the run writes a file; remove it or choose another runs_root"
            )
    for dependency in task.dependencies(values):
        if same_place(Path(dependency), Path(out_dir)):
            raise ConfigError(
                f"the run directory {out_dir} is also the directory of a run it depends on ({dependency}: "
                "e.g. its own M1 run directory); give the run a directory of its own"
            )


def same_place(a: Path, b: Path) -> bool:
    """Whether two paths name one directory (through links, or as they would resolve once made)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.expanduser().resolve() == b.expanduser().resolve()


def skip_complete(cfg: DictConfig, out_dir: Path, previous: dict, locked: bool = False) -> None:
    """Skip a complete run, finishing its clean-up if a kill cut it short (state.pt, temp files and
    status.json are dealt with after result.json): only when no other process holds the run."""
    log.info("skip: %s is complete (force=true re-runs it)", out_dir / RESULT_FILE)
    changed = config_differences(previous.get("config", {}), OmegaConf.to_container(cfg, resolve=True))
    if changed:
        log.warning(
            "note: the recorded run used different values for %s; force=true re-runs it with these",
            ", ".join(changed[:8]) + (" ..." if len(changed) > 8 else ""),
        )
    lock = None if locked else RunLock(out_dir)
    if lock is not None and not lock.acquire():
        return
    try:
        remove_state(out_dir)
        remove_temp_files(out_dir)
        status = read_status(out_dir)
        if status is None or status.get("status") != "complete":
            write_status(out_dir, "complete", epoch=previous.get("epochs"))
    finally:
        if lock is not None:
            lock.release()


def remove_temp_files(out_dir: Path) -> None:
    """Temporary files of atomic writes cut short by a kill."""
    for leftover in out_dir.glob(".*.tmp"):
        leftover.unlink(missing_ok=True)


def _run_and_record(task: Task, cfg: DictConfig, out_dir: Path, prepared) -> dict:
    """The part of a run that writes: called with the run's lock held and every value checked."""
    provenance = {"versions": versions(), "git_commit": git_commit()}  # of the code that starts the run
    # Everything is validated: only now touch the run directory. A forced re-run with a
    # bad value therefore keeps the old record; a good one is not complete until it ends.
    (out_dir / RESULT_FILE).unlink(missing_ok=True)
    remove_temp_files(out_dir)
    if cfg.force:
        remove_state(out_dir)  # force: from scratch, not from the last epoch
    write_bytes_atomic(out_dir / CONFIG_FILE, OmegaConf.to_yaml(cfg, resolve=True).encode())
    write_status(out_dir, "running", epoch=0)
    log.info("run %s: %s", out_dir, task.describe(cfg, prepared))
    config = OmegaConf.to_container(cfg, resolve=True)
    fresh = not (out_dir / STATE_FILE).exists()  # nothing to resume: a new tracker run too
    tracker = open_tracker(config.get("logger"), out_dir, Path(str(cfg.runs_root)), str(cfg.experiment_name), fresh)
    tracker.start(config)

    def on_epoch(epoch: int) -> None:
        tracker.log_epochs(metrics_rows(out_dir))
        write_status(out_dir, "running", epoch=epoch)

    ctx = RunContext(out_dir, resume_values(cfg, task.resume_ignored), on_epoch)
    try:
        output = task.run(cfg, prepared, ctx)
    except TrainingFailed as err:
        tracker.fail(err.reason)
        # A record that says failed, with no metrics: tables report it as skipped, never use it.
        write_json_atomic(
            out_dir / RESULT_FILE,
            failed_record(task.identity(cfg), err.reason, err.events, **provenance, config=config),
        )
        write_status(out_dir, "failed", reason=err.reason, events=err.events)
        log.error("failed: %s (result.json says failed; no metric of this run enters a table)", err.reason)
        raise
    except KeyboardInterrupt:
        raise
    except Exception as err:
        # Not a result: status.json says failed with the reason, so `status` never shows it as running.
        write_status(out_dir, "failed", reason=f"{type(err).__name__}: {str(err)[:300]}")
        tracker.fail(f"{type(err).__name__}: {str(err)[:300]}")
        raise
    record = complete_record(
        {**task.identity(cfg), **output.identity}, output.metrics, **output.fields, **provenance, config=config
    )
    write_json_atomic(out_dir / RESULT_FILE, record)
    write_status(out_dir, "complete", epoch=output.fields.get("epochs"))
    remove_state(out_dir)  # the record is complete: the resumable state is no longer needed
    tracker.finish(output.metrics)
    log.info("done: %s  %s", out_dir / RESULT_FILE, output.summary)
    return record
