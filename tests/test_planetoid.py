"""Planetoid graphs and the edge split (Table 4): the real Cora and Citeseer files give the published
counts; a malicious, missing or corrupt file is refused with one line naming it; `svae-bench data
planetoid` checks every file before keeping it, offline (the network is replaced); the split is
disjoint, seeded, and its non-edges are non-edges."""

from __future__ import annotations

import os
import pickle
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from svae_bench.commands import data as data_cmd
from svae_bench.data import planetoid_fetch
from svae_bench.data.graph import kipf_weights, normalised_adjacency, split_edges, synthetic_graph, upper_edges
from svae_bench.data.planetoid import COUNTS, SUFFIXES, file_name, load_planetoid
from svae_bench.errors import ConfigError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PLANETOID = SHARED / "planetoid"
needs_planetoid = pytest.mark.skipif(not (PLANETOID / "ind.cora.x").is_file(), reason="../shared/data not present")


class _Boom:
    """Pickles to a call of os.system: what a restricted unpickler must never run."""

    def __reduce__(self):
        return (os.system, ("touch pwned",))


def _copy(dataset: str, root: Path) -> Path:
    target = root / "planetoid"
    target.mkdir(parents=True, exist_ok=True)
    for suffix in SUFFIXES:
        shutil.copy(PLANETOID / file_name(dataset, suffix), target)
    return target


@needs_planetoid
@pytest.mark.parametrize("dataset", ["cora", "citeseer"])
def test_published_counts(dataset: str) -> None:
    graph = load_planetoid(dataset, str(SHARED))
    counts = COUNTS[dataset]
    assert (graph.n_nodes, graph.features.shape[1], graph.n_edges) == (counts.nodes, counts.features, counts.edges)
    a = graph.adjacency
    assert (a != a.T).nnz == 0 and a.diagonal().sum() == 0 and set(np.unique(a.data)) == {1.0}


@needs_planetoid
def test_citeseer_isolated_test_nodes_get_zero_features_and_test_rows_are_reordered() -> None:
    graph = load_planetoid("citeseer", str(SHARED))
    index = np.array([int(v) for v in (PLANETOID / "ind.citeseer.test.index").read_text().split()])
    missing = sorted(set(range(index.min(), index.max() + 1)) - set(index))
    assert len(missing) == 15 and graph.features[missing].nnz == 0
    with warnings.catch_warnings():  # the Python 2 pickle names scipy.sparse.csr (deprecated)
        warnings.simplefilter("ignore", DeprecationWarning)
        tx = pickle.loads((PLANETOID / "ind.citeseer.tx").read_bytes(), encoding="latin1")
    # Kipf's loader: tx's k-th row is the features of node test.index[k]
    assert abs(graph.features[index] - tx).sum() == 0


@needs_planetoid
def test_malicious_pickle_is_refused_without_running_it(tmp_path: Path, monkeypatch) -> None:
    directory = _copy("cora", tmp_path)
    (directory / "ind.cora.graph").write_bytes(pickle.dumps(_Boom(), protocol=2))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"ind\.cora\.graph is corrupt") as err:
        load_planetoid("cora", str(tmp_path))
    assert "\n" not in str(err.value) and not (tmp_path / "pwned").exists()


@needs_planetoid
def test_missing_truncated_and_altered_files_name_the_file(tmp_path: Path) -> None:
    directory = _copy("cora", tmp_path)
    (directory / "ind.cora.tx").unlink()
    with pytest.raises(ConfigError, match=r"ind\.cora\.tx is missing; run `svae-bench data planetoid"):
        load_planetoid("cora", str(tmp_path))
    shutil.copy(PLANETOID / "ind.cora.tx", directory)
    data = (directory / "ind.cora.allx").read_bytes()
    (directory / "ind.cora.allx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError, match=r"ind\.cora\.allx is corrupt \(SHA-256"):
        load_planetoid("cora", str(tmp_path))


@needs_planetoid
def test_files_without_a_known_sum_are_checked_by_content_and_counts(tmp_path: Path, monkeypatch) -> None:
    from svae_bench.data import planetoid

    monkeypatch.setattr(planetoid, "SHA256", {})
    directory = _copy("cora", tmp_path)
    assert load_planetoid("cora", str(tmp_path)).n_edges == 5278
    graph = pickle.loads((PLANETOID / "ind.cora.graph").read_bytes(), encoding="latin1")
    graph[0] = graph[0] + [5, 6]  # two extra edges: the published count no longer holds
    (directory / "ind.cora.graph").write_bytes(pickle.dumps(graph, protocol=2))
    with pytest.raises(ConfigError, match="give 2708 nodes, 1433 features, 5280 edges; expected 2708, 1433, 5278"):
        load_planetoid("cora", str(tmp_path))
    (directory / "ind.cora.graph").write_bytes(pickle.dumps({0: "not a list"}, protocol=2))
    with pytest.raises(ConfigError, match=r"ind\.cora\.graph is corrupt \(adjacency lists"):
        load_planetoid("cora", str(tmp_path))


# --------------------------------------------------------------------------- svae-bench data planetoid


def _network(files: dict[str, bytes]):
    calls: list[str] = []

    def get(url: str) -> bytes:
        calls.append(url)
        return files[url.rsplit("/", 1)[1]]

    return get, calls


@needs_planetoid
def test_fetch_checks_each_file_then_writes_all(tmp_path: Path, monkeypatch, capsys) -> None:
    served = {file_name("cora", s): (PLANETOID / file_name("cora", s)).read_bytes() for s in SUFFIXES}
    get, calls = _network(served)
    monkeypatch.setattr(planetoid_fetch, "download", get)
    monkeypatch.setattr(planetoid_fetch, "reachable", lambda *a, **k: True)
    assert data_cmd.main(["planetoid", "--name", "cora", "--root", str(tmp_path)]) == 0
    assert len(calls) == 8 and calls[0] == "https://github.com/kimiyoung/planetoid/raw/master/data/ind.cora.x"
    for name, data in served.items():
        assert (tmp_path / "planetoid" / name).read_bytes() == data
    calls.clear()
    assert data_cmd.main(["planetoid", "--name", "cora", "--root", str(tmp_path)]) == 0  # present: no fetch
    assert calls == [] and "already present and checked" in capsys.readouterr().out


@needs_planetoid
def test_fetch_refuses_a_malicious_download_and_writes_nothing(tmp_path: Path, monkeypatch, capsys) -> None:
    served = {file_name("cora", s): (PLANETOID / file_name("cora", s)).read_bytes() for s in SUFFIXES}
    served["ind.cora.ally"] = pickle.dumps(_Boom(), protocol=2)
    monkeypatch.setattr(planetoid_fetch, "download", _network(served)[0])
    monkeypatch.setattr(planetoid_fetch, "reachable", lambda *a, **k: True)
    monkeypatch.chdir(tmp_path)
    assert data_cmd.main(["planetoid", "--name", "cora", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "ind.cora.ally is corrupt" in err
    assert not (tmp_path / "planetoid").exists() and not (tmp_path / "pwned").exists()


def test_offline_fetch_is_exit_2_with_where_to_put_the_files(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(planetoid_fetch, "reachable", lambda *a, **k: False)
    assert data_cmd.main(["planetoid", "--name", "pubmed", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "cannot be reached: put the eight Planetoid files" in err and str(tmp_path / "planetoid") in err


def test_unknown_data_set_and_bad_root(tmp_path: Path, capsys) -> None:
    assert data_cmd.main(["planetoid", "--name", "reddit"]) == 2
    (tmp_path / "file").write_text("x")
    assert data_cmd.main(["planetoid", "--root", str(tmp_path / "file")]) == 2
    assert "is not a directory" in capsys.readouterr().err


# --------------------------------------------------------------------------- the split


def _graph(seed: int = 0):
    return synthetic_graph(200, 30, 700, 4, 0.8, 0.1, seed)


def test_split_is_disjoint_seeded_and_its_non_edges_are_non_edges() -> None:
    graph = _graph()
    a = graph.adjacency
    split = split_edges(a, split_seed=3)
    e = upper_edges(a).shape[0]
    assert (split.test.shape[0], split.val.shape[0]) == (e // 10, e // 20)
    assert split.test_false.shape == split.test.shape and split.val_false.shape == split.val.shape
    keys = {
        name: {tuple(p) for p in getattr(split, name)} for name in ("train", "val", "test", "val_false", "test_false")
    }
    for name, pairs in keys.items():
        assert len(pairs) == len(getattr(split, name)), f"{name} has repeats"
        assert all(i < j for i, j in pairs), f"{name} is not (i < j)"
    assert keys["train"] | keys["val"] | keys["test"] == {tuple(p) for p in upper_edges(a)}
    assert not (keys["train"] & keys["val"]) and not (keys["train"] & keys["test"]) and not (keys["val"] & keys["test"])
    assert not (keys["val_false"] & keys["test_false"])
    dense = a.toarray()
    for name in ("val_false", "test_false"):
        pairs = getattr(split, name)
        assert dense[pairs[:, 0], pairs[:, 1]].sum() == 0  # true non-edges of the full graph
    train_adj = split.train_adjacency().toarray()
    assert (train_adj == train_adj.T).all() and np.trace(train_adj) == 0
    for name in ("val", "test"):  # held-out edges are absent from the training graph, both directions
        pairs = getattr(split, name)
        assert train_adj[pairs[:, 0], pairs[:, 1]].sum() == 0 and train_adj[pairs[:, 1], pairs[:, 0]].sum() == 0
    again = split_edges(a, split_seed=3)
    other = split_edges(a, split_seed=4)
    assert all(np.array_equal(getattr(split, n), getattr(again, n)) for n in keys)
    assert not np.array_equal(split.test, other.test)


def test_normalised_adjacency_equals_a_dense_reference() -> None:
    a = sp.csr_matrix(np.array([[0, 1, 1, 0], [1, 0, 0, 0], [1, 0, 0, 1], [0, 0, 1, 0]], dtype=float))
    dense = a.toarray() + np.eye(4)
    d = np.diag(dense.sum(1) ** -0.5)
    assert np.allclose(normalised_adjacency(a).toarray(), d @ dense @ d, atol=1e-15)
    assert normalised_adjacency(a)[0, 0] == pytest.approx(1 / 3)  # degree 2 + self-loop


def test_kipf_weights() -> None:
    pos_weight, norm = kipf_weights(4, 3)  # N^2 = 16, 6 ones
    assert pos_weight == pytest.approx(10 / 6) and norm == pytest.approx(16 / 20)
