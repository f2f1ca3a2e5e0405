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

import fcntl
import json
import os
import socket
import stat
import time
from pathlib import Path
from typing import Any

from .atomic import UnreadableJSON, read_json_file, read_small_file, write_json_atomic
from .files import CONFIG_FILE, LOCK_FILE, METRICS_FILE, RESULT_FILE, STATE_FILE, STATUS_FILE
from .record import finite, is_complete_record, printable, read_result

#: every state a run can be in, in the order ``svae-bench status`` counts them
STATES = ("complete", "running", "interrupted", "failed", "missing")
#: a run on another host whose status.json is older than this is taken as interrupted
DEFAULT_STALE_AFTER_S = 6 * 3600.0


def write_status(run_dir: Path, status: str, **fields: Any) -> None:
    record = {
        "status": status,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "updated": round(time.time(), 3),
        **fields,
    }
    write_json_atomic(Path(run_dir) / STATUS_FILE, record)


def read_status(run_dir: Path) -> dict | None:
    """status.json as a dict; None if missing, not a regular file (a FIFO never blocks), or unreadable."""
    try:
        data = read_json_file(Path(run_dir) / STATUS_FILE)
    except (OSError, UnreadableJSON):
        return None
    return data if isinstance(data, dict) else None


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < 2**31:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except (OverflowError, OSError):
        return False
    return True


class RunLock:
    """An exclusive lock on a run directory, so that exactly one process trains a run.

    ``fcntl.flock`` on ``<run_dir>/.lock``: the kernel releases it when its holder exits,
    however it dies, so a lock left by a killed process never needs cleaning up. The file
    holds the holder's host and pid, for messages only."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting; False if another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid()}).encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def holder(self) -> str:
        """ "process <pid> on <host>" as the lock file says, for messages (at most 1000 bytes of it read,
        never a FIFO; anything else: "another process")."""
        try:
            info = json.loads(read_small_file(self.path, 1000))
            return f"process {printable(info['pid'], 20)} on {printable(info['host'], 100)}"
        except (OSError, ValueError, KeyError, TypeError, RecursionError):  # ValueError: UnreadableFile too
            return "another process"

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def is_locked(run_dir: Path) -> bool:
    """Whether a live process holds the run's lock (see :class:`RunLock`)."""
    path = Path(run_dir) / LOCK_FILE
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return False
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def run_state(run_dir: Path, stale_after: float = DEFAULT_STALE_AFTER_S) -> tuple[str, dict]:
    """(state, status.json contents or {}) for one run directory; see the module docstring."""
    run_dir = Path(run_dir)
    if is_complete_record(read_result(run_dir)):
        return "complete", read_status(run_dir) or {}
    status = read_status(run_dir)
    if is_locked(run_dir):
        return "running", status or {}
    if status is None:
        started = run_dir.is_dir() and any(
            (run_dir / name).exists() for name in (CONFIG_FILE, METRICS_FILE, STATE_FILE, RESULT_FILE)
        )
        return ("interrupted" if started else "missing"), {}
    if status.get("status") == "failed":
        return "failed", status
    if status.get("status") == "running":
        updated = finite(status.get("updated"))  # None for a 401-digit integer, NaN or infinity
        fresh = updated is not None and time.time() - updated < stale_after
        if status.get("host") == socket.gethostname():
            # alive and updated recently: a pid reused by another process does not count for ever
            return ("running" if _alive(status.get("pid")) and fresh else "interrupted"), status
        return ("running" if fresh else "interrupted"), status
    return "interrupted", status  # "complete" in status.json but no complete result.json
