"""Obtaining the Planetoid files, checked (the library behind ``svae-bench data planetoid``).

Each file comes from the public Planetoid repository (:data:`~svae_bench.data.planetoid.URL`), is
checked in memory (its SHA-256 where known, else its content: :func:`~svae_bench.data.planetoid.parse_file`)
and, once all eight of a data set have arrived, the assembled graph is checked for its published
node, feature and edge counts; only then is each file written, atomically, into
``<root>/planetoid/``. Files already there that pass the same checks are kept and not fetched again;
a file there that fails them is named (and replaced by a checked download; when the repository cannot
be reached, the error names it). Files there are read bounded (:func:`~svae_bench.data.planetoid.read_regular`):
a FIFO, a device or a directory in place of a file is refused, naming it, before anything is fetched.

Exit status of the command: 0 ok, 2 bad input, an unreachable repository (the message says where to
put the files by hand) or a file that fails its check (nothing of that data set written).
"""

from __future__ import annotations

import re
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from ..errors import ConfigError
from ..records import write_bytes_atomic
from .planetoid import (
    MAX_FILE_BYTES,
    NAMES,
    SUFFIXES,
    URL,
    CorruptFile,
    NotReadable,
    TooLarge,
    assemble,
    file_name,
    how_to_get,
    parse_file,
    read_regular,
)

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


def check_present(directory: Path, name: str) -> tuple[list[str], list[str]]:
    """(missing file names, problems) of ``name``'s eight files in ``directory``: each problem one
    phrase naming a file that is there but fails its check (or the assembled graph's counts). Both
    empty: all eight are there and pass every check. ConfigError for a path that is not a regular
    file (a FIFO, a device, a directory): nothing is fetched over it."""
    missing: list[str] = []
    problems: list[str] = []
    parts = {}
    for suffix in SUFFIXES:
        path = directory / file_name(name, suffix)
        try:
            data = read_regular(path, MAX_FILE_BYTES)
        except (FileNotFoundError, NotADirectoryError):
            missing.append(path.name)
            continue
        except TooLarge:
            problems.append(f"Planetoid file {path} is corrupt (larger than {MAX_FILE_BYTES} bytes)")
            continue
        except NotReadable as err:
            raise ConfigError(f"Planetoid file {path} {err}: remove it, or choose another --root") from None
        except OSError as err:
            raise ConfigError(f"Planetoid file {path} cannot be read ({err.strerror or err})") from None
        try:
            parts[suffix] = parse_file(name, suffix, data, str(path))
        except CorruptFile as err:
            problems.append(f"Planetoid file {err.path} is corrupt ({err.what})")
    if not missing and not problems:
        try:
            assemble(name, parts, directory)
        except CorruptFile as err:
            problems.append(f"Planetoid file {err.path} is corrupt ({err.what})")
        except ConfigError as err:
            problems.append(str(err).split(": a file is corrupt", 1)[0])
    return missing, problems


def _named(problem: str) -> str:
    """The file a problem names (its base name), or the problem's first words."""
    match = re.match(r"Planetoid file (\S+) ", problem)
    return Path(match.group(1)).name if match else problem.split(";", 1)[0]


def present_and_valid(directory: Path, name: str) -> bool:
    """Whether all eight files of ``name`` are in ``directory`` and pass every check."""
    try:
        return check_present(directory, name) == ([], [])
    except ConfigError:
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
    missing, problems = check_present(directory, name)
    if not missing and not problems:
        say(f"{name}: already present and checked in {directory}")
        return directory
    for problem in problems:
        say(f"{name}: {problem}")
    if not probe():
        where = how_to_get(directory).split(", or ", 1)[1]
        if problems:
            others = [_named(problem) for problem in problems[1:]]
            more = f" (also failing: {', '.join(others)})" if others else ""
            raise Unreachable(
                f"{problems[0]}{more}; {urlparse(URL).hostname} cannot be reached to fetch the files again: "
                f"{where} (these are checked when read)"
            )
        raise Unreachable(f"{urlparse(URL).hostname} cannot be reached: {where} (these are checked when read)")
    if problems:
        say(f"{name}: fetching the eight files again (each checked before any is written)")
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
