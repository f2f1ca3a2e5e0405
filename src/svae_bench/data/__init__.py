"""Datasets: each builder returns a :class:`DataBundle` with train/val/test splits."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from .bundle import DataBundle, Split
from .mnist import make_mnist, mnist_raw_dir
from .synthetic import make_synthetic

__all__ = ["DataBundle", "Split", "build_dataset", "check_data_available", "DATASETS"]

DATASETS = {"synthetic": make_synthetic, "mnist": make_mnist}


def build_dataset(values: Mapping[str, Any]) -> DataBundle:
    """The dataset named by ``values["name"]``, built from the values its builder takes (a dataset
    config group's, conf/dataset/; other keys are ignored)."""
    name = values.get("name")
    if name not in DATASETS:
        raise ConfigError(f"dataset.name={name!r} is unknown; allowed: {', '.join(sorted(DATASETS))}")
    make = DATASETS[name]
    takes = inspect.signature(make).parameters
    return make(**{key: value for key, value in values.items() if key in takes})


def check_data_available(values: Mapping[str, Any]) -> None:
    """The files a dataset config reads exist (no loading): ConfigError naming the file otherwise."""
    if values.get("name") == "mnist":
        mnist_raw_dir(values.get("data_root"))
