"""The labelled subset of a semi-supervised run: ``n`` training points, the same number per class."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError


def labelled_subset(labels: Tensor, n: int, seed: int, n_classes: int = 10) -> Tensor:
    """Indices (n,) into ``labels`` (N,) of ``n / n_classes`` points of every class, sorted.

    A function of ``seed`` (and the labels) only: each class's points are drawn without
    replacement by a generator seeded with ``seed``, class by class. ConfigError when ``n``
    is not a positive multiple of ``n_classes`` or a class has too few points.
    """
    n, seed = int(n), int(seed)
    if n < n_classes or n % n_classes:
        raise ConfigError(f"labels={n} must be a positive multiple of the {n_classes} classes (10 per class: 100)")
    per_class = n // n_classes
    gen = torch.Generator().manual_seed(seed)
    chosen = []
    for c in range(n_classes):
        members = torch.nonzero(labels == c).flatten()
        if members.numel() < per_class:
            raise ConfigError(
                f"labels={n} needs {per_class} points of class {c}; the training split has {members.numel()}"
            )
        chosen.append(members[torch.randperm(members.numel(), generator=gen)[:per_class]])
    return torch.sort(torch.cat(chosen)).values
