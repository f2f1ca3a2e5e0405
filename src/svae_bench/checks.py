"""Checking config values: rules that say what is allowed, and one-line errors that say it.

A rule is a function ``value -> None | <what is allowed>``; :func:`check_values`
applies a table of rules to a config group and raises
:class:`~svae_bench.errors.ConfigError` with ``<key>=<value> must be <what is allowed>``
on the first failure. :func:`resolved` turns a config into plain values, naming
the key whose interpolation fails. Tasks build their checks from these
(:mod:`svae_bench.tasks.vae_checks`); the preflight of a sweep runs the same
checks for every job before Hydra writes anything.

No torch and no Hydra here (the device check imports torch when it runs).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError

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
            out[key] = (
                OmegaConf.to_container(node, resolve=True) if isinstance(node, (DictConfig, ListConfig)) else node
            )
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
        if _is_int(v) and lo <= v <= hi:
            return None
        if _is_int(v) and v > hi and "at most" not in text:  # too large: say the bound it is over
            return f"{text} (at most {hi})"
        return text

    return check


def positive_int(hi: int = _BIG) -> Callable[[Any], str | None]:
    return integer(1, hi, "a positive integer" + (f" (at most {hi})" if hi != _BIG else ""))


def number(lo: float | None = None, hi: float | None = None, lo_open: bool = False) -> Callable[[Any], str | None]:
    """A finite number, > lo (lo_open) or >= lo, and <= hi; NaN and infinities are refused."""
    bound = (f" {'>' if lo_open else '>='} {lo:g}" if lo is not None else "") + (
        f" and <= {hi:g}" if hi is not None else ""
    )

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


def shown_value(v: Any) -> str:
    text = repr(v) if isinstance(v, str) else str(v)
    return text if len(text) <= 60 else text[:57] + "..."


def check_values(values: Mapping, rules: Mapping[str, Callable[[Any], str | None] | None], prefix: str = "") -> None:
    """Apply ``rules`` (key -> check returning None or what is allowed) to the keys present in ``values``."""
    for key, check in rules.items():
        if check is None or key not in values:
            continue
        problem = check(values[key])
        if problem is not None:
            raise ConfigError(f"{prefix}{key}={shown_value(values[key])} must be {problem}")


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


def check_inside(run_dir: str | Path, runs_root: str | Path) -> None:
    """The run directory resolves inside the runs root (ConfigError otherwise)."""
    root = Path(runs_root).expanduser().resolve()
    target = Path(run_dir).expanduser().resolve()
    if target != root and root not in target.parents:
        raise ConfigError(
            f"run directory {run_dir} is outside runs_root={runs_root}; names in the config "
            f"({', '.join(NAME_KEYS)}) must not contain path separators or '..'"
        )
