"""Atomic writes and safe reads of the small files of a run directory.

Every file is written to a temporary file in the same directory and renamed into
place (``os.replace``), so a reader never sees half a file. JSON files are read
through :func:`read_json_file`, which never opens a FIFO and turns every decoding
failure into one short reason.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and os.replace (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the permissions open() would
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def write_csv_atomic(path: str | os.PathLike, columns: list[str], rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_bytes_atomic(path, buf.getvalue().encode())


def save_torch_atomic(path: str | os.PathLike, obj: Any) -> None:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    write_bytes_atomic(path, buf.getvalue())


#: result.json and status.json are a few kB; anything larger is not one of ours
MAX_RECORD_BYTES = 16 << 20


class UnreadableJSON(ValueError):
    """A JSON file that cannot be read as one; the message says why, in a few words."""


def read_json_file(path: str | os.PathLike, max_bytes: int = MAX_RECORD_BYTES) -> Any:
    """Decode a small JSON file safely: never opens a FIFO or device (no hang), refuses a
    directory or a file over ``max_bytes``, and turns every decoding failure (bad UTF-8, bad
    JSON, 5000-digit integers, nesting deep enough to exhaust the stack) into UnreadableJSON.
    FileNotFoundError passes through."""
    path = Path(path)
    mode = path.stat().st_mode
    if stat.S_ISDIR(mode):
        raise UnreadableJSON("is a directory, not a file")
    if not stat.S_ISREG(mode):
        raise UnreadableJSON("is not a regular file (a FIFO, socket or device)")
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise UnreadableJSON(f"cannot read: {exc}") from None
    if len(data) > max_bytes:
        raise UnreadableJSON(f"is larger than {max_bytes} bytes")
    if not data.strip():
        raise UnreadableJSON("empty file")
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UnreadableJSON(f"not UTF-8 ({exc})") from None
    except RecursionError:
        raise UnreadableJSON("invalid JSON (nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError, and int() of numbers over 4300 digits
        raise UnreadableJSON(f"invalid JSON ({str(exc).splitlines()[0][:200]})") from None
