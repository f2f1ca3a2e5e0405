"""Training: Adam, minibatches, linear KL warm-up, early stopping on the validation objective.

The objective per data point is re - beta_t * kl, with beta_t rising linearly
from 0 to beta over ``warmup_epochs`` (beta_t = beta without warm-up). Every
epoch the validation objective at the full beta is computed on the whole
validation set (one posterior sample per point, a fixed noise stream); the best
epoch's weights are kept, and training stops after ``patience`` epochs without
improvement (counted once warm-up is over). For beta = 1 the objective is the
ELBO. The auto-encoder's objective is the reconstruction term.
"""

from __future__ import annotations

import copy
import logging
import math
import sys
import time
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from .data import DataBundle
from .errors import ConfigError
from .models import VAE
from .records import write_csv_atomic

log = logging.getLogger(__name__)

METRIC_COLUMNS = ["epoch", "beta_t", "train_objective", "train_elbo", "train_re", "train_kl",
                  "val_objective", "val_elbo", "val_re", "val_kl", "seconds"]


@dataclass
class TrainResult:
    best_epoch: int
    epochs: int
    best_val_objective: float
    seconds: float
    history: list[dict] = field(default_factory=list)


def check_trainer_config(cfg) -> None:
    for key in ("batch_size", "max_epochs", "patience"):
        value = cfg.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"trainer.{key}={value!r} must be a positive integer")
    if not isinstance(cfg.get("warmup_epochs"), int) or cfg.warmup_epochs < 0:
        raise ConfigError(f"trainer.warmup_epochs={cfg.get('warmup_epochs')!r} must be an integer >= 0")
    if not float(cfg.lr) > 0:
        raise ConfigError(f"trainer.lr={cfg.lr} must be > 0")
    if cfg.get("optimizer", "adam") != "adam":
        raise ConfigError(f"trainer.optimizer={cfg.optimizer!r} is unknown; allowed: adam")


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
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        re = kl = 0.0
        for i in range(0, x.shape[0], batch):
            t = model.terms(x[i : i + batch])
            n = min(batch, x.shape[0] - i)
            re += t.re.item() * n
            kl += t.kl.item() * n
    return re / x.shape[0], kl / x.shape[0]


def train(model: VAE, data: DataBundle, cfg, beta: float, seed: int, metrics_path=None) -> TrainResult:
    """Train in place; on return the model holds the best-validation weights.

    ``cfg`` is the trainer config group, already checked with :func:`check_trainer_config`.
    """
    device = next(model.parameters()).device
    opt = torch.optim.Adam(model.parameters(), lr=float(cfg.lr))
    order_gen = torch.Generator().manual_seed(seed)
    binarize_gen = torch.Generator(device=device).manual_seed(seed + 1)
    x_train, x_val = data.train.x.to(device), data.val.x.to(device)
    n, bs = x_train.shape[0], int(cfg.batch_size)
    n_batches = math.ceil(n / bs)
    show = progress_enabled(cfg.get("progress", "auto"))
    best, best_state, best_epoch, since_best = -math.inf, None, 0, 0
    history: list[dict] = []
    t_start = time.perf_counter()
    for epoch in range(1, int(cfg.max_epochs) + 1):
        t0 = time.perf_counter()
        warm = int(cfg.warmup_epochs)
        beta_t = beta * min(1.0, epoch / warm) if warm > 0 else beta
        model.train()
        sums = {"objective": 0.0, "re": 0.0, "kl": 0.0}
        perm = torch.randperm(n, generator=order_gen).to(device)
        bar = tqdm(range(n_batches), desc=f"epoch {epoch}", leave=False, disable=not show, file=sys.stdout)
        for b in bar:
            idx = perm[b * bs : (b + 1) * bs]
            xb = data.train_inputs(x_train[idx], binarize_gen)
            terms = model.terms(xb)
            objective = terms.re - beta_t * terms.kl
            opt.zero_grad(set_to_none=True)
            (-objective).backward()
            opt.step()
            m = idx.shape[0]
            sums["objective"] += objective.item() * m
            sums["re"] += terms.re.item() * m
            sums["kl"] += terms.kl.item() * m
            if show and b % 20 == 0:
                bar.set_postfix(objective=f"{objective.item():.2f}")
        bar.close()
        train_means = {k: v / n for k, v in sums.items()}
        val_re, val_kl = validation_terms(model, x_val, 1000, seed + 2)
        val_objective = val_re - beta * val_kl
        row = {
            "epoch": epoch, "beta_t": beta_t, "train_objective": train_means["objective"],
            "train_elbo": train_means["re"] - train_means["kl"], "train_re": train_means["re"],
            "train_kl": train_means["kl"], "val_objective": val_objective, "val_elbo": val_re - val_kl,
            "val_re": val_re, "val_kl": val_kl, "seconds": time.perf_counter() - t0,
        }
        history.append(row)
        if metrics_path is not None:
            write_csv_atomic(metrics_path, METRIC_COLUMNS, history)
        if not math.isfinite(val_objective):
            raise FloatingPointError(f"non-finite validation objective at epoch {epoch}")
        improved = val_objective > best
        if improved:
            best, best_epoch, since_best = val_objective, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        elif epoch > warm:
            since_best += 1
        log.info(
            "epoch %d  train %.3f  val %.3f (elbo %.3f, re %.3f, kl %.3f)  beta_t %.3g  %.1fs%s",
            epoch, train_means["objective"], val_objective, val_re - val_kl, val_re, val_kl, beta_t,
            row["seconds"], "  *best" if improved else "",
        )
        if since_best >= int(cfg.patience):
            log.info("early stop: no improvement for %d epochs; best epoch %d", since_best, best_epoch)
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return TrainResult(best_epoch, len(history), best, time.perf_counter() - t_start, history)
