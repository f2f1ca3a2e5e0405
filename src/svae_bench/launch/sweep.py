"""Sweep expansion: the jobs ``svae-bench run`` launches, with their resolved configs and run directories.

Used by the preflight (:mod:`svae_bench.launch.preflight`) and by ``svae-bench
status``. Expansion follows Hydra's basic sweeper: an experiment's sweep lists,
replaced by command-line lists for the same keys; see :func:`compose_jobs`.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..checks import resolved
from ..errors import ConfigError

#: Hydra flags whose next argument is their value (not an override)
_FLAGS_WITH_VALUE = {
    "--cfg",
    "-c",
    "--package",
    "-p",
    "--info",
    "-i",
    "--shell-completion",
    "-sc",
    "--experimental-rerun",
}
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


def config_groups() -> set[str]:
    """Names of the config groups (conf/ subfolders, and Hydra's own that users override)."""
    return set(group_options()) | {"hydra/launcher", "hydra/sweeper", "hydra/job_logging", "hydra/hydra_logging"}


@dataclass(frozen=True)
class Job:
    """One job of ``svae-bench run``: its resolved config (without Hydra's node) and run directory."""

    values: dict
    run_dir: Path


def compose_jobs(overrides: list[str], multirun: bool | None = None) -> list[Job]:
    """Every job that ``svae-bench run`` launches, with its resolved config and run directory.

    Sweeps expand as Hydra's basic sweeper expands them: the ``hydra.sweeper.params``
    of the composed config (an experiment's lists), with command-line lists replacing
    those for the same keys. ``multirun`` None: as the config's ``hydra.mode`` says.
    Hydra composes once per choice of config groups; each job's plain values are then
    set on that config in place (every job of a sweep sets the same keys), so expanding
    a sweep costs about a millisecond a job. Raises ConfigError with Hydra's message
    (one line) on an invalid override, or naming the value whose interpolation fails.
    """
    from hydra import compose, initialize_config_module
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from hydra.types import RunMode
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from . import resolvers  # noqa: F401  (registers the svae_fmt resolver of the run directory)

    parser = OverridesParser.create()
    GlobalHydra.instance().clear()
    try:
        parsed = parser.parse_overrides(overrides)
        with initialize_config_module("svae_bench.conf", version_base="1.3"), _parse_cache():
            base = compose("config", overrides=[_first_value_line(o) for o in parsed], return_hydra_config=True)
            if multirun is None:
                multirun = base.hydra.mode == RunMode.MULTIRUN or any(o.is_sweep_override() for o in parsed)
            if not multirun:
                return [_job(base)]
            fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
            swept = compose("config", overrides=fixed, return_hydra_config=True)
            given = {o.get_key_element() for o in parsed}
            params = swept.hydra.sweeper.params
            params = {} if params is None else OmegaConf.to_container(params, resolve=True)
            lines = [f"{k}={v}" for k, v in params.items() if k not in given] + list(overrides)
            jobs = [job for batch in BasicSweeper.split_arguments(parser.parse_overrides(lines), None) for job in batch]
            groups = config_groups()
            parsed_lines: dict[str, object] = {}  # each distinct "key=value" is parsed once
            combos: dict[tuple[str, ...], _Combo] = {}
            out = []
            for job in jobs:
                for line in job:
                    if line not in parsed_lines:
                        parsed_lines[line] = parser.parse_overrides([line])[0]
                job_parsed = [parsed_lines[line] for line in job]
                group_lines = tuple(o.input_line for o in job_parsed if o.key_or_group.lstrip("+~") in groups)
                if group_lines not in combos:
                    combos[group_lines] = _Combo(
                        compose("config", overrides=list(group_lines), return_hydra_config=True)
                    )
                combo = combos[group_lines]
                out.append(combo.job([o for o in job_parsed if o.key_or_group.lstrip("+~") not in groups]))
            return out
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
        raise ConfigError(" ".join(lines) if lines else type(err).__name__) from None  # options on own lines
    finally:
        GlobalHydra.instance().clear()


@contextlib.contextmanager
def _parse_cache():
    """Let OmegaConf parse each interpolation string once, not on every access.

    OmegaConf re-parses ``${...}`` strings with ANTLR whenever a value is read (about
    4 ms for the run directory's template), which made a sweep of 10^4 jobs take minutes.
    Parse trees are immutable once built and keep references to their own token stream,
    so reusing one for the same string is safe. Without ``omegaconf.base.parse`` (another
    OmegaConf version) this does nothing: expansion is then only slower."""
    import omegaconf.base as omegaconf_base

    original = getattr(omegaconf_base, "parse", None)
    if original is None:
        yield
        return
    omegaconf_base.parse = functools.lru_cache(maxsize=1024)(original)
    try:
        yield
    finally:
        omegaconf_base.parse = original


def _job(cfg) -> Job:
    """The job of a composed config (ConfigError naming the value whose interpolation fails)."""
    return Job(resolved(cfg, exclude=("hydra",)), _run_dir(cfg))


def _run_dir(cfg) -> Path:
    try:
        return Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)
    except Exception as err:  # noqa: BLE001  an interpolation of the run directory that fails
        raise ConfigError(f"the run directory cannot be resolved: {str(err).splitlines()[0]}") from None


class _Combo:
    """The jobs of a sweep that share one choice of config groups.

    OmegaConf takes milliseconds to resolve a whole config, far too slow for sweeps of
    10^4 jobs. The config is resolved once; a job then sets its plain values on it in
    place (every job of a sweep sets the same keys, so nothing of an earlier job remains)
    and re-resolves only the values that hold an interpolation (their own or one a job
    sets, e.g. ``experiment_name: table1_${budget_name}``) and the run directory."""

    def __init__(self, composed):
        from omegaconf import OmegaConf

        self.first = composed
        self.cfg = OmegaConf.create(OmegaConf.to_container(composed))  # mutable, not struct
        self.values = resolved(self.cfg, exclude=("hydra",))
        raw = OmegaConf.to_container(self.cfg, resolve=False)
        raw.pop("hydra", None)
        self.interpolated = [path for path, value in _leaves(raw) if _has_interpolation(value)]

    def job(self, plain: list) -> Job:
        import copy

        from omegaconf import OmegaConf
        from omegaconf.errors import OmegaConfBaseException

        cfg, values = self.cfg, copy.deepcopy(self.values)
        paths = list(self.interpolated)
        for o in plain:
            key = o.key_or_group.lstrip("+~")
            parent, _, leaf = key.rpartition(".")
            if o.is_delete():
                node = OmegaConf.select(cfg, parent) if parent else cfg
                if node is not None and leaf in node:
                    del node[leaf]
                target = _dict_at(values, parent)
                if target is not None:
                    target.pop(leaf, None)
                paths = [p for p in paths if p != key and not p.startswith(key + ".")]
                continue
            value = o.value()
            if isinstance(value, dict):  # merged into the composed value, not the last job's
                OmegaConf.update(cfg, key, OmegaConf.select(self.first, key), merge=False, force_add=True)
            OmegaConf.update(cfg, key, value, force_add=True)
            paths.append(key)  # re-read: merged, converted or interpolated by OmegaConf
        for path in paths:
            try:
                node = OmegaConf.select(cfg, path, throw_on_missing=True)
                value = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
            except OmegaConfBaseException as err:
                message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise ConfigError(f"{path} cannot be resolved: {message}") from None
            parent, _, leaf = path.rpartition(".")
            target = _dict_at(values, parent, create=True)
            target[leaf] = value
        return Job(values, _run_dir(cfg))


def _leaves(node, prefix: str = ""):
    """(dotted path, value) of a plain container's leaves; a list is one leaf."""
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from _leaves(value, path + ".")
        else:
            yield path, value


def _has_interpolation(value) -> bool:
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, (list, tuple)):
        return any(_has_interpolation(v) for v in value)
    if isinstance(value, dict):
        return any(_has_interpolation(v) for v in value.values())
    return False


def _dict_at(values: dict, dotted: str, create: bool = False) -> dict | None:
    node = values
    for part in dotted.split(".") if dotted else []:
        if not isinstance(node.get(part), dict):
            if not create:
                return None
            node[part] = {}
        node = node[part]
    return node
