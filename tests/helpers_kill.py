"""Kill a run at a chosen epoch, as a crash would (import as `helpers_kill`)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path


def kill_at_epoch(command: list[str], cwd: Path, run_dir: Path, epoch: int, poll: float = 0.02) -> None:
    """Start ``command`` in ``cwd`` and SIGKILL it once ``run_dir``'s status.json reports ``epoch``
    or later; fails if the process ends first or 300 s pass."""
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    try:
        while True:
            status = run_dir / "status.json"
            if status.exists() and json.loads(status.read_text() or "{}").get("epoch", 0) >= epoch:
                break
            assert proc.poll() is None and time.monotonic() < deadline, "kill point not reached"
            time.sleep(poll)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
