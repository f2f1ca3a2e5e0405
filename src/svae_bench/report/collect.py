"""The collect step: every ``result.json`` under a directory -> one validated row per run -> frames.

What a record of each task holds is declared once, as a :class:`RecordKind` registered
with :func:`register_record_kind` (the table specs in :mod:`svae_bench.report.specs`
do this for their task): the identity columns besides experiment, dataset, model and
seed, and the metrics with their validation (:class:`MetricField`). Records name their
task in ``"task"``; records without one are ``"vae"`` runs (made before the field existed).

A ``result.json`` counts only if it is a complete record (:func:`svae_bench.records.check_record`)
of a registered task, with numeric finite metrics (null or absent means "not measured")
and, for fraction metrics, values in [0, 1]. A record with the same (experiment, dataset,
model, key fields, seed) as an earlier one (in path order) is a duplicate. Every other
record is reported as ``(path, reason)`` and left out; it never stops the tables.

Frames. :func:`runs_frame` gives runs.csv: path, experiment, dataset, model, the kinds'
identity columns, seed, budget, epochs, best_epoch, train_seconds, eval_seconds, then
the metrics (a per-labels metric as ``<name>_<labels>`` by increasing labels), sorted by
experiment, dataset, model (:data:`~svae_bench.report.markup.MODEL_ORDER`), key fields,
seed and path. :func:`summary_frame` gives summary.csv: mean, std (ddof=1) and n per
(experiment, dataset, model, key fields, metric).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..records import RESULT_FILE, RecordError, UnreadableJSON, check_record, finite, read_json_file, shown
from ..records.atomic import find_named
from ..records.record import INT_RANGES, MAX_NAME, unprintable
from .markup import model_rank

#: the task of a record that names none (records made before the field existed)
DEFAULT_TASK = "vae"
#: columns every run has, before and after the identity columns of its kind
HEAD_COLUMNS: tuple[str, ...] = ("path", "experiment", "dataset", "model")
TAIL_COLUMNS: tuple[str, ...] = ("seed", "budget", "epochs", "best_epoch", "train_seconds", "eval_seconds")
#: the frame's column naming each row's task; kept out of runs.csv
TASK_COLUMN = "task"
#: the largest magnitude of an integer identity column without a range in INT_RANGES (exact in a float)
INT_LIMIT = 2**53


@dataclass(frozen=True)
class MetricField:
    """One entry of a record's ``metrics`` object.

    name: its key. per_labels: the value is an object {"<labels>": value} (labels an integer
    from 1 to 10^9), flattened to columns ``<name>_<labels>``. fraction: values lie in [0, 1].
    optional: a metric that older records lack: a runs.csv column only where some record has it.
    """

    name: str
    per_labels: bool = False
    fraction: bool = False
    optional: bool = False


@dataclass(frozen=True)
class IdentityColumn:
    """An identity field of a record, as a runs.csv column.

    kind: "int" (required integer; ranges from :data:`svae_bench.records.record.INT_RANGES`, else
    :data:`INT_LIMIT`),
    "float" (required finite number) or "info" (optional integer: a bad value becomes empty).
    key: part of the run's identity (duplicates, summary cells, sorting).
    """

    name: str
    kind: str = "int"
    key: bool = True


@dataclass(frozen=True)
class RecordKind:
    """What a record of one task holds: identity columns and metrics, in runs.csv order."""

    task: str
    columns: tuple[IdentityColumn, ...]
    metrics: tuple[MetricField, ...]

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.key)

    @property
    def required(self) -> tuple[str, ...]:
        return ("model", "dataset", *(c.name for c in self.columns if c.kind != "info"), "seed", "metrics")


RECORD_KINDS: dict[str, RecordKind] = {}


def register_record_kind(kind: RecordKind) -> RecordKind:
    """Declare what records of ``kind.task`` hold (replacing an earlier declaration)."""
    RECORD_KINDS[kind.task] = kind
    return kind


def _kind_of(raw: Any) -> RecordKind:
    task = raw.get("task", DEFAULT_TASK) if isinstance(raw, dict) else DEFAULT_TASK
    task = DEFAULT_TASK if task is None else task
    if not isinstance(task, str) or task not in RECORD_KINDS:
        check_record(raw, ())  # a failed or foreign record says so first
        raise RecordError(f"task {shown(task)} has no tables (known: {', '.join(sorted(RECORD_KINDS))})")
    return RECORD_KINDS[task]


def find_records(runs_dir: Path) -> list[Path]:
    """Every ``result.json`` under ``runs_dir`` at any depth, in sorted path order (directories and
    other non-files of that name too: :func:`load_record` reports them)."""
    return sorted(find_named(runs_dir, (RESULT_FILE,)))


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


def _checked(field: MetricField, label: str, value: Any, raw: Any) -> float:
    x = _metric(label, value)
    if field.fraction and not (math.isnan(x) or 0.0 <= x <= 1.0):
        raise RecordError(f"{label} = {shown(raw)} is not a fraction in [0, 1]")
    return x


def _per_labels(field: MetricField, values: Any) -> dict[str, float]:
    """Flatten ``metrics.<name>`` ({"100": 0.71, ...}) to {"<name>_100": 0.71, ...}."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise RecordError(f"metrics.{field.name} is not an object: {shown(values)}")
    out: dict[str, float] = {}
    for key, value in values.items():
        try:
            labels = int(key)
        except ValueError:
            raise RecordError(f"{field.name} key {shown(key)} is not an integer") from None
        if not 1 <= labels <= 10**9:
            raise RecordError(f"{field.name} key {shown(key)} is not a number of labels from 1 to 10^9")
        out[f"{field.name}_{labels}"] = _checked(field, f"{field.name}[{key}]", value, value)
    return out


def _info_int(value: Any) -> int | None:
    """Bookkeeping integers (ambient_dim, epochs) are informative only: bad values become None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**53 else None


def _budget(raw: dict) -> str:
    """The training budget's name (conf/budget): the record's, else its config's, else "none" (also
    for a name that is not a short string of printable characters)."""
    budget = raw.get("budget")
    if budget is None and isinstance(raw.get("config"), dict):
        budget = raw["config"].get("budget_name")
    if not isinstance(budget, str) or not 0 < len(budget) <= MAX_NAME or any(unprintable(c) for c in budget):
        return "none"
    return budget


def _identity_value(column: IdentityColumn, raw: dict) -> Any:
    value = raw.get(column.name)
    if column.kind == "info":
        return _info_int(value)
    if column.kind == "float":
        if finite(value) is None:
            raise RecordError(f"{column.name} is not a finite number: {shown(value)}")
        return float(value)
    lo, hi = INT_RANGES.get(column.name, (-INT_LIMIT, INT_LIMIT))  # the ranges of INT_RANGES: check_record
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise RecordError(f"{column.name} is not an integer from {lo} to {hi}: {shown(value)}")
    return value


def parse_record(raw: Any, rel_path: str) -> dict[str, Any]:
    """Validate one decoded result.json and flatten it to a runs.csv row (plus its task).

    Raises RecordError (message = reason) when the record does not count.
    """
    kind = _kind_of(raw)
    raw = check_record(raw, kind.required)
    metrics = raw["metrics"]
    row: dict[str, Any] = {"path": rel_path, "experiment": raw["experiment"], "dataset": raw["dataset"]}
    row["model"] = raw["model"]
    row.update({column.name: _identity_value(column, raw) for column in kind.columns})
    row.update(
        {
            "seed": raw["seed"],
            "budget": _budget(raw),
            "epochs": _info_int(raw.get("epochs")),
            "best_epoch": _info_int(raw.get("best_epoch")),
            "train_seconds": finite(raw.get("train_seconds")),
            "eval_seconds": finite(raw.get("eval_seconds")),
        }
    )
    for field in kind.metrics:
        if field.per_labels:
            row.update(_per_labels(field, metrics.get(field.name)))
        elif not (field.optional and field.name not in metrics):
            value = metrics.get(field.name)
            row[field.name] = _checked(field, field.name, value, value)
    row[TASK_COLUMN] = kind.task
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
        names = ("experiment", "dataset", "model", *RECORD_KINDS[row[TASK_COLUMN]].key, "seed")
        key = (row[TASK_COLUMN], *(row[name] for name in names))
        if key in seen:
            skipped.append((path, f"duplicate of run {seen[key]!r} (same {', '.join(names)})"))
            continue
        seen[key] = row["path"]
        rows.append(row)
    return rows, skipped


# --------------------------------------------------------------------------- frames


def _sort_key(column: pd.Series) -> pd.Series:
    """sort_values key: models in MODEL_ORDER, then others alphabetically; other columns as they are."""
    if column.name == "model":
        return column.map(lambda m: "{}:{}".format(*model_rank(m)))
    return column


def labels_of(column: str) -> int:
    """The number of labels of a per-labels column ("knn_acc_600" -> 600)."""
    return int(column.rsplit("_", 1)[1])


def label_columns(columns: Iterable[str], name: str) -> list[str]:
    """The ``<name>_<labels>`` columns among ``columns``, by increasing number of labels."""
    prefix = f"{name}_"
    found = [c for c in columns if c.startswith(prefix) and c[len(prefix) :].isdigit()]
    return sorted(found, key=labels_of)


def _kinds(frame_or_rows: Iterable[str]) -> list[RecordKind]:
    return [RECORD_KINDS[task] for task in dict.fromkeys(frame_or_rows)]


def _identity_columns(kinds: Sequence[RecordKind]) -> list[IdentityColumn]:
    return list({c.name: c for kind in kinds for c in kind.columns}.values())


def key_columns(runs: pd.DataFrame) -> list[str]:
    """The identity columns that key a run, for the tasks in ``runs`` (e.g. latent_dim, beta)."""
    kinds = _kinds(runs[TASK_COLUMN]) if TASK_COLUMN in runs else list(RECORD_KINDS.values())[:1]
    return list(dict.fromkeys(name for kind in kinds for name in kind.key))


def metric_columns(columns: Iterable[str], kinds: Sequence[RecordKind]) -> list[str]:
    """The metric columns of runs.csv: scalar metrics always, per-labels metrics as found."""
    columns = list(columns)
    out: list[str] = []
    for field in {f.name: f for kind in kinds for f in kind.metrics}.values():
        if field.per_labels:
            out += label_columns(columns, field.name)
        elif not field.optional or field.name in columns:
            out.append(field.name)
    return out


def runs_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The runs frame (runs.csv plus a ``task`` column): one row per run, fixed column order, sorted."""
    frame = pd.DataFrame(list(rows))
    kinds = _kinds(frame[TASK_COLUMN])
    identity = _identity_columns(kinds)
    metrics = metric_columns(frame.columns, kinds)
    columns = [*HEAD_COLUMNS, *(c.name for c in identity), *TAIL_COLUMNS, *metrics, TASK_COLUMN]
    frame = frame.reindex(columns=columns)
    ints = [c.name for c in identity if c.kind != "float"] + ["seed", "epochs", "best_epoch"]
    for name in ints:
        frame[name] = pd.array([None if pd.isna(v) else int(v) for v in frame[name]], dtype="Int64")
    floats = [c.name for c in identity if c.kind == "float"] + ["train_seconds", "eval_seconds", *metrics]
    for name in floats:
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    order = ["experiment", "dataset", "model", *key_columns(frame), "seed", "path"]
    return frame.sort_values(order, key=_sort_key, kind="stable").reset_index(drop=True)


def runs_csv(runs: pd.DataFrame) -> str:
    """runs.csv: the runs frame without its task column."""
    return runs.drop(columns=[TASK_COLUMN], errors="ignore").to_csv(index=False)


def summary_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """Long summary: mean, std (ddof=1) and n per (experiment, dataset, model, key fields, metric)."""
    cell_keys = ["experiment", "dataset", "model", *key_columns(runs)]
    metrics = metric_columns(runs.columns, _kinds(runs[TASK_COLUMN]))
    long = runs.melt(id_vars=cell_keys, value_vars=metrics, var_name="metric").dropna(subset=["value"])
    long["metric"] = pd.Categorical(long["metric"], categories=metrics, ordered=True)
    summary = (
        long.groupby([*cell_keys, "metric"], observed=True, sort=False, dropna=False)["value"]
        .agg(mean="mean", std=lambda v: v.std(ddof=1), n="count")
        .reset_index()
    )
    summary["n"] = summary["n"].astype(int)
    return summary.sort_values([*cell_keys, "metric"], key=_sort_key, kind="stable").reset_index(drop=True)
