"""Training: Adam, minibatches, early stopping, resumable, NaN-safe; the objective comes from the caller.

Each epoch visits the training set in a fresh order (a generator seeded with
``seed``), in minibatches of ``batch_size`` points passed through
``data.train_inputs`` (dynamic binarisation, a generator seeded with
``seed + 1``), and takes an Adam step up the gradient of the caller's
:class:`~svae_bench.training.objective.Objective`. Then the objective's
validation value is computed on the whole validation set (its noise from a
fixed stream seeded with ``seed + 2``); the best epoch's weights are kept, and
training stops after ``patience`` epochs without improvement (counted once the
objective's warm-up is over). Everything the loop changes is a
:class:`~svae_bench.training.state.TrainState`.

Resume. With a ``run_dir``, the full training state is saved atomically after
every epoch (:mod:`svae_bench.training.state`); a later call with the same run
directory and config continues from the last completed epoch and ends with the
same numbers as an uninterrupted run. A state saved under a different config,
or one that cannot be read, is set aside and training restarts from scratch
(said in the log and in the run's events).

Numerical faults. A step whose objective or gradient is not finite never
reaches the optimiser: training rolls back to the last completed epoch's state,
draws a fresh noise stream, multiplies the learning rate by ``nan_lr_factor``,
and tries again, at most ``nan_retries`` times in the run; then it raises
:class:`TrainingFailed`. Every fault is an event in the returned result. Tests
inject faults with :mod:`svae_bench.training.hooks`.
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
from torch import Tensor, nn
from tqdm import tqdm

from ..data import DataBundle
from ..records import STATE_FILE, write_csv_atomic
from ..schema import TrainerConfig
from .hooks import apply_step_hooks
from .objective import Objective
from .state import CorruptCheckpoint, TrainState, load_state, remove_state, save_state

log = logging.getLogger(__name__)

#: the trainer group's defaults
_TRAINER = TrainerConfig()
#: offset between the seeds of successive fresh noise streams after a numerical fault
_RETRY_SEED_STRIDE = 7919
#: what load_state_dict and the generators raise on a readable state that does not fit the run
_MISFIT = (RuntimeError, ValueError, TypeError, KeyError, IndexError, AttributeError)


@dataclass(frozen=True)
class TrainSettings:
    """How to train (the trainer config group's values, conf/trainer/default.yaml).

    lr: Adam's learning rate; batch_size: training points per step; max_epochs: the epoch limit;
    patience: epochs without improvement before stopping; progress: a tqdm bar per epoch (True,
    False, "true", "false", or "auto": on a terminal only); nan_retries: numerical faults a run
    survives; nan_lr_factor: what the learning rate is multiplied by after each fault; compile:
    run each training step's objective (the model's forward pass and, through AOTAutograd, its
    backward) through ``torch.compile`` (validation and everything else stay eager); fused: Adam's
    fused kernel (``torch.optim.Adam(fused=True)``: the same update in one pass over each
    parameter, 30-35% off an MNIST VAE step on one CPU thread; its roundings differ from the
    multi-tensor kernel's, so runs with and without it are not bitwise equal).

    The defaults are the trainer group's (:class:`svae_bench.schema.TrainerConfig`, their one source);
    tasks pass every value (:func:`svae_bench.tasks.vae_objective.trainer_settings`).
    """

    lr: float
    batch_size: int
    max_epochs: int
    patience: int
    progress: bool | str = _TRAINER.progress
    nan_retries: int = _TRAINER.nan_retries
    nan_lr_factor: float = _TRAINER.nan_lr_factor
    compile: bool = _TRAINER.compile
    fused: bool = _TRAINER.fused


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


def _non_finite_cause(model: nn.Module, err: Exception) -> str | None:
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


def train(
    model: nn.Module,
    data: DataBundle,
    objective: Objective,
    settings: TrainSettings,
    seed: int,
    metrics_path=None,
    run_dir: Path | None = None,
    resume_config: dict | None = None,
    on_epoch=None,
) -> TrainResult:
    """Train in place, maximising ``objective``; on return the model holds the best-validation weights.

    Args:
        metrics_path: metrics.csv (``objective.columns``), rewritten atomically after every epoch.
        run_dir: where ``state.pt`` is saved after every epoch and resumed from.
        resume_config: the values a saved state must have been made with to be resumed
            (normally the run's resolved config); a state made with others is discarded.
        on_epoch: called as ``on_epoch(epoch)`` after each epoch's state is saved.
    """
    device = next(model.parameters()).device
    state = TrainState(
        model,
        torch.optim.Adam(model.parameters(), lr=settings.lr, fused=settings.fused or None),
        settings.lr,
        order_gen=torch.Generator().manual_seed(seed),
        binarize_gen=torch.Generator(device=device).manual_seed(seed + 1),
        config=resume_config or {},
    )
    x_train, x_val = data.train.x.to(device), data.val.x.to(device)
    n_batches = math.ceil(x_train.shape[0] / settings.batch_size)
    show = progress_enabled(settings.progress)
    resumed_from = _resume(state, run_dir) if run_dir is not None else 0

    # compiled once per run; dynamo recompiles for new shapes (the last, smaller batch) by itself
    train_terms = torch.compile(objective.train_terms) if settings.compile else objective.train_terms
    last_good = state.snapshot()
    faults_since_good = 0  # numerical faults since last_good: the retry lr is factor ** this
    stopped = bool(state.history) and state.since_best >= settings.patience
    while (epoch := state.epoch + 1) <= settings.max_epochs and not stopped:
        t0 = time.perf_counter()
        try:
            means = _train_epoch(state, data, x_train, train_terms, epoch, settings.batch_size, show)
            val_objective, val_values = _validate(model, objective, x_val, seed + 2, epoch * n_batches)
        except _NonFinite as fault:
            faults_since_good += 1
            _roll_back(state, last_good, fault, epoch, settings, faults_since_good, seed)
            continue
        row = {"epoch": epoch, **objective.row(epoch, means, val_values), "seconds": time.perf_counter() - t0}
        state.history.append(row)
        improved = val_objective > state.best
        if improved:
            state.best, state.best_epoch, state.since_best = val_objective, epoch, 0
            state.best_weights = copy.deepcopy(model.state_dict())
        elif epoch > objective.warmup_epochs:
            state.since_best += 1
        stopped = state.since_best >= settings.patience
        state.epoch = epoch
        last_good = state.snapshot()
        faults_since_good = 0
        if run_dir is not None:
            save_state(run_dir, last_good)
        if metrics_path is not None:
            write_csv_atomic(metrics_path, list(objective.columns), state.history)
        log.info("epoch %d  %s  %.1fs%s", epoch, objective.summary(row), row["seconds"], "  *best" if improved else "")
        if on_epoch is not None:
            on_epoch(epoch)
        if stopped:
            log.info("early stop: no improvement for %d epochs; best epoch %d", state.since_best, state.best_epoch)
    if metrics_path is not None and state.history:
        write_csv_atomic(metrics_path, list(objective.columns), state.history)
    if state.best_weights is not None:
        model.load_state_dict(state.best_weights)
    seconds = sum(row["seconds"] for row in state.history)  # training epochs only, across resumes
    return TrainResult(
        state.best_epoch, len(state.history), state.best, seconds, state.history, state.events, resumed_from
    )


def _resume(state: TrainState, run_dir: Path) -> int:
    """Continue from ``run_dir``'s state.pt if it fits; the epoch resumed after (0: from scratch).

    A state that cannot be read, was made with other config values, or does not fit the model
    is removed, and an event says which."""
    try:
        saved = load_state(run_dir)
    except CorruptCheckpoint as err:
        log.warning("%s: restarting this run from scratch", err)
        state.events.append({"event": "corrupt_checkpoint", "detail": str(err)})
        remove_state(run_dir)
        return 0
    if saved is None:
        return 0
    if saved["config"] != state.config:
        log.warning("the saved training state was made with other config values: restarting from scratch")
        state.events.append({"event": "config_changed", "detail": f"state.pt of epoch {saved['epoch']} discarded"})
        remove_state(run_dir)
        return 0
    initial = state.snapshot()
    try:
        state.restore(saved)  # a readable state can still be inconsistent (shapes, types): corrupt too
        state.events[:0] = saved["events"]
    except _MISFIT as err:
        detail = (
            f"{run_dir / STATE_FILE} does not fit this run ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200] if str(err) else ''})"
        )
        log.warning("%s: restarting this run from scratch", detail)
        state.events.append({"event": "corrupt_checkpoint", "detail": detail})
        remove_state(run_dir)
        state.restore(initial)  # load_state_dict may have copied some tensors before it failed
        return 0
    log.info("resuming after epoch %d (best epoch %d)", state.epoch, state.best_epoch)
    state.events.append({"event": "resumed", "epoch": state.epoch})
    return state.epoch


def _train_epoch(
    state: TrainState, data: DataBundle, x_train: Tensor, train_terms, epoch: int, batch_size: int, show: bool
) -> list[float]:
    """One pass over the training set: the epoch means of the objective and of its terms
    (``train_terms`` is the objective's :meth:`~Objective.train_terms`, compiled or not).

    Raises _NonFinite (with the global step, counted from 1 over the run) before a step with a
    non-finite objective or gradient reaches the optimiser."""
    model, n = state.model, x_train.shape[0]
    n_batches = math.ceil(n / batch_size)
    model.train()
    sums = None  # objective, terms... (float64, batch-size weighted)
    perm = torch.randperm(n, generator=state.order_gen).to(x_train.device)
    bar = tqdm(range(n_batches), desc=f"epoch {epoch}", leave=False, disable=not show, file=sys.stdout)
    try:
        for b in bar:
            step = (epoch - 1) * n_batches + b + 1
            idx = perm[b * batch_size : (b + 1) * batch_size]
            xb = data.train_inputs(x_train[idx], state.binarize_gen)
            try:
                value, terms = train_terms(model, xb, epoch)
                value = apply_step_hooks(step, value)
                state.optimizer.zero_grad(set_to_none=True)
                (-value).backward()
            except (ValueError, RuntimeError) as err:
                cause = _non_finite_cause(model, err)
                if cause is None:
                    raise
                raise _NonFinite(cause, step) from err
            grad_norm = torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None])
            if not bool(torch.isfinite(value.detach() + grad_norm)):  # one host sync per step
                what = "objective" if not bool(torch.isfinite(value.detach())) else "gradient"
                raise _NonFinite(what, step)
            state.optimizer.step()
            weighted = torch.stack([value.detach(), *(t.detach() for t in terms)]).double() * idx.shape[0]
            if sums is None:
                sums = torch.zeros(weighted.shape, dtype=torch.float64, device=weighted.device)
            sums += weighted
            if show and b % 20 == 0:
                bar.set_postfix(objective=f"{value.item():.2f}")
    finally:
        bar.close()
    return (sums / n).tolist()


def _validate(model: nn.Module, objective: Objective, x_val: Tensor, seed: int, step: int) -> tuple[float, dict]:
    """The objective's validation value and row values; _NonFinite if they are not finite."""
    try:
        value, values = objective.validate(model, x_val, seed)
    except (ValueError, RuntimeError) as err:
        cause = _non_finite_cause(model, err)
        if cause is None:
            raise
        raise _NonFinite(f"{cause} in validation", step) from err
    if not math.isfinite(value):  # finite steps, non-finite validation: a fault too
        raise _NonFinite("validation objective", step)
    return value, values


def _roll_back(
    state: TrainState,
    last_good: dict,
    fault: _NonFinite,
    epoch: int,
    settings: TrainSettings,
    faults_since_good: int,
    seed: int,
) -> None:
    """Record the fault; back to ``last_good`` with a lower lr and fresh noise, or TrainingFailed."""
    attempt = sum(1 for e in state.events if e["event"] == "non_finite") + 1
    event = {"event": "non_finite", "what": fault.what, "epoch": epoch, "step": fault.step, "attempt": attempt}
    state.events.append(event)
    if attempt > settings.nan_retries:
        reason = (
            f"non-finite {fault.what} at epoch {epoch}, step {fault.step}, after {settings.nan_retries} "
            f"retries (trainer.nan_retries)"
        )
        log.error("failed: %s", reason)
        raise TrainingFailed(reason, state.events) from None
    state.restore(last_good)
    lr = state.lr * settings.nan_lr_factor**faults_since_good  # compounding over the faults since that epoch
    state.set_lr(lr)
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
        settings.nan_retries,
    )
