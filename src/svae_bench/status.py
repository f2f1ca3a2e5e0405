"""Where a run stands: ``status.json`` beside ``result.json``, and how to read both.

A run writes ``status.json`` (atomically) when it starts, after every epoch and
when it ends: ``{"status": "running" | "failed" | "complete", "epoch": <last
completed epoch>, "host", "pid", "updated": <unix time>, "reason": <why it
failed>, ...}``. ``result.json`` with ``"status": "complete"`` stays the only
mark of a finished run. :func:`run_state` combines them into one of

* ``complete``: result.json is complete;
* ``failed``: the run gave up (e.g. numerical faults beyond the retry budget);
* ``running``: status.json says running and was updated within ``stale_after``
  seconds and, on this host, its process is alive;
* ``interrupted``: it started but is neither complete, failed nor running (killed,
  crashed, machine lost): re-running the same command resumes it;
* ``missing``: no trace of the run.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from .records import RESULT_FILE, is_complete_record, read_result, write_json_atomic

STATUS_FILE = "status.json"
STATES = ("complete", "running", "interrupted", "failed", "missing")
#: a run on another host whose status.json is older than this is taken as interrupted
DEFAULT_STALE_AFTER_S = 6 * 3600.0


def write_status(run_dir: Path, status: str, **fields: Any) -> None:
    record = {"status": status, "host": socket.gethostname(), "pid": os.getpid(), "updated": round(time.time(), 3),
              **fields}
    write_json_atomic(Path(run_dir) / STATUS_FILE, record)


def read_status(run_dir: Path) -> dict | None:
    try:
        data = json.loads((Path(run_dir) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def run_state(run_dir: Path, stale_after: float = DEFAULT_STALE_AFTER_S) -> tuple[str, dict]:
    """(state, status.json contents or {}) for one run directory; see the module docstring."""
    run_dir = Path(run_dir)
    if is_complete_record(read_result(run_dir)):
        return "complete", read_status(run_dir) or {}
    status = read_status(run_dir)
    if status is None:
        started = run_dir.is_dir() and any((run_dir / name).exists() for name in ("config.yaml", "metrics.csv",
                                                                                  "state.pt", RESULT_FILE))
        return ("interrupted" if started else "missing"), {}
    if status.get("status") == "failed":
        return "failed", status
    if status.get("status") == "running":
        updated = status.get("updated")
        fresh = isinstance(updated, (int, float)) and time.time() - updated < stale_after
        if status.get("host") == socket.gethostname():
            # alive and updated recently: a pid reused by another process does not count for ever
            return ("running" if _alive(status.get("pid")) and fresh else "interrupted"), status
        return ("running" if fresh else "interrupted"), status
    return "interrupted", status  # "complete" in status.json but no complete result.json
