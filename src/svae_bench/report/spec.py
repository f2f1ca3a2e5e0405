"""Table specs: what a table shows, declared as data; the registry of the tables ``svae-bench tables`` builds.

A :class:`TableSpec` says which runs a table is built from (a task's records), which metric
columns it shows (:class:`Column`: labels, unit scale, decimals, whether the better of the
two compared models is bolded), its caption, and how the paper's published numbers map onto
it (:class:`PaperComparison`). :mod:`svae_bench.report.tables` builds and renders any spec;
nothing there knows a table by its number. Tables 1 and 2 are entries
(:mod:`svae_bench.report.specs.vae`); a new table is a new module in
:mod:`svae_bench.report.specs` that calls :func:`register_table`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from .collect import label_columns, labels_of
from .markup import Markup


@dataclass(frozen=True)
class Column:
    """One metric column of a table (shown once per model).

    metric: the runs.csv column. label / latex: the header in Markdown / LaTeX.
    csv: the name in the table's CSV (``<model>_<csv>_{mean,std,n}``).
    compare: bold the best of the spec's compared models where Welch's test is significant.
    paper_label: its name in the comparison with the paper (default: ``label`` / ``latex``).
    after: for a column of ``TableSpec.compared_only``, the metric it follows in the comparison.
    """

    metric: str
    label: str
    latex: str
    csv: str
    compare: bool = True
    paper_label: str | None = None
    after: str | None = None

    def header(self, latex: bool) -> str:
        return self.latex if latex else self.label

    def paper_header(self, latex: bool) -> str:
        return self.header(latex) if self.paper_label is None else self.paper_label


@dataclass(frozen=True)
class PaperComparison:
    """How a reproduced table is compared with the paper's.

    reference_table: the ``table`` value of its rows in reference.csv.
    column(metric, labels): the runs.csv column a reference.csv row (metric, labels or None)
        gives the paper's value of, or a tuple of columns compared with the same published value
        (Table 1's LL: the honest estimate and the TF example's); None: a row this table does not show.
    datasets: the datasets the paper's numbers are for (other runs are not compared).
    what(columns, markup): what the compared cells are, for the caption.
    better(markup): which value is better, for the caption's bold rule.
    reference: the published rows when they are not in reference.csv: a function returning a frame
        with reference.csv's columns (table, model, d, metric, labels, mean, std), d the row key as text.
    note(columns, markup): a sentence the caption ends with, given the compared columns ("" for none).
    """

    reference_table: str
    column: Callable[[str, int | None], str | tuple[str, ...] | None]
    what: Callable[[Sequence[Column], Markup], str]
    better: Callable[[Markup], str]
    datasets: tuple[str, ...] = ("mnist",)
    reference: Callable[[], pd.DataFrame] | None = None
    note: Callable[[Sequence[Column], Markup], str] | None = None


@dataclass(frozen=True)
class TableSpec:
    """One table of ``svae-bench tables``, built for every (experiment, dataset) of its task's runs.

    name: the output files' stem (``<name>.csv/.tex/.md``) and label. title: "Table 1".
    task: the records it is built from (see :mod:`svae_bench.report.collect`).
    columns(runs): the metric columns to show, given the runs selected for the table.
    scale, decimals: display units (values * scale) and decimals.
    compared: the models compared for bold cells and with the paper (higher is better): the best
        is bold where Welch's test against each other one gives p < 0.01.
    measured_models_only: leave out models with no value in any shown column.
    what(columns, markup): what the cells are, for the caption.
    bold_rule(names, markup): the caption's bold sentence, given the compared models' display names.
    empty_note: said instead of a table when no run has a value.
    row: (runs.csv column, Markdown label, LaTeX label) of the rows' key; the CSV names it by
        the Markdown label. A tuple of columns keys rows by their values together, shown as
        "5/10" (Table 3's z1/z2).
    comparison: how it compares with the paper (None: not published).
    compared_only(runs): metric columns that the comparison with the paper shows after the table's
        own column of the same ``after`` metric but the table itself does not (Table 1's LL_tf: kept
        out of the headline table); only those the runs have a value of.
    """

    name: str
    title: str
    task: str
    columns: Callable[[pd.DataFrame], Sequence[Column]]
    what: Callable[[Sequence[Column], Markup], str]
    bold_rule: Callable[[tuple[str, ...], Markup], str]
    scale: float = 1.0
    decimals: int = 2
    compared: tuple[str, ...] = ("nvae", "svae")
    measured_models_only: bool = False
    empty_note: str = "no values in these runs"
    row: tuple[str | tuple[str, ...], str, str] = ("latent_dim", "d", "$d$")
    comparison: PaperComparison | None = None
    compared_only: Callable[[pd.DataFrame], Sequence[Column]] | None = None


TABLE_SPECS: dict[str, TableSpec] = {}


def register_table(spec: TableSpec) -> TableSpec:
    """Add ``spec`` to the tables ``svae-bench tables`` writes (replacing one of the same name)."""
    TABLE_SPECS[spec.name] = spec
    return spec


def specs_for(task: str) -> list[TableSpec]:
    """The registered tables built from ``task``'s runs, in registration order."""
    return [spec for spec in TABLE_SPECS.values() if spec.task == task]


def static_columns(*columns: Column) -> Callable[[pd.DataFrame], Sequence[Column]]:
    """``TableSpec.columns`` for a table whose columns do not depend on the runs."""
    return lambda runs: columns


def per_labels_columns(name: str, column: Callable[[str, int], Column]) -> Callable[[pd.DataFrame], Sequence[Column]]:
    """``TableSpec.columns`` for a per-labels metric: ``column(metric, labels)`` for each
    ``<name>_<labels>`` column of the runs (``labels``: the number of labelled points), by increasing
    number of labels."""
    return lambda runs: [column(metric, labels_of(metric)) for metric in label_columns(runs.columns, name)]


def higher_of_two_rule(names: tuple[str, ...], mk: Markup) -> str:
    """``TableSpec.bold_rule`` of a table that compares two models (``names``: their display names)."""
    p_rule = mk.math("p < 0.01", "p < 0.01")
    return f"Bold: the higher of {names[0]} and {names[1]} where a Welch t-test gives {p_rule}."


def and_list(items: Sequence[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def row_columns(spec: TableSpec) -> list[str]:
    """The runs.csv columns that key a row of ``spec`` (one, or several for a combined key)."""
    return list(spec.row[0]) if isinstance(spec.row[0], tuple) else [spec.row[0]]


def row_text(key: object) -> str:
    """A row key as shown: 10, or "5/10" for a combined key."""
    return "/".join(str(v) for v in key) if isinstance(key, tuple) else str(key)


def parse_row(text: str) -> object:
    """A row key from its text (reference.csv's d): "10" -> 10, "5/10" -> (5, 10); a key that is not
    a number stays text ("cora": Table 4's rows are data sets)."""
    parts = str(text).split("/")
    if not all(p.lstrip("-").isdigit() for p in parts):
        return str(text)
    return int(parts[0]) if len(parts) == 1 else tuple(int(p) for p in parts)
