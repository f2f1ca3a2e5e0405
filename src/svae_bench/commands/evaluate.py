"""``svae-bench evaluate``: evaluate complete runs again from their checkpoints, without training.

    svae-bench evaluate [--runs ROOT] RUN_DIR [RUN_DIR ...] [eval.KEY=VALUE ...]
    svae-bench evaluate --runs ROOT [--experiment NAME] [--model NAME] [--latent-dim D] [eval.KEY=VALUE ...]

Each run's model is rebuilt from its record's config and loaded from checkpoint.pt; it is evaluated
with the record's own evaluation settings (keys it predates take today's defaults) and the
``eval.*`` overrides given; result.json gains the metrics it lacked (with the same settings) or the
new evaluation (with other settings), and an ``evaluations`` entry saying what evaluated it
(:mod:`svae_bench.tasks.reevaluate`). ``dataset.data_root``, ``device`` and ``trainer.num_threads``
may be set too. Named run directories must lie under the runs root (default ``runs``); every one is
checked before any is evaluated, and a bad one (no complete record, running, failed, no
checkpoint, outside the root) stops the command with one line and exit status 2, nothing written.
With filters alone, every complete VAE run under the root that matches is evaluated; runs that
are not complete are listed and left alone.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError
from ..records import RESULT_FILE, read_result
from ..records.atomic import find_named
from ._args import parse_args

OVERRIDE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*=")
HELP = "evaluate complete runs again from their checkpoints (e.g. a new metric), without training"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="svae-bench evaluate",
        description="Evaluate complete runs again from their checkpoint.pt with the record's evaluation settings "
        "and eval.* overrides, and add the new metrics to their result.json (atomically; training's files are "
        "not touched).",
    )
    p.add_argument("--runs", type=Path, default=Path("runs"), metavar="ROOT", help="runs root (default: runs)")
    p.add_argument("--experiment", action="append", default=[], help="only runs of this experiment (repeatable)")
    p.add_argument("--model", action="append", default=[], help="only runs of this model (repeatable)")
    p.add_argument("--latent-dim", type=int, action="append", default=[], help="only runs with this d (repeatable)")
    p.add_argument("words", nargs="*", metavar="RUN_DIR | KEY=VALUE", help="run directories and overrides")
    return p


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except (ValueError, OSError, RuntimeError):
        return False
    return True


def _matches(record: dict, args: argparse.Namespace) -> bool:
    return (
        (not args.experiment or record.get("experiment") in args.experiment)
        and (not args.model or record.get("model") in args.model)
        and (not args.latent_dim or record.get("latent_dim") in args.latent_dim)
    )


def _select(args: argparse.Namespace, named: list[Path]) -> tuple[list[Path], list[str]]:
    """The run directories to evaluate, and lines about runs left alone; ConfigError on bad input."""
    from ..tasks.reevaluate import check_reevaluable

    root: Path = args.runs
    if not root.is_dir():
        raise ConfigError(f"runs root '{root}' is not a directory (set it with --runs ROOT)")
    if named:
        for d in named:
            if not _inside(d, root):
                raise ConfigError(f"{d} is outside the runs root '{root}' (set the root with --runs ROOT)")
            if not d.is_dir():
                raise ConfigError(f"{d} is not a run directory")
            record = check_reevaluable(d)
            if not _matches(record, args):
                raise ConfigError(f"{d} does not match the --experiment/--model/--latent-dim filters given")
        return list(dict.fromkeys(named)), []
    chosen, left = [], []
    for result in sorted(find_named(root, (RESULT_FILE,))):  # no recursion: a 1,100-deep tree is fine
        d = result.parent
        record = read_result(d)
        if record is None or not _matches(record, args):
            continue
        if record.get("task", "vae") != "vae":
            continue
        try:
            check_reevaluable(d)
        except ConfigError as err:
            if record.get("status") == "complete" and "checkpoint" in str(err):
                raise
            left.append(f"left alone: {err}")
            continue
        chosen.append(d)
    if not chosen:
        raise ConfigError(f"no complete VAE run under '{root}' matches; nothing evaluated")
    return chosen, left


def _is_override(word: str) -> bool:
    """KEY=VALUE with a dotted name for KEY; run directories have '=' in them too (d=2/beta=1/seed=0)."""
    return bool(OVERRIDE.match(word)) and not Path(word).is_dir()


def _show(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; 0 when every run was evaluated, 2 on bad input (nothing written), 1 on a write error."""
    args = parse_args(_parser(), argv)
    if isinstance(args, int):
        return args
    overrides = [w for w in args.words if _is_override(w)]
    named = [Path(w) for w in args.words if not _is_override(w)]
    from ..tasks.reevaluate import parse_overrides, reevaluate_run

    try:
        parse_overrides(overrides)
        dirs, left = _select(args, named)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for line in left:
        print(line)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    for i, d in enumerate(dirs, 1):
        try:
            done = reevaluate_run(d, overrides)
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except OSError as err:
            print(f"error: cannot rewrite {d / RESULT_FILE}: {err}", file=sys.stderr)
            return 1
        how = "new settings, metrics replaced" if done.replaced else "same settings"
        parts = [f"added {k} {_show(done.metrics[k])}" for k in done.added]
        if done.replaced:
            parts += [f"{k} {_show(v)}" for k, v in done.metrics.items() if k not in done.added]
        parts += [f"{k} recomputed {_show(v)} differs from the record's" for k, v in done.differs.items()]
        print(f"[{i}/{len(dirs)}] {d}: {how}, {done.seconds:.1f} s; " + ("; ".join(parts) or "nothing new"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
