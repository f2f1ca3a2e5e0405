"""``svae-bench tables --runs DIR --out DIR``: collect run records into CSV / LaTeX / Markdown tables
(see :mod:`svae_bench.report.tables` for what is written)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..records import RESULT_FILE, STATUS_FILE, write_bytes_atomic
from ..records.atomic import find_named
from ..records.record import printable
from ..report.collect import collect_runs, runs_frame
from ..report.outputs import render_outputs
from ._args import parse_args

HELP = "collect result.json records into CSV / LaTeX / Markdown tables"


def _unfinished_runs(runs_dir: Path) -> int:
    """Run directories that started (status.json) but have no result.json: running, failed, interrupted."""
    return sum(1 for p in find_named(runs_dir, (STATUS_FILE,)) if not (p.parent / RESULT_FILE).exists())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runs", required=True, type=Path, metavar="DIR", help="directory searched recursively for result.json"
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory (created if missing)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="svae-bench tables",
        description=(
            "Collect result.json records into runs.csv, summary.csv and every paper table their runs "
            "fill (Tables 1-4, each with a comparison against the published numbers)."
        ),
    )
    add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``svae-bench tables``; returns the exit status (0 ok, 2 bad input, 1 write error)."""
    args = parse_args(_parser(), argv)
    if isinstance(args, int):  # --help or a usage error: argparse's exit status, returned
        return args
    runs_dir, out_dir = args.runs, args.out
    if not runs_dir.exists():
        print(f"error: runs directory '{runs_dir}' does not exist", file=sys.stderr)
        return 2
    if not runs_dir.is_dir():
        print(f"error: runs directory '{runs_dir}' is not a directory", file=sys.stderr)
        return 2
    rows, skipped = collect_runs(runs_dir)
    for path, reason in skipped:
        print(f"skipped {printable(path)}: {printable(reason, 1000)}", file=sys.stderr)
    if not rows:
        print(f"error: no complete runs in '{runs_dir}' ({len(skipped)} skipped); nothing written", file=sys.stderr)
        return 2
    outputs = render_outputs(runs_frame(rows), str(runs_dir))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, text in outputs.items():
            # a run directory named in bytes that are not UTF-8 (runs.csv's path): written as \udcxx
            write_bytes_atomic(out_dir / name, text.encode("utf-8", errors="backslashreplace"))
    except OSError as exc:
        print(f"error: cannot write to '{out_dir}': {exc}", file=sys.stderr)
        return 1
    print(f"tables: {len(rows)} complete runs ({len(skipped)} skipped) from {runs_dir} -> {out_dir}")
    unfinished = _unfinished_runs(runs_dir)
    if unfinished:
        print(
            f"  ({unfinished} runs without a complete result.json are not in the tables: "
            f"svae-bench status --runs {runs_dir} lists them)"
        )
    for name in outputs:
        print(f"  {out_dir / name}")
    return 0
