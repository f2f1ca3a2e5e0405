"""Our Tables 1 and 2 against the numbers published by Davidson et al. (2018).

The paper's numbers ship with the package (``svae_bench/reference.csv``, columns
table, model, d, metric, labels, mean, std; the paper gives a std for one cell
only). :func:`build_comparisons` pairs them with a reproduced
:class:`~svae_bench.tables.Table` when the table is comparable: dataset
``mnist``, KL weight beta = 1, and both the N-VAE and the S-VAE present.

One comparison row per (d, metric) (Table 1: LL, L[q], RE, KL in nats; Table 2:
k-NN accuracy in percent per number of labels) holds, for each model, our
mean +- std over n runs, the paper's value and the difference ours - paper;
then the order of the two models in the paper and in ours (the sign of
S-VAE - N-VAE), Welch's p-value for our two samples and whether our order
is the paper's ("yes" / "no"). A cell of ours is bold where Welch's test gives
p < 0.01, on the same rule as the reproduced tables (the better one: higher LL,
L[q], RE, k-NN accuracy; KL is never bold).

Outputs (see :func:`render_comparison_outputs`): ``table{1,2}_vs_paper.csv``
(numbers), ``.tex`` (booktabs snippets) and ``.md``.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from . import tables as T

PAPER = "Davidson et al. (2018)"
COMPARED = ("nvae", "svae")
#: reference.csv metric name -> runs.csv column (Table 1)
TABLE1_REFERENCE_METRICS = {"LL": "ll", "ELBO": "elbo", "RE": "re", "KL": "kl"}


def load_reference() -> pd.DataFrame:
    """The paper's published numbers: table, model, d (str: Table 3 has "z1/z2" cells), metric,
    labels (Int64), mean, std (NaN if unknown)."""
    text = resources.files("svae_bench.report").joinpath("reference.csv").read_text(encoding="utf-8")
    frame = pd.read_csv(io.StringIO(text), dtype={"labels": "Int64"})
    frame["std"] = pd.to_numeric(frame["std"], errors="coerce")
    return frame


def reference_values(reference: pd.DataFrame, number: int) -> dict[tuple[str, int, str], tuple[float, float]]:
    """(model, d, runs.csv metric column) -> (mean, std) for Table ``number`` (1 or 2), in display units."""
    out: dict[tuple[str, int, str], tuple[float, float]] = {}
    for row in reference[reference["table"] == f"table{number}"].itertuples(index=False):
        if number == 1:
            metric = TABLE1_REFERENCE_METRICS.get(row.metric)
        else:
            metric = f"knn_acc_{int(row.labels)}" if row.metric == "knn_acc" and not pd.isna(row.labels) else None
        if metric is not None:
            out[(row.model, int(row.d), metric)] = (float(row.mean), float(row.std))
    return out


@dataclass
class ComparisonRow:
    d: int
    metric: str  # runs.csv column: ll, elbo, re, kl, knn_acc_<labels>
    ours: dict[str, T.Stat | None]  # model -> our values (display units)
    paper: dict[str, tuple[float, float]]  # model -> (mean, std); std NaN when not published
    pvalue: float  # Welch, ours; NaN when undefined
    bold: str | None  # the model whose cell is bold, if any

    def diff(self, model: str) -> float:
        stat = self.ours.get(model)
        return stat.mean - self.paper[model][0] if stat is not None else math.nan

    @property
    def paper_order(self) -> float:
        return float(np.sign(self.paper["svae"][0] - self.paper["nvae"][0]))

    @property
    def our_order(self) -> float:
        a, b = self.ours.get("nvae"), self.ours.get("svae")
        return float(np.sign(b.mean - a.mean)) if a is not None and b is not None else math.nan

    @property
    def holds(self) -> bool | None:
        """Our order is the paper's; None when either is undefined (a tie or a missing model)."""
        if math.isnan(self.our_order) or self.paper_order == 0 or self.our_order == 0:
            return None
        return self.paper_order == self.our_order


@dataclass
class Comparison:
    number: int  # 1 or 2
    table: T.Table  # the reproduced table it compares
    rows: list[ComparisonRow]

    @property
    def decimals(self) -> int:
        return self.table.decimals


def build_comparison(table: T.Table, reference: pd.DataFrame | None = None) -> Comparison | None:
    """The comparison of a reproduced Table 1 or 2 with the paper's; None when not comparable."""
    if table.dataset != "mnist" or table.choice.beta != 1.0 or table.row_names != ("d",):
        return None
    if not all(model in table.models for model in COMPARED):
        return None
    published = reference_values(load_reference() if reference is None else reference, table.number)
    metrics = list(dict.fromkeys(metric for _, metric in table.columns))
    rows: list[ComparisonRow] = []
    for (d,) in table.rows:
        for metric in metrics:
            if not all((model, d, metric) in published for model in COMPARED):
                continue
            ours = {model: table.stat((d,), (model, metric)) for model in COMPARED}
            a, b = ours["nvae"], ours["svae"]
            pvalue = T.welch_pvalue(a.values, b.values) if a is not None and b is not None else math.nan
            bold = next(
                (model for (row, (model, m)) in table.bold if row == (d,) and m == metric and model in COMPARED), None
            )
            rows.append(ComparisonRow(d, metric, ours, {m: published[(m, d, metric)] for m in COMPARED}, pvalue, bold))
    return Comparison(table.number, table, rows) if rows else None


def build_comparisons(tables: list[T.Table], reference: pd.DataFrame | None = None) -> list[Comparison]:
    reference = load_reference() if reference is None else reference
    out = [build_comparison(t, reference) for t in tables]
    return [c for c in out if c is not None]


# --------------------------------------------------------------------------- formatting


def metric_label(number: int, metric: str, latex: bool) -> str:
    if number == 2:
        return f"{metric.rsplit('_', 1)[1]} labels"
    for name, plain, tex in T.TABLE1_METRICS:
        if name == metric:
            return tex if latex else plain
    return metric


def order_text(sign: float, latex: bool) -> str:
    if math.isnan(sign):
        return T.EMPTY_LATEX if latex else T.EMPTY_TEXT
    if sign == 0:
        return "S = N"
    return ("S $>$ N" if sign > 0 else "S $<$ N") if latex else ("S > N" if sign > 0 else "S < N")


def holds_text(holds: bool | None, latex: bool) -> str:
    if holds is None:
        return T.EMPTY_LATEX if latex else T.EMPTY_TEXT
    return "yes" if holds else "no"


def pvalue_text(p: float, latex: bool) -> str:
    if math.isnan(p):
        return T.EMPTY_LATEX if latex else T.EMPTY_TEXT
    text = f"{p:.1e}" if p < 0.001 else f"{p:.3f}"
    return f"${text}$" if latex else text


def paper_text(mean: float, std: float, decimals: int, latex: bool) -> str:
    """The published value: "mean" or "mean ± std" where the paper gives a std."""
    text = T.fmt_number(mean, decimals)
    if not math.isnan(std):
        text += (r" \pm " if latex else " ± ") + T.fmt_number(std, decimals)
    return f"${text}$" if latex else text


def diff_text(value: float, decimals: int, latex: bool) -> str:
    if math.isnan(value):
        return T.EMPTY_LATEX if latex else T.EMPTY_TEXT
    text = ("+" if value > 0 else "") + T.fmt_number(value, decimals)
    return f"${text}$" if latex else text


def ours_text(row: ComparisonRow, model: str, decimals: int, latex: bool) -> str:
    stat = row.ours.get(model)
    if stat is None:
        return T.EMPTY_LATEX if latex else T.EMPTY_TEXT
    return T.format_mean_std(stat, decimals, latex=latex, bold=row.bold == model)


def comparison_caption(comp: Comparison, latex: bool) -> str:
    mk = T.Markup(latex)
    table = comp.table
    pm = mk.math(r"\pm", "±")
    p_rule = mk.math("p < 0.01", "p < 0.01")
    delta = mk.math(r"\Delta", "Δ")
    if comp.number == 1:
        what = "test LL, ELBO " + mk.math(r"\mathcal{L}[q]", "L[q]") + ", RE and KL (nats)"
        better = "higher LL, " + mk.math(r"\mathcal{L}[q]", "L[q]") + ", RE; KL is not compared"
    else:
        what = "k-NN accuracy (" + mk.text("%") + ") with 100, 600 and 1000 labelled points"
        better = "higher accuracy"
    lo, hi = table.n_range()
    n = mk.math(f"n = {lo}", f"n = {lo}") if lo == hi else mk.math(f"n = {lo}", f"n = {lo}") + "--" + str(hi)
    head = f"{mk.text(table.dataset)} (experiment {mk.text(table.experiment)}{T.budget_text(table.budgets, mk)})"
    minus = mk.math("-", "−")
    return (
        f"{head} against {PAPER}, Table {comp.number}: {what}. Ours: mean {pm} std over {n} runs; "
        f"paper: published mean (std where published); {delta} = ours {minus} paper. "
        f"Order: sign of S-VAE {minus} N-VAE; holds: our order is the paper's. Bold: the better of ours "
        f"({better}) where a Welch t-test gives {p_rule}; p is that test's p-value. "
        f"Source: {mk.code(table.source)}."
    )


def _cells(comp: Comparison, row: ComparisonRow, latex: bool) -> list[str]:
    dec = comp.decimals
    cells = [str(row.d), metric_label(comp.number, row.metric, latex)]
    for model in COMPARED:
        cells += [
            ours_text(row, model, dec, latex),
            paper_text(*row.paper[model], dec, latex),
            diff_text(row.diff(model), dec, latex),
        ]
    cells += [
        order_text(row.paper_order, latex),
        order_text(row.our_order, latex),
        pvalue_text(row.pvalue, latex),
        holds_text(row.holds, latex),
    ]
    return cells


def render_comparison_latex(comp: Comparison) -> str:
    """A booktabs ``table`` environment (needs booktabs and graphicx)."""
    groups = [rf"\multicolumn{{3}}{{c}}{{{T.model_name(m)}}}" for m in COMPARED] + [r"\multicolumn{4}{c}{order}"]
    rules = [r"\cmidrule(lr){3-5}", r"\cmidrule(lr){6-8}", r"\cmidrule(lr){9-12}"]
    header = ["$d$", "metric"] + ["ours", "paper", r"$\Delta$"] * 2 + ["paper", "ours", "$p$", "holds"]
    lines = [
        r"\begin{table}[htbp]",
        r"\centering",
        r"\small",
        rf"\caption{{{comparison_caption(comp, latex=True)}}}",
        rf"\label{{tab:table{comp.number}-vs-paper-{T.table_label(comp.table).split('-', 1)[1]}}}",
        r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%",
        r"\begin{tabular}{llcccccccccc}",
        r"\toprule",
        " & ".join(["", ""] + groups) + r" \\",
        " ".join(rules),
        " & ".join(header) + r" \\",
        r"\midrule",
    ]
    previous_d = None
    for row in comp.rows:
        if previous_d is not None and row.d != previous_d:
            lines.append(r"\addlinespace")
        previous_d = row.d
        lines.append(" & ".join(_cells(comp, row, latex=True)) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", "}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def render_comparison_markdown(comp: Comparison) -> str:
    table = comp.table
    title = (
        f"### Table {comp.number} against the paper: {T.markdown_escape(table.dataset)} "
        f"(experiment {T.markdown_escape(table.experiment)})"
    )
    header = ["d", "metric"] + [f"{T.model_name(m)} {h}" for m in COMPARED for h in ("ours", "paper", "Δ")]
    header += ["paper order", "our order", "p (Welch)", "holds"]
    lines = [
        title,
        "",
        comparison_caption(comp, latex=False),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---:" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(_cells(comp, row, latex=False)) + " |" for row in comp.rows]
    return "\n".join(lines) + "\n"


def comparison_frame(comp: Comparison) -> pd.DataFrame:
    """Numeric rows: experiment, dataset, budget, d, metric, per model ours/paper/diff, orders, p, holds."""
    records: list[dict[str, Any]] = []
    for row in comp.rows:
        record: dict[str, Any] = {
            "experiment": comp.table.experiment,
            "dataset": comp.table.dataset,
            "budget": ",".join(comp.table.budgets),
            "d": row.d,
            "metric": row.metric,
        }
        for model in COMPARED:
            stat = row.ours.get(model) or T.Stat(np.empty(0))
            record.update(
                {
                    f"{model}_mean": stat.mean,
                    f"{model}_std": stat.std,
                    f"{model}_n": stat.n,
                    f"{model}_paper_mean": row.paper[model][0],
                    f"{model}_paper_std": row.paper[model][1],
                    f"{model}_diff": row.diff(model),
                }
            )
        record.update(
            {
                "paper_order": row.paper_order,
                "our_order": row.our_order,
                "welch_p": row.pvalue,
                "order_holds": "" if row.holds is None else ("yes" if row.holds else "no"),
            }
        )
        records.append(record)
    return pd.DataFrame(records)


def render_comparison_outputs(comparisons: list[Comparison]) -> dict[str, str]:
    """File name -> content for table{1,2}_vs_paper.{csv,tex,md}; empty when nothing is comparable."""
    out: dict[str, str] = {}
    for number in (1, 2):
        comps = [c for c in comparisons if c.number == number]
        if not comps:
            continue
        out[f"table{number}_vs_paper.csv"] = pd.concat([comparison_frame(c) for c in comps], ignore_index=True).to_csv(
            index=False
        )
        out[f"table{number}_vs_paper.tex"] = "\n".join(render_comparison_latex(c) for c in comps)
        out[f"table{number}_vs_paper.md"] = "\n".join(render_comparison_markdown(c) for c in comps)
    return out
