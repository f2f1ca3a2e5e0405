"""Our tables against the numbers published by Davidson et al. (2018).

The paper's numbers ship with the package (``svae_bench/report/reference.csv``, columns
table, model, d, metric, labels, mean, std; the paper gives a std for one cell only).
A table spec with a :class:`~svae_bench.report.spec.PaperComparison` says which
reference rows are its columns. :func:`build_comparisons` pairs them with a reproduced
:class:`~svae_bench.report.tables.Table` when the table is comparable: a dataset the
paper reports (MNIST), KL weight beta = 1, and every model the spec compares (N-VAE and
S-VAE; Table 3's three families) present.

One comparison row per (d, column) (Table 1: LL, L[q], RE, KL in nats; Table 2: k-NN
accuracy in percent per number of labels) holds, for each model, our mean +- std over
n runs, the paper's value and the difference ours - paper; then the order of the two
models in the paper and in ours (the sign of S-VAE - N-VAE; with more than two models, their
ranking, best first), Welch's p-value for our two samples (the best two with more models)
and whether our order is the paper's ("yes" / "no"). A cell of ours is bold
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

from .markup import (
    EMPTY_LATEX,
    EMPTY_TEXT,
    Markup,
    fmt_number,
    format_mean_std,
    latex_escape,
    markdown_escape,
    model_name,
)
from .spec import TABLE_SPECS, Column, TableSpec, parse_row, row_text
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


def reference_values(reference: pd.DataFrame, name: str) -> dict[tuple[str, Any, str], tuple[float, float]]:
    """(model, row key, runs.csv column) -> (mean, std) of the paper for the table spec ``name``, in
    display units; the row key is d (an int) or a combined key such as (z1, z2)."""
    paper = TABLE_SPECS[name].comparison
    if paper is None:
        return {}
    out: dict[tuple[str, Any, str], tuple[float, float]] = {}
    if paper.reference is not None:  # a table whose published rows ship beside reference.csv
        reference = paper.reference()
    for row in reference[reference["table"] == paper.reference_table].itertuples(index=False):
        column = paper.column(row.metric, None if pd.isna(row.labels) else int(row.labels))
        for name in (column,) if isinstance(column, str) else column or ():
            out[(row.model, parse_row(row.d), name)] = (float(row.mean), float(row.std))
    return out


def ranking(values: dict[str, float]) -> tuple[str, ...] | None:
    """The models by decreasing value; None when a value is missing or two are tied."""
    if any(math.isnan(v) for v in values.values()) or len(set(values.values())) < len(values):
        return None
    return tuple(sorted(values, key=lambda m: -values[m]))


@dataclass
class ComparisonRow:
    d: Any  # the row key: d, or a combined key such as (z1, z2)
    column: Column  # the table column compared
    ours: dict[str, Stat | None]  # model -> our values (display units)
    paper: dict[str, tuple[float, float]]  # model -> (mean, std); std NaN when not published
    pvalue: float  # Welch, ours; NaN when undefined
    bold: str | None  # the model whose cell is bold, if any
    models: tuple[str, ...]  # the compared models; for two, the order is the sign of second - first

    @property
    def metric(self) -> str:
        return self.column.metric

    def diff(self, model: str) -> float:
        stat = self.ours.get(model)
        return stat.mean - self.paper[model][0] if stat is not None else math.nan

    def _our_means(self) -> dict[str, float]:
        return {m: (s.mean if (s := self.ours.get(m)) is not None else math.nan) for m in self.models}

    @property
    def paper_order(self) -> Any:
        """Two models: the sign of second - first (a float); more: the ranking, best first (None: tie)."""
        if len(self.models) == 2:
            first, second = self.models
            return float(np.sign(self.paper[second][0] - self.paper[first][0]))
        return ranking({m: self.paper[m][0] for m in self.models})

    @property
    def our_order(self) -> Any:
        means = self._our_means()
        if len(self.models) == 2:
            a, b = (means[m] for m in self.models)
            return float(np.sign(b - a)) if not (math.isnan(a) or math.isnan(b)) else math.nan
        return ranking(means)

    @property
    def holds(self) -> bool | None:
        """Our order is the paper's; None when either is undefined (a tie or a missing model)."""
        paper, ours = self.paper_order, self.our_order
        if len(self.models) > 2:
            return None if paper is None or ours is None else paper == ours
        if math.isnan(ours) or paper == 0 or ours == 0:
            return None
        return paper == ours


@dataclass
class Comparison:
    table: Table  # the reproduced table it compares
    rows: list[ComparisonRow]

    @property
    def spec(self) -> TableSpec:
        return self.table.spec

    @property
    def models(self) -> tuple[str, ...]:
        return self.spec.compared

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
    models = table.spec.compared
    if not all(model in table.models for model in models):
        return None
    published = reference_values(load_reference() if reference is None else reference, table.spec.name)
    rows: list[ComparisonRow] = []
    for (d,) in table.rows:
        for column in compared_columns(table):
            metric = column.metric
            if not all((model, d, metric) in published for model in models):
                continue
            ours = {model: table.stat((d,), (model, metric)) for model in models}
            present = [m for _, m in sorted((s.mean, m) for m, s in ours.items() if s is not None)]
            tested = [ours[m] for m in (models if len(models) == 2 else present[-2:])]  # the pair, or our best two
            ok = len(tested) == 2 and None not in tested
            pvalue = welch_pvalue(tested[0].values, tested[1].values) if ok else math.nan  # type: ignore[union-attr]
            bold = next(
                (model for (row, (model, m)) in table.bold if row == (d,) and m == metric and model in models), None
            )
            paper_values = {m: published[(m, d, metric)] for m in models}
            rows.append(ComparisonRow(d, column, ours, paper_values, pvalue, bold, models))
    return Comparison(table, rows) if rows else None


def compared_columns(table: Table) -> list[Column]:
    """The table's columns, each followed by the compared-only columns placed after it."""
    shown = table.shown_metrics
    extra = [c for c in table.metrics.values() if c not in shown]
    out: list[Column] = []
    for column in shown:
        out += [column, *(c for c in extra if c.after == column.metric)]
    return out + [c for c in extra if c not in out]


def build_comparisons(tables: list[Table], reference: pd.DataFrame | None = None) -> list[Comparison]:
    reference = load_reference() if reference is None else reference
    out = [build_comparison(t, reference) for t in tables]
    return [c for c in out if c is not None]


# --------------------------------------------------------------------------- formatting


def _initial(model: str) -> str:
    return model_name(model)[0]


def order_text(sign: Any, models: tuple[str, ...], latex: bool) -> str:
    """Two models: "S > N" (the second ahead), "S < N", "S = N"; more: "S+N > S+S > N+N"; or empty."""
    if len(models) > 2:
        if sign is None:
            return EMPTY_LATEX if latex else EMPTY_TEXT
        escape = latex_escape if latex else markdown_escape
        return (" $>$ " if latex else " > ").join(escape(model_name(m)) for m in sign)
    if math.isnan(sign):
        return EMPTY_LATEX if latex else EMPTY_TEXT
    first, second = (Markup(latex).text(_initial(m)) for m in models[:2])
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
    names = [mk.text(model_name(m)) for m in comp.models]
    order = f"sign of {names[1]} {minus} {names[0]}" if len(names) == 2 else "the models by decreasing mean, best first"
    if len(names) == 2:
        bold = f"the better of ours ({paper.better(mk)}) where a Welch t-test gives {p_rule}; p is that test's p-value"
    else:
        bold = (
            f"the best of ours ({paper.better(mk)}) where a Welch t-test against each other gives {p_rule}; "
            "p is that test's p-value for our best two"
        )
    lo, hi = comp.table.n_range()
    n = n_text(comp.table, mk) if lo == hi else mk.math(f"n = {lo}", f"n = {lo}") + "--" + str(hi)
    return (
        f"{table_heading(comp.table, mk)} against {PAPER}, {comp.spec.title}: {paper.what(comp.columns, mk)}. "
        f"Ours: mean {pm} std over {n} runs; "
        f"paper: published mean (std where published); {delta} = ours {minus} paper. "
        f"Order: {order}; holds: our order is the paper's. Bold: {bold}. "
        f"Source: {mk.code(comp.table.source)}."
        + (f" {note}" if paper.note is not None and (note := paper.note(comp.columns, mk)) else "")
    )


def _cells(comp: Comparison, row: ComparisonRow, latex: bool) -> list[str]:
    dec = comp.decimals
    cells = [Markup(latex).text(row_text(row.d)), row.column.paper_header(latex)]
    for model in comp.models:
        cells += [
            ours_text(row, model, dec, latex),
            paper_text(*row.paper[model], dec, latex),
            diff_text(row.diff(model), dec, latex),
        ]
    cells += [
        order_text(row.paper_order, comp.models, latex),
        order_text(row.our_order, comp.models, latex),
        pvalue_text(row.pvalue, latex),
        holds_text(row.holds, latex),
    ]
    return cells


def render_comparison_latex(comp: Comparison) -> str:
    """A booktabs ``table`` environment (needs booktabs and graphicx)."""
    k = len(comp.models)
    groups = [rf"\multicolumn{{3}}{{c}}{{{latex_escape(model_name(m))}}}" for m in comp.models]
    groups.append(r"\multicolumn{4}{c}{order}")
    rules = [rf"\cmidrule(lr){{{3 + 3 * i}-{5 + 3 * i}}}" for i in range(k)] + [
        rf"\cmidrule(lr){{{3 + 3 * k}-{6 + 3 * k}}}"
    ]
    header = [comp.spec.row[2], "metric"] + ["ours", "paper", r"$\Delta$"] * k + ["paper", "ours", "$p$", "holds"]
    slug = table_label(comp.table).split("-", 1)[1]
    lines = [
        r"\begin{table}[htbp]",
        r"\centering",
        r"\small",
        rf"\caption{{{comparison_caption(comp, latex=True)}}}",
        rf"\label{{tab:{comp.spec.name}-vs-paper-{slug}}}",
        r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%",
        rf"\begin{{tabular}}{{ll{'c' * (3 * k + 4)}}}",
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
    header = [comp.spec.row[1], "metric"]
    header += [f"{markdown_escape(model_name(m))} {h}" for m in comp.models for h in ("ours", "paper", "Δ")]
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
            comp.spec.row[1]: row_text(row.d) if isinstance(row.d, tuple) else row.d,
            "metric": row.metric,
        }
        for model in comp.models:
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
        paper_order, our_order = row.paper_order, row.our_order
        if len(comp.models) > 2:
            paper_order, our_order = (">".join(o) if o is not None else "" for o in (paper_order, our_order))
        record.update(
            {
                "paper_order": paper_order,
                "our_order": our_order,
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
