"""The labelled subset of a semi-supervised run: ``n`` training points, the same number per class,
and the training labels a dataset config gives (to check ``n`` before any data are loaded)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError
from . import build_dataset
from .mnist import mnist_raw_dir, read_idx

#: MNIST's training images (the train/validation split takes both from them)
MNIST_TRAIN_IMAGES = 60_000


def labelled_subset(labels: Tensor, n: int, seed: int, n_classes: int = 10) -> Tensor:
    """Indices (n,) into ``labels`` (N,) of ``n / n_classes`` points of every class, sorted.

    A function of ``seed`` (and the labels) only: each class's points are drawn without
    replacement by a generator seeded with ``seed``, class by class. ConfigError (naming
    ``semisup.labels``) when ``n`` is not a positive multiple of ``n_classes`` or a class has
    too few points.
    """
    n, seed = int(n), int(seed)
    if n < n_classes or n % n_classes:
        raise ConfigError(
            f"semisup.labels={n} must be a positive multiple of the {n_classes} classes (10 per class: 100)"
        )
    per_class = n // n_classes
    gen = torch.Generator().manual_seed(seed)
    chosen = []
    for c in range(n_classes):
        members = torch.nonzero(labels == c).flatten()
        if members.numel() < per_class:
            raise ConfigError(labels_problem(n, labels, n_classes))
        chosen.append(members[torch.randperm(members.numel(), generator=gen)[:per_class]])
    return torch.sort(torch.cat(chosen)).values


def labels_problem(n: int, labels: Tensor, n_classes: int) -> str | None:
    """What is wrong with ``semisup.labels=n`` for the training labels ``labels`` (N,) of
    ``n_classes`` classes (None: :func:`labelled_subset` can draw it): every class must have
    ``n / n_classes`` points."""
    counts = torch.bincount(labels.reshape(-1).long(), minlength=n_classes)[:n_classes]
    fewest = int(counts.min())
    if n // n_classes <= fewest:
        return None
    c = int(torch.argmin(counts))
    return (
        f"semisup.labels={n} needs {n // n_classes} training points of each of the {n_classes} classes; "
        f"class {c} has {fewest} in the training split (allowed: at most {fewest * n_classes} labels)"
    )


def training_labels(dataset: Mapping[str, Any]) -> Tensor:
    """The labels (N,) int64 of the training split that ``build_dataset(dataset)`` makes, in its order.

    MNIST: from the 60 kB labels file and the fixed train/validation split alone (the images are
    not read); any other data set is built (the synthetic mixture: about 0.1 s)."""
    if dataset.get("name") == "mnist":
        raw = mnist_raw_dir(dataset.get("data_root"))
        labels = torch.from_numpy(read_idx(raw, "train-labels-idx1-ubyte").astype(np.int64))
        # the split of :func:`svae_bench.data.mnist.make_mnist` (tests/test_m1m2_hostile.py pins the two together)
        perm = torch.randperm(MNIST_TRAIN_IMAGES, generator=torch.Generator().manual_seed(int(dataset["split_seed"])))
        return labels[perm[: MNIST_TRAIN_IMAGES - int(dataset["n_val"])]].contiguous()
    return build_dataset(dataset).train.y
