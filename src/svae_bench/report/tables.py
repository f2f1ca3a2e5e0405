"""Collect run records into CSV summaries and the paper's Tables 1 and 2.

``svae-bench tables --runs DIR --out DIR`` reads every ``result.json`` under
``--runs`` (recursively) and writes into ``--out`` (created if missing). Tables
are built from the records alone, never inside a training run, so they can be
rebuilt at any time.

Outputs (every file is written atomically: temp file in ``--out``, then
``os.replace``; nothing is written when there is no complete run):

- ``runs.csv``: one row per complete run, sorted by experiment, dataset, model
  (order ae, nvae, svae, psvae, then others alphabetically), latent_dim, beta,
  seed. Columns: path (run directory relative to ``--runs``), experiment,
  dataset, model, latent_dim, ambient_dim, beta, seed, budget (the training
  budget, conf/budget; "none" when the run had none), epochs, best_epoch,
  train_seconds, eval_seconds, elbo, re, kl, ll (nats) and knn_acc_<labels>
  (fractions in [0, 1]) for every label count found in any run.
- ``summary.csv``: long format, one row per (experiment, dataset, model,
  latent_dim, beta, metric) with mean, std (sample std, ddof=1; empty when
  n = 1) and n (number of runs with that metric).
- ``table1.{csv,tex,md}``: Table 1 layout. Rows d = latent_dim; for each model
  the columns LL, L[q] (ELBO), RE, KL as "mean ± std" (2 decimals). AE runs
  have no LL, L[q] or KL: those cells are empty ("–", ``--`` in LaTeX).
- ``table2.{csv,tex,md}``: Table 2 layout. Rows d; for each model one column
  per number of labelled points with the k-NN accuracy in percent (1 decimal).
- ``table{1,2}_vs_paper.{csv,tex,md}``: for MNIST runs at beta = 1 with both
  N-VAE and S-VAE, ours against the published numbers of Davidson et al.
  (2018): see :mod:`svae_bench.comparison`;
- ``tables.tex``: a standalone LaTeX document with all tables
  (see :func:`latex_document`); the ``table*.tex`` files are snippets that
  need ``booktabs`` and ``graphicx`` (a table wider than the line is scaled
  down to the line width) in the including document.

The CSV tables keep numbers: ``<model>_<metric>_{mean,std,n}`` in Table 1
(nats) and ``<model>_knn<labels>_pct_{mean,std,n}`` in Table 2 (percent), one
row per (experiment, dataset, beta, d).

Grouping. There is one set of tables per (experiment, dataset): runs of
different experiments are never averaged together. Within a set, the KL weight
beta is chosen as follows (the caption says which case applies; ``ae`` runs
have no KL term, so their beta is ignored when choosing):

- one beta value among the runs: all runs, rows keyed by d;
- several betas, some equal to 1: only beta = 1 runs (plus every ``ae`` run);
  the other betas remain in ``runs.csv`` and ``summary.csv``;
- several betas, none equal to 1: all runs, rows keyed by (beta, d).

Bold. A cell is bold where N-VAE and S-VAE both have >= 2 runs and a Welch
t-test (:func:`welch_significant`) gives p < 0.01; the better one is bold:
higher LL, L[q] and RE in Table 1 (KL is never compared, as in the paper) and
higher k-NN accuracy in Table 2. The renderers take a ``bold`` set of
(row, column) keys so other rules can be plugged in.

Records. A ``result.json`` counts only if it parses to a JSON object with
``"status": "complete"``, the keys model, dataset, latent_dim, beta, seed and
metrics, numeric finite metrics (null or absent means "not measured") and
k-NN accuracies that are fractions in [0, 1]. A record with the same
(experiment, dataset, model, latent_dim, beta, seed) as an earlier one (in
path order) is a duplicate. Every other record is reported on stderr as
``skipped <path>: <reason>`` and left out; it never stops the tables.
A missing ``experiment`` means ``"default"``.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..records import RESULT_FILE, RecordError, UnreadableJSON, check_record, finite, read_json_file, shown

MODEL_ORDER: tuple[str, ...] = ("ae", "nvae", "svae", "psvae")
MODEL_NAMES: dict[str, str] = {"ae": "AE", "nvae": "N-VAE", "svae": "S-VAE", "psvae": "PS-VAE"}
REQUIRED_KEYS: tuple[str, ...] = ("model", "dataset", "latent_dim", "beta", "seed", "metrics")
SCALAR_METRICS: tuple[str, ...] = ("elbo", "re", "kl", "ll")
RUN_COLUMNS: tuple[str, ...] = (
    "path",
    "experiment",
    "dataset",
    "model",
    "latent_dim",
    "ambient_dim",
    "beta",
    "seed",
    "budget",
    "epochs",
    "best_epoch",
    "train_seconds",
    "eval_seconds",
)
INT_COLUMNS: tuple[str, ...] = ("latent_dim", "ambient_dim", "seed", "epochs", "best_epoch")
CELL_KEYS: tuple[str, ...] = ("experiment", "dataset", "model", "latent_dim", "beta")

# Table 1 columns in the paper's order: (metric column, plain label, LaTeX label).
TABLE1_METRICS: tuple[tuple[str, str, str], ...] = (
    ("ll", "LL", "LL"),
    ("elbo", "L[q]", r"$\mathcal{L}[q]$"),
    ("re", "RE", "RE"),
    ("kl", "KL", "KL"),
)
TABLE1_BOLD_METRICS: tuple[str, ...] = ("ll", "elbo", "re")
BOLD_PAIR: tuple[str, str] = ("nvae", "svae")
ALPHA = 0.01
EMPTY_TEXT = "–"  # en dash, Markdown
EMPTY_LATEX = "--"

Row = tuple[Any, ...]  # (d,) or (beta, d)
Col = tuple[str, str]  # (model, metric column in runs.csv)
Cell = tuple[Row, Col]


# --------------------------------------------------------------------------- records


def find_records(runs_dir: Path) -> list[Path]:
    """Every ``result.json`` under ``runs_dir``, in sorted path order (directories and other
    non-files of that name too: :func:`load_record` reports them)."""
    return sorted(runs_dir.rglob(RESULT_FILE))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _metric(name: str, value: Any) -> float:
    """A metric value as float; NaN for null; RecordError if not a finite number."""
    if value is None:
        return math.nan
    if not _is_number(value):
        raise RecordError(f"metric {name!r} is not numeric: {shown(value)}")
    x = finite(value)
    if x is None:
        raise RecordError(f"metric {name!r} is not finite: {shown(value)}")
    return x


def _knn_metrics(knn: Any) -> dict[str, float]:
    """Flatten ``metrics.knn_acc`` ({"100": 0.71, ...}) to {"knn_acc_100": 0.71, ...}."""
    if knn is None:
        return {}
    if not isinstance(knn, dict):
        raise RecordError(f"metrics.knn_acc is not an object: {knn!r}")
    out: dict[str, float] = {}
    for key, value in knn.items():
        try:
            labels = int(key)
        except ValueError:
            raise RecordError(f"knn_acc key {shown(key)} is not an integer") from None
        if not 1 <= labels <= 10**9:
            raise RecordError(f"knn_acc key {shown(key)} is not a number of labels from 1 to 10^9")
        acc = _metric(f"knn_acc[{key}]", value)
        if not (math.isnan(acc) or 0.0 <= acc <= 1.0):
            raise RecordError(f"knn_acc[{key}] = {value!r} is not a fraction in [0, 1]")
        out[f"knn_acc_{labels}"] = acc
    return out


def _optional_number(value: Any) -> float | None:
    """Bookkeeping fields (seconds) are informative only: bad values become None."""
    return finite(value)


def _optional_int(value: Any) -> int | None:
    """Bookkeeping fields (ambient_dim, epochs) are informative only: bad values become None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**53 else None


def _budget(raw: dict) -> str:
    """The training budget's name (conf/budget): the record's, else its config's, else "none"."""
    budget = raw.get("budget")
    if budget is None and isinstance(raw.get("config"), dict):
        budget = raw["config"].get("budget_name")
    return budget if isinstance(budget, str) and budget else "none"


def parse_record(raw: Any, rel_path: str) -> dict[str, Any]:
    """Validate one decoded result.json and flatten it to a runs.csv row.

    Raises RecordError (message = reason) when the record does not count.
    """
    raw = check_record(raw, REQUIRED_KEYS)
    experiment = raw["experiment"]
    metrics = raw["metrics"]
    row: dict[str, Any] = {
        "path": rel_path,
        "experiment": experiment,
        "dataset": raw["dataset"],
        "model": raw["model"],
        "latent_dim": raw["latent_dim"],
        "ambient_dim": _optional_int(raw.get("ambient_dim")),
        "beta": float(raw["beta"]),
        "seed": raw["seed"],
        "budget": _budget(raw),
        "epochs": _optional_int(raw.get("epochs")),
        "best_epoch": _optional_int(raw.get("best_epoch")),
        "train_seconds": _optional_number(raw.get("train_seconds")),
        "eval_seconds": _optional_number(raw.get("eval_seconds")),
    }
    for name in SCALAR_METRICS:
        row[name] = _metric(name, metrics.get(name))
    row.update(_knn_metrics(metrics.get("knn_acc")))
    return row


def load_record(path: Path, runs_dir: Path) -> dict[str, Any]:
    """Read, decode and validate one result.json (RecordError on any problem)."""
    try:
        raw = read_json_file(path)
    except OSError as exc:
        raise RecordError(f"cannot read: {exc}") from None
    except UnreadableJSON as exc:
        raise RecordError(str(exc)) from None
    return parse_record(raw, path.parent.relative_to(runs_dir).as_posix())


def collect_runs(runs_dir: Path) -> tuple[list[dict[str, Any]], list[tuple[Path, str]]]:
    """All complete runs under ``runs_dir`` and the (path, reason) of every skipped record."""
    rows: list[dict[str, Any]] = []
    skipped: list[tuple[Path, str]] = []
    seen: dict[tuple[Any, ...], str] = {}
    for path in find_records(runs_dir):
        try:
            row = load_record(path, runs_dir)
        except RecordError as exc:
            skipped.append((path, str(exc)))
            continue
        key = (row["experiment"], row["dataset"], row["model"], row["latent_dim"], row["beta"], row["seed"])
        if key in seen:
            skipped.append(
                (path, f"duplicate of run {seen[key]!r} (same experiment, dataset, model, latent_dim, beta, seed)")
            )
            continue
        seen[key] = row["path"]
        rows.append(row)
    return rows, skipped


# --------------------------------------------------------------------------- frames


def _model_rank(model: str) -> tuple[int, str]:
    return (MODEL_ORDER.index(model), "") if model in MODEL_ORDER else (len(MODEL_ORDER), model)


def _sort_key(column: pd.Series) -> pd.Series:
    """sort_values key: models in MODEL_ORDER, then others alphabetically; other columns as they are."""
    if column.name == "model":
        return column.map(lambda m: "{}:{}".format(*_model_rank(m)))
    return column


def knn_columns(columns: Iterable[str]) -> list[str]:
    """The knn_acc_<labels> columns, by increasing number of labels."""
    return sorted((c for c in columns if c.startswith("knn_acc_")), key=lambda c: int(c.rsplit("_", 1)[1]))


def metric_columns(runs: pd.DataFrame) -> list[str]:
    return [*SCALAR_METRICS, *knn_columns(runs.columns)]


def runs_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The runs.csv table: one row per run, fixed column order, sorted."""
    frame = pd.DataFrame(list(rows))
    columns = [*RUN_COLUMNS, *SCALAR_METRICS, *knn_columns(frame.columns)]
    frame = frame.reindex(columns=columns)
    for name in INT_COLUMNS:
        frame[name] = pd.array([None if pd.isna(v) else int(v) for v in frame[name]], dtype="Int64")
    for name in ("beta", "train_seconds", "eval_seconds", *columns[len(RUN_COLUMNS) :]):
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    order = ["experiment", "dataset", "model", "latent_dim", "beta", "seed", "path"]
    return frame.sort_values(order, key=_sort_key, kind="stable").reset_index(drop=True)


def summary_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """Long summary: mean, std (ddof=1) and n per (experiment, dataset, model, latent_dim, beta, metric)."""
    metrics = metric_columns(runs)
    long = runs.melt(id_vars=list(CELL_KEYS), value_vars=metrics, var_name="metric").dropna(subset=["value"])
    long["metric"] = pd.Categorical(long["metric"], categories=metrics, ordered=True)
    summary = (
        long.groupby([*CELL_KEYS, "metric"], observed=True, sort=False)["value"]
        .agg(mean="mean", std=lambda v: v.std(ddof=1), n="count")
        .reset_index()
    )
    summary["n"] = summary["n"].astype(int)
    return summary.sort_values([*CELL_KEYS, "metric"], key=_sort_key, kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- statistics


def welch_pvalue(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p-value of Welch's t-test (unequal variances) for equal means.

    Non-finite values are dropped first; NaN when either sample then has fewer
    than two values or the p-value is undefined (e.g. both samples constant and equal).
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size < 2 or b.size < 2:
        return math.nan
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def welch_significant(a: np.ndarray, b: np.ndarray, alpha: float = ALPHA) -> bool:
    """True when Welch's t-test (:func:`welch_pvalue`) rejects equal means at level ``alpha``."""
    pvalue = welch_pvalue(a, b)
    return bool(np.isfinite(pvalue) and pvalue < alpha)


@dataclass(frozen=True)
class Stat:
    """The finite values of one metric in one table cell, already scaled for display."""

    values: np.ndarray

    @property
    def n(self) -> int:
        return int(self.values.size)

    @property
    def mean(self) -> float:
        return float(self.values.mean()) if self.n else math.nan

    @property
    def std(self) -> float:
        return float(self.values.std(ddof=1)) if self.n > 1 else math.nan


# --------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class BetaChoice:
    """Which runs of one (experiment, dataset) a table shows; see the module docstring."""

    mode: str  # "single", "only-1" or "by-beta"
    betas: tuple[float, ...]  # betas present (of non-ae runs when there are any)

    @property
    def row_names(self) -> tuple[str, ...]:
        return ("beta", "d") if self.mode == "by-beta" else ("d",)

    @property
    def beta(self) -> float:
        """The beta of every row, NaN when rows are keyed by beta."""
        return {"single": self.betas[0], "only-1": 1.0}.get(self.mode, math.nan)


@dataclass
class Table:
    """One rendered table: rows (d or (beta, d)) by columns (model, metric)."""

    number: int  # 1 or 2: the paper's table layout
    experiment: str
    dataset: str
    rows: list[Row]  # (d,) or (beta, d), see row_names
    columns: list[Col]
    cells: dict[Cell, Stat]
    decimals: int
    choice: BetaChoice
    source: str  # the runs directory, for the caption
    bold: set[Cell] = field(default_factory=set)
    budgets: tuple[str, ...] = ()  # training budgets of the runs shown (conf/budget)

    @property
    def row_names(self) -> tuple[str, ...]:
        return self.choice.row_names

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(model for model, _ in self.columns))

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
    non_ae = group[group["model"] != "ae"]
    betas = tuple(sorted(set((non_ae if len(non_ae) else group)["beta"])))
    if len(betas) == 1:
        return group, BetaChoice("single", betas)
    if 1.0 in betas:
        keep = (group["beta"] == 1.0) | (group["model"] == "ae")
        return group[keep], BetaChoice("only-1", betas)
    return group, BetaChoice("by-beta", betas)


def _row_key(row_names: tuple[str, ...], values: Sequence[Any]) -> Row:
    return tuple(float(v) if name == "beta" else int(v) for name, v in zip(row_names, values))


def _ordered_models(models: Iterable[str]) -> list[str]:
    return sorted(set(models), key=_model_rank)


def build_table(number: int, group: pd.DataFrame, experiment: str, dataset: str, source: str) -> Table:
    """Table 1 (number=1) or Table 2 (number=2) for the runs of one (experiment, dataset)."""
    selected, choice = select_beta(group)
    if number == 1:
        metrics, scale, decimals = [m for m, _, _ in TABLE1_METRICS], 1.0, 2
        models = _ordered_models(selected["model"])
    else:
        metrics, scale, decimals = knn_columns(selected.columns), 100.0, 1
        measured = selected[metrics].notna().any(axis=1) if metrics else pd.Series(False, index=selected.index)
        models = _ordered_models(selected.loc[measured, "model"])  # models with any k-NN value
    cells: dict[Cell, Stat] = {}
    for (model, *keys), frame in selected.groupby(["model", *_row_cols(choice.row_names)]):
        row = _row_key(choice.row_names, keys)
        for metric in metrics:
            values = frame[metric].to_numpy(dtype=float) * scale
            cells[(row, (model, metric))] = Stat(values[np.isfinite(values)])
    columns = [(model, metric) for model in models for metric in metrics]
    rows = sorted({row for (row, col), stat in cells.items() if stat.n and col in columns})
    budgets = tuple(sorted(set(selected["budget"]))) if "budget" in selected else ()
    table = Table(number, experiment, dataset, rows, columns, cells, decimals, choice, source, budgets=budgets)
    table.bold = default_bold(table)
    return table


def _row_cols(row_names: tuple[str, ...]) -> list[str]:
    return ["beta" if n == "beta" else "latent_dim" for n in row_names]


def default_bold(table: Table) -> set[Cell]:
    """Cells to bold: the better of N-VAE and S-VAE where Welch's test gives p < 0.01.

    Higher is better for every compared metric: LL, L[q], RE (Table 1; KL is not
    compared) and k-NN accuracy (Table 2).
    """
    metrics = TABLE1_BOLD_METRICS if table.number == 1 else tuple(m for _, m in table.columns)
    first, second = BOLD_PAIR
    bold: set[Cell] = set()
    for row in table.rows:
        for metric in dict.fromkeys(metrics):
            a, b = table.stat(row, (first, metric)), table.stat(row, (second, metric))
            if a is None or b is None or not welch_significant(a.values, b.values):
                continue
            winner = first if a.mean > b.mean else second
            bold.add((row, (winner, metric)))
    return bold


def build_tables(runs: pd.DataFrame, source: str) -> list[tuple[Table, Table]]:
    """(Table 1, Table 2) for every (experiment, dataset), in sorted order."""
    out = []
    for (experiment, dataset), group in runs.groupby(["experiment", "dataset"], sort=True):
        out.append(tuple(build_table(n, group, experiment, dataset, source) for n in (1, 2)))
    return out  # type: ignore[return-value]


# --------------------------------------------------------------------------- formatting

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
_LATEX_RE = re.compile("|".join(re.escape(c) for c in _LATEX_SPECIAL))
_MD_RE = re.compile(r"([\\`*_|\[\]<>])")


def latex_escape(text: str) -> str:
    """Escape LaTeX special characters (& % $ # _ { } ~ ^ \\) in plain text."""
    return _LATEX_RE.sub(lambda m: _LATEX_SPECIAL[m.group()], str(text))


def markdown_escape(text: str) -> str:
    """Backslash-escape characters that Markdown tables or emphasis would interpret."""
    return _MD_RE.sub(r"\\\1", str(text))


def fmt_number(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    return text[1:] if re.fullmatch(r"-0\.?0*", text) else text


def format_mean_std(stat: Stat, decimals: int, latex: bool = False, bold: bool = False) -> str:
    """ "mean ± std" (plain) or ``$mean \\pm std$`` (LaTeX); the mean alone when n = 1."""
    mean = fmt_number(stat.mean, decimals)
    if latex:
        body = f"{mean} \\pm {fmt_number(stat.std, decimals)}" if stat.n > 1 else mean
        return f"{{\\boldmath${body}$}}" if bold else f"${body}$"
    text = f"{mean} ± {fmt_number(stat.std, decimals)}" if stat.n > 1 else mean
    return f"**{text}**" if bold else text


def model_name(model: str) -> str:
    return MODEL_NAMES.get(model, model)


def _metric_label(table: Table, metric: str, latex: bool) -> str:
    if table.number == 2:
        return metric.rsplit("_", 1)[1]
    for name, plain, tex in TABLE1_METRICS:
        if name == metric:
            return tex if latex else plain
    return latex_escape(metric) if latex else metric


def _row_label(table: Table, row: Row) -> list[str]:
    return [_fmt_beta(v) if n == "beta" else str(v) for n, v in zip(table.row_names, row)]


@dataclass(frozen=True)
class Markup:
    """The few symbols captions need, in LaTeX or in plain (Markdown) text."""

    latex: bool

    def text(self, value: str) -> str:
        return latex_escape(value) if self.latex else markdown_escape(value)

    def math(self, tex: str, plain: str) -> str:
        return f"${tex}$" if self.latex else plain

    def code(self, value: str) -> str:
        return r"\texttt{" + latex_escape(value) + "}" if self.latex else "`" + value.replace("`", "'") + "`"


def _beta_note(choice: BetaChoice, mk: Markup) -> str:
    values = ", ".join(_fmt_beta(b) for b in choice.betas)
    beta = mk.math(r"\beta", "β")
    beta_is_1 = mk.math(r"\beta = 1", "β = 1")
    listed = mk.math(r"\beta \in \{" + values + r"\}", "β ∈ {" + values + "}")
    if choice.mode == "single":
        value = _fmt_beta(choice.beta)
        return "All runs have " + mk.math(r"\beta = " + value, "β = " + value) + "."
    if choice.mode == "only-1":
        return f"Only runs with {beta_is_1} are shown ({listed} present; the others are in summary.csv)."
    return f"No runs with {beta_is_1}: rows are keyed by {beta} ({listed})."


def _n_text(table: Table, mk: Markup) -> str:
    lo, hi = table.n_range()
    if lo == hi:
        return mk.math(f"n = {lo}", f"n = {lo}")
    return mk.math(f"n = {lo}", f"n = {lo}") + ("--" if mk.latex else "–") + mk.math(str(hi), str(hi))


def budget_text(budgets: Sequence[str], mk: Markup) -> str:
    if not budgets:
        return ""
    return (", budget " if len(budgets) == 1 else ", budgets ") + ", ".join(mk.text(b) for b in budgets)


def caption(table: Table, latex: bool) -> str:
    """The caption: content, runs per cell, beta choice, bold rule and source directory."""
    mk = Markup(latex)
    lq = mk.math(r"\mathcal{L}[q]", "L[q]")
    pm = mk.math(r"\pm", "±")
    p_rule = mk.math("p < 0.01", "p < 0.01")
    nv, sv = (mk.text(model_name(m)) for m in BOLD_PAIR)
    if table.number == 1:
        what = f"test log-likelihood LL, ELBO {lq}, reconstruction term RE and KL (nats)"
        bold_rule = (
            f"Bold: the better of {nv} and {sv} (higher LL, {lq}, RE) where a Welch t-test "
            f"gives {p_rule}; KL is not compared."
        )
    else:
        labels = ", ".join(dict.fromkeys(_metric_label(table, m, latex) for _, m in table.columns))
        percent = mk.text("%")
        what = f"k-NN classification accuracy ({percent}) on the latent space with {labels} labelled points"
        bold_rule = f"Bold: the higher of {nv} and {sv} where a Welch t-test gives {p_rule}."
    head = f"{mk.text(table.dataset)} (experiment {mk.text(table.experiment)}{budget_text(table.budgets, mk)})"
    runs = "run" if table.n_range()[1] == 1 else "runs"
    return (
        f"{head}: {what}, mean {pm} std over {_n_text(table, mk)} {runs} per cell. "
        f"{_beta_note(table.choice, mk)} {bold_rule} Source: {mk.code(table.source)}."
    )


def render_latex(table: Table, bold: set[Cell] | None = None) -> str:
    """A booktabs ``table`` environment; ``bold`` defaults to ``table.bold``."""
    bold = table.bold if bold is None else bold
    if not table.rows or not table.columns:
        return f"% Table {table.number}: no data for {table.dataset} ({table.experiment})\n"
    keys = len(table.row_names)
    metrics = list(dict.fromkeys(m for _, m in table.columns))
    models = table.models
    spec = "l" * keys + "".join("c" * len(metrics) for _ in models)
    groups, rules = [], []
    for i, model in enumerate(models):
        start = keys + 1 + i * len(metrics)
        groups.append(rf"\multicolumn{{{len(metrics)}}}{{c}}{{{latex_escape(model_name(model))}}}")
        rules.append(rf"\cmidrule(lr){{{start}-{start + len(metrics) - 1}}}")
    key_labels = [r"$\beta$" if n == "beta" else "$d$" for n in table.row_names]
    header2 = key_labels + [_metric_label(table, m, True) for _ in models for m in metrics]
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
        cells = _row_label(table, row)
        for col in table.columns:
            stat = table.stat(row, col)
            cells.append(
                EMPTY_LATEX
                if stat is None
                else format_mean_std(stat, table.decimals, latex=True, bold=(row, col) in bold)
            )
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", "}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def table_label(table: Table) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{table.experiment}-{table.dataset}").strip("-")
    return f"tab:table{table.number}-{slug}"


def render_markdown(table: Table, bold: set[Cell] | None = None) -> str:
    """A heading, the caption and a pipe table; ``bold`` defaults to ``table.bold``."""
    bold = table.bold if bold is None else bold
    title = (
        f"### Table {table.number}: {markdown_escape(table.dataset)} (experiment {markdown_escape(table.experiment)})"
    )
    if not table.rows or not table.columns:
        return f"{title}\n\nNo data (no k-NN accuracies in these runs). Source: `{table.source}`.\n"
    key_labels = ["β" if n == "beta" else "d" for n in table.row_names]
    header = key_labels + [
        f"{markdown_escape(model_name(m))} {_metric_label(table, metric, False)}" for m, metric in table.columns
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
        cells = _row_label(table, row)
        for col in table.columns:
            stat = table.stat(row, col)
            cells.append(EMPTY_TEXT if stat is None else format_mean_std(stat, table.decimals, bold=(row, col) in bold))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def table_frame(table: Table) -> pd.DataFrame:
    """Numeric CSV rows: experiment, dataset, beta, d, then <model>_<metric>_{mean,std,n}."""
    records = []
    for row in table.rows:
        keys = dict(zip(table.row_names, row))
        record: dict[str, Any] = {
            "experiment": table.experiment,
            "dataset": table.dataset,
            "beta": keys.get("beta", table.choice.beta),
            "d": keys["d"],
        }
        for col in table.columns:
            stat = table.cells.get((row, col)) or Stat(np.empty(0))
            prefix = _csv_prefix(table, col)
            record.update({f"{prefix}_mean": stat.mean, f"{prefix}_std": stat.std, f"{prefix}_n": stat.n})
        records.append(record)
    return pd.DataFrame(records)


def _csv_prefix(table: Table, col: Col) -> str:
    model, metric = col
    if table.number == 2:
        return f"{model}_knn{metric.rsplit('_', 1)[1]}_pct"
    return f"{model}_{metric}"


def tables_csv(tables: Sequence[Table]) -> str:
    frames = [table_frame(t) for t in tables if t.rows and t.columns]
    if not frames:
        return "experiment,dataset,beta,d\n"
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
