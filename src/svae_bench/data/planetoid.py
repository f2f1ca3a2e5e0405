"""The Planetoid citation graphs (Cora, Citeseer, Pubmed) from their original files, checked.

Yang, Cohen & Salakhutdinov (ICML 2016) published each data set as eight files
``ind.<name>.{x,y,tx,ty,allx,ally,graph,test.index}`` under
``https://github.com/kimiyoung/planetoid/raw/master/data/``; Kipf's GCN and GAE code ship the
same bytes. They live in ``<data_root>/planetoid/`` (data root as for MNIST: ``dataset.data_root``,
default ``$SVAE_BENCH_DATA``, else ``~/.cache/svae-bench``).

The files are Python-2 pickles from the internet: they are read by
:func:`svae_bench.data.safe_pickle.load`, which rebuilds only SciPy CSR matrices, numeric numpy
arrays, ``defaultdict(list)`` and plain data, and refuses everything else. A file whose SHA-256 is
known (:data:`SHA256`: Cora and Citeseer, ../shared/data/README.md) must match it; every file is
also checked for what it must hold (types, shapes, index ranges), and the assembled graph for its
published node, feature and edge counts (:data:`COUNTS`). Any failure is a
:class:`~svae_bench.errors.ConfigError` naming the file (exit 2 on the command line).

Every file is read by :func:`read_regular`: opened without blocking (a FIFO in the data root does not
hang the reader), checked to be a regular file (not a FIFO, device or directory, also behind a
symbolic link) of at most :data:`MAX_FILE_BYTES` on the open descriptor, and read to that bound
only. Index ranges are checked against the data set's published node count before anything is
allocated from them, so no file content sizes an allocation beyond the data set's own size.

Link prediction reads five of the eight files, as Kipf & Welling's ``load_data`` does (the
labels ``y``, ``ty``, ``ally`` are not used): features are ``allx`` stacked on ``tx`` with the
test rows put back in the order of ``test.index``; Citeseer's test indices that point past
``tx``'s rows (isolated nodes) get zero feature rows. The adjacency is the symmetric 0/1 matrix
of ``graph`` without self-loops (Citeseer lists 124 self-loops; Kipf's split removes them too).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ..errors import ConfigError
from . import safe_pickle

NAMES = ("cora", "citeseer", "pubmed")
#: the eight files of a data set, by suffix
SUFFIXES = ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index")
#: the files link prediction reads
USED = ("x", "tx", "allx", "graph", "test.index")
URL = "https://github.com/kimiyoung/planetoid/raw/master/data/"


@dataclass(frozen=True)
class Counts:
    nodes: int
    features: int
    edges: int  # undirected, without self-loops, after de-duplication
    classes: int


#: published figures (../shared/paper/NOTES.md and ../shared/data/README.md)
COUNTS = {
    "cora": Counts(2708, 1433, 5278, 7),
    "citeseer": Counts(3327, 3703, 4552, 6),
    "pubmed": Counts(19717, 500, 44324, 3),
}

#: SHA-256 of the original files where known (../shared/data/README.md); others are checked by content
SHA256 = {
    "ind.cora.x": "23cfa55d91c6f624233f5eb7b6e3f141f1bd2b2ae39608a63cf5d084bb27baab",
    "ind.cora.y": "94465c14eb53e04ca262198dcbb2521ee8af60fb3f3d546cd6ca24a511b0e7d1",
    "ind.cora.tx": "b9afbaa4a400df991f6f02ef677e1e44da55ffc04801fd02f9e673987829226a",
    "ind.cora.ty": "41f5ac76596a1699cc33f53084a2419e92961c42bb75f36fc38e616d348532ad",
    "ind.cora.allx": "9419ba2f26f5c35243db64aba110e0f35a04851609e0dc5433450676ca6b8543",
    "ind.cora.ally": "2b998f5cc7fedc86e7f97ca2498f47a1ffc1462c29e2d578b23bf3f62b6e7d71",
    "ind.cora.graph": "58f13302f39dde8852dad6fe6d15b89b077b6d7f837626bce671ef80344b383d",
    "ind.cora.test.index": "297ce89af2b51a6a194181c7dbe1796c6a1cf9cd9349a88383b1b1e227867875",
    "ind.citeseer.x": "d20de19150741e555de0ed037195630fc194114ebc7fd72ced62810148aa22f6",
    "ind.citeseer.y": "8ba87e515d8e3ee3cf52f6d2c5b86aa73f11ecad825a808455209ec26cd54924",
    "ind.citeseer.tx": "539a8906a2da97628d212f2fdd668c109a8b3f0d36574b59e5d3fd5b5303da21",
    "ind.citeseer.ty": "55e5bd1ba1e733a04598753ad1a8d57957f4b8f89e74519f41f4f4938767e4ce",
    "ind.citeseer.allx": "2ac30345d95c9ec933a817ee0bdd6a5f077f8c184a20e696910192d534414668",
    "ind.citeseer.ally": "f704b2d986dde6c2669934de1f3ae5696a6cf9455c0f6b2646a2d135ea0a1c95",
    "ind.citeseer.graph": "d79a4ef9d3e7169aee8946145f6b7306e35bc79bffad26346cfb94e10e9912a7",
    "ind.citeseer.test.index": "2af990671580b6b2df5d158d1038f8292e30c9cd821b5453f399659b25b723d4",
}
#: bytes a Planetoid file may have (Pubmed's allx, the largest, is about 8 MB)
MAX_FILE_BYTES = 64 * 1024 * 1024
#: bytes a test.index file may have (Pubmed's, the largest, is about 6 kB: 1000 lines of 5 digits)
MAX_INDEX_BYTES = 1024 * 1024
#: one test index: a non-negative decimal integer (compared with the node count as a Python int,
#: before any int64 array holds it; 100 digits at most)
_INDEX = re.compile(rb"[0-9]{1,100}")


class NotReadable(ConfigError):
    """A file that :func:`read_regular` refuses: the message is the reason alone (``is not a regular
    file (a FIFO)``, ``is larger than ...``); callers put the path and the remedy around it."""


class TooLarge(NotReadable):
    """A file larger than the bound it is read with."""


def _kind(mode: int) -> str:
    for test, what in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return what
    return "not a plain file"


def open_regular(path: Path | str) -> int:
    """A read-only descriptor (blocking) of the regular file ``path`` (symbolic links followed).

    Opened with O_NONBLOCK, so that a FIFO opens at once instead of waiting for a writer, then
    checked on the descriptor (no race with a file swapped in between): NotReadable for a FIFO,
    device, directory or socket. OSError (FileNotFoundError, ...) propagates."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotReadable(f"is not a regular file ({_kind(mode)})")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: Path | str, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the regular file ``path``, at most ``max_bytes`` of them (:func:`open_regular`;
    NotReadable for anything else or anything larger, checked before and while reading)."""
    fd = open_regular(path)
    try:
        if os.fstat(fd).st_size > max_bytes:
            raise TooLarge(f"is larger than {max_bytes} bytes")
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:  # grew since fstat
                raise TooLarge(f"is larger than {max_bytes} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def file_name(name: str, suffix: str) -> str:
    return f"ind.{name}.{suffix}"


def how_to_get(directory: Path | str) -> str:
    return (
        f"run `svae-bench data planetoid --root <data_root>`, or put the eight Planetoid files "
        f"ind.<name>.{{{','.join(SUFFIXES)}}} (from {URL}) in {directory}"
    )


def default_data_root() -> str:
    """$SVAE_BENCH_DATA, else ~/.cache/svae-bench (the same root as MNIST's)."""
    return os.environ.get("SVAE_BENCH_DATA") or str(Path.home() / ".cache" / "svae-bench")


def planetoid_dir(data_root: str | None) -> Path:
    """``<data_root>/planetoid`` (None: :func:`default_data_root`)."""
    return Path(os.path.expanduser(str(data_root or default_data_root()))) / "planetoid"


def check_name(name: object) -> str:
    if name not in NAMES:
        raise ConfigError(f"Planetoid data set {name!r} is unknown; allowed: {', '.join(NAMES)}")
    return str(name)


def check_files_present(name: str, data_root: str | None) -> Path:
    """The directory holding ``name``'s files, after checking that the files link prediction reads
    are there, regular files of at most :data:`MAX_FILE_BYTES` (cheap: no file is opened)."""
    directory = planetoid_dir(data_root)
    for suffix in USED:
        path = directory / file_name(name, suffix)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise ConfigError(f"Planetoid file {path} is missing; {how_to_get(directory)}") from None
        except OSError as err:
            raise ConfigError(f"Planetoid file {path} cannot be read ({err.strerror or err})") from None
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(
                f"Planetoid file {path} is not a regular file ({_kind(st.st_mode)}); {how_to_get(directory)}"
            )
        if st.st_size > MAX_FILE_BYTES:
            raise _fail(str(path), f"larger than {MAX_FILE_BYTES} bytes")
    return directory


def verify_files(name: str, data_root: str | None) -> Path:
    """Everything :func:`load_planetoid` checks, as cheaply as it can be known (a sweep's preflight
    runs it once per data set, before anything is written): every file link prediction reads is
    read (bounded) and, where its SHA-256 is known (Cora, Citeseer), compared with it; when some
    file has no known sum (Pubmed), the files are parsed and the graph assembled as for a run."""
    name = check_name(name)
    directory = check_files_present(name, data_root)
    data = {suffix: _read(directory, name, suffix) for suffix in USED}
    for suffix, content in data.items():
        check_sum(name, suffix, content, str(directory / file_name(name, suffix)))
    if any(file_name(name, suffix) not in SHA256 for suffix in USED):
        parts = {s: parse_file(name, s, content, str(directory / file_name(name, s))) for s, content in data.items()}
        assemble(name, parts, directory)
    return directory


# --------------------------------------------------------------------------- one file


class CorruptFile(ConfigError):
    """A Planetoid file that fails a check: ``path`` and ``what`` (the reason) kept apart."""

    def __init__(self, path: str, what: str = ""):
        if not what:  # rebuilt from its message (copy, pickle): the message as it was
            super().__init__(path)
        else:
            super().__init__(f"Planetoid file {path} is corrupt ({what}); {how_to_get(Path(path).parent)}")
        self.path, self.what = path, what


def _fail(path: str, what: str) -> ConfigError:
    return CorruptFile(path, what)


def check_sum(name: str, suffix: str, data: bytes, path: str = "") -> None:
    """CorruptFile unless ``data`` has the file's known SHA-256 (nothing to check where none is known)."""
    digest = SHA256.get(file_name(name, suffix))
    got = hashlib.sha256(data).hexdigest()
    if digest is not None and got != digest:
        raise _fail(path or file_name(name, suffix), f"SHA-256 {got[:16]}..., expected {digest[:16]}...")


def parse_file(name: str, suffix: str, data: bytes, path: str = "") -> object:
    """The content of one file (bytes as read), checked; ConfigError naming ``path`` otherwise.

    x, tx, allx: CSR matrices (rows, features); y, ty, ally: 2-D numeric arrays, one row per row of
    the matching x; graph: a dict from node id to a list of node ids; test.index: distinct
    non-negative integers, one per line. Row and id ranges are checked against each other by
    :func:`assemble`."""
    fname = path or file_name(name, suffix)
    check_sum(name, suffix, data, fname)
    features, n_nodes = COUNTS[name].features, COUNTS[name].nodes
    if len(data) > MAX_FILE_BYTES:
        raise _fail(fname, f"larger than {MAX_FILE_BYTES} bytes")
    if suffix == "test.index":
        if len(data) > MAX_INDEX_BYTES:
            raise _fail(fname, f"larger than {MAX_INDEX_BYTES} bytes")
        tokens = data.split()
        if len(tokens) > n_nodes:
            raise _fail(fname, f"{len(tokens)} test indices for {n_nodes} nodes")
        if not all(_INDEX.fullmatch(t) for t in tokens):
            raise _fail(fname, "not one non-negative integer per line")
        values = [int(t) for t in tokens]
        if not values:
            raise _fail(fname, "no test index")
        if max(values) >= n_nodes:  # before an int64 array (overflow) or anything sized by it
            raise _fail(fname, f"test index {max(values)} is beyond the {n_nodes} nodes of {name}")
        index = np.array(values, dtype=np.int64)
        if np.unique(index).size != index.size:
            raise _fail(fname, "test indices must be distinct non-negative integers")
        return index
    try:
        value = safe_pickle.load(data)
    except safe_pickle.UnsafePickle as err:
        raise _fail(fname, f"refused by the safe unpickler: {err}") from None
    except (EOFError, ValueError, OSError, zlib.error) as err:
        raise _fail(fname, f"unreadable pickle: {err}") from None
    if suffix in ("x", "tx", "allx"):
        if not sp.issparse(value) or value.format != "csr" or value.ndim != 2 or value.shape[1] != features:
            raise _fail(fname, f"expected a CSR matrix with {features} columns, got {_describe(value)}")
        if value.shape[0] > n_nodes:
            raise _fail(fname, f"{value.shape[0]} rows for the {n_nodes} nodes of {name}")
        if not np.isfinite(value.data).all():
            raise _fail(fname, "non-finite feature values")
        return value
    if suffix in ("y", "ty", "ally"):
        if not isinstance(value, np.ndarray) or value.ndim != 2 or value.shape[1] != COUNTS[name].classes:
            raise _fail(fname, f"expected a (rows, {COUNTS[name].classes}) label array, got {_describe(value)}")
        if value.shape[0] > n_nodes:
            raise _fail(fname, f"{value.shape[0]} rows for the {n_nodes} nodes of {name}")
        return value
    if suffix == "graph":
        if not isinstance(value, Mapping) or not value:
            raise _fail(fname, f"expected a dict of adjacency lists, got {_describe(value)}")
        ok = all(_is_id(k) and isinstance(v, list) and all(_is_id(j) for j in v) for k, v in value.items())
        if not ok:
            raise _fail(fname, "adjacency lists must map non-negative integer ids to lists of them")
        if any(k >= n_nodes for k in value) or any(j >= n_nodes for v in value.values() for j in v):
            raise _fail(fname, f"node ids beyond the {n_nodes} nodes of {name}")
        return value
    raise ValueError(f"unknown Planetoid suffix {suffix!r}")


def _is_id(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**31


def _describe(value: object) -> str:
    shape = getattr(value, "shape", None)
    return f"{type(value).__name__}" + (f" of shape {tuple(shape)}" if shape is not None else "")


def _read(directory: Path, name: str, suffix: str) -> bytes:
    """One file's bytes (:func:`read_regular`), or a ConfigError naming it."""
    path = directory / file_name(name, suffix)
    try:
        return read_regular(path, MAX_FILE_BYTES)
    except TooLarge:
        raise _fail(str(path), f"larger than {MAX_FILE_BYTES} bytes") from None
    except NotReadable as err:
        raise ConfigError(f"Planetoid file {path} {err}; {how_to_get(directory)}") from None
    except (FileNotFoundError, NotADirectoryError):
        raise ConfigError(f"Planetoid file {path} is missing; {how_to_get(directory)}") from None
    except OSError as err:
        raise ConfigError(f"Planetoid file {path} cannot be read ({err.strerror or err})") from None


def read_file(directory: Path, name: str, suffix: str) -> object:
    path = directory / file_name(name, suffix)
    return parse_file(name, suffix, _read(directory, name, suffix), str(path))


# --------------------------------------------------------------------------- the graph


@dataclass(frozen=True)
class Graph:
    """A graph for link prediction: ``features`` (N, F) CSR float32, ``adjacency`` (N, N) CSR float64,
    symmetric, 0/1, no self-loops."""

    name: str
    features: sp.csr_matrix
    adjacency: sp.csr_matrix

    @property
    def n_nodes(self) -> int:
        return self.adjacency.shape[0]

    @property
    def n_edges(self) -> int:
        return int(sp.triu(self.adjacency, k=1).nnz)


def adjacency_from_lists(graph: Mapping[int, list[int]], n_nodes: int) -> sp.csr_matrix:
    """The symmetric 0/1 adjacency (N, N) of adjacency lists, without self-loops or duplicates."""
    rows = np.fromiter((k for k, v in graph.items() for _ in v), dtype=np.int64)
    cols = np.fromiter((j for v in graph.values() for j in v), dtype=np.int64)
    return symmetric_adjacency(rows, cols, n_nodes)


def symmetric_adjacency(rows: np.ndarray, cols: np.ndarray, n_nodes: int) -> sp.csr_matrix:
    """The symmetric 0/1 CSR adjacency of the pairs (rows[k], cols[k]), self-loops dropped."""
    keep = rows != cols
    rows, cols = rows[keep], cols[keep]
    a = sp.coo_matrix((np.ones(rows.size), (rows, cols)), shape=(n_nodes, n_nodes)).tocsr()
    a = a + a.T
    a.data[:] = 1.0
    a.eliminate_zeros()
    a.sort_indices()
    return a


def assemble(name: str, parts: Mapping[str, object], where: Path | str = "") -> Graph:
    """Kipf & Welling's ``load_data`` on checked parts (suffix -> :func:`parse_file`'s value), then the
    published counts checked (ConfigError naming the data set's files otherwise)."""
    x, tx, allx = parts["x"], parts["tx"], parts["allx"]
    graph, test_index = parts["graph"], parts["test.index"]
    counts = COUNTS[name]
    where = Path(where) if where else Path(".")
    test_sorted = np.sort(test_index)
    lo, hi = int(test_sorted[0]), int(test_sorted[-1])
    n_all = allx.shape[0]
    if lo != n_all:
        raise _fail(str(where / file_name(name, "test.index")), f"first test index {lo}, expected {n_all} (allx rows)")
    if hi != counts.nodes - 1:  # before anything is sized by the index range
        raise _fail(
            str(where / file_name(name, "test.index")),
            f"last test index {hi}, expected {counts.nodes - 1} ({name} has {counts.nodes} nodes)",
        )
    span = hi - lo + 1
    if tx.shape[0] != test_index.size or span < tx.shape[0]:
        raise _fail(str(where / file_name(name, "tx")), f"{tx.shape[0]} rows for {test_index.size} test indices")
    if x.shape[0] > n_all:
        raise _fail(str(where / file_name(name, "x")), f"{x.shape[0]} rows, more than allx's {n_all}")
    # tx's rows belong to the sorted test indices; indices missing from the file (Citeseer's
    # isolated nodes) get zero rows, as in Kipf's loader.
    tx_full = sp.lil_matrix((span, tx.shape[1]), dtype=np.float32)
    tx_full[test_sorted - lo, :] = tx
    features = sp.vstack([allx.astype(np.float32), tx_full.tocsr()]).tocsr()
    order = np.arange(features.shape[0])
    order[test_index] = test_sorted  # features[test_index] = features[test_sorted]
    features = features[order].tocsr()
    features.sort_indices()
    n_nodes = features.shape[0]
    if any(k >= n_nodes for k in graph) or any(j >= n_nodes for v in graph.values() for j in v):
        raise _fail(str(where / file_name(name, "graph")), f"node ids beyond the {n_nodes} feature rows")
    adjacency = adjacency_from_lists(graph, n_nodes)
    result = Graph(name, features, adjacency)
    got = (result.n_nodes, features.shape[1], result.n_edges)
    want = (counts.nodes, counts.features, counts.edges)
    if got != want:
        raise ConfigError(
            f"Planetoid {name} files in {where} give {got[0]} nodes, {got[1]} features, {got[2]} edges; "
            f"expected {want[0]}, {want[1]}, {want[2]}: a file is corrupt; {how_to_get(where)}"
        )
    return result


def load_planetoid(name: str, data_root: str | None = None) -> Graph:
    """The data set ``name`` from ``<data_root>/planetoid`` (see the module docstring)."""
    name = check_name(name)
    directory = check_files_present(name, data_root)
    parts = {suffix: read_file(directory, name, suffix) for suffix in USED}
    return assemble(name, parts, directory)
