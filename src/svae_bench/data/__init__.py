"""Datasets: each builder returns a :class:`DataBundle` with train/val/test splits."""

from __future__ import annotations

from omegaconf import DictConfig

from ..errors import ConfigError
from .bundle import DataBundle, Split
from .mnist import make_mnist, mnist_raw_dir
from .synthetic import make_synthetic

__all__ = ["DataBundle", "Split", "build_dataset", "check_data_available", "DATASETS"]

DATASETS = {"synthetic": make_synthetic, "mnist": make_mnist}


def build_dataset(cfg: DictConfig) -> DataBundle:
    """The dataset named by ``cfg.name`` (see conf/dataset/)."""
    name = cfg.get("name")
    if name not in DATASETS:
        raise ConfigError(f"dataset.name={name!r} is unknown; allowed: {', '.join(sorted(DATASETS))}")
    return DATASETS[name](cfg)


def check_data_available(cfg) -> None:
    """The files a dataset config reads exist (no loading): ConfigError naming the file otherwise."""
    if cfg.get("name") == "mnist":
        mnist_raw_dir(cfg.get("data_root"))
