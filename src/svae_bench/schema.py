"""The typed schema of the config: for each key of the ``trainer`` and ``eval`` groups and of the
top level, its type, its default and its allowed range, in one place; the run directory's layout.

A group is a frozen dataclass whose fields are :func:`setting`\\ s (a default and a rule of
:mod:`svae_bench.checks`). :func:`rules` gives the table :func:`~svae_bench.checks.check_values`
applies (so refusals keep their one-line ``<key>=<value> must be <what is allowed>``);
:func:`defaults` the values a run gets when nothing overrides them (``conf/<group>/default.yaml``
holds the same values with their documentation, and ``tests/test_schema.py`` proves the two equal);
:func:`typed` checks a group's values and returns the dataclass that tasks read. A key has no
second default anywhere else: a value missing from a config is an error, not a fallback.

Records and checkpoints made before a key existed go through :func:`migrate_config`, the one
place that says what such a run ran with.

:func:`run_subdir` is the run directory of a model run below ``runs_root``: the Hydra config
uses it through the ``svae_run_dir`` resolver (``conf/hydra/default.yaml``), and a task that
locates another run (M1+M2's M1) calls it, so the two cannot drift apart.

No torch and no Hydra here.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .checks import (
    boolean,
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
)
from .errors import ConfigError
from .records import SEED_MAX, format_number

Rule = Callable[[Any], "str | None"]
G = TypeVar("G")


def setting(default: Any, check: Rule | None, convert: Callable[[Any], Any] | None = None) -> Any:
    """A schema field: its ``default``, the ``check`` its values pass (None: checked elsewhere) and
    how a checked value becomes the field's type (``convert``; e.g. ``float`` for an int given for
    a real number)."""
    metadata = {"check": check, "convert": convert}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def _optional_int(v: Any) -> int | None:
    return None if v is None else int(v)


@dataclass(frozen=True)
class TrainerConfig:
    """The ``trainer`` group (conf/trainer/default.yaml documents each key).

    ``nan_lr_factor`` 0.5 and ``fused`` true are what every task trains with unless overridden: the
    VAE task, M2 (whose ``semisup.trainer.nan_lr_factor`` is this one by default) and the VGAE."""

    optimizer: str = setting("adam", one_of("adam"))
    lr: float = setting(1.0e-3, number(0, lo_open=True), float)
    batch_size: int = setting(64, positive_int(), int)
    max_epochs: int = setting(100, positive_int(10**7), int)
    patience: int = setting(10, positive_int(), int)
    warmup_epochs: int = setting(0, integer(0), int)
    num_threads: int | None = setting(None, optional(positive_int(4096)), _optional_int)
    progress: bool | str = setting("auto", one_of("auto", True, False, "true", "false"))
    nan_retries: int = setting(3, integer(0, 1000), int)
    nan_lr_factor: float = setting(0.5, number(0, 1, lo_open=True), float)
    compile: bool = setting(False, boolean)
    fused: bool = setting(True, boolean)
    flush_denormal: bool = setting(True, boolean)


@dataclass(frozen=True)
class EvalConfig:
    """The ``eval`` group (conf/eval/default.yaml documents each key)."""

    is_samples: int = setting(500, positive_int(10**6), int)
    is_batch_points: int = setting(100, positive_int(10**7), int)
    knn_labels: list[int] = setting([100, 600, 1000], list_of(positive_int(), "positive integers"))
    knn_neighbors: int = setting(5, positive_int(), int)
    knn_repeats: int = setting(10, positive_int(10**5), int)
    latent_plot: bool = setting(True, boolean)


@dataclass(frozen=True)
class RunConfig:
    """The top-level keys every task shares (conf/config.yaml documents each key)."""

    task: str = setting("vae", None)  # checked by the task registry
    experiment_name: str = setting("default", name)
    latent_dim: int = setting(2, integer(1, 100_000), int)
    beta: float = setting(1.0, number(0), float)
    seed: int = setting(0, integer(0, SEED_MAX), int)
    budget_name: str = setting("none", name)
    n_seeds: int = setting(1, integer(1, 100_000), int)
    runs_root: str = setting("runs", path_string)
    force: bool = setting(False, boolean)
    device: str = setting("cpu", None)  # checked by checks.check_device (needs torch)


#: the schema of each config group it covers ("" : the top level)
GROUPS: dict[str, type] = {"": RunConfig, "trainer": TrainerConfig, "eval": EvalConfig}


def rules(schema: type) -> dict[str, Rule | None]:
    """The rule table of a schema: key -> its check (None: checked elsewhere)."""
    return {f.name: f.metadata["check"] for f in dataclasses.fields(schema)}


def converters(schema: type) -> dict[str, Callable[[Any], Any] | None]:
    """How each key's checked value becomes its field's type (None: used as it is)."""
    return {f.name: f.metadata["convert"] for f in dataclasses.fields(schema)}


def defaults(schema: type) -> dict[str, Any]:
    """A schema's defaults as plain values (a fresh copy)."""
    return dataclasses.asdict(schema())


def typed(schema: type[G], values: Any, prefix: str = "") -> G:
    """The checked values of a config group (a dict or a DictConfig) as the schema's dataclass:
    ConfigError (one line) for a value out of range, as :func:`~svae_bench.checks.check_values` says
    it, or for a key the group lacks (a config from before the key existed goes through
    :func:`migrate_config` first); keys the schema does not know are left out."""
    plain = resolved(values)
    check_values(plain, rules(schema), prefix)
    kwargs = {}
    for f in dataclasses.fields(schema):
        if f.name not in plain:
            group = prefix.rstrip(".") or "top-level"
            raise ConfigError(f"{prefix}{f.name} is missing (the {group} config has no value)")
        convert = f.metadata["convert"]
        kwargs[f.name] = plain[f.name] if convert is None else convert(plain[f.name])
    return schema(**kwargs)


#: trainer keys added after records were first made, and what a run recorded before each existed
#: ran with: torch's default thread count, eager steps, Adam's multi-tensor kernel, no flushing of
#: subnormal floats (today's defaults differ: conf/trainer/default.yaml).
#: (The first records predate numerical-fault handling too: a fault ended such a run, no retry, no cut.)
TRAINER_BEFORE_KEY: dict[str, Any] = {
    "num_threads": None,
    "nan_retries": 0,
    "nan_lr_factor": 1.0,
    "compile": False,
    "fused": False,
    "flush_denormal": False,
}


def migrate_trainer(trainer: Mapping[str, Any]) -> dict[str, Any]:
    """A recorded trainer group in today's form: :data:`TRAINER_BEFORE_KEY`'s value for each key it predates."""
    return {**TRAINER_BEFORE_KEY, **resolved(trainer)}


def migrate_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A run's config as any earlier version recorded it (result.json's ``config``), in the form
    today's code reads: the trainer keys it predates take what such runs ran with
    (:data:`TRAINER_BEFORE_KEY`; another Adam kernel trained another model, so ``fused`` is not
    today's default), the evaluation keys it predates take today's defaults (evaluation settings do
    not change what was trained). A config of today is returned unchanged (as a copy). Used
    where old records are read as configs: M1 reuse and ``svae-bench evaluate``."""
    out = copy.deepcopy(resolved(config))
    if isinstance(out.get("trainer"), Mapping):
        out["trainer"] = migrate_trainer(out["trainer"])
    recorded_eval = out["eval"] if isinstance(out.get("eval"), Mapping) else {}
    out["eval"] = {**defaults(EvalConfig), **recorded_eval}
    return out


def run_subdir(experiment: Any, dataset: Any, model: Any, latent_dim: Any, beta: Any, seed: Any) -> str:
    """A model run's directory below ``runs_root``:
    ``<experiment>/<dataset>/<model>/d=<latent_dim>/beta=<beta>/seed=<seed>`` (beta=1, 1.0 and 1e0
    name one run). The Hydra config's ``hydra.run.dir`` / ``hydra.sweep.subdir`` (resolver
    ``svae_run_dir``) and the M1 an M1+M2 cell reuses are both this."""
    return f"{experiment}/{dataset}/{model}/d={latent_dim}/beta={format_number(beta)}/seed={seed}"
