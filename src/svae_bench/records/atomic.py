"""Atomic writes and safe reads of the small files of a run directory.

Every file is written to a temporary file in the same directory and renamed into
place (``os.replace``), so a reader never sees half a file. Files written by anyone
else are read through :func:`read_small_file` (bounded in size before anything is
parsed; never a FIFO opened) and JSON files through :func:`read_json_file`, which
turns every decoding failure into one short reason. :func:`find_named` walks a runs
tree of any depth.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import tempfile
from collections.abc import Iterable
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


class UnreadableFile(ValueError):
    """A small file of a run directory that cannot be read safely; the message says why, in a few words."""


class UnreadableJSON(UnreadableFile):
    """A JSON file that cannot be read as one; the message says why, in a few words."""


def read_small_file(path: str | os.PathLike, max_bytes: int, error: type[UnreadableFile] = UnreadableFile) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` bytes, read without ever blocking or
    reading more than that: a directory, FIFO, socket or device, a file that cannot be read and a
    larger one raise ``error`` (never a FIFO opened: no hang). FileNotFoundError passes through."""
    path = Path(path)
    mode = path.stat().st_mode
    if stat.S_ISDIR(mode):
        raise error("is a directory, not a file")
    if not stat.S_ISREG(mode):
        raise error("is not a regular file (a FIFO, socket or device)")
    try:
        # O_NONBLOCK: replaced by a FIFO since the stat above, the open still returns at once
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise error(f"cannot read: {exc}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise error("is not a regular file (a FIFO, socket or device)")
        chunks, left = [], max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise error(f"cannot read: {exc}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise error(f"is larger than {max_bytes} bytes")
    return data


def read_json_file(path: str | os.PathLike, max_bytes: int = MAX_RECORD_BYTES) -> Any:
    """Decode a small JSON file safely: never opens a FIFO or device (no hang), refuses a
    directory or a file over ``max_bytes``, and turns every decoding failure (bad UTF-8, bad
    JSON, 5000-digit integers, nesting deep enough to exhaust the stack) into UnreadableJSON.
    FileNotFoundError passes through."""
    data = read_small_file(path, max_bytes, UnreadableJSON)
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


def find_named(root: str | os.PathLike, names: Iterable[str]) -> list[Path]:
    """Every entry called one of ``names`` (a file, or anything else of that name: the readers
    report those) in ``root`` and the directories below it, in no particular order. Like
    ``root.rglob(name)`` for each name, but iterative: a tree thousands of directories deep is
    walked, not a RecursionError; symbolic links to directories are not followed, and directories
    that cannot be listed are passed over."""
    wanted = frozenset(names)
    found: list[Path] = []
    stack = [Path(root)]
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except OSError:
            continue
        for entry in entries:
            if entry.name in wanted:
                found.append(directory / entry.name)
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                stack.append(directory / entry.name)
    return found
