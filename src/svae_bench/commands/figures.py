"""``svae-bench figures``: compose the paper-style latent-space figure of an experiment's runs.

Every problem ends in one line ``error: ...`` on stderr and exit status 2, with nothing written:
an ``--out`` whose suffix is no image format (checked first), no runs, runs that cannot be drawn.
Records and runs left out are listed on stderr (``skipped <path>: <reason>``), as ``tables`` does.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ..plots import image_format
from ..records.record import printable
from ..report.curves import find_curves, plot_curves
from ..report.figures import compose_runs, find_runs, load_run
from ..report.heatmap import plot_heatmaps
from ..report.linkpred_figure import plot_linkpred
from ._args import parse_args

HELP = "compose the latent-space figure of an experiment"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="svae-bench figures",
        description="Compose the paper-style latent-space figure from finished runs; with --curves, the "
        "validation ELBO and KL per epoch of every run of the experiment (finished or not), one panel per d, "
        "the paper's values dashed.",
    )
    p.add_argument(
        "--curves",
        action="store_true",
        help="learning curves instead of the latent figure (default out: <runs>/<experiment>/curves.png)",
    )
    p.add_argument(
        "--heatmap",
        action="store_true",
        help="Table 3's accuracy heat maps (one panel per family, z1 x z2, the paper's values in brackets) "
        "instead of the latent figure (default out: <runs>/<experiment>/heatmap.png)",
    )
    p.add_argument(
        "--linkpred",
        action="store_true",
        help="Table 4's link prediction: test AUC and AP per data set and model, the paper's values marked "
        "(default out: <runs>/<experiment>/figure.png)",
    )
    p.add_argument("--runs", type=Path, default=Path("runs"), help="root of the run directories (default: runs)")
    p.add_argument("--experiment", default="synthetic_figure", help="experiment name (default: synthetic_figure)")
    p.add_argument("--out", type=Path, default=None, help="output image (default: <runs>/<experiment>/figure.png)")
    p.add_argument("--seed", type=int, default=0, help="seed of the runs to show (default: 0)")
    p.add_argument("--latent-dim", type=int, default=2, help="latent degrees of freedom d (default: 2)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``svae-bench figures``: returns 0 on success, 2 on a usage / input error."""
    args = parse_args(_parser(), argv)
    if isinstance(args, int):  # --help, or an argparse usage error
        return args

    runs_root: Path = args.runs
    if not runs_root.is_dir():
        print(f"error: runs directory {runs_root} does not exist", file=sys.stderr)
        return 2
    if args.out is not None:
        try:
            image_format(args.out)
        except ValueError as exc:
            return _error(exc)
    exp_dir = runs_root / args.experiment
    if args.heatmap:
        out = args.out if args.out is not None else exp_dir / "heatmap.png"
        return _plot_runs(plot_heatmaps, exp_dir, out, f"{args.experiment}: M1+M2 test accuracy", "M1+M2")
    if args.linkpred:
        out = args.out if args.out is not None else exp_dir / "figure.png"
        return _plot_runs(plot_linkpred, exp_dir, out, f"{args.experiment}: link prediction", "link-prediction")
    if args.curves:
        return _curves(exp_dir, args.out if args.out is not None else exp_dir / "curves.png", args.experiment)
    run_dirs = find_runs(exp_dir, args.seed, args.latent_dim) if exp_dir.is_dir() else []
    if not run_dirs:
        print(
            f"error: no complete runs with latent.npz for seed={args.seed}, "
            f"latent_dim={args.latent_dim} under {exp_dir}",
            file=sys.stderr,
        )
        return 2
    out = args.out if args.out is not None else exp_dir / "figure.png"
    try:
        n_panels = compose_runs([load_run(d) for d in run_dirs], out, truth_from_first=True)
    except (OSError, ValueError, KeyError) as exc:  # ValueError: also numpy's LinAlgError, matplotlib's
        return _error(exc)
    print(f"figures: wrote {out} ({n_panels} panels)")
    return 0


def _error(exc: BaseException, prefix: str = "") -> int:
    """Print ``exc`` as the one line ``error: ...`` and return 2."""
    print(f"error: {prefix}{printable(' '.join(str(exc).split()), 1000)}", file=sys.stderr)
    return 2


def _print_skipped(skipped: list[tuple[Path, str]]) -> None:
    for path, reason in skipped:
        print(f"skipped {printable(path)}: {printable(reason, 1000)}", file=sys.stderr)


def _curves(exp_dir: Path, out: Path, experiment: str) -> int:
    skipped: list[tuple[Path, str]] = []
    curves = find_curves(exp_dir, skipped) if exp_dir.is_dir() else []
    _print_skipped(skipped)
    if not curves:
        print(f"error: no runs with a metrics.csv under {exp_dir}", file=sys.stderr)
        return 2
    try:
        plot_curves(curves, out, f"{experiment}: validation ELBO and KL per epoch ({len(curves)} runs)")
    except OSError as exc:
        return _error(exc, f"cannot write {out}: ")
    except ValueError as exc:  # the runs cannot be drawn (matplotlib's and numpy's errors are ValueErrors)
        return _error(exc)
    done = sum(c.complete for c in curves)
    print(f"figures: wrote {out} ({len(curves)} runs, {done} complete)")
    return 0


def _plot_runs(plot: Callable[..., int], exp_dir: Path, out: Path, title: str, runs: str) -> int:
    """Write ``plot(exp_dir, out, title, skipped)``'s figure (it returns the number of runs shown and
    adds the records it left out to ``skipped``); ``runs`` names them in the error when there are none."""
    skipped: list[tuple[Path, str]] = []
    try:
        n = plot(exp_dir, out, title, skipped) if exp_dir.is_dir() else 0
    except OSError as exc:
        _print_skipped(skipped)
        return _error(exc, f"cannot write {out}: ")
    except ValueError as exc:
        _print_skipped(skipped)
        return _error(exc)
    _print_skipped(skipped)
    if not n:
        print(f"error: no complete {runs} runs under {exp_dir}", file=sys.stderr)
        return 2
    print(f"figures: wrote {out} ({n} runs)")
    return 0
