"""The run record, ``result.json``: how it is built, read, and what counts as complete.

A record is one JSON object, written last and atomically by the harness:

    {"schema_version": 1, "status": "complete" | "failed", "task": <task name>,
     <the task's identity fields, e.g. experiment, model, dataset, latent_dim, beta, seed>,
     "metrics": {...} (complete only), "reason" and "events" (failed only),
     <bookkeeping: epochs, seconds, versions, git_commit, device, config>}

Records written before ``schema_version`` existed are version 1 too. A record is
*complete* when its status is ``complete`` and it has a metrics object; every
reader (tables, status, figures, the harness) asks :func:`is_complete_record`.
:func:`check_record` is the stricter check that tables apply before a number of a
record reaches a table.
"""

from __future__ import annotations

import math
import os
import unicodedata
from pathlib import Path
from typing import Any

from .atomic import UnreadableJSON, read_json_file
from .files import RESULT_FILE

SCHEMA_VERSION = 1
#: seeds a run can have (numpy takes < 2**32; derived seeds add small offsets)
SEED_MAX = 2**31 - 1
#: the integer identity fields of a record and their ranges (those ``svae-bench run`` accepts)
INT_RANGES = {"latent_dim": (1, 100_000), "z2_dim": (1, 100_000), "seed": (0, SEED_MAX)}
MAX_NAME = 200
#: characters never printed as they are: control and format characters, unpaired surrogates (a
#: non-UTF-8 file name), private-use and unassigned code points, line and paragraph separators
_UNPRINTABLE = frozenset(("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"))
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


class RecordError(ValueError):
    """A result.json that does not count as a complete run; the message is the reason."""


def complete_record(identity: dict[str, Any], metrics: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A complete record: identity fields first, then metrics, then bookkeeping ``fields``."""
    return {"schema_version": SCHEMA_VERSION, "status": "complete", **identity, "metrics": metrics, **fields}


def failed_record(identity: dict[str, Any], reason: str, events: list, **fields: Any) -> dict[str, Any]:
    """A record that says failed, with the reason and no metrics: no table ever uses it."""
    return {
        "schema_version": SCHEMA_VERSION,
        "status": "failed",
        "reason": reason,
        "events": events,
        **identity,
        **fields,
    }


def read_result(run_dir: str | os.PathLike) -> dict | None:
    """The run's result.json as a dict, or None if missing or unreadable (safe on FIFOs and absurd JSON)."""
    try:
        obj = read_json_file(Path(run_dir) / RESULT_FILE)
    except (OSError, UnreadableJSON):
        return None
    return obj if isinstance(obj, dict) else None


def is_complete_record(result: dict | None) -> bool:
    """Whether a parsed result.json (or None) marks a finished run."""
    return result is not None and result.get("status") == "complete" and isinstance(result.get("metrics"), dict)


def finite(value: Any) -> float | None:
    """``value`` as a finite float, or None (not a number, NaN, infinite, or too large for a float)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except OverflowError:  # a 400-digit integer
        return None
    return x if math.isfinite(x) else None


def shown(value: Any) -> str:
    """A value for a message, cut short if long."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"


def unprintable(char: str) -> bool:
    """Whether ``char`` is a control or format character, an unpaired surrogate, a private-use or
    unassigned code point, or a line or paragraph separator (see :func:`printable`)."""
    return unicodedata.category(char) in _UNPRINTABLE


def printable(text: Any, limit: int | None = None) -> str:
    """``text`` for a terminal, on one line: newlines, tabs, escape codes and every other character
    of :func:`unprintable` written as ``\\n``, ``\\t``, ``\\x1b``, ``\\u202e``...; cut after ``limit``
    characters (then "... (N characters)")."""
    text = str(text)
    if limit is not None and len(text) > limit:
        text = f"{text[:limit]}... ({len(text)} characters)"
    return "".join(_ESCAPES.get(c) or (_escaped(c) if unprintable(c) else c) for c in text)


def _escaped(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def check_record(raw: Any, required: tuple[str, ...]) -> dict[str, Any]:
    """The checks every record passes before it reaches a table (RecordError with the reason):
    a complete JSON object with the ``required`` identity keys, names that are short non-empty
    strings, integers in :data:`INT_RANGES`, a finite ``beta`` >= 0, and a metrics object.
    Returns the record with ``experiment`` defaulting to "default"."""
    if not isinstance(raw, dict):
        raise RecordError("not a JSON object")
    status = raw.get("status")
    if status != "complete":
        raise RecordError(f"{'no status' if status is None else f'status {status!r}'} (not complete)")
    version = raw.get("schema_version", 1)
    if version != SCHEMA_VERSION:
        raise RecordError(f"schema_version {shown(version)} is not {SCHEMA_VERSION} (made by another svae-bench)")
    missing = [key for key in required if key not in raw or raw[key] is None]
    if missing:
        raise RecordError("missing keys: " + ", ".join(missing))
    record = {**raw, "experiment": "default" if raw.get("experiment") is None else raw["experiment"]}
    for key in ("experiment", "model", "dataset"):
        if key in record and (not isinstance(record[key], str) or not 0 < len(record[key]) <= MAX_NAME):
            raise RecordError(f"{key} is not a non-empty string of at most {MAX_NAME} characters: {shown(record[key])}")
        if key in record and any(unprintable(c) for c in record[key]):
            raise RecordError(f"{key} holds control characters or unpaired surrogates: {shown(record[key])}")
    for key, (lo, hi) in INT_RANGES.items():
        if key not in record:
            continue
        value = record[key]
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise RecordError(f"{key} is not an integer from {lo} to {hi}: {shown(value)}")
    if "beta" in record and (finite(record["beta"]) is None or record["beta"] < 0):
        raise RecordError(f"beta is not a finite number >= 0: {shown(record['beta'])}")
    if not isinstance(record.get("metrics"), dict):
        raise RecordError(f"metrics is not an object: {shown(record.get('metrics'))}")
    return record
