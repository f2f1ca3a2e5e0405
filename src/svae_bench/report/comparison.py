"""Our tables against the numbers published by Davidson et al. (2018).

The paper's numbers ship with the package (``svae_bench/report/reference.csv``, columns
table, model, d, metric, labels, mean, std; the paper gives a std for one cell only).
A table spec with a :class:`~svae_bench.report.spec.PaperComparison` says which
reference rows are its columns. :func:`build_comparisons` pairs them with a reproduced
:class:`~svae_bench.report.tables.Table` when the table is comparable: a dataset the
paper reports (MNIST), KL weight beta = 1, and both models of the spec's pair (N-VAE,
S-VAE) present.

One comparison row per (d, column) (Table 1: LL, L[q], RE, KL in nats; Table 2: k-NN
accuracy in percent per number of labels) holds, for each model, our mean +- std over
n runs, the paper's value and the difference ours - paper; then the order of the two
models in the paper and in ours (the sign of S-VAE - N-VAE), Welch's p-value for our
two samples and whether our order is the paper's ("yes" / "no"). A cell of ours is bold
where Welch's test gives p < 0.01, on the same rule as the reproduced tables.

Outputs (see :func:`render_comparison_outputs`): ``<spec>_vs_paper.csv`` (numbers),
``.tex`` (booktabs snippets) and ``.md``.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from .markup import EMPTY_LATEX, EMPTY_TEXT, Markup, fmt_number, format_mean_std, markdown_escape, model_name
from .spec import TABLE_SPECS, Column, TableSpec
from .stats import Stat, welch_pvalue
from .tables import Table, n_text, table_heading, table_label

PAPER = "Davidson et al. (2018)"


def load_reference() -> pd.DataFrame:
    """The paper's published numbers: table, model, d (str: Table 3 has "z1/z2" cells), metric,
    labels (Int64), mean, std (NaN if unknown)."""
    text = resources.files("svae_bench.report").joinpath("reference.csv").read_text(encoding="utf-8")
    frame = pd.read_csv(io.StringIO(text), dtype={"labels": "Int64"})
    frame["std"] = pd.to_numeric(frame["std"], errors="coerce")
    return frame


def reference_values(reference: pd.DataFrame, name: str) -> dict[tuple[str, int, str], tuple[float, float]]:
    """(model, d, runs.csv column) -> (mean, std) of the paper for the table spec ``name``, in display units."""
    paper = TABLE_SPECS[name].comparison
    if paper is None:
        return {}
    out: dict[tuple[str, int, str], tuple[float, float]] = {}
    for row in reference[reference["table"] == paper.reference_table].itertuples(index=False):
        column = paper.column(row.metric, None if pd.isna(row.labels) else int(row.labels))
        if column is not None:
            out[(row.model, int(row.d), column)] = (float(row.mean), float(row.std))
    return out


@dataclass
class ComparisonRow:
    d: int
    column: Column  # the table column compared
    ours: dict[str, Stat | None]  # model -> our values (display units)
    paper: dict[str, tuple[float, float]]  # model -> (mean, std); std NaN when not published
    pvalue: float  # Welch, ours; NaN when undefined
    bold: str | None  # the model whose cell is bold, if any
    pair: tuple[str, str]  # (first, second): the order is the sign of second - first

    @property
    def metric(self) -> str:
        return self.column.metric

    def diff(self, model: str) -> float:
        stat = self.ours.get(model)
        return stat.mean - self.paper[model][0] if stat is not None else math.nan

    @property
    def paper_order(self) -> float:
        first, second = self.pair
        return float(np.sign(self.paper[second][0] - self.paper[first][0]))

    @property
    def our_order(self) -> float:
        a, b = self.ours.get(self.pair[0]), self.ours.get(self.pair[1])
        return float(np.sign(b.mean - a.mean)) if a is not None and b is not None else math.nan

    @property
    def holds(self) -> bool | None:
        """Our order is the paper's; None when either is undefined (a tie or a missing model)."""
        if math.isnan(self.our_order) or self.paper_order == 0 or self.our_order == 0:
            return None
        return self.paper_order == self.our_order


@dataclass
class Comparison:
    table: Table  # the reproduced table it compares
    rows: list[ComparisonRow]

    @property
    def spec(self) -> TableSpec:
        return self.table.spec

    @property
    def pair(self) -> tuple[str, str]:
        return self.spec.pair

    @property
    def decimals(self) -> int:
        return self.table.decimals

    @property
    def columns(self) -> list[Column]:
        return list({row.metric: row.column for row in self.rows}.values())


def build_comparison(table: Table, reference: pd.DataFrame | None = None) -> Comparison | None:
    """The comparison of a reproduced table with the paper's; None when not comparable."""
    paper = table.spec.comparison
    if paper is None or table.dataset not in paper.datasets:
        return None
    if table.choice.beta != 1.0 or table.row_names != ("row",):
        return None
    pair = table.spec.pair
    if not all(model in table.models for model in pair):
        return None
    published = reference_values(load_reference() if reference is None else reference, table.spec.name)
    rows: list[ComparisonRow] = []
    for (d,) in table.rows:
        for column in table.shown_metrics:
            metric = column.metric
            if not all((model, d, metric) in published for model in pair):
                continue
            ours = {model: table.stat((d,), (model, metric)) for model in pair}
            a, b = ours[pair[0]], ours[pair[1]]
            pvalue = welch_pvalue(a.values, b.values) if a is not None and b is not None else math.nan
            bold = next(
                (model for (row, (model, m)) in table.bold if row == (d,) and m == metric and model in pair), None
            )
            paper_values = {m: published[(m, d, metric)] for m in pair}
            rows.append(ComparisonRow(d, column, ours, paper_values, pvalue, bold, pair))
    return Comparison(table, rows) if rows else None


def build_comparisons(tables: list[Table], reference: pd.DataFrame | None = None) -> list[Comparison]:
    reference = load_reference() if reference is None else reference
    out = [build_comparison(t, reference) for t in tables]
    return [c for c in out if c is not None]


# --------------------------------------------------------------------------- formatting


def _initial(model: str) -> str:
    return model_name(model)[0]


def order_text(sign: float, pair: tuple[str, str], latex: bool) -> str:
    """ "S > N" (the second model of the pair ahead), "S < N", "S = N", or empty."""
    if math.isnan(sign):
        return EMPTY_LATEX if latex else EMPTY_TEXT
    first, second = _initial(pair[0]), _initial(pair[1])
    if sign == 0:
        return f"{second} = {first}"
    relation = (">" if sign > 0 else "<") if not latex else ("$>$" if sign > 0 else "$<$")
    return f"{second} {relation} {first}"


def holds_text(holds: bool | None, latex: bool) -> str:
    if holds is None:
        return EMPTY_LATEX if latex else EMPTY_TEXT
    return "yes" if holds else "no"


def pvalue_text(p: float, latex: bool) -> str:
    if math.isnan(p):
        return EMPTY_LATEX if latex else EMPTY_TEXT
    text = f"{p:.1e}" if p < 0.001 else f"{p:.3f}"
    return f"${text}$" if latex else text


def paper_text(mean: float, std: float, decimals: int, latex: bool) -> str:
    """The published value: "mean" or "mean ± std" where the paper gives a std."""
    text = fmt_number(mean, decimals)
    if not math.isnan(std):
        text += (r" \pm " if latex else " ± ") + fmt_number(std, decimals)
    return f"${text}$" if latex else text


def diff_text(value: float, decimals: int, latex: bool) -> str:
    if math.isnan(value):
        return EMPTY_LATEX if latex else EMPTY_TEXT
    text = ("+" if value > 0 else "") + fmt_number(value, decimals)
    return f"${text}$" if latex else text


def ours_text(row: ComparisonRow, model: str, decimals: int, latex: bool) -> str:
    stat = row.ours.get(model)
    if stat is None:
        return EMPTY_LATEX if latex else EMPTY_TEXT
    return format_mean_std(stat, decimals, latex=latex, bold=row.bold == model)


def comparison_caption(comp: Comparison, latex: bool) -> str:
    mk = Markup(latex)
    paper = comp.spec.comparison
    assert paper is not None
    pm = mk.math(r"\pm", "±")
    p_rule = mk.math("p < 0.01", "p < 0.01")
    delta = mk.math(r"\Delta", "Δ")
    minus = mk.math("-", "−")
    first, second = (mk.text(model_name(m)) for m in comp.pair)
    lo, hi = comp.table.n_range()
    n = n_text(comp.table, mk) if lo == hi else mk.math(f"n = {lo}", f"n = {lo}") + "--" + str(hi)
    return (
        f"{table_heading(comp.table, mk)} against {PAPER}, {comp.spec.title}: {paper.what(comp.columns, mk)}. "
        f"Ours: mean {pm} std over {n} runs; "
        f"paper: published mean (std where published); {delta} = ours {minus} paper. "
        f"Order: sign of {second} {minus} {first}; holds: our order is the paper's. Bold: the better of ours "
        f"({paper.better(mk)}) where a Welch t-test gives {p_rule}; p is that test's p-value. "
        f"Source: {mk.code(comp.table.source)}."
    )


def _cells(comp: Comparison, row: ComparisonRow, latex: bool) -> list[str]:
    dec = comp.decimals
    cells = [str(row.d), row.column.paper_header(latex)]
    for model in comp.pair:
        cells += [
            ours_text(row, model, dec, latex),
            paper_text(*row.paper[model], dec, latex),
            diff_text(row.diff(model), dec, latex),
        ]
    cells += [
        order_text(row.paper_order, comp.pair, latex),
        order_text(row.our_order, comp.pair, latex),
        pvalue_text(row.pvalue, latex),
        holds_text(row.holds, latex),
    ]
    return cells


def render_comparison_latex(comp: Comparison) -> str:
    """A booktabs ``table`` environment (needs booktabs and graphicx)."""
    groups = [rf"\multicolumn{{3}}{{c}}{{{model_name(m)}}}" for m in comp.pair] + [r"\multicolumn{4}{c}{order}"]
    rules = [r"\cmidrule(lr){3-5}", r"\cmidrule(lr){6-8}", r"\cmidrule(lr){9-12}"]
    header = [comp.spec.row[2], "metric"] + ["ours", "paper", r"$\Delta$"] * 2 + ["paper", "ours", "$p$", "holds"]
    slug = table_label(comp.table).split("-", 1)[1]
    lines = [
        r"\begin{table}[htbp]",
        r"\centering",
        r"\small",
        rf"\caption{{{comparison_caption(comp, latex=True)}}}",
        rf"\label{{tab:{comp.spec.name}-vs-paper-{slug}}}",
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
        f"### {comp.spec.title} against the paper: {markdown_escape(table.dataset)} "
        f"(experiment {markdown_escape(table.experiment)})"
    )
    header = [comp.spec.row[1], "metric"] + [f"{model_name(m)} {h}" for m in comp.pair for h in ("ours", "paper", "Δ")]
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
            comp.spec.row[1]: row.d,
            "metric": row.metric,
        }
        for model in comp.pair:
            stat = row.ours.get(model) or Stat(np.empty(0))
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
    """File name -> content for <spec>_vs_paper.{csv,tex,md}; empty when nothing is comparable."""
    out: dict[str, str] = {}
    for name in TABLE_SPECS:
        comps = [c for c in comparisons if c.spec.name == name]
        if not comps:
            continue
        frame = pd.concat([comparison_frame(c) for c in comps], ignore_index=True)
        out[f"{name}_vs_paper.csv"] = frame.to_csv(index=False)
        out[f"{name}_vs_paper.tex"] = "\n".join(render_comparison_latex(c) for c in comps)
        out[f"{name}_vs_paper.md"] = "\n".join(render_comparison_markdown(c) for c in comps)
    return out
