"""Check `svae-bench run` overrides before Hydra starts, so that typos cost seconds, not a sweep.

Hydra reports an unknown group option (``model=svea``) or key (``latent_dims=3``)
with exit code 1, and a runs root it cannot create with a traceback, possibly
after other jobs of a sweep have run. :func:`check_run_overrides` finds these
first: every value of every config-group override must be an existing option
(sweeps included: ``model=nvae,svea`` names ``svea``), the config composed from
the first value of each sweep must be valid, and the runs root must be
writable. It returns a one-line message, or None when everything is fine.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from .errors import ConfigError

#: Hydra flags whose next argument is their value (not an override)
_FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--info", "-i", "--shell-completion", "-sc",
                     "--experimental-rerun"}
_OWN_CONFIG_FLAGS = ("--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd")


def group_options() -> dict[str, list[str]]:
    """Config group -> its options, from the package's conf/ (e.g. model -> ae, nvae, psvae, svae)."""
    out: dict[str, list[str]] = {}
    for entry in resources.files("svae_bench.conf").iterdir():
        if entry.is_dir() and not entry.name.startswith("_"):
            out[entry.name] = sorted(f.name[:-5] for f in entry.iterdir() if f.name.endswith(".yaml"))
    return out


def override_args(args: list[str]) -> list[str] | None:
    """The override arguments among ``args``; None if the user brings their own config."""
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg.startswith(_OWN_CONFIG_FLAGS):
            return None
        if arg.startswith("-"):
            skip = arg in _FLAGS_WITH_VALUE
            continue
        out.append(arg)
    return out


def _is_glob(override) -> bool:
    from hydra.core.override_parser.types import ValueType

    return override.value_type == ValueType.GLOB_CHOICE_SWEEP


def _values(override) -> list[str]:
    """The values an override names; [] for a glob, which only Hydra can expand."""
    if override.is_sweep_override():
        if _is_glob(override):
            return []
        return [str(v) for v in override.sweep_string_iterator()]
    value = override.value()
    return [] if value is None else [str(value)]


def _first_value_line(override) -> str:
    if not override.is_sweep_override():
        return override.input_line
    first = next(iter(override.sweep_string_iterator()))
    prefix = "+" if override.is_add() else ("++" if override.is_force_add() else "")
    return f"{prefix}{override.key_or_group}={first}"


def _writable(path: Path) -> bool:
    path = path.expanduser().absolute()
    while not path.exists():
        if path.parent == path:
            return False
        path = path.parent
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def config_groups() -> set[str]:
    """Names of the config groups (conf/ subfolders, and Hydra's own that users override)."""
    return set(group_options()) | {"hydra/launcher", "hydra/sweeper", "hydra/job_logging", "hydra/hydra_logging"}


def compose_jobs(overrides: list[str], multirun: bool | None = None) -> list:
    """The composed config (with its ``hydra`` node) of every job that ``svae-bench run`` launches.

    Sweeps expand as Hydra's basic sweeper expands them: the ``hydra.sweeper.params``
    of the composed config (an experiment's lists), with command-line lists replacing
    those for the same keys. ``multirun`` None: as the config's ``hydra.mode`` says.
    Raises ConfigError with Hydra's message (one line) on an invalid override.
    """
    from hydra import compose, initialize_config_module
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from hydra.types import RunMode
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from . import resolvers  # noqa: F401  (the svae_fmt resolver of the run directory)

    parser = OverridesParser.create()
    GlobalHydra.instance().clear()
    try:
        parsed = parser.parse_overrides(overrides)
        with initialize_config_module("svae_bench.conf", version_base="1.3"):
            base = compose("config", overrides=[_first_value_line(o) for o in parsed], return_hydra_config=True)
            if multirun is None:
                multirun = base.hydra.mode == RunMode.MULTIRUN or any(o.is_sweep_override() for o in parsed)
            if not multirun:
                return [base]
            fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
            swept = compose("config", overrides=fixed, return_hydra_config=True)
            given = {o.get_key_element() for o in parsed}
            params = swept.hydra.sweeper.params
            params = {} if params is None else OmegaConf.to_container(params, resolve=True)
            lines = [f"{k}={v}" for k, v in params.items() if k not in given] + list(overrides)
            jobs = [job for batch in BasicSweeper.split_arguments(parser.parse_overrides(lines), None)
                    for job in batch]
            groups = config_groups()
            composed: dict[tuple[str, ...], object] = {}
            out = []
            for job in jobs:
                # Compose once per choice of config groups; plain values are set on a copy.
                job_parsed = parser.parse_overrides(list(job))
                group_lines = tuple(o.input_line for o in job_parsed if o.key_or_group.lstrip("+~") in groups)
                if group_lines not in composed:
                    composed[group_lines] = compose("config", overrides=list(group_lines), return_hydra_config=True)
                cfg = OmegaConf.create(OmegaConf.to_container(composed[group_lines]))
                for o in job_parsed:
                    key = o.key_or_group.lstrip("+~")
                    if key in groups:
                        continue
                    if o.is_delete():
                        parent, _, leaf = key.rpartition(".")
                        node = OmegaConf.select(cfg, parent) if parent else cfg
                        if node is not None and leaf in node:
                            del node[leaf]
                    else:
                        OmegaConf.update(cfg, o.key_or_group.lstrip("+"), o.value(), force_add=True)
                out.append(cfg)
            return out
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
        raise ConfigError(" ".join(lines) if lines else type(err).__name__) from None  # options on own lines
    finally:
        GlobalHydra.instance().clear()


def run_dir_of(cfg) -> Path:
    return Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)


def check_values(cfg) -> None:
    """The checks a run makes before training, on a composed config (ConfigError if one fails)."""
    from omegaconf import OmegaConf

    from .evaluate import check_eval_config
    from .models.heads import HEADS
    from .models.vae import ACTIVATIONS
    from .run import check_config, pick_device
    from .train import check_trainer_config

    job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    check_config(job)
    check_trainer_config(job.trainer)
    dataset = job.dataset
    n_train = int(dataset.n_train) if "n_train" in dataset else 60000 - int(dataset.get("n_val", 10000))
    check_eval_config(job.eval, n_train)
    pick_device(str(job.device))
    if job.model.latent not in HEADS:
        raise ConfigError(f"model.latent={job.model.latent!r} is unknown; allowed: {', '.join(HEADS)}")
    if job.model.get("activation", "relu") not in ACTIVATIONS:
        raise ConfigError(f"model.activation={job.model.activation!r} is unknown; allowed: {', '.join(ACTIVATIONS)}")


def check_run_overrides(args: list[str]) -> str | None:
    """A one-line error for ``svae-bench run <args>``, or None; see the module docstring."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    overrides = override_args(args)
    if overrides is None:
        return None
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as err:
        return " ".join(line.strip() for line in str(err).strip().splitlines() if line.strip())
    if any(_is_glob(o) for o in parsed):
        return None  # glob(...) needs Hydra's config loader to expand: Hydra checks that sweep itself
    options = group_options()
    for o in parsed:
        group = o.key_or_group
        if group in options and not o.is_delete():
            unknown = [v for v in _values(o) if v not in options[group] and v != "null"]
            if unknown:
                return f"{group}={unknown[0]} is unknown; allowed: {', '.join(options[group])}"
    printing = any(a in args for a in ("--cfg", "-c", "--help", "-h", "--hydra-help", "--info", "-i"))
    if printing:
        multirun = False  # printing, not running: the names and keys only
    else:
        multirun = True if ("-m" in args or "--multirun" in args) else None
    try:
        jobs = compose_jobs(overrides, multirun)
    except ConfigError as err:
        return str(err)
    if printing:
        return None
    for cfg in jobs:
        if not _writable(Path(str(cfg.runs_root))):
            return f"runs_root={cfg.runs_root} is not writable (or not a directory); choose another with runs_root=DIR"
        try:
            check_values(cfg)
        except ConfigError as err:
            # In a sweep, say which job: nothing has run yet, so the user fixes it before the first job.
            return (f"{err} (sweep job {run_dir_of(cfg)})" if len(jobs) > 1 else str(err))
    return None
