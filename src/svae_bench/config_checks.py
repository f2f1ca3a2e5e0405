"""Every value a run uses, checked with its allowed range before anything is written.

:func:`check_run_config` takes a composed run config (a DictConfig or the plain
dict it resolves to) and raises :class:`~svae_bench.errors.ConfigError` with one
line, ``<dotted key>=<value> must be <what is allowed>``, on the first value a
run could not use: a failing interpolation, a wrong type, a number out of range
(NaN and infinities included), a seed the random generators refuse, a name that
would put the run directory somewhere else (``..``, separators, absolute paths).
The same function serves ``svae-bench run`` (inside each job) and the preflight
that checks every job of a sweep before Hydra starts, so the two never disagree.

This module imports neither torch nor Hydra (the device check imports torch only
when it runs).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .records import SEED_MAX

#: a run-directory component: no separators, no leading dot (so never '.' or '..')
_NAME = re.compile(r"[A-Za-z0-9_+=-][A-Za-z0-9_.+=-]{0,99}")
#: keys whose values become components of the run directory, or name a run
NAME_KEYS = ("experiment_name", "dataset.name", "model.name", "budget_name")
_BIG = 10**9  # a generous upper bound for counts and sizes: refuses 10**30, not real settings


def resolved(cfg: Any, exclude: tuple[str, ...] = ()) -> dict:
    """The config as a plain dict with every interpolation resolved, without the top-level keys in
    ``exclude`` (ConfigError naming the value whose interpolation fails)."""
    if isinstance(cfg, Mapping) and not hasattr(cfg, "_get_node"):
        return {k: v for k, v in cfg.items() if k not in exclude}
    from omegaconf import DictConfig, ListConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    out = {}
    for key in cfg:
        if key in exclude:
            continue
        try:
            node = cfg[key]
            out[key] = OmegaConf.to_container(node, resolve=True) if isinstance(node, (DictConfig, ListConfig)) \
                else node
        except OmegaConfBaseException as err:
            where = getattr(err, "full_key", None) or key
            message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError(f"{where} cannot be resolved: {message}") from None
    return out


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def integer(lo: int, hi: int = _BIG, phrase: str | None = None) -> Callable[[Any], str | None]:
    """An integer in [lo, hi]; the message says ``phrase`` if given."""
    text = phrase or f"an integer >= {lo}" + (f" (at most {hi})" if hi != _BIG else "")

    def check(v: Any) -> str | None:
        return None if _is_int(v) and lo <= v <= hi else text
    return check


def positive_int(hi: int = _BIG) -> Callable[[Any], str | None]:
    return integer(1, hi, "a positive integer" + (f" (at most {hi})" if hi != _BIG else ""))


def number(lo: float | None = None, hi: float | None = None, lo_open: bool = False) -> Callable[[Any], str | None]:
    """A finite number, > lo (lo_open) or >= lo, and <= hi; NaN and infinities are refused."""
    bound = (f" {'>' if lo_open else '>='} {lo:g}" if lo is not None else "") + (f" and <= {hi:g}" if hi is not None
                                                                                 else "")

    def check(v: Any) -> str | None:
        if not _is_real(v):
            return f"a number{bound}"
        try:
            x = float(v)
        except OverflowError:
            return f"a finite number{bound}"
        if not math.isfinite(x):
            return f"a finite number{bound}"
        if (lo is not None and (x < lo or (lo_open and x == lo))) or (hi is not None and x > hi):
            return f"a number{bound}"
        return None
    return check


def one_of(*allowed: Any) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        ok = any(v == a and type(v) is type(a) for a in allowed)
        return None if ok else f"one of {', '.join(str(a) for a in allowed)}"
    return check


def boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else "true or false"


def name(v: Any) -> str | None:
    if isinstance(v, str) and _NAME.fullmatch(v):
        return None
    return "a name of letters, digits and _ . + = - (no path separators, not starting with a dot)"


def path_string(v: Any) -> str | None:
    return None if isinstance(v, str) and v and "\0" not in v else "a path"


def optional(check: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    def wrapped(v: Any) -> str | None:
        problem = None if v is None else check(v)
        return None if problem is None else f"{problem} or null"
    return wrapped


def list_of(check: Callable[[Any], str | None], what: str, min_len: int = 1) -> Callable[[Any], str | None]:
    def wrapped(v: Any) -> str | None:
        ok = isinstance(v, list) and len(v) >= min_len and not any(check(x) for x in v)
        return None if ok else f"a list of {what}" + (" (at least one)" if min_len else "")
    return wrapped


TOP = {
    "experiment_name": name,
    "latent_dim": integer(1, 100_000),
    "beta": number(0),
    "seed": integer(0, SEED_MAX),
    "budget_name": name,
    "n_seeds": integer(1, 100_000),
    "runs_root": path_string,
    "force": boolean,
    "device": None,  # checked by check_device (needs torch)
}
TRAINER = {
    "optimizer": one_of("adam"),
    "lr": number(0, lo_open=True),
    "batch_size": positive_int(),
    "max_epochs": positive_int(10**7),
    "patience": positive_int(),
    "warmup_epochs": integer(0),
    "num_threads": optional(positive_int(4096)),
    "progress": one_of("auto", True, False, "true", "false"),
    "nan_retries": integer(0, 1000),
    "nan_lr_factor": number(0, 1, lo_open=True),
    "debug_nan_at_step": optional(positive_int()),
    "debug_nan_times": positive_int(),
}
EVAL = {
    "is_samples": positive_int(10**6),
    "is_batch_points": positive_int(10**7),
    "knn_labels": list_of(positive_int(), "positive integers"),
    "knn_neighbors": positive_int(),
    "knn_repeats": positive_int(10**5),
    "latent_plot": boolean,
}
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


def _show(v: Any) -> str:
    text = repr(v) if isinstance(v, str) else str(v)
    return text if len(text) <= 60 else text[:57] + "..."


def check_values(values: Mapping, rules: Mapping[str, Callable[[Any], str | None] | None], prefix: str = "") -> None:
    """Apply ``rules`` (key -> check returning None or what is allowed) to the keys present in ``values``."""
    for key, check in rules.items():
        if check is None or key not in values:
            continue
        problem = check(values[key])
        if problem is not None:
            raise ConfigError(f"{prefix}{key}={_show(values[key])} must be {problem}")


def _check_directions(ds: Mapping) -> None:
    directions = ds.get("directions")
    if directions is None:
        return
    k, m = ds.get("n_components"), int(ds.get("sphere_dim", 0)) + 1
    ok = isinstance(directions, list) and len(directions) == k and all(
        isinstance(d, list) and len(d) == m and all(number()(x) is None for x in d)
        and any(float(x) != 0 for x in d) for d in directions)
    if not ok:
        raise ConfigError(f"dataset.directions={_show(directions)} must be null or {k} non-zero vectors of "
                          f"{m} finite numbers (n_components vectors in R^(sphere_dim + 1))")


def _check_model_choices(model: Mapping) -> None:
    from .models.heads import HEADS
    from .models.vae import ACTIVATIONS

    check_values(model, {"latent": one_of(*HEADS), "activation": one_of(*ACTIVATIONS)}, "model.")


def n_train_points(ds: Mapping) -> int:
    """How many training points a dataset config gives (for the k-NN label counts)."""
    if ds.get("name") == "mnist":
        return 60_000 - int(ds.get("n_val", 10_000))
    return int(ds.get("n_train", 0))


def check_device(value: Any) -> None:
    """``device`` names a usable torch device (imports torch)."""
    import torch

    if value == "auto":
        return
    try:
        device = torch.device(str(value))
    except (RuntimeError, ValueError) as err:
        raise ConfigError(f"device={value!r} is not a torch device; allowed: cpu, cuda, cuda:N, auto") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={value!r} but CUDA is not available; use device=cpu")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device={value!r} is not supported; allowed: cpu, cuda, cuda:N, auto")


def check_run_config(cfg: Any, device: bool = True) -> dict:
    """Check every value of a run config (see the module docstring); returns the resolved dict."""
    values = resolved(cfg, exclude=("hydra",))
    check_values(values, TOP)
    for group in ("trainer", "eval", "model", "dataset"):
        if not isinstance(values.get(group), Mapping):
            raise ConfigError(f"{group} must be a config group; choose one with {group}=NAME")
    check_values(values["trainer"], TRAINER, "trainer.")
    check_values(values["eval"], EVAL, "eval.")
    check_values(values["model"], MODEL, "model.")
    _check_model_choices(values["model"])
    ds = values["dataset"]
    if ds.get("name") not in DATASETS:
        raise ConfigError(f"dataset.name={_show(ds.get('name'))} is unknown; allowed: {', '.join(sorted(DATASETS))}")
    check_values(ds, DATASETS[ds["name"]], "dataset.")
    _check_directions(ds)
    n_train = n_train_points(ds)
    for n in values["eval"].get("knn_labels", []):
        if n > n_train:
            raise ConfigError(f"eval.knn_labels contains {n!r}; allowed: integers from 1 to the {n_train} "
                              f"training points")
    k = values["eval"].get("knn_neighbors")
    labels = values["eval"].get("knn_labels") or []
    if labels and k > min(labels):
        raise ConfigError(f"eval.knn_neighbors={k} must be at most the smallest number of labels in "
                          f"eval.knn_labels ({min(labels)})")
    if device:
        check_device(values.get("device", "cpu"))
    return values


def check_inside(run_dir: str | Path, runs_root: str | Path) -> None:
    """The run directory resolves inside the runs root (ConfigError otherwise)."""
    root = Path(runs_root).expanduser().resolve()
    target = Path(run_dir).expanduser().resolve()
    if target != root and root not in target.parents:
        raise ConfigError(f"run directory {run_dir} is outside runs_root={runs_root}; names in the config "
                          f"({', '.join(NAME_KEYS)}) must not contain path separators or '..'")
