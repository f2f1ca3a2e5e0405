"""Every value a VAE run uses, with its allowed range (the checks of :class:`~svae_bench.tasks.vae.VaeTask`):
the top level, ``trainer`` and ``eval`` by their schema (:mod:`svae_bench.schema`), the model and
data set groups by the tables here.

:func:`check_run_config` raises :class:`~svae_bench.errors.ConfigError` with one
line on the first value a run could not use: a failing interpolation, a wrong
type, a number out of range (NaN and infinities included), a seed the random
generators refuse, a name that would put the run directory somewhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..checks import (
    check_device,
    check_values,
    integer,
    list_of,
    name,
    number,
    one_of,
    optional,
    path_string,
    positive_int,
    resolved,
    shown_value,
)
from ..errors import ConfigError
from ..records import SEED_MAX
from ..schema import EvalConfig, RunConfig, TrainerConfig, rules, typed

MODEL = {
    "name": name,
    "latent": None,  # checked by _check_model_choices (the model registry imports torch)
    "hidden_dims": list_of(positive_int(10**5), "positive integers", min_len=0),
    "activation": None,
    "concentration_offset": number(0),
}
DATASETS = {
    "synthetic": {
        "name": name,
        "sphere_dim": integer(1, 10_000),
        "n_components": integer(1, 100_000),
        "concentration": number(0, lo_open=True),
        "directions": None,  # checked by _check_directions
        "observed_dim": positive_int(10**6),
        "map_hidden": positive_int(10**6),
        "noise_std": number(0),
        "n_train": positive_int(10**8),
        "n_val": positive_int(10**8),
        "n_test": positive_int(10**8),
        "data_seed": integer(0, SEED_MAX),
        "likelihood": one_of("gaussian", "bernoulli"),
        "obs_scale": number(0, lo_open=True),
    },
    "mnist": {
        "name": name,
        "data_root": optional(path_string),
        "n_val": integer(1, 59_999),
        "split_seed": integer(0, SEED_MAX),
        "binarize_seed": integer(0, SEED_MAX),
        "likelihood": one_of("bernoulli"),
    },
}


def _check_directions(ds: Mapping) -> None:
    directions = ds.get("directions")
    if directions is None:
        return
    k, m = ds.get("n_components"), int(ds.get("sphere_dim", 0)) + 1
    ok = (
        isinstance(directions, list)
        and len(directions) == k
        and all(
            isinstance(d, list)
            and len(d) == m
            and all(number()(x) is None for x in d)
            and any(float(x) != 0 for x in d)
            for d in directions
        )
    )
    if not ok:
        raise ConfigError(
            f"dataset.directions={shown_value(directions)} must be null or {k} non-zero vectors of "
            f"{m} finite numbers (n_components vectors in R^(sphere_dim + 1))"
        )


def _check_model_choices(model: Mapping) -> None:
    from ..models.heads import HEADS
    from ..models.vae import ACTIVATIONS

    check_values(model, {"latent": one_of(*HEADS), "activation": one_of(*ACTIVATIONS)}, "model.")


def n_train_points(ds: Mapping) -> int:
    """How many training points a dataset config gives (for the k-NN label counts)."""
    if ds.get("name") == "mnist":
        return 60_000 - int(ds.get("n_val", 10_000))
    return int(ds.get("n_train", 0))


def check_run_config(cfg: Any, device: bool = True) -> dict:
    """Check every value of a run config (see the module docstring); returns the resolved dict."""
    values = resolved(cfg, exclude=("hydra",))
    check_values(values, rules(RunConfig))
    for group in ("trainer", "eval", "model", "dataset"):
        if not isinstance(values.get(group), Mapping):
            raise ConfigError(f"{group} must be a config group; choose one with {group}=NAME")
    typed(TrainerConfig, values["trainer"], "trainer.")  # every key present and in its range
    evaluation = typed(EvalConfig, values["eval"], "eval.")
    check_values(values["model"], MODEL, "model.")
    _check_model_choices(values["model"])
    ds = values["dataset"]
    if ds.get("name") not in DATASETS:
        raise ConfigError(
            f"dataset.name={shown_value(ds.get('name'))} is unknown; allowed: {', '.join(sorted(DATASETS))}"
        )
    check_values(ds, DATASETS[ds["name"]], "dataset.")
    _check_directions(ds)
    n_train = n_train_points(ds)
    for n in evaluation.knn_labels:
        if n > n_train:
            raise ConfigError(
                f"eval.knn_labels contains {n!r}; allowed: integers from 1 to the {n_train} training points"
            )
    k, labels = evaluation.knn_neighbors, evaluation.knn_labels
    if labels and k > min(labels):
        raise ConfigError(
            f"eval.knn_neighbors={k} must be at most the smallest number of labels in eval.knn_labels ({min(labels)})"
        )
    if device:
        check_device(values.get("device", "cpu"))
    return values
