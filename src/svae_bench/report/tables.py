"""Build and render any registered table (:mod:`svae_bench.report.spec`) from the runs frame.

``svae-bench tables --runs DIR --out DIR`` collects every ``result.json`` under
``--runs`` (:mod:`svae_bench.report.collect`) and writes into ``--out`` (created if
missing; every file atomically, nothing when there is no complete run):

- ``runs.csv``: one row per complete run (see :func:`~svae_bench.report.collect.runs_frame`);
- ``summary.csv``: mean, std (ddof=1; empty when n = 1) and n per (experiment, dataset,
  model, key fields, metric), long format;
- ``<spec>.{csv,tex,md}`` for every registered table of the tasks present: ``table1``
  (LL, L[q], RE, KL in nats, "mean ± std", 2 decimals) and ``table2`` (k-NN accuracy in
  percent, 1 decimal) for VAE runs; AE runs have no LL, L[q] or KL: those cells are
  empty ("–", ``--`` in LaTeX);
- ``<spec>_vs_paper.{csv,tex,md}``: ours against the published numbers of Davidson et al.
  (2018) where comparable (:mod:`svae_bench.report.comparison`);
- ``tables.tex``: a standalone LaTeX document with all tables (:func:`latex_document`);
  the ``*.tex`` snippets need ``booktabs`` and ``graphicx`` (a table wider than the line
  is scaled down to the line width) in the including document.

The CSV tables keep numbers: ``<model>_<column>_{mean,std,n}`` in display units, one row
per (experiment, dataset, beta, d).

Grouping. There is one table per spec and (experiment, dataset): runs of different
experiments are never averaged together. Within a set, the KL weight beta is chosen as
follows (the caption says which case applies; ``ae`` runs have no KL term, so their beta
is ignored when choosing):

- one beta value among the runs: all runs, rows keyed by d;
- several betas, some equal to 1: only beta = 1 runs (plus every ``ae`` run);
  the other betas remain in ``runs.csv`` and ``summary.csv``;
- several betas, none equal to 1: all runs, rows keyed by (beta, d).

Bold. In a column the spec compares, the cell of the best of its compared models (N-VAE and
S-VAE for Tables 1 and 2) is bold where it and every other compared model have >= 2 runs and
a Welch t-test (:func:`~svae_bench.report.stats.welch_significant`) against each gives
p < 0.01; higher is better. The renderers take a ``bold`` set of
(row, column) keys so other rules can be plugged in.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..records.record import unprintable
from .collect import TASK_COLUMN
from .markup import (
    EMPTY_LATEX,
    EMPTY_TEXT,
    Markup,
    budget_text,
    format_mean_std,
    latex_escape,
    markdown_escape,
    model_name,
    ordered_models,
)
from .spec import Column, TableSpec, row_columns, row_text, specs_for
from .stats import Stat, welch_significant

Row = tuple[Any, ...]  # (d,) or (beta, d): the spec's row key, see BetaChoice
Col = tuple[str, str]  # (model, metric column in runs.csv)
Cell = tuple[Row, Col]


@dataclass(frozen=True)
class BetaChoice:
    """Which runs of one (experiment, dataset) a table shows; see the module docstring.

    Rows are keyed by ``("row",)`` (the spec's row column, e.g. d) or ``("beta", "row")``.
    """

    mode: str  # "single", "only-1", "by-beta", or "none" (the records have no beta)
    betas: tuple[float, ...]  # betas present (of non-ae runs when there are any)

    @property
    def row_names(self) -> tuple[str, ...]:
        return ("beta", "row") if self.mode == "by-beta" else ("row",)

    @property
    def beta(self) -> float:
        """The beta of every row, NaN when rows are keyed by beta or there is none."""
        return {"single": self.betas[0] if self.betas else math.nan, "only-1": 1.0}.get(self.mode, math.nan)


@dataclass
class Table:
    """One built table: rows (d or (beta, d)) by columns (model, metric), laid out by its spec."""

    spec: TableSpec
    experiment: str
    dataset: str
    rows: list[Row]  # (row,) or (beta, row), see row_names
    columns: list[Col]
    metrics: dict[str, Column]  # metric column -> its spec
    cells: dict[Cell, Stat]
    choice: BetaChoice
    source: str  # the runs directory, for the caption
    bold: set[Cell] = field(default_factory=set)
    budgets: tuple[str, ...] = ()  # training budgets of the runs shown (conf/budget)

    @property
    def decimals(self) -> int:
        return self.spec.decimals

    @property
    def row_names(self) -> tuple[str, ...]:
        return self.choice.row_names

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(model for model, _ in self.columns))

    @property
    def shown_metrics(self) -> list[Column]:
        return [self.metrics[m] for m in dict.fromkeys(metric for _, metric in self.columns)]

    def stat(self, row: Row, col: Col) -> Stat | None:
        stat = self.cells.get((row, col))
        return stat if stat is not None and stat.n else None

    def n_range(self) -> tuple[int, int]:
        ns = [s.n for s in self.cells.values() if s.n]
        return (min(ns), max(ns)) if ns else (0, 0)


def _fmt_beta(beta: float) -> str:
    return f"{beta:g}"


def select_beta(group: pd.DataFrame) -> tuple[pd.DataFrame, BetaChoice]:
    """Apply the beta rule of the module docstring: the runs to show and the choice made."""
    if "beta" not in group or group["beta"].isna().all():
        return group, BetaChoice("none", ())
    non_ae = group[group["model"] != "ae"]
    betas = tuple(sorted(set((non_ae if len(non_ae) else group)["beta"])))
    if len(betas) == 1:
        return group, BetaChoice("single", betas)
    if 1.0 in betas:
        keep = (group["beta"] == 1.0) | (group["model"] == "ae")
        return group[keep], BetaChoice("only-1", betas)
    return group, BetaChoice("by-beta", betas)


def _plain(value: Any) -> Any:
    return value if isinstance(value, str) else int(value)


def _row_key(spec: TableSpec, row_names: tuple[str, ...], values: Sequence[Any]) -> Row:
    """Row keys as plain Python values: beta a float, the row key an int (a string stays a string,
    a combined key a tuple of them)."""
    values = list(values)
    key: list[Any] = []
    for name in row_names:
        if name == "beta":
            key.append(float(values.pop(0)))
        elif isinstance(spec.row[0], tuple):
            key.append(tuple(_plain(values.pop(0)) for _ in spec.row[0]))
        else:
            key.append(_plain(values.pop(0)))
    return tuple(key)


def _row_cols(spec: TableSpec, row_names: tuple[str, ...]) -> list[str]:
    return [c for n in row_names for c in (["beta"] if n == "beta" else row_columns(spec))]


def build_table(spec: TableSpec, group: pd.DataFrame, experiment: str, dataset: str, source: str) -> Table:
    """The table ``spec`` for the runs of one (experiment, dataset)."""
    selected, choice = select_beta(group)
    metrics = {c.metric: c for c in spec.columns(selected)}
    names = list(metrics)
    extra = [c for c in (spec.compared_only(selected) if spec.compared_only else ()) if c.metric in selected]
    extra = [c for c in extra if selected[c.metric].notna().any() and c.metric not in metrics]
    if spec.measured_models_only:
        measured = selected[names].notna().any(axis=1) if names else pd.Series(False, index=selected.index)
        models = ordered_models(selected.loc[measured, "model"])
    else:
        models = ordered_models(selected["model"])
    cells: dict[Cell, Stat] = {}
    for (model, *keys), frame in selected.groupby(["model", *_row_cols(spec, choice.row_names)]):
        row = _row_key(spec, choice.row_names, keys)
        for metric in [*names, *(c.metric for c in extra)]:
            values = frame[metric].to_numpy(dtype=float) * spec.scale
            cells[(row, (model, metric))] = Stat(values[np.isfinite(values)])
    columns = [(model, metric) for model in models for metric in names]
    rows = sorted({row for (row, col), stat in cells.items() if stat.n and col in columns})
    budgets = tuple(sorted(set(selected["budget"]))) if "budget" in selected else ()
    metrics.update({c.metric: c for c in extra})  # compared with the paper, not shown: not in ``columns``
    table = Table(spec, experiment, dataset, rows, columns, metrics, cells, choice, source, budgets=budgets)
    table.bold = default_bold(table)
    return table


def default_bold(table: Table) -> set[Cell]:
    """Cells to bold: the best (highest mean) of the spec's compared models where Welch's test
    against each other compared model gives p < 0.01, in the columns the spec compares."""
    bold: set[Cell] = set()
    for row in table.rows:
        for column in table.metrics.values():  # the shown ones, and those compared with the paper only
            if not column.compare:
                continue
            stats = [table.stat(row, (model, column.metric)) for model in table.spec.compared]
            if any(stat is None for stat in stats):
                continue
            best = max(range(len(stats)), key=lambda i: stats[i].mean)  # type: ignore[union-attr]
            others = [stat for i, stat in enumerate(stats) if i != best]
            if all(welch_significant(stats[best].values, other.values) for other in others):  # type: ignore[union-attr]
                bold.add((row, (table.spec.compared[best], column.metric)))
    return bold


def build_tables(runs: pd.DataFrame, source: str) -> list[list[Table]]:
    """For every (experiment, dataset) in sorted order, the tables of its task's registered specs."""
    out: list[list[Table]] = []
    for (experiment, dataset), group in runs.groupby(["experiment", "dataset"], sort=True):
        for task in dict.fromkeys(group[TASK_COLUMN]):
            runs_of_task = group[group[TASK_COLUMN] == task]
            out.append([build_table(spec, runs_of_task, experiment, dataset, source) for spec in specs_for(task)])
    return out


# --------------------------------------------------------------------------- rendering


def _key_labels(table: Table, latex: bool) -> list[str]:
    row_label = table.spec.row[2 if latex else 1]
    return [(r"$\beta$" if latex else "β") if n == "beta" else row_label for n in table.row_names]


def _row_label(table: Table, row: Row, latex: bool) -> list[str]:
    """The row's key cells, escaped: a row key can be a data set's name (Table 4)."""
    mk = Markup(latex)
    return [_fmt_beta(v) if n == "beta" else mk.text(row_text(v)) for n, v in zip(table.row_names, row)]


def _beta_note(choice: BetaChoice, mk: Markup) -> str:
    values = ", ".join(_fmt_beta(b) for b in choice.betas)
    beta = mk.math(r"\beta", "β")
    beta_is_1 = mk.math(r"\beta = 1", "β = 1")
    listed = mk.math(r"\beta \in \{" + values + r"\}", "β ∈ {" + values + "}")
    if choice.mode == "none":
        return ""
    if choice.mode == "single":
        value = _fmt_beta(choice.beta)
        return "All runs have " + mk.math(r"\beta = " + value, "β = " + value) + "."
    if choice.mode == "only-1":
        return f"Only runs with {beta_is_1} are shown ({listed} present; the others are in summary.csv)."
    return f"No runs with {beta_is_1}: rows are keyed by {beta} ({listed})."


def n_text(table: Table, mk: Markup) -> str:
    """ "n = 3" or "n = 1–3": the runs per cell."""
    lo, hi = table.n_range()
    if lo == hi:
        return mk.math(f"n = {lo}", f"n = {lo}")
    return mk.math(f"n = {lo}", f"n = {lo}") + ("--" if mk.latex else "–") + mk.math(str(hi), str(hi))


def table_heading(table: Table, mk: Markup) -> str:
    """ "mnist (experiment table1_laptop, budget laptop)"."""
    return f"{mk.text(table.dataset)} (experiment {mk.text(table.experiment)}{budget_text(table.budgets, mk)})"


def caption(table: Table, latex: bool) -> str:
    """The caption: content, runs per cell, beta choice, bold rule and source directory."""
    mk = Markup(latex)
    spec = table.spec
    pm = mk.math(r"\pm", "±")
    names = tuple(mk.text(model_name(m)) for m in spec.compared)
    what = spec.what(table.shown_metrics, mk)
    runs = "run" if table.n_range()[1] == 1 else "runs"
    sentences = [
        f"{table_heading(table, mk)}: {what}, mean {pm} std over {n_text(table, mk)} {runs} per cell.",
        _beta_note(table.choice, mk),
        spec.bold_rule(names, mk),
        f"Source: {mk.code(table.source)}.",
    ]
    return " ".join(s for s in sentences if s)


def table_label(table: Table) -> str:
    """The LaTeX label, e.g. ``tab:table1-table1_laptop-mnist`` with non-alphanumerics as dashes."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{table.experiment}-{table.dataset}").strip("-")
    return f"tab:{table.spec.name}-{slug}"


def _cell(table: Table, row: Row, col: Col, bold: set[Cell], latex: bool) -> str:
    stat = table.stat(row, col)
    if stat is None:
        return EMPTY_LATEX if latex else EMPTY_TEXT
    return format_mean_std(stat, table.decimals, latex=latex, bold=(row, col) in bold)


def _one_line(text: str) -> str:
    """``text`` for a LaTeX comment: a line break in it would end the comment."""
    return "".join(" " if unprintable(c) else c for c in text)


def render_latex(table: Table, bold: set[Cell] | None = None) -> str:
    """A booktabs ``table`` environment; ``bold`` defaults to ``table.bold``."""
    bold = table.bold if bold is None else bold
    if not table.rows or not table.columns:
        return f"% {table.spec.title}: no data for {_one_line(table.dataset)} ({_one_line(table.experiment)})\n"
    keys = len(table.row_names)
    metrics = table.shown_metrics
    models = table.models
    spec = "l" * keys + "".join("c" * len(metrics) for _ in models)
    groups, rules = [], []
    for i, model in enumerate(models):
        start = keys + 1 + i * len(metrics)
        groups.append(rf"\multicolumn{{{len(metrics)}}}{{c}}{{{latex_escape(model_name(model))}}}")
        rules.append(rf"\cmidrule(lr){{{start}-{start + len(metrics) - 1}}}")
    header2 = _key_labels(table, latex=True) + [m.header(latex=True) for _ in models for m in metrics]
    lines = [
        r"\begin{table}[htbp]",
        r"\centering",
        r"\small",
        rf"\caption{{{caption(table, latex=True)}}}",
        rf"\label{{{table_label(table)}}}",
        # Shrink to the line width only when wider (Table 1 with four models has 16 columns).
        r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join([""] * keys + groups) + r" \\",
        " ".join(rules),
        " & ".join(header2) + r" \\",
        r"\midrule",
    ]
    for row in table.rows:
        cells = _row_label(table, row, latex=True) + [_cell(table, row, col, bold, latex=True) for col in table.columns]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", "}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def render_markdown(table: Table, bold: set[Cell] | None = None) -> str:
    """A heading, the caption and a pipe table; ``bold`` defaults to ``table.bold``."""
    bold = table.bold if bold is None else bold
    title = f"### {table.spec.title}: {markdown_escape(table.dataset)} (experiment {markdown_escape(table.experiment)})"
    if not table.rows or not table.columns:
        return f"{title}\n\nNo data ({table.spec.empty_note}). Source: {Markup(False).code(table.source)}.\n"
    header = _key_labels(table, latex=False) + [
        f"{markdown_escape(model_name(m))} {table.metrics[metric].header(latex=False)}" for m, metric in table.columns
    ]
    lines = [
        title,
        "",
        caption(table, latex=False),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---:" for _ in header) + "|",
    ]
    for row in table.rows:
        cells = _row_label(table, row, latex=False) + [
            _cell(table, row, col, bold, latex=False) for col in table.columns
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def table_frame(table: Table) -> pd.DataFrame:
    """Numeric CSV rows: experiment, dataset, beta (if the runs have one), the row key (e.g. d), then
    <model>_<column>_{mean,std,n}."""
    records = []
    for row in table.rows:
        keys = dict(zip(table.row_names, row))
        record: dict[str, Any] = {"experiment": table.experiment, "dataset": table.dataset}
        if table.choice.mode != "none":
            record["beta"] = keys.get("beta", table.choice.beta)
        record[table.spec.row[1]] = row_text(keys["row"]) if isinstance(keys["row"], tuple) else keys["row"]
        for col in table.columns:
            model, metric = col
            stat = table.cells.get((row, col)) or Stat(np.empty(0))
            prefix = f"{model}_{table.metrics[metric].csv}"
            record.update({f"{prefix}_mean": stat.mean, f"{prefix}_std": stat.std, f"{prefix}_n": stat.n})
        records.append(record)
    return pd.DataFrame(records)


def tables_csv(tables: Sequence[Table]) -> str:
    """One CSV for the tables of one spec (all (experiment, dataset) sets stacked)."""
    frames = [table_frame(t) for t in tables if t.rows and t.columns]
    if not frames:
        return f"experiment,dataset,beta,{tables[0].spec.row[1] if tables else 'd'}\n"
    frame = pd.concat(frames, ignore_index=True)
    for name in frame.columns:
        if name.endswith("_n"):
            frame[name] = frame[name].fillna(0).astype(int)
    return frame.to_csv(index=False)


def latex_document(body: str) -> str:
    """Wrap table snippets into a standalone, compilable LaTeX document."""
    return "\n".join(
        [
            r"\documentclass{article}",
            r"\usepackage[utf8]{inputenc}",
            r"\usepackage[landscape, margin=1.5cm]{geometry}",
            r"\usepackage{booktabs}",
            r"\usepackage{graphicx}",
            r"\begin{document}",
            body.rstrip("\n"),
            r"\end{document}",
            "",
        ]
    )
