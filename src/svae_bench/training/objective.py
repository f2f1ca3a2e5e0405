"""What the training loop maximises: an :class:`Objective`, supplied by the caller.

The loop (:func:`svae_bench.training.train`) knows nothing about the terms of
an objective: it asks the objective for each batch's value (which it
maximises, and whose gradient it follows), the terms to average over the epoch,
the validation objective (which early stopping maximises), the epoch's metrics
row and its log line. The VAE's objective (re - beta_t * kl) is
:class:`svae_bench.tasks.vae_objective.VaeObjective`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from torch import Tensor, nn


class Objective(Protocol):
    #: metrics.csv's columns, in order: "epoch" first, "seconds" last, the keys of :meth:`row` between
    columns: Sequence[str]
    #: epochs at the start during which the objective itself changes (a warm-up): an epoch up to
    #: this one that does not improve on the best is not counted by early stopping
    warmup_epochs: int

    def train_terms(self, model: nn.Module, batch: Tensor, epoch: int) -> tuple[Tensor, Sequence[Tensor]]:
        """(objective, terms) on one training batch (B, D) in epoch ``epoch`` (1-based): the
        objective to maximise (a scalar tensor, a mean over the batch, with its graph) and scalar
        tensors to report; the loop averages both over the epoch, weighted by batch size."""
        ...

    def validate(self, model: nn.Module, x: Tensor, seed: int) -> tuple[float, dict[str, float]]:
        """(validation objective, row values) on the whole validation set ``x`` (N, D), drawing any
        noise from a stream seeded with ``seed`` that leaves the training noise untouched."""
        ...

    def row(self, epoch: int, train_means: list[float], validation: dict[str, float]) -> dict[str, float]:
        """An epoch's metrics row without "epoch" and "seconds": from the epoch means of the
        training objective and terms (in :meth:`train_terms`' order) and :meth:`validate`'s values."""
        ...

    def summary(self, row: dict[str, float]) -> str:
        """The middle of an epoch's log line (``epoch N  <summary>  1.2s``)."""
        ...


def warmup_fraction(epoch: int, warmup_epochs: int) -> float:
    """A linear warm-up's weight in epoch ``epoch`` (1-based): min(1, epoch / warmup_epochs), and 1
    without warm-up (``warmup_epochs`` = 0). The VAE's beta_t and M2's KL weight both follow it."""
    return min(1.0, epoch / warmup_epochs) if warmup_epochs > 0 else 1.0
