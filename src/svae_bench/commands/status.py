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
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ConfigError
from ..launch.sweep import compose_jobs
from ..records import CONFIG_FILE, RESULT_FILE, STATES, STATUS_FILE, run_state
from ..tasks import get_task
from ._args import parse_args


def expected_run_dirs(overrides: list[str], runs_root: str | None) -> list[Path]:
    """The run directories of the sweep that ``svae-bench run -m <overrides>`` launches: first the
    runs its cells depend on and train first when missing (a task's ``dependencies``, e.g. the M1s of
    Table 3's cells), once each, then the cells."""
    if runs_root is not None:
        overrides = [*overrides, f"runs_root={runs_root}"]
    jobs = compose_jobs(overrides, multirun=True)
    needed = [d for job in jobs for d in get_task(job.values.get("task")).dependencies(job.values)]
    return list(dict.fromkeys([*needed, *(job.run_dir for job in jobs)]))


def found_run_dirs(root: Path) -> list[Path]:
    """Run directories under ``root``: those holding a config.yaml, status.json or result.json."""
    marks = (CONFIG_FILE, STATUS_FILE, RESULT_FILE)
    return sorted(
        {p.parent for name in marks for p in root.rglob(name) if ".hydra" not in p.parts and p.parent != root}
    )


def _detail(state: str, status: dict) -> str:
    epoch = status.get("epoch")
    if state == "failed":
        return f"  {status.get('reason', '')}"
    if state == "running":
        return f"  epoch {epoch} on {status.get('host')} (pid {status.get('pid')})"
    if state == "interrupted" and epoch is not None:
        return f"  after epoch {epoch}: re-run the same command to resume"
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
        where = " ".join(args.overrides)
    else:
        root = args.runs or Path("runs")
        if not root.is_dir():
            print(f"error: runs directory '{root}' does not exist", file=sys.stderr)
            return 2
        dirs = found_run_dirs(root)
        where = str(root)
    cells = [(d, *run_state(d)) for d in dirs]
    counts = {s: sum(1 for _, state, _ in cells if state == s) for s in STATES}
    print(
        f"{len(cells)} runs ({where}): "
        + ", ".join(f"{counts[s]} {s}" for s in STATES if counts[s] or s in ("complete", "missing"))
    )
    for d, state, status in cells:
        if args.all or state != "complete":
            print(f"{state:<12} {d}{_detail(state, status)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
