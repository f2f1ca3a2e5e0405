"""``svae-bench status``: what a sweep has done and what is left.

    svae-bench status [--runs DIR] [--all] [OVERRIDES ...]

With the overrides of a sweep (the ones given to ``svae-bench run -m``, e.g.
``experiment=table1 budget=laptop``), the expected cells are expanded exactly
as Hydra's basic sweeper expands them (the experiment's sweep lists, replaced by
command-line lists for the same keys), so cells that never started show as
``missing``; the runs the cells depend on (Table 3's M1s) are listed first.
Without overrides, every run directory found under ``--runs`` (default ``runs``)
is listed. Each cell is complete / running / interrupted /
failed / missing (see :mod:`svae_bench.records.status`); counts come first, then one
line per cell that is not complete (all cells with ``--all``).

Overrides that ``svae-bench run`` would refuse (an unknown option, a value its task's checks
reject, a run directory outside the runs root) are refused here too, with the run preflight's
one-line error and exit status 2; the data files and whether the runs root is writable are not
checked (a sweep's status can be read anywhere). Everything printed from the run directories
(paths, hosts, failure reasons) is printed on one line, control characters escaped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..checks import check_inside
from ..errors import ConfigError
from ..launch.preflight import check_run_overrides
from ..launch.sweep import Job, compose_jobs
from ..records import CONFIG_FILE, RESULT_FILE, STATES, STATUS_FILE, run_state
from ..records.atomic import find_named
from ..records.record import printable
from ..tasks import get_task
from ._args import parse_args

#: the longest failure reason, host or other status.json text printed (longer ones are cut)
MAX_SHOWN = 500


def sweep_jobs(overrides: list[str]) -> list[Job]:
    """The jobs of ``svae-bench run -m <overrides>``, each checked as the run preflight checks it
    (ConfigError with the preflight's one-line message): its values by its task's checks, its run
    directory inside its runs root. Data files and a writable runs root are not required."""
    try:
        jobs = compose_jobs(overrides, multirun=True)
    except ConfigError as err:
        # the preflight names an unknown option (model=svea) before Hydra's own message
        raise ConfigError(check_run_overrides(["-m", *overrides]) or str(err)) from None
    for job in jobs:
        try:
            values = get_task(job.values.get("task", "vae")).check(job.values)
            check_inside(job.run_dir, values["runs_root"])
        except ConfigError as err:
            raise ConfigError(f"{err} (sweep job {job.run_dir})" if len(jobs) > 1 else str(err)) from None
    return jobs


def expected_run_dirs(overrides: list[str], runs_root: str | None) -> list[Path]:
    """The run directories of the sweep that ``svae-bench run -m <overrides>`` launches: first the
    runs its cells depend on and train first when missing (a task's ``dependencies``, e.g. the M1s of
    Table 3's cells), once each, then the cells. ConfigError (one line) for overrides that
    ``svae-bench run`` would refuse (see :func:`sweep_jobs`)."""
    if runs_root is not None:
        overrides = [*overrides, f"runs_root={runs_root}"]
    jobs = sweep_jobs(overrides)
    needed = [d for job in jobs for d in get_task(job.values.get("task", "vae")).dependencies(job.values)]
    return list(dict.fromkeys([*needed, *(job.run_dir for job in jobs)]))


def found_run_dirs(root: Path) -> list[Path]:
    """Run directories under ``root`` (at any depth): those holding a config.yaml, status.json or result.json."""
    marks = (CONFIG_FILE, STATUS_FILE, RESULT_FILE)
    return sorted({p.parent for p in find_named(root, marks) if ".hydra" not in p.parts and p.parent != root})


def _shown(value: object) -> str:
    """A status.json value on one line: integers as they are, anything else escaped and cut short."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**18:
        return str(value)
    return printable(value if isinstance(value, str) else repr(value), MAX_SHOWN)


def _detail(state: str, status: dict) -> str:
    epoch = status.get("epoch")
    if state == "failed":
        return f"  {_shown(status.get('reason', ''))}"
    if state == "running":
        return f"  epoch {_shown(epoch)} on {_shown(status.get('host'))} (pid {_shown(status.get('pid'))})"
    if state == "interrupted" and epoch is not None:
        return f"  after epoch {_shown(epoch)}: re-run the same command to resume"
    return ""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="svae-bench status", description=__doc__.split("\n")[0])
    p.add_argument(
        "--runs", type=Path, default=None, metavar="DIR", help="runs root (default: runs, or the sweep's runs_root)"
    )
    p.add_argument("--all", action="store_true", help="list complete cells too")
    p.add_argument("overrides", nargs="*", help="the sweep's overrides, as given to `svae-bench run -m`")
    argv = [a for a in (sys.argv[1:] if argv is None else argv) if a not in ("-m", "--multirun")]  # pasted run args
    args = parse_args(p, argv)
    if isinstance(args, int):
        return args
    if args.overrides:
        try:
            dirs = expected_run_dirs(args.overrides, None if args.runs is None else str(args.runs))
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        where = printable(" ".join(args.overrides))
    else:
        root = args.runs or Path("runs")
        if not root.is_dir():
            print(f"error: runs directory '{root}' does not exist", file=sys.stderr)
            return 2
        dirs = found_run_dirs(root)
        where = printable(root)
    cells = [(d, *run_state(d)) for d in dirs]
    counts = {s: sum(1 for _, state, _ in cells if state == s) for s in STATES}
    print(
        f"{len(cells)} runs ({where}): "
        + ", ".join(f"{counts[s]} {s}" for s in STATES if counts[s] or s in ("complete", "missing"))
    )
    for d, state, status in cells:
        if args.all or state != "complete":
            print(f"{state:<12} {printable(d)}{_detail(state, status)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
