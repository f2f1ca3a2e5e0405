"""Training: Adam, minibatches, linear KL warm-up, early stopping, resumable, NaN-safe.

The objective per data point is re - beta_t * kl, with beta_t rising linearly
from 0 to beta over ``warmup_epochs`` (beta_t = beta without warm-up). Every
epoch the validation objective at the full beta is computed on the whole
validation set (one posterior sample per point, a fixed noise stream); the best
epoch's weights are kept, and training stops after ``patience`` epochs without
improvement (counted once warm-up is over). For beta = 1 the objective is the
ELBO. The auto-encoder's objective is the reconstruction term.

Resume. With a ``run_dir``, the full training state is saved atomically after
every epoch (:mod:`svae_bench.checkpoint`); a later call with the same run
directory and config continues from the last completed epoch and ends with the
same numbers as an uninterrupted run. A state saved under a different config,
or one that cannot be read, is set aside and training restarts from scratch
(said in the log and in the run's events).

Numerical faults. A step whose objective or gradient is not finite never
reaches the optimiser: training rolls back to the last completed epoch's state,
draws a fresh noise stream, multiplies the learning rate by ``nan_lr_factor``,
and tries again, at most ``nan_retries`` times in the run; then it raises
:class:`TrainingFailed`. Every fault is an event in the returned result.
"""

from __future__ import annotations

import copy
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from ..data import DataBundle
from ..models import VAE
from ..records import STATE_FILE, write_csv_atomic
from .state import CorruptCheckpoint, load_state, remove_state, rng_state, save_state, set_rng_state

log = logging.getLogger(__name__)

METRIC_COLUMNS = [
    "epoch",
    "beta_t",
    "train_objective",
    "train_elbo",
    "train_re",
    "train_kl",
    "val_objective",
    "val_elbo",
    "val_re",
    "val_kl",
    "seconds",
]
#: offset between the seeds of successive fresh noise streams after a numerical fault
_RETRY_SEED_STRIDE = 7919


@dataclass
class TrainResult:
    best_epoch: int
    epochs: int
    best_val_objective: float
    seconds: float
    history: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    resumed_from: int = 0  # the epoch training continued after (0: from scratch)


class TrainingFailed(RuntimeError):
    """Training could not finish (numerical faults beyond the retry budget)."""

    def __init__(self, reason: str, events: list[dict]):
        super().__init__(reason)
        self.reason = reason
        self.events = events


class _NonFinite(Exception):
    def __init__(self, what: str, step: int):
        super().__init__(what)
        self.what, self.step = what, step


#: what torch.distributions' argument checks and the vMF sampler say about non-finite parameters
_NON_FINITE_MESSAGES = ("found invalid values", "no proposal accepted", "must be finite")


def _non_finite_cause(model: VAE, err: Exception) -> str | None:
    """What was not finite when ``err`` was raised inside a step (None: not a numerical fault).

    A step can fail on non-finite numbers far from the finite check on the objective: an
    overflowing update (e.g. a huge learning rate) leaves inf weights, and the next forward
    pass raises ValueError in a distribution's argument check, or the sampler gives up."""
    if any(not bool(torch.isfinite(p).all()) for p in model.parameters()):
        return "weights"
    text = str(err)
    if any(m in text for m in _NON_FINITE_MESSAGES):
        return f"distribution parameters ({type(err).__name__})"
    return None


def progress_enabled(setting) -> bool:
    if setting in (True, "true"):
        return True
    if setting in (False, "false"):
        return False
    return sys.stdout.isatty()


@torch.no_grad()
def validation_terms(model: VAE, x: torch.Tensor, batch: int, seed: int) -> tuple[float, float]:
    """(re, kl) means over x, one sample per point from a fixed noise stream."""
    model.eval()
    # Save and restore the generator the samples come from (CUDA's on a GPU), so that the
    # fixed validation noise does not reset the training noise of the next epoch.
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        re = kl = 0.0
        for i in range(0, x.shape[0], batch):
            t = model.terms(x[i : i + batch])
            n = min(batch, x.shape[0] - i)
            re += t.re.item() * n
            kl += t.kl.item() * n
    return re / x.shape[0], kl / x.shape[0]


def _set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


def train(
    model: VAE,
    data: DataBundle,
    cfg,
    beta: float,
    seed: int,
    metrics_path=None,
    run_dir: Path | None = None,
    resume_config: dict | None = None,
    on_epoch=None,
) -> TrainResult:
    """Train in place; on return the model holds the best-validation weights.

    Args:
        cfg: the trainer config group, already checked (:mod:`svae_bench.tasks.vae_checks`).
        metrics_path: metrics.csv, rewritten atomically after every epoch.
        run_dir: where ``state.pt`` is saved after every epoch and resumed from.
        resume_config: the values a saved state must have been made with to be resumed
            (normally the run's resolved config); a state made with others is discarded.
        on_epoch: called as ``on_epoch(epoch)`` after each epoch's state is saved.
    """
    device = next(model.parameters()).device
    lr = float(cfg.lr)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    order_gen = torch.Generator().manual_seed(seed)
    binarize_gen = torch.Generator(device=device).manual_seed(seed + 1)
    x_train, x_val = data.train.x.to(device), data.val.x.to(device)
    n, bs = x_train.shape[0], int(cfg.batch_size)
    n_batches = math.ceil(n / bs)
    show = progress_enabled(cfg.get("progress", "auto"))
    warm, patience, max_epochs = int(cfg.warmup_epochs), int(cfg.patience), int(cfg.max_epochs)
    retries, lr_factor = int(cfg.get("nan_retries", 3)), float(cfg.get("nan_lr_factor", 1.0))
    inject_at = cfg.get("debug_nan_at_step")  # fault injection for tests: global step (1-based)
    inject_times = int(cfg.get("debug_nan_times", 1))
    injected = 0

    best, best_state, best_epoch, since_best = -math.inf, None, 0, 0
    history: list[dict] = []
    events: list[dict] = []
    start_epoch, resumed_from = 1, 0

    def snapshot(epoch: int) -> dict:
        return {
            "epoch": epoch,
            "model": copy.deepcopy(model.state_dict()),
            "optimizer": copy.deepcopy(opt.state_dict()),
            "best": best,
            "best_epoch": best_epoch,
            "since_best": since_best,
            "best_state": copy.deepcopy(best_state),
            "history": copy.deepcopy(history),
            "rng": rng_state(order_gen, binarize_gen),
            "events": copy.deepcopy(events),
            "lr": lr,
            "config": resume_config or {},
        }

    def restore(state: dict) -> None:
        nonlocal best, best_state, best_epoch, since_best, history, lr
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        best, best_epoch, since_best = float(state["best"]), int(state["best_epoch"]), int(state["since_best"])
        best_state = copy.deepcopy(state["best_state"])
        history = copy.deepcopy(state["history"])
        lr = float(state["lr"])
        _set_lr(opt, lr)
        set_rng_state(state["rng"], order_gen, binarize_gen)

    if run_dir is not None:
        try:
            saved = load_state(run_dir)
        except CorruptCheckpoint as err:
            log.warning("%s: restarting this run from scratch", err)
            events.append({"event": "corrupt_checkpoint", "detail": str(err)})
            remove_state(run_dir)
            saved = None
        if saved is not None and saved["config"] != (resume_config or {}):
            log.warning("the saved training state was made with other config values: restarting from scratch")
            events.append({"event": "config_changed", "detail": f"state.pt of epoch {saved['epoch']} discarded"})
            remove_state(run_dir)
            saved = None
        if saved is not None:
            initial = snapshot(0)
            try:
                restore(saved)  # a readable state can still be inconsistent (shapes, types): corrupt too
                events = list(saved["events"]) + events
                resumed_from = int(saved["epoch"])
            except (RuntimeError, ValueError, TypeError, KeyError, IndexError, AttributeError) as err:
                detail = (
                    f"{run_dir / STATE_FILE} does not fit this run ({type(err).__name__}: "
                    f"{str(err).splitlines()[0][:200] if str(err) else ''})"
                )
                log.warning("%s: restarting this run from scratch", detail)
                events.append({"event": "corrupt_checkpoint", "detail": detail})
                remove_state(run_dir)
                restore(initial)  # load_state_dict may have copied some tensors before it failed
                saved = None
        if saved is not None:
            start_epoch = resumed_from + 1
            log.info("resuming after epoch %d (best epoch %d)", resumed_from, best_epoch)
            events.append({"event": "resumed", "epoch": resumed_from})

    last_good = snapshot(start_epoch - 1)
    faults_since_good = 0  # numerical faults since last_good: the retry lr is factor ** this
    global_step = (start_epoch - 1) * n_batches
    stopped = bool(history) and since_best >= patience
    epoch = start_epoch
    while epoch <= max_epochs and not stopped:
        t0 = time.perf_counter()
        beta_t = beta * min(1.0, epoch / warm) if warm > 0 else beta
        model.train()
        sums = torch.zeros(3, dtype=torch.float64, device=device)  # objective, re, kl (batch-size weighted)
        perm = torch.randperm(n, generator=order_gen).to(device)
        bar = tqdm(range(n_batches), desc=f"epoch {epoch}", leave=False, disable=not show, file=sys.stdout)
        try:
            for b in bar:
                global_step += 1
                idx = perm[b * bs : (b + 1) * bs]
                xb = data.train_inputs(x_train[idx], binarize_gen)
                try:
                    terms = model.terms(xb)
                    objective = terms.re - beta_t * terms.kl
                    if inject_at is not None and global_step == int(inject_at) and injected < inject_times:
                        injected += 1
                        objective = objective * float("nan")
                    opt.zero_grad(set_to_none=True)
                    (-objective).backward()
                except (ValueError, RuntimeError) as err:
                    cause = _non_finite_cause(model, err)
                    if cause is None:
                        raise
                    raise _NonFinite(cause, global_step) from err
                grad_norm = torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None])
                if not bool(torch.isfinite(objective.detach() + grad_norm)):  # one host sync per step
                    what = "objective" if not bool(torch.isfinite(objective.detach())) else "gradient"
                    raise _NonFinite(what, global_step)
                opt.step()
                m = idx.shape[0]
                sums += torch.stack([objective.detach(), terms.re.detach(), terms.kl.detach()]).double() * m
                if show and b % 20 == 0:
                    bar.set_postfix(objective=f"{objective.item():.2f}")
            bar.close()
            try:
                val_re, val_kl = validation_terms(model, x_val, 1000, seed + 2)
            except (ValueError, RuntimeError) as err:
                cause = _non_finite_cause(model, err)
                if cause is None:
                    raise
                raise _NonFinite(f"{cause} in validation", global_step) from err
            val_objective = val_re - beta * val_kl
            if not math.isfinite(val_objective):  # finite steps, non-finite validation: a fault too
                raise _NonFinite("validation objective", global_step)
        except _NonFinite as fault:
            bar.close()
            attempt = sum(1 for e in events if e["event"] == "non_finite") + 1
            faults_since_good += 1
            event = {"event": "non_finite", "what": fault.what, "epoch": epoch, "step": fault.step, "attempt": attempt}
            events.append(event)
            if attempt > retries:
                reason = (
                    f"non-finite {fault.what} at epoch {epoch}, step {fault.step}, after {retries} "
                    f"retries (trainer.nan_retries)"
                )
                log.error("failed: %s", reason)
                raise TrainingFailed(reason, events) from None
            restore(last_good)
            lr *= lr_factor**faults_since_good  # compounding over the faults since that epoch
            _set_lr(opt, lr)
            torch.manual_seed(seed + _RETRY_SEED_STRIDE * attempt)  # a fresh noise stream
            event["lr"] = lr
            log.warning(
                "non-finite %s at epoch %d step %d: rolled back to epoch %d, fresh noise, lr %.3g (retry %d of %d)",
                fault.what,
                epoch,
                fault.step,
                last_good["epoch"],
                lr,
                attempt,
                retries,
            )
            global_step = (epoch - 1) * n_batches
            continue
        objective_sum, re_sum, kl_sum = (sums / n).tolist()
        row = {
            "epoch": epoch,
            "beta_t": beta_t,
            "train_objective": objective_sum,
            "train_elbo": re_sum - kl_sum,
            "train_re": re_sum,
            "train_kl": kl_sum,
            "val_objective": val_objective,
            "val_elbo": val_re - val_kl,
            "val_re": val_re,
            "val_kl": val_kl,
            "seconds": time.perf_counter() - t0,
        }
        history.append(row)
        improved = val_objective > best
        if improved:
            best, best_epoch, since_best = val_objective, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        elif epoch > warm:
            since_best += 1
        stopped = since_best >= patience
        last_good = snapshot(epoch)
        faults_since_good = 0
        if run_dir is not None:
            save_state(run_dir, last_good)
        if metrics_path is not None:
            write_csv_atomic(metrics_path, METRIC_COLUMNS, history)
        log.info(
            "epoch %d  train %.3f  val %.3f (elbo %.3f, re %.3f, kl %.3f)  beta_t %.3g  %.1fs%s",
            epoch,
            objective_sum,
            val_objective,
            val_re - val_kl,
            val_re,
            val_kl,
            beta_t,
            row["seconds"],
            "  *best" if improved else "",
        )
        if on_epoch is not None:
            on_epoch(epoch)
        if stopped:
            log.info("early stop: no improvement for %d epochs; best epoch %d", since_best, best_epoch)
        epoch += 1
    if metrics_path is not None and history:
        write_csv_atomic(metrics_path, METRIC_COLUMNS, history)
    if best_state is not None:
        model.load_state_dict(best_state)
    seconds = sum(row["seconds"] for row in history)  # training epochs only, across resumes
    return TrainResult(best_epoch, len(history), best, seconds, history, events, resumed_from)
