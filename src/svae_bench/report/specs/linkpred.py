"""Table 4 of Davidson et al. (2018), built from the ``vgae`` task's runs: link prediction.

One row per data set (Cora, Citeseer, Pubmed), for N-VGAE and S-VGAE: test ROC AUC and average
precision in percent (1 decimal), mean ± std over the seeds. Bold: the higher of the two where a
Welch t-test gives p < 0.01. The published numbers ship beside reference.csv as
``reference_table4.csv`` (a copy of ../shared/paper/reference_table4.csv: table, model, dataset,
metric, mean, std).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from importlib import resources

import pandas as pd

from ..collect import IdentityColumn, MetricField, RecordKind, register_record_kind
from ..markup import Markup, register_model
from ..spec import Column, PaperComparison, TableSpec, higher_of_two_rule, register_table, static_columns

MODELS = {"nvgae": "N-VGAE", "svgae": "S-VGAE"}
for _model, _name in MODELS.items():
    register_model(_model, _name)

REFERENCE_FILE = "reference_table4.csv"
#: the paper's data sets, in its row order
DATASETS = ("cora", "citeseer", "pubmed")

register_record_kind(
    RecordKind(
        task="vgae",
        columns=(
            IdentityColumn("latent_dim", "int"),
            IdentityColumn("ambient_dim", "info", key=False),
            IdentityColumn("split_seed", "info", key=False),
            IdentityColumn("beta", "float"),
        ),
        metrics=(
            MetricField("auc", fraction=True),
            MetricField("ap", fraction=True),
            MetricField("val_auc", fraction=True),
            MetricField("val_ap", fraction=True),
        ),
    )
)


def load_reference_table4() -> pd.DataFrame:
    """The published Table 4 in reference.csv's columns (d = the data set)."""
    text = resources.files("svae_bench.report").joinpath(REFERENCE_FILE).read_text(encoding="utf-8")
    frame = pd.read_csv(io.StringIO(text))
    frame = frame.rename(columns={"dataset": "d"})
    frame["labels"] = pd.array([pd.NA] * len(frame), dtype="Int64")
    frame["std"] = pd.to_numeric(frame["std"], errors="coerce")
    return frame[["table", "model", "d", "metric", "labels", "mean", "std"]]


def _what(columns: Sequence[Column], mk: Markup) -> str:
    return f"link prediction on held-out edges, test ROC AUC and average precision AP ({mk.text('%')})"


register_table(
    TableSpec(
        name="table4",
        title="Table 4",
        task="vgae",
        columns=static_columns(Column("auc", "AUC", "AUC", "auc_pct"), Column("ap", "AP", "AP", "ap_pct")),
        what=_what,
        bold_rule=higher_of_two_rule,
        scale=100.0,
        decimals=1,
        compared=tuple(MODELS),
        empty_note="no link-prediction scores in these runs",
        row=("dataset", "data set", "data set"),
        comparison=PaperComparison(
            reference_table="table4",
            column=lambda metric, labels: {"AUC": "auc", "AP": "ap"}.get(metric),
            what=lambda columns, mk: f"test ROC AUC and average precision ({mk.text('%')})",
            better=lambda mk: "higher AUC and AP",
            datasets=DATASETS,
            reference=load_reference_table4,
        ),
    )
)
