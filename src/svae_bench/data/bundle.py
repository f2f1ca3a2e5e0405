"""Containers for a dataset's splits."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class Split:
    """One split. x: (N, D) float32 observations; y: (N,) int64 labels;
    truth: (N, s+1) float32 true latent points on the sphere, or None."""

    x: Tensor
    y: Tensor
    truth: Tensor | None = None

    def __len__(self) -> int:
        return self.x.shape[0]


@dataclass
class DataBundle:
    """train/val/test splits plus what the model needs to know about the data.

    likelihood: "gaussian" (continuous x, fixed std ``obs_scale``) or
    "bernoulli" (x in [0, 1]). ``binarize_train``: redraw binary training
    inputs from the grey levels every epoch (dynamic binarisation).
    """

    name: str
    train: Split
    val: Split
    test: Split
    likelihood: str
    obs_scale: float = 1.0
    binarize_train: bool = False
    info: dict = field(default_factory=dict)

    @property
    def observed_dim(self) -> int:
        return self.train.x.shape[1]

    def train_inputs(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """The training batch as the model sees it (binarised afresh if requested)."""
        if self.binarize_train:
            return torch.bernoulli(x, generator=generator)
        return x
