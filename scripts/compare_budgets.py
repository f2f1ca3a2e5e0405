"""Compare Table 1 training budgets: what each costs and how far its LL lands from the paper budget's.

Reads the complete Table 1 records of each budget's runs folder (the same collection as
``svae-bench tables``) and prints a Markdown table, one row per (budget, d, model): the test LL
as mean ± std (n), the distance of its mean to the reference budget's (``--reference``, default
``paper``) and to the published LL, the mean epochs trained and the mean minutes per run (the
records' train + evaluation seconds; a run has one thread, so on a machine with a core per run
this is its core time, and more where runs shared cores). A last block gives each budget's measured
core-hours over the cells shown and, at that cost per run, the paper's Table 1 protocol
(2 models x d in {2, 5, 10, 20, 40} x 10 seeds = 100 runs; cells not run are costed at the mean
of the cells that were).

    python scripts/compare_budgets.py laptop=results/mnist_laptop/runs \
        medium=results/mnist_medium/runs paper=results/mnist_paper/runs [--dims 2 10 40] [--out FILE]
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from pathlib import Path

import pandas as pd

from svae_bench.records.atomic import write_bytes_atomic
from svae_bench.report.collect import collect_runs, runs_frame
from svae_bench.report.comparison import load_reference
from svae_bench.report.markup import model_name

MODELS = ("nvae", "svae")
PAPER_TABLE1_RUNS = 100


def budget_arg(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=RUNS_DIR, e.g. paper=results/mnist_paper/runs")
    if not Path(path).is_dir():
        raise argparse.ArgumentTypeError(f"{path!r} is not a directory")
    return name, Path(path)


def load_budget(path: Path) -> pd.DataFrame:
    """The Table 1 VAE runs on MNIST at beta = 1 under ``path``, with their core-minutes."""
    rows, skipped = collect_runs(path)
    for where, why in skipped:
        print(f"skipped {where}: {why}", file=sys.stderr)
    if not rows:
        return pd.DataFrame(columns=["model", "latent_dim", "ll", "epochs", "minutes"])
    runs = runs_frame(rows)
    runs = runs[(runs["task"] == "vae") & (runs["dataset"] == "mnist") & (runs["beta"] == 1.0)]
    runs = runs[runs["model"].isin(MODELS)].copy()
    runs["minutes"] = (runs["train_seconds"] + runs["eval_seconds"]) / 60
    return runs


def fmt(value: float, spec: str = ".2f", signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return format(value, ("+" if signed else "") + spec)


def render(budgets: dict[str, pd.DataFrame], reference: str, dims: list[int]) -> str:
    paper = load_reference()
    published = {
        (r.model, int(r.d)): float(r.mean)
        for r in paper[(paper["table"] == "table1") & (paper["metric"] == "LL")].itertuples(index=False)
    }
    names = list(budgets)
    head = ["budget", "d", "model", "test LL", f"Δ {reference} budget", "Δ published", "epochs", "min/run"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    ref = budgets[reference]
    for name in names:
        runs = budgets[name]
        for d in dims:
            for model in MODELS:
                cell = runs[(runs["model"] == model) & (runs["latent_dim"] == d)]
                if not len(cell):
                    continue
                ll = cell["ll"].to_numpy(dtype=float)
                mean = float(ll.mean())
                std = float(ll.std(ddof=1)) if ll.size > 1 else math.nan
                ref_ll = ref[(ref["model"] == model) & (ref["latent_dim"] == d)]["ll"]
                ref_mean = float(ref_ll.mean()) if len(ref_ll) else math.nan
                cells = [
                    name,
                    str(d),
                    model_name(model),
                    f"{fmt(mean)} ± {fmt(std)} ({ll.size})",
                    "0" if name == reference else fmt(mean - ref_mean, signed=True),
                    fmt(mean - published.get((model, d), math.nan), signed=True),
                    fmt(float(cell["epochs"].mean()), ".0f"),
                    fmt(float(cell["minutes"].mean()), ".1f"),
                ]
                lines.append("| " + " | ".join(cells) + " |")
    cost_head = ["budget", "runs shown", "core-hours, runs shown", "core-hours per run", "Table 1, 100 runs"]
    lines += ["", "| " + " | ".join(cost_head) + " |", "|---|" + "---:|" * (len(cost_head) - 1)]
    for name in names:
        runs = budgets[name]
        shown = runs[runs["latent_dim"].isin(dims)]
        hours = float(shown["minutes"].sum()) / 60
        per_run = float(shown["minutes"].mean()) / 60 if len(shown) else math.nan
        lines.append(
            f"| {name} | {len(shown)} | {fmt(hours, '.1f')} | {fmt(per_run, '.2f')} | "
            f"{fmt(per_run * PAPER_TABLE1_RUNS, '.0f')} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    """Print (and with --out write) the comparison; returns its text. The text's first line is an
    HTML comment with the command that made it (without --out), so the file says how to remake it."""
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("budgets", type=budget_arg, nargs="+", help="NAME=RUNS_DIR, one per budget")
    p.add_argument("--reference", default="paper", help="the budget the others are measured against")
    p.add_argument("--dims", type=int, nargs="+", default=[2, 10, 40])
    p.add_argument("--out", type=Path, default=None, help="also write the table to this file")
    a = p.parse_args(argv)
    budgets = {name: load_budget(path) for name, path in a.budgets}
    if a.reference not in budgets:
        p.error(f"--reference {a.reference!r} is not one of the budgets given: {', '.join(budgets)}")
    shown = [*(f"{name}={path}" for name, path in a.budgets), "--reference", a.reference, "--dims", *map(str, a.dims)]
    command = " ".join(["python scripts/compare_budgets.py", *map(shlex.quote, shown)])
    text = f"<!-- made by: {command} -->\n\n" + render(budgets, a.reference, a.dims)
    sys.stdout.write(text)
    if a.out is not None:
        write_bytes_atomic(a.out, text.encode("utf-8"))
    return text


if __name__ == "__main__":
    main()
