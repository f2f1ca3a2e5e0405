"""Table 3 of Davidson et al. (2018), built from the ``m1m2`` task's runs: semi-supervised M1+M2.

Rows z1/z2 (M1's and M2's latent degrees of freedom), one column per family (N+N, S+S, S+N:
M1's latent, then M2's) and number of labelled training images: the test accuracy of
argmax q(y | z1) in percent (1 decimal). Bold: the best family where a Welch t-test
against each of the other two gives p < 0.01.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..collect import IdentityColumn, MetricField, RecordKind, labels_of, register_record_kind
from ..markup import Markup, register_model
from ..spec import Column, PaperComparison, TableSpec, and_list, per_labels_columns, register_table

FAMILIES = ("N+N", "S+S", "S+N")
for _family in FAMILIES:  # the paper's column order
    register_model(_family)

register_record_kind(
    RecordKind(
        task="m1m2",
        columns=(IdentityColumn("latent_dim", "int"), IdentityColumn("z2_dim", "int"), IdentityColumn("beta", "float")),
        metrics=(MetricField("acc", per_labels=True, fraction=True),),
    )
)


def _accuracy_column(metric: str, labels: int) -> Column:
    """The test accuracy with ``labels`` labelled training images: one column per number found in the runs."""
    return Column(metric, f"{labels} labels", f"{labels} labels", f"acc{labels}_pct")


def _labels(columns: Sequence[Column]) -> str:
    return and_list([str(labels_of(c.metric)) for c in columns]) if columns else "no"


def _what(columns: Sequence[Column], mk: Markup) -> str:
    return (
        f"test accuracy ({mk.text('%')}) of the M2 classifier {mk.math('q(y | z_1)', 'q(y | z1)')} "
        f"trained with {_labels(columns)} labelled images"
    )


def _bold_rule(names: tuple[str, ...], mk: Markup) -> str:
    p_rule = mk.math("p < 0.01", "p < 0.01")
    return f"Bold: the best of {and_list(list(names))} where a Welch t-test against each of the others gives {p_rule}."


register_table(
    TableSpec(
        name="table3",
        title="Table 3",
        task="m1m2",
        columns=per_labels_columns("acc", _accuracy_column),
        what=_what,
        bold_rule=_bold_rule,
        scale=100.0,
        decimals=1,
        compared=FAMILIES,
        measured_models_only=True,
        empty_note="no accuracies in these runs",
        row=(("latent_dim", "z2_dim"), "z1/z2", "$z_1/z_2$"),
        comparison=PaperComparison(
            reference_table="table3",
            column=lambda metric, labels: f"acc_{labels}" if metric == "acc" and labels else None,
            what=lambda columns, mk: f"test accuracy ({mk.text('%')}) with {_labels(columns)} labelled images",
            better=lambda mk: "higher accuracy",
        ),
    )
)
