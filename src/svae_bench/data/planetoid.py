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

Link prediction reads five of the eight files, as Kipf & Welling's ``load_data`` does (the
labels ``y``, ``ty``, ``ally`` are not used): features are ``allx`` stacked on ``tx`` with the
test rows put back in the order of ``test.index``; Citeseer's test indices that point past
``tx``'s rows (isolated nodes) get zero feature rows. The adjacency is the symmetric 0/1 matrix
of ``graph`` without self-loops (Citeseer lists 124 self-loops; Kipf's split removes them too).
"""

from __future__ import annotations

import hashlib
import os
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
    are there (cheap: a sweep's preflight runs it before anything is written)."""
    directory = planetoid_dir(data_root)
    for suffix in USED:
        path = directory / file_name(name, suffix)
        if not path.is_file():
            raise ConfigError(f"Planetoid file {path} is missing; {how_to_get(directory)}")
    return directory


# --------------------------------------------------------------------------- one file


def _fail(path: str, what: str) -> ConfigError:
    return ConfigError(f"Planetoid file {path} is corrupt ({what}); {how_to_get(Path(path).parent)}")


def parse_file(name: str, suffix: str, data: bytes, path: str = "") -> object:
    """The content of one file (bytes as read), checked; ConfigError naming ``path`` otherwise.

    x, tx, allx: CSR matrices (rows, features); y, ty, ally: 2-D numeric arrays, one row per row of
    the matching x; graph: a dict from node id to a list of node ids; test.index: distinct
    non-negative integers, one per line. Row and id ranges are checked against each other by
    :func:`assemble`."""
    fname = path or file_name(name, suffix)
    digest = SHA256.get(file_name(name, suffix))
    if digest is not None and hashlib.sha256(data).hexdigest() != digest:
        raise _fail(fname, f"SHA-256 {hashlib.sha256(data).hexdigest()[:16]}..., expected {digest[:16]}...")
    features = COUNTS[name].features
    if suffix == "test.index":
        try:
            text = data.decode("ascii")
            index = np.array([int(line) for line in text.split()], dtype=np.int64)
        except (UnicodeDecodeError, ValueError):
            raise _fail(fname, "not one integer per line") from None
        if index.size == 0 or index.min() < 0 or np.unique(index).size != index.size:
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
        if not np.isfinite(value.data).all():
            raise _fail(fname, "non-finite feature values")
        return value
    if suffix in ("y", "ty", "ally"):
        if not isinstance(value, np.ndarray) or value.ndim != 2 or value.shape[1] != COUNTS[name].classes:
            raise _fail(fname, f"expected a (rows, {COUNTS[name].classes}) label array, got {_describe(value)}")
        return value
    if suffix == "graph":
        if not isinstance(value, Mapping) or not value:
            raise _fail(fname, f"expected a dict of adjacency lists, got {_describe(value)}")
        ok = all(_is_id(k) and isinstance(v, list) and all(_is_id(j) for j in v) for k, v in value.items())
        if not ok:
            raise _fail(fname, "adjacency lists must map non-negative integer ids to lists of them")
        return value
    raise ValueError(f"unknown Planetoid suffix {suffix!r}")


def _is_id(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**31


def _describe(value: object) -> str:
    shape = getattr(value, "shape", None)
    return f"{type(value).__name__}" + (f" of shape {tuple(shape)}" if shape is not None else "")


def read_file(directory: Path, name: str, suffix: str) -> object:
    path = directory / file_name(name, suffix)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise _fail(str(path), f"larger than {MAX_FILE_BYTES} bytes")
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"Planetoid file {path} is missing; {how_to_get(directory)}") from None
    except OSError as err:
        raise ConfigError(f"Planetoid file {path} cannot be read ({err.strerror or err})") from None
    return parse_file(name, suffix, data, str(path))


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
