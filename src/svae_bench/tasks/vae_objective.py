"""The VAE's training objective, and how the VAE task hands it to the training loop.

The objective per data point is re - beta_t * kl (nats), with beta_t rising
linearly from 0 to beta over ``warmup_epochs`` (beta_t = beta * min(1, epoch /
warmup_epochs); beta_t = beta without warm-up). Every epoch the validation
objective at the full beta, re - beta * kl, is computed on the whole validation
set (one posterior sample per point, a fixed noise stream); early stopping
maximises it, and epochs without improvement count once warm-up is over. For
beta = 1 the objective is the ELBO. The auto-encoder's objective is the
reconstruction term (its kl is 0).

metrics.csv has one row per epoch, :data:`METRIC_COLUMNS`: beta_t; the training
objective, ELBO, re and kl (means over the epoch's steps, weighted by batch
size, each at that step's weights); the same on the validation set at the
epoch's final weights; the epoch's seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..data import DataBundle
from ..models import VAE
from ..schema import TrainerConfig, typed
from ..training import TrainResult, TrainSettings, train, warmup_fraction

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
#: validation points per forward pass
VALIDATION_BATCH = 1000


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


@dataclass(frozen=True)
class VaeObjective:
    """re - beta_t * kl with a linear warm-up of beta_t (an :class:`~svae_bench.training.Objective`)."""

    beta: float
    warmup_epochs: int = 0
    columns: ClassVar[list[str]] = METRIC_COLUMNS

    def beta_t(self, epoch: int) -> float:
        """The KL weight of epoch ``epoch`` (1-based)."""
        return self.beta * warmup_fraction(epoch, self.warmup_epochs)

    def train_terms(self, model: VAE, batch: Tensor, epoch: int) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        terms = model.terms(batch)
        return terms.re - self.beta_t(epoch) * terms.kl, (terms.re, terms.kl)

    def validate(self, model: VAE, x: Tensor, seed: int) -> tuple[float, dict[str, float]]:
        re, kl = validation_terms(model, x, VALIDATION_BATCH, seed)
        objective = re - self.beta * kl
        return objective, {"val_objective": objective, "val_elbo": re - kl, "val_re": re, "val_kl": kl}

    def row(self, epoch: int, train_means: list[float], validation: dict[str, float]) -> dict[str, float]:
        objective, re, kl = train_means
        return {
            "beta_t": self.beta_t(epoch),
            "train_objective": objective,
            "train_elbo": re - kl,
            "train_re": re,
            "train_kl": kl,
            **validation,
        }

    def summary(self, row: dict[str, float]) -> str:
        return (
            f"train {row['train_objective']:.3f}  val {row['val_objective']:.3f} (elbo {row['val_elbo']:.3f}, "
            f"re {row['val_re']:.3f}, kl {row['val_kl']:.3f})  beta_t {row['beta_t']:.3g}"
        )


def trainer_settings(trainer: TrainerConfig, **schedule: Any) -> TrainSettings:
    """The loop's settings from the typed trainer group; ``schedule`` replaces some of them for a task
    with a schedule of its own (M2's, the VGAE's: lr, batch_size, max_epochs, patience, ...), the
    rest (progress, compile, fused, the fault handling unless replaced) are the run's trainer's."""
    values = {
        "lr": trainer.lr,
        "batch_size": trainer.batch_size,
        "max_epochs": trainer.max_epochs,
        "patience": trainer.patience,
        "progress": trainer.progress,
        "nan_retries": trainer.nan_retries,
        "nan_lr_factor": trainer.nan_lr_factor,
        "compile": trainer.compile,
        "fused": trainer.fused,
    }
    unknown = set(schedule) - set(values)
    if unknown:
        raise TypeError(f"not a training setting: {', '.join(sorted(unknown))}")
    return TrainSettings(**{**values, **schedule})


def train_vae(
    model: VAE, data: DataBundle, trainer: Mapping[str, Any] | TrainerConfig, beta: float, seed: int, **kwargs: Any
) -> TrainResult:
    """:func:`svae_bench.training.train` with the VAE objective and the trainer group (its values, checked
    here, or the typed group); ``kwargs`` (metrics_path, run_dir, resume_config, on_epoch) are passed on."""
    if not isinstance(trainer, TrainerConfig):
        trainer = typed(TrainerConfig, trainer, "trainer.")
    objective = VaeObjective(float(beta), trainer.warmup_epochs)
    return train(model, data, objective, trainer_settings(trainer), seed, **kwargs)
