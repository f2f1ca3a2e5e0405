"""Table 1 like for like: the paper's LL column against our two estimators, and the test of the
hypothesis that the paper's LL is the authors' TF example's estimator (issue 31).

Reads the complete Table 1 records (MNIST, beta = 1, N-VAE and S-VAE) under a runs folder, the
same collection as ``svae-bench tables``, and prints Markdown:

1. per (d, model): the paper's LL and ELBO; our LL_tf (``ll_tf_example``), honest LL and ELBO as
   mean ± std (n) and their differences to the paper's; whether our ELBO and LL_tf lie within
   2 std of the paper's value (1 nat where the paper gives no std); and the hypothesis check:
   where our ELBO is within 1 nat of the paper's, LL_tf must be within 1 nat of the paper's LL;
   elsewhere Δ LL_tf must equal Δ ELBO within 0.5 nat (LL_tf - ELBO depends on the posterior
   only, so the paper's LL - ELBO gap should reappear in ours);
2. per d: the model order (sign of S-VAE - N-VAE) in the paper, ours under LL_tf, under the
   honest LL and under the ELBO, each with Welch's p.

    python scripts/compare_ll_estimators.py results/mnist_paper/runs [--out FILE]
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from svae_bench.records.atomic import write_bytes_atomic
from svae_bench.report.collect import collect_runs, runs_frame
from svae_bench.report.comparison import load_reference
from svae_bench.report.markup import model_name
from svae_bench.report.stats import welch_pvalue

MODELS = ("nvae", "svae")
#: the hypothesis' tolerances (issue 31): ELBO "at the paper's" within 1 nat; LL_tf then within 1
#: nat; elsewhere the LL_tf difference equals the ELBO difference within 0.5 nat
ELBO_CLOSE, LL_TF_CLOSE, GAP_CLOSE = 1.0, 1.0, 0.5


def fmt(value: float, spec: str = ".2f", signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return format(value, ("+" if signed else "") + spec)


def load(path: Path) -> pd.DataFrame:
    rows, skipped = collect_runs(path)
    for where, why in skipped:
        print(f"skipped {where}: {why}", file=sys.stderr)
    if not rows:
        raise SystemExit(f"error: no complete runs under {path}")
    runs = runs_frame(rows)
    runs = runs[(runs["task"] == "vae") & (runs["dataset"] == "mnist") & (runs["beta"] == 1.0)]
    runs = runs[runs["model"].isin(MODELS)].copy()
    if "ll_tf_example" not in runs:
        runs["ll_tf_example"] = math.nan
    return runs


def values(runs: pd.DataFrame, model: str, d: int, metric: str) -> np.ndarray:
    cell = runs[(runs["model"] == model) & (runs["latent_dim"] == d)][metric].to_numpy(dtype=float)
    return cell[np.isfinite(cell)]


def mean_std(v: np.ndarray) -> str:
    if not v.size:
        return "–"
    std = float(v.std(ddof=1)) if v.size > 1 else math.nan
    return f"{fmt(float(v.mean()))} ± {fmt(std)} ({v.size})"


def order(a: float, b: float) -> str:
    if not (math.isfinite(a) and math.isfinite(b)) or a == b:
        return "–"
    return "S > N" if b > a else "S < N"


def pvalue(p: float) -> str:
    return "–" if not math.isfinite(p) else (f"{p:.1e}" if p < 0.001 else f"{p:.3f}")


def render(runs: pd.DataFrame) -> str:
    ref = load_reference()
    paper = {
        (r.model, int(r.d), r.metric): (float(r.mean), float(r.std))
        for r in ref[ref["table"] == "table1"].itertuples(index=False)
    }
    dims = sorted(int(d) for d in runs["latent_dim"].unique())
    head = [
        "d",
        "model",
        "paper LL",
        "our LL_tf",
        "Δ LL_tf",
        "our LL",
        "Δ LL",
        "paper ELBO",
        "our ELBO",
        "Δ ELBO",
        "within 2σ / 1 nat: ELBO, LL_tf",
        "hypothesis check",
    ]
    lines = ["| " + " | ".join(head) + " |", "|---:|---|" + "---:|" * (len(head) - 2)]
    checks: list[bool] = []
    for d in dims:
        for model in MODELS:
            if (model, d, "LL") not in paper:
                continue
            (p_ll, p_ll_std), (p_elbo, p_elbo_std) = paper[(model, d, "LL")], paper[(model, d, "ELBO")]
            tf, ll, elbo = (values(runs, model, d, m) for m in ("ll_tf_example", "ll", "elbo"))
            d_tf = float(tf.mean()) - p_ll if tf.size else math.nan
            d_ll = float(ll.mean()) - p_ll if ll.size else math.nan
            d_elbo = float(elbo.mean()) - p_elbo if elbo.size else math.nan

            def near(diff: float, std: float) -> str:
                bound = 2 * std if math.isfinite(std) else 1.0
                return "–" if not math.isfinite(diff) else ("yes" if abs(diff) <= bound else "no")

            if not (math.isfinite(d_tf) and math.isfinite(d_elbo)):
                check = "–"
            elif abs(d_elbo) <= ELBO_CLOSE:
                ok = abs(d_tf) <= LL_TF_CLOSE
                checks.append(ok)
                check = f"ELBO within 1: LL_tf within 1 {'yes' if ok else 'NO'} ({fmt(d_tf, signed=True)})"
            else:
                gap = d_tf - d_elbo
                ok = abs(gap) <= GAP_CLOSE
                checks.append(ok)
                check = f"Δ LL_tf − Δ ELBO = {fmt(gap, signed=True)}: within 0.5 {'yes' if ok else 'NO'}"
            cells = [
                str(d),
                model_name(model),
                fmt(p_ll) + (f" ± {fmt(p_ll_std)}" if math.isfinite(p_ll_std) else ""),
                mean_std(tf),
                fmt(d_tf, signed=True),
                mean_std(ll),
                fmt(d_ll, signed=True),
                fmt(p_elbo),
                mean_std(elbo),
                fmt(d_elbo, signed=True),
                f"{near(d_elbo, p_elbo_std)}, {near(d_tf, p_ll_std)}",
                check,
            ]
            lines.append("| " + " | ".join(cells) + " |")
    held = sum(checks)
    lines += ["", f"Hypothesis check: holds in {held} of {len(checks)} cells.", ""]
    head2 = ["d", "paper order (LL)", "ours, LL_tf", "p", "ours, LL", "p", "paper order (ELBO)", "ours, ELBO", "p"]
    lines += ["| " + " | ".join(head2) + " |", "|---:|" + "---:|" * (len(head2) - 1)]
    for d in dims:
        if ("nvae", d, "LL") not in paper:
            continue
        row = [str(d), order(paper[("nvae", d, "LL")][0], paper[("svae", d, "LL")][0])]
        for metric in ("ll_tf_example", "ll"):
            a, b = values(runs, "nvae", d, metric), values(runs, "svae", d, metric)
            row += [
                order(float(a.mean()) if a.size else math.nan, float(b.mean()) if b.size else math.nan),
                pvalue(welch_pvalue(a, b)),
            ]
        row.append(order(paper[("nvae", d, "ELBO")][0], paper[("svae", d, "ELBO")][0]))
        a, b = values(runs, "nvae", d, "elbo"), values(runs, "svae", d, "elbo")
        row += [
            order(float(a.mean()) if a.size else math.nan, float(b.mean()) if b.size else math.nan),
            pvalue(welch_pvalue(a, b)),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    """Print (and with --out write) the comparison; returns its text, whose first line is an HTML
    comment with the command that made it (without --out)."""
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", type=Path, help="a runs folder with Table 1 records (e.g. results/mnist_paper/runs)")
    p.add_argument("--out", type=Path, default=None, help="also write the comparison to this file")
    a = p.parse_args(argv)
    if not a.runs.is_dir():
        p.error(f"{a.runs} is not a directory")
    command = " ".join(["python scripts/compare_ll_estimators.py", shlex.quote(str(a.runs))])
    text = f"<!-- made by: {command} -->\n\n" + render(load(a.runs))
    sys.stdout.write(text)
    if a.out is not None:
        write_bytes_atomic(a.out, text.encode("utf-8"))
    return text


if __name__ == "__main__":
    main()
