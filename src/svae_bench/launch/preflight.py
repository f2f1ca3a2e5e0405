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
from pathlib import Path

from ..checks import check_inside
from ..errors import ConfigError
from ..tasks import get_task
from ..tasks.harness import check_run_place
from ..tasks.tracking import check_logger
from .sweep import Job, _is_glob, _values, compose_jobs, group_options, override_args


def _writable(path: Path) -> bool:
    path = path.expanduser().absolute()
    while not path.exists():
        if path.parent == path:
            return False
        path = path.parent
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def check_job(job: Job, checked_data: set | None = None) -> None:
    """The checks a run makes before training (ConfigError if one fails): every value (its
    task's :meth:`~svae_bench.tasks.Task.check`), the data files it reads (its task's
    ``check_data``, once per :meth:`~svae_bench.tasks.Task.data_key` in ``checked_data``), that
    its run directory lies inside its runs root, and that the runs root is writable."""
    task = get_task(job.values.get("task", "vae"))
    values = task.check(job.values)
    check_logger(job.values.get("logger"))
    data_key = task.data_key(values)
    key = None if data_key is None else (task.name, data_key)
    if checked_data is None or key is None or key not in checked_data:
        task.check_data(values)
        if checked_data is not None and key is not None:
            checked_data.add(key)
    check_inside(job.run_dir, values["runs_root"])
    check_run_place(task, values, Path(job.run_dir))
    if not _writable(Path(str(values["runs_root"]))):
        raise ConfigError(
            f"runs_root={values['runs_root']} is not writable (or not a directory); choose another with runs_root=DIR"
        )


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
    checked_data: set = set()
    for job in jobs:
        try:
            check_job(job, checked_data)
        except ConfigError as err:
            # In a sweep, say which job: nothing has run yet, so the user fixes it before the first job.
            return f"{err} (sweep job {job.run_dir})" if len(jobs) > 1 else str(err)
    return None
