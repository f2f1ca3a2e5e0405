"""Obtaining the Planetoid files, checked (the library behind ``svae-bench data planetoid``).

Each file comes from the public Planetoid repository (:data:`~svae_bench.data.planetoid.URL`), is
checked in memory (its SHA-256 where known, else its content: :func:`~svae_bench.data.planetoid.parse_file`)
and, once all eight of a data set have arrived, the assembled graph is checked for its published
node, feature and edge counts; only then is each file written, atomically, into
``<root>/planetoid/``. Files already there that pass the same checks are kept and not fetched again.

Exit status of the command: 0 ok, 2 bad input, an unreachable repository (the message says where to
put the files by hand) or a file that fails its check (nothing of that data set written).
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from ..errors import ConfigError
from ..records import write_bytes_atomic
from .planetoid import MAX_FILE_BYTES, NAMES, SUFFIXES, URL, assemble, file_name, how_to_get, parse_file

PROBE_TIMEOUT_S = 5.0
DOWNLOAD_TIMEOUT_S = 60.0


class Unreachable(ConfigError):
    """The repository cannot be reached: exit 2, with where to put the files by hand."""


def reachable(url: str = URL, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to ``url``'s host opens within ``timeout`` seconds."""
    host = urlparse(url).hostname or ""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def download(url: str, timeout: float = DOWNLOAD_TIMEOUT_S) -> bytes:
    """The bytes at ``url`` (at most :data:`MAX_FILE_BYTES`); Unreachable on any network failure."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (https URL constant)
            data = response.read(MAX_FILE_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise Unreachable(f"cannot download {url} ({err})") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{url} is larger than {MAX_FILE_BYTES} bytes; refused")
    return data


def present_and_valid(directory: Path, name: str) -> bool:
    """Whether all eight files of ``name`` are in ``directory`` and pass every check."""
    try:
        parts = {}
        for suffix in SUFFIXES:
            path = directory / file_name(name, suffix)
            parts[suffix] = parse_file(name, suffix, path.read_bytes(), str(path))
        assemble(name, parts, directory)
        return True
    except (OSError, ConfigError):
        return False


def fetch_planetoid(
    name: str,
    root: Path,
    get: Callable[[str], bytes] | None = None,
    probe: Callable[[], bool] | None = None,
    say: Callable[[str], None] = print,
) -> Path:
    """Make sure ``root/planetoid`` holds ``name``'s eight checked files; returns the directory.

    ``get`` (url -> bytes; default :func:`download`) and ``probe`` (default :func:`reachable`) are the
    network (tests replace them)."""
    get = get or download
    probe = probe or reachable
    if name not in NAMES:
        raise ConfigError(f"unknown Planetoid data set {name!r}; allowed: {', '.join(NAMES)}")
    directory = root / "planetoid"
    if present_and_valid(directory, name):
        say(f"{name}: already present and checked in {directory}")
        return directory
    if not probe():
        raise Unreachable(
            f"{urlparse(URL).hostname} cannot be reached: {how_to_get(directory).split(', or ', 1)[1]} "
            f"(these are checked when read)"
        )
    files: dict[str, bytes] = {}
    parts = {}
    for suffix in SUFFIXES:
        fname = file_name(name, suffix)
        url = URL + fname
        say(f"{name}: downloading {url}")
        data = get(url)
        parts[suffix] = parse_file(name, suffix, data, fname)  # checked before it is kept
        files[fname] = data
    assemble(name, parts, directory)  # the published counts, before anything is written
    try:
        for fname, data in files.items():
            write_bytes_atomic(directory / fname, data)
    except OSError as err:
        raise ConfigError(f"cannot write {directory}: {err.strerror or err}") from None
    say(f"{name}: eight files checked and written to {directory}")
    return directory
