"""`svae-bench run`: one training + evaluation run per Hydra job, recorded in its run directory.

The run directory (hydra.run.dir / hydra.sweep.subdir, see conf/hydra/default.yaml)
is <runs_root>/<experiment>/<dataset>/<model>/d=<d>/beta=<b>/seed=<s>/ and holds
.hydra/ (the resolved config), run.log, metrics.csv, checkpoint.pt (best
weights), latent.npz (+ latent.png for d = 2) and result.json, written last.
A run whose result.json is complete is skipped unless force=true.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from .data import build_dataset
from .errors import ConfigError
from .config_checks import check_device, check_inside, check_run_config
from .evaluate import codes, evaluate
from .models import build_model
from .records import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    LOG_FILE,
    METRICS_FILE,
    RESULT_FILE,
    RunLock,
    complete_record,
    failed_record,
    git_commit,
    is_complete_record,
    read_result,
    read_status,
    save_torch_atomic,
    versions,
    write_bytes_atomic,
    write_json_atomic,
    write_status,
)
from .resolvers import format_number  # also registers ${svae_fmt:...} for hydra/default.yaml
from .checkpoint import remove_state
from .train import TrainingFailed, train

log = logging.getLogger("svae_bench")


def config_differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts (bookkeeping keys ignored)."""
    keys = sorted(set(old) | set(new), key=str)
    out: list[str] = []
    for key in keys:
        name = f"{prefix}{key}"
        if name in ("force", "runs_root"):
            continue
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, f"{name}.")
        elif a != b:
            out.append(name)
    return out


#: config values that may change between an interrupted run and its resumption
RESUME_IGNORED = ("force", "runs_root", "trainer.progress", "trainer.num_threads", "dataset.data_root", "eval")


def resume_values(cfg: DictConfig) -> dict:
    """The resolved config without the values that do not affect training (RESUME_IGNORED)."""
    values = OmegaConf.to_container(cfg, resolve=True)
    for dotted in RESUME_IGNORED:
        *parents, leaf = dotted.split(".")
        node = values
        for key in parents:
            node = node.get(key, {})
        node.pop(leaf, None)
    return values


def pick_device(name: str) -> torch.device:
    """The torch device a checked ``device`` value names ("auto": CUDA when available)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    check_device(name)
    return torch.device(name)


def run_one(cfg: DictConfig, out_dir: Path) -> dict | None:
    """Train, evaluate and record one run in ``out_dir``; returns the result (None if skipped)."""
    check_run_config(cfg)  # every value, before anything is read or written
    previous = read_result(out_dir)
    if is_complete_record(previous) and not cfg.force:
        skip_complete(cfg, out_dir, previous)
        return None
    device = pick_device(str(cfg.device))
    if cfg.trainer.get("num_threads"):
        torch.set_num_threads(int(cfg.trainer.num_threads))
    torch.manual_seed(int(cfg.seed))
    np.random.seed(int(cfg.seed))
    torch.use_deterministic_algorithms(True, warn_only=True)
    data = build_dataset(cfg.dataset)
    model = build_model(cfg.model, int(cfg.latent_dim), data.observed_dim, data.likelihood, data.obs_scale).to(device)
    lock = RunLock(out_dir)
    if not lock.acquire():
        log.warning("skip: %s is being run by %s (svae-bench status shows it)", out_dir, lock.holder())
        return None
    with lock:
        previous = read_result(out_dir)
        if is_complete_record(previous) and not cfg.force:  # finished while this process loaded its data
            skip_complete(cfg, out_dir, previous, locked=True)
            return None
        return _train_and_record(cfg, out_dir, model, data, device)


def skip_complete(cfg: DictConfig, out_dir: Path, previous: dict, locked: bool = False) -> None:
    """Skip a complete run, finishing its clean-up if a kill cut it short (state.pt, temp files and
    status.json are dealt with after result.json): only when no other process holds the run."""
    log.info("skip: %s is complete (force=true re-runs it)", out_dir / RESULT_FILE)
    changed = config_differences(previous.get("config", {}), OmegaConf.to_container(cfg, resolve=True))
    if changed:
        log.warning("note: the recorded run used different values for %s; force=true re-runs it with these",
                    ", ".join(changed[:8]) + (" ..." if len(changed) > 8 else ""))
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


def _train_and_record(cfg: DictConfig, out_dir: Path, model, data, device: torch.device) -> dict:
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
    log.info("run %s: %s on %s, d=%d (ambient %d), beta=%s, seed=%d, %d train points",
             out_dir, cfg.model.name, data.name, cfg.latent_dim, model.head.ambient_dim, cfg.beta, cfg.seed,
             len(data.train))
    try:
        return _train_evaluate(cfg, out_dir, model, data, device, provenance)
    except (TrainingFailed, KeyboardInterrupt):
        raise
    except Exception as err:
        # Not a result: status.json says failed with the reason, so `status` never shows it as running.
        write_status(out_dir, "failed", reason=f"{type(err).__name__}: {str(err)[:300]}")
        raise


def _train_evaluate(cfg: DictConfig, out_dir: Path, model, data, device: torch.device, provenance: dict) -> dict:
    try:
        result = train(model, data, cfg.trainer, float(cfg.beta), int(cfg.seed), metrics_path=out_dir / METRICS_FILE,
                       run_dir=out_dir, resume_config=resume_values(cfg),
                       on_epoch=lambda epoch: write_status(out_dir, "running", epoch=epoch))
    except TrainingFailed as err:
        # A record that says failed, with no metrics: tables report it as skipped, never use it.
        write_json_atomic(out_dir / RESULT_FILE, failed_record(
            identity(cfg), err.reason, err.events, **provenance, config=OmegaConf.to_container(cfg, resolve=True)))
        write_status(out_dir, "failed", reason=err.reason, events=err.events)
        log.error("failed: %s (result.json says failed; no metric of this run enters a table)", err.reason)
        raise
    save_torch_atomic(out_dir / CHECKPOINT_FILE, {"model": model.state_dict(), "epoch": result.best_epoch})

    t0 = time.perf_counter()
    torch.manual_seed(int(cfg.seed) + 3)
    test_x, test_y = data.test.x.to(device), data.test.y
    metrics = evaluate(model, data.train.x.to(device), data.train.y, test_x, test_y, cfg.eval, int(cfg.seed))
    eval_seconds = time.perf_counter() - t0
    save_latent(out_dir, model, data, cfg)

    record = complete_record(
        {**identity(cfg), "ambient_dim": int(model.head.ambient_dim), "budget": str(cfg.get("budget_name", "none"))},
        metrics,
        epochs=result.epochs,
        best_epoch=result.best_epoch,
        resumed_from_epoch=result.resumed_from,
        events=result.events,
        train_seconds=round(result.seconds, 3),
        eval_seconds=round(eval_seconds, 3),
        **provenance,
        device=str(device),
        config=OmegaConf.to_container(cfg, resolve=True),
    )
    write_json_atomic(out_dir / RESULT_FILE, record)
    write_status(out_dir, "complete", epoch=result.epochs)
    remove_state(out_dir)  # the record is complete: the resumable state is no longer needed
    log.info("done: %s  %s", out_dir / RESULT_FILE, summary_line(metrics))
    return record


def identity(cfg: DictConfig) -> dict:
    """The fields that name a run of this task in its record (what tables group by)."""
    return {"task": "vae", "experiment": str(cfg.experiment_name), "model": str(cfg.model.name),
            "dataset": str(cfg.dataset.name), "latent_dim": int(cfg.latent_dim), "beta": float(cfg.beta),
            "seed": int(cfg.seed)}


def summary_line(metrics: dict) -> str:
    parts = [f"{k} {metrics[k]:.3f}" for k in ("ll", "elbo", "re", "kl") if k in metrics]
    parts += [f"knn@{n} {v:.3f}" for n, v in metrics.get("knn_acc", {}).items()]
    return ", ".join(parts)


def save_latent(out_dir: Path, model, data, cfg: DictConfig) -> None:
    """latent.npz (test-set codes, labels, true sphere points) and, for d = 2, latent.png."""
    import io

    z = codes(model, data.test.x.to(next(model.parameters()).device)).cpu().numpy()
    arrays = {"z": z, "labels": data.test.y.numpy(), "geometry": np.array(model.head.geometry),
              "model": np.array(str(cfg.model.name)), "beta": np.array(float(cfg.beta))}
    if data.test.truth is not None:
        arrays["truth"] = data.test.truth.numpy()
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    write_bytes_atomic(out_dir / "latent.npz", buf.getvalue())
    if cfg.eval.get("latent_plot", True) and int(cfg.latent_dim) == 2:
        from .figures import save_latent_png

        title = f"{cfg.model.name}, d = {cfg.latent_dim}, β = {format_number(cfg.beta)}"
        save_latent_png(out_dir / "latent.png", z, data.test.y.numpy(), model.head.geometry, title)


def discard_if_empty(out_dir: Path, runs_root: Path) -> None:
    """Remove what Hydra made for a job that stopped on bad input: its run.log, if that is all the
    run directory holds, and the directories left empty up to and including ``runs_root``."""
    try:
        if [p.name for p in out_dir.iterdir()] != [LOG_FILE]:
            return
        logging.shutdown()  # close the job's file handler before removing its file
        (out_dir / LOG_FILE).unlink()
        stop = runs_root.absolute().parent
        d = out_dir.absolute()
        while d != stop and d != d.parent and not any(d.iterdir()):
            d.rmdir()
            d = d.parent
    except OSError:
        pass


@hydra.main(version_base="1.3", config_path="pkg://svae_bench.conf", config_name="config")
def hydra_main(cfg: DictConfig) -> None:
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        check_inside(out_dir, str(cfg.runs_root))
        run_one(cfg, out_dir)
    except ConfigError as err:
        discard_if_empty(out_dir, Path(str(cfg.runs_root)))
        if os.environ.get("SVAE_BENCH_DEBUG"):
            raise  # the full traceback, for debugging
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except TrainingFailed:
        # Recorded in status.json. A single run exits 1; in a sweep the other jobs go on.
        if HydraConfig.get().mode == RunMode.RUN:
            sys.exit(1)
