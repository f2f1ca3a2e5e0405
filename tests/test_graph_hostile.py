"""Hostile input to Table 4's data (issue 32): every case is one line naming the problem (ConfigError:
`error: ...`, exit status 2), without a traceback, without a hang, before anything is written.

* Files in the data root that are not regular files (a FIFO, a symbolic link to /dev/zero, a
  directory) or too large are refused on the open descriptor, for `svae-bench data planetoid` and for
  runs; nothing reads them without a bound (guarded here by a watchdog that unblocks a FIFO reader and
  by an address-space limit).
* test.index lines whose values would size an allocation (2 * 10^9, 10^18) or overflow an int64
  (10^30) are refused before anything is allocated.
* A generated graph that cannot be drawn is refused by the config check; the edge sampler is bounded.
* An edge split without test or validation edges, and an altered Planetoid file, stop a sweep in its
  preflight, before Hydra writes multirun.yaml or any job trains.
* `svae-bench data planetoid` offline with an altered file names that file.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from svae_bench.commands import data as data_cmd
from svae_bench.data import planetoid, planetoid_fetch
from svae_bench.data.graph import MAX_EDGE_ROUNDS, synthetic_graph
from svae_bench.data.planetoid import SUFFIXES, file_name, load_planetoid, read_regular
from svae_bench.errors import ConfigError
from svae_bench.launch.preflight import check_run_overrides

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PLANETOID = SHARED / "planetoid"
needs_planetoid = pytest.mark.skipif(not (PLANETOID / "ind.cora.x").is_file(), reason="../shared/data not present")
FAST = ["trainer.progress=false", "trainer.num_threads=1"]


def _copy_cora(root: Path) -> Path:
    target = root / "planetoid"
    target.mkdir(parents=True, exist_ok=True)
    for suffix in SUFFIXES:
        shutil.copy(PLANETOID / file_name("cora", suffix), target)
    return target


@contextlib.contextmanager
def memory_cap(extra_bytes: int = 2 << 30) -> Iterator[None]:
    """Limit this process's address space to its present size plus ``extra_bytes`` for the block: an
    allocation sized by a hostile file fails at once (MemoryError) instead of taking the machine."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    size = int(re.search(r"VmSize:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024
    cap = size + extra_bytes if hard == resource.RLIM_INFINITY else min(hard, size + extra_bytes)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@contextlib.contextmanager
def fifo_watchdog(fifo: Path, after_s: float = 5.0) -> Iterator[list[bool]]:
    """Yields a list that gets True if something still waits on ``fifo`` after ``after_s`` seconds; it
    is then unblocked (a writer opens and closes the FIFO, so the reader sees end of file), so that a
    regression fails this test instead of hanging the suite."""
    done, hung = threading.Event(), []

    def watch() -> None:
        if done.wait(after_s):
            return
        while not done.is_set():
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # only succeeds while a reader waits
                hung.append(True)
            except OSError:
                pass
            done.wait(0.2)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield hung
    finally:
        done.set()
        thread.join()


@pytest.fixture
def offline(monkeypatch):
    """No network: the repository is unreachable and nothing may be downloaded."""

    def no_download(url: str) -> bytes:
        raise AssertionError(f"must not download {url}")

    monkeypatch.setattr(planetoid_fetch, "reachable", lambda *a, **k: False)
    monkeypatch.setattr(planetoid_fetch, "download", no_download)


def _files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.lstat().st_mtime_ns for p in root.rglob("*")}


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


# --------------------------------------------------------------------------- files that are not files


def test_bounded_reader_refuses_fifos_devices_directories_and_large_files(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with fifo_watchdog(fifo) as hung, pytest.raises(planetoid.NotReadable, match=r"not a regular file \(a FIFO\)"):
        read_regular(fifo)
    assert not hung
    (tmp_path / "zero").symlink_to("/dev/zero")
    with memory_cap(), pytest.raises(planetoid.NotReadable, match=r"not a regular file \(a character device\)"):
        read_regular(tmp_path / "zero")
    with pytest.raises(planetoid.NotReadable, match=r"not a regular file \(a directory\)"):
        read_regular(tmp_path)
    big = tmp_path / "big"
    with big.open("wb") as f:
        f.truncate(101)  # sparse
    with pytest.raises(planetoid.TooLarge, match="larger than 100 bytes"):
        read_regular(big, max_bytes=100)
    assert read_regular(big, max_bytes=101) == bytes(101)


@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "directory"])
def test_data_planetoid_refuses_a_non_file_in_the_root(tmp_path: Path, offline, capsys, kind: str) -> None:
    directory = tmp_path / "planetoid"
    directory.mkdir()
    target = directory / "ind.cora.x"
    what = {"fifo": "a FIFO", "dev_zero": "a character device", "directory": "a directory"}[kind]
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "dev_zero":
        target.symlink_to("/dev/zero")
    else:
        target.mkdir()
    before = _files(tmp_path)
    with fifo_watchdog(target) as hung, memory_cap():
        code = data_cmd.main(["planetoid", "--name", "cora", "--root", str(tmp_path)])
    assert not hung, "the FIFO was read"
    line = _one_error_line(capsys.readouterr().err)
    assert code == 2 and f"{target} is not a regular file ({what}): remove it" in line
    assert _files(tmp_path) == before  # nothing written, nothing replaced


@pytest.mark.parametrize("kind", ["fifo", "dev_zero"])
def test_a_run_refuses_a_non_file_in_the_root(tmp_path: Path, kind: str) -> None:
    directory = tmp_path / "planetoid"
    directory.mkdir()
    target = directory / "ind.cora.allx"
    os.mkfifo(target) if kind == "fifo" else target.symlink_to("/dev/zero")
    for suffix in ("x", "tx", "graph", "test.index"):
        (directory / file_name("cora", suffix)).write_bytes(b"")
    with fifo_watchdog(target) as hung, memory_cap():
        problem = check_run_overrides(["model=nvgae", "dataset=cora", f"dataset.data_root={tmp_path}", *FAST])
    assert not hung
    what = "a FIFO" if kind == "fifo" else "a character device"
    assert problem is not None and f"{target} is not a regular file ({what})" in problem and "\n" not in problem


def test_a_file_too_large_is_refused_unread(tmp_path: Path, offline, capsys) -> None:
    directory = tmp_path / "planetoid"
    directory.mkdir()
    for suffix in ("x", "tx", "graph", "test.index"):
        (directory / file_name("cora", suffix)).write_bytes(b"")
    with (directory / "ind.cora.allx").open("wb") as f:
        f.truncate(planetoid.MAX_FILE_BYTES + 1)  # sparse: no disk, and no read should touch it
    problem = check_run_overrides(["model=nvgae", "dataset=cora", f"dataset.data_root={tmp_path}", *FAST])
    assert problem is not None and "ind.cora.allx is corrupt (larger than 67108864 bytes)" in problem
    with memory_cap(256 << 20):
        assert data_cmd.main(["planetoid", "--name", "cora", "--root", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    line = _one_error_line(captured.err)
    assert "also failing: ind.cora.tx, ind.cora.allx," in line and "cannot be reached" in line
    assert "ind.cora.allx is corrupt (larger than 67108864 bytes)\n" in captured.out


# --------------------------------------------------------------------------- test.index


@needs_planetoid
@pytest.mark.parametrize(
    ("last", "message"),
    [
        (b"2000000000", "test index 2000000000 is beyond the 2708 nodes of cora"),  # 14.9 GiB if allocated
        (b"1000000000000000000", "test index 1000000000000000000 is beyond the 2708 nodes of cora"),  # 6.9 EiB
        (b"1" + b"0" * 30, f"test index 1{'0' * 30} is beyond the 2708 nodes"),  # overflowed int64: a traceback
        (b"1" + b"0" * 100, "not one non-negative integer per line"),  # more than 100 digits
        (b"-5", "not one non-negative integer per line"),
        (b"1_000", "not one non-negative integer per line"),
        ("\u0663".encode(), "not one non-negative integer per line"),  # int() reads Arabic-Indic digits
    ],
)
def test_test_index_values_are_checked_before_anything_is_allocated(
    tmp_path: Path, monkeypatch, offline, capsys, last: bytes, message: str
) -> None:
    monkeypatch.setattr(planetoid, "SHA256", {})  # as for a data set without known sums (Pubmed)
    directory = _copy_cora(tmp_path)
    lines = (directory / "ind.cora.test.index").read_bytes().split()
    (directory / "ind.cora.test.index").write_bytes(b"\n".join([*lines[:-1], last]) + b"\n")
    with memory_cap(), pytest.raises(ConfigError, match=re.escape(f"ind.cora.test.index is corrupt ({message}")):
        load_planetoid("cora", str(tmp_path))
    problem = check_run_overrides(["model=nvgae", "dataset=cora", f"dataset.data_root={tmp_path}", *FAST])
    assert problem is not None and f"ind.cora.test.index is corrupt ({message}" in problem
    with memory_cap():  # the command's check of files already present
        assert data_cmd.main(["planetoid", "--name", "cora", "--root", str(tmp_path)]) == 2
    assert f"ind.cora.test.index is corrupt ({message}" in _one_error_line(capsys.readouterr().err)


@needs_planetoid
def test_index_range_and_row_counts_are_checked_against_the_node_count(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(planetoid, "SHA256", {})
    directory = _copy_cora(tmp_path)
    index = directory / "ind.cora.test.index"
    lines = index.read_bytes().split()
    index.write_bytes(b"\n".join(lines + lines[:1]))  # a repeated index
    with pytest.raises(ConfigError, match="test indices must be distinct"):
        load_planetoid("cora", str(tmp_path))
    values = sorted(int(v) for v in lines)
    index.write_bytes(b"\n".join(str(v).encode() for v in values[:-1]))  # the last node's index gone
    with memory_cap(), pytest.raises(ConfigError, match=r"last test index 2706, expected 2707 \(cora has 2708"):
        load_planetoid("cora", str(tmp_path))
    index.write_bytes(b"\n".join(str(v).encode() for v in range(3000)))  # more indices than nodes
    with pytest.raises(ConfigError, match="3000 test indices for 2708 nodes"):
        load_planetoid("cora", str(tmp_path))


# --------------------------------------------------------------------------- generated graphs


def _in_thread(fn, timeout_s: float = 60.0):
    """fn() in a daemon thread: its result or exception, or a failure if it does not end in time."""
    out: dict = {}

    def target() -> None:
        try:
            out["value"] = fn()
        except BaseException as err:  # noqa: BLE001 (handed to the test)
            out["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout_s)
    assert not thread.is_alive(), f"did not end in {timeout_s} s"
    if "error" in out:
        raise out["error"]
    return out["value"]


IMPOSSIBLE = ["dataset.n_nodes=100", "dataset.n_communities=50", "dataset.n_edges=2000"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ([*IMPOSSIBLE, "dataset.p_within=1.0"], "dataset.n_edges=2000 is not possible with dataset.p_within=1"),
        ([*IMPOSSIBLE, "dataset.p_within=0.999"], "dataset.n_edges=2000 cannot be drawn with dataset.p_within=0.999"),
        (["dataset.n_nodes=100", "dataset.n_communities=51"], "dataset.n_nodes=100 is too few"),
        (["dataset.n_nodes=100", "dataset.n_edges=2476"], "dataset.n_edges=2476 is not possible with dataset.n_nodes"),
        (["dataset.n_edges=5"], "dataset.n_edges=5 is too few for dataset.test_fraction=0.1"),
        (["dataset.n_edges=19", "dataset.test_fraction=0.5"], "gives 9 test and 0 validation edges"),
    ],
)
def test_an_impossible_generated_graph_is_refused_by_the_config_check(overrides, message) -> None:
    problem = _in_thread(lambda: check_run_overrides(["model=nvgae", "dataset=synthetic_graph", *overrides, *FAST]))
    assert problem is not None and message in problem and "\n" not in problem


def test_the_edge_sampler_is_bounded() -> None:
    with pytest.raises(ConfigError, match="dataset.n_edges=2000 is not possible"):
        _in_thread(lambda: synthetic_graph(100, 10, 2000, 50, 1.0, 0.1, 0))
    # passes the config check (its expected draws fit the bound) but exhausts the bound by chance:
    # the sampler stops with one line, and a sweep's preflight, which draws the graph once, says it first
    with pytest.raises(ConfigError, match=r"distinct edges were not found in \d+ rounds"):
        _in_thread(lambda: synthetic_graph(100, 10, 2000, 50, 0.9965, 0.1, 0))
    overrides = ["dataset.n_nodes=100", "dataset.n_communities=50", "dataset.n_edges=2000", "dataset.p_within=0.9965"]
    problem = _in_thread(
        lambda: check_run_overrides(["-m", "model=nvgae,svgae", "dataset=synthetic_graph", *overrides])
    )
    assert problem is not None and "distinct edges were not found" in problem and "(sweep job" in problem
    assert MAX_EDGE_ROUNDS <= 10_000
    # what the bound must not refuse: the graphs of the defaults, the tests and the Pubmed-sized bench
    for args in [(300, 60, 1200, 4, 0.85, 0.1, 0), (120, 24, 400, 4, 0.85, 0.1, 0), (300, 60, 11212, 4, 1.0, 0.1, 0)]:
        assert _in_thread(lambda args=args: synthetic_graph(*args)).n_edges == args[2]


def test_a_split_without_test_or_validation_edges_stops_the_sweep_before_hydra_writes(tmp_path: Path) -> None:
    args = ["-m", "model=nvgae,svgae", "dataset=synthetic_graph", "dataset.n_edges=5", *FAST]
    out = subprocess.run(
        [sys.executable, "-m", "svae_bench", "run", *args], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    line = _one_error_line(out.stderr)
    assert out.returncode == 2 and "dataset.n_edges=5 is too few for dataset.test_fraction=0.1" in line
    assert "(sweep job" in line and list(tmp_path.rglob("*")) == []  # no multirun.yaml, no run directory


def test_planetoid_fractions_that_leave_no_edge_are_refused_without_the_files(tmp_path: Path) -> None:
    problem = check_run_overrides(["model=svgae", "dataset=cora", "dataset.val_fraction=0.0001", *FAST])
    assert problem is not None and "cora's 5278 edges are too few" in problem and "0 validation edges" in problem


# --------------------------------------------------------------------------- altered Planetoid files


def _alter(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@needs_planetoid
def test_an_altered_file_stops_the_sweep_before_its_first_job(tmp_path: Path, monkeypatch) -> None:
    directory = _copy_cora(tmp_path)
    _alter(directory / "ind.cora.x")
    monkeypatch.setenv("SVAE_BENCH_DATA", str(tmp_path))
    # the synthetic job comes first: with the check only in the Cora job, it would have trained
    args = ["-m", "model=nvgae", "dataset=synthetic_graph,cora", f"runs_root={tmp_path}/runs", *FAST]
    problem = check_run_overrides(args)
    assert problem is not None and "\n" not in problem
    assert f"{directory / 'ind.cora.x'} is corrupt (SHA-256" in problem and "(sweep job" in problem
    assert not (tmp_path / "runs").exists()


@needs_planetoid
def test_files_without_known_sums_are_parsed_by_the_preflight(tmp_path: Path, monkeypatch) -> None:
    import pickle

    monkeypatch.setattr(planetoid, "SHA256", {})  # Pubmed's case: no known sums, content checked
    directory = _copy_cora(tmp_path)
    args = ["model=nvgae", "dataset=cora", f"dataset.data_root={tmp_path}", *FAST]
    assert check_run_overrides(args) is None
    graph = pickle.loads((directory / "ind.cora.graph").read_bytes(), encoding="latin1")
    graph[0] = graph[0] + [5, 6]
    (directory / "ind.cora.graph").write_bytes(pickle.dumps(graph, protocol=2))
    problem = check_run_overrides(args)
    assert problem is not None and "give 2708 nodes, 1433 features, 5280 edges; expected 2708, 1433, 5278" in problem


@needs_planetoid
def test_data_planetoid_offline_names_the_altered_file(tmp_path: Path, offline, capsys) -> None:
    directory = _copy_cora(tmp_path)
    _alter(directory / "ind.cora.x")
    before = _files(tmp_path)
    assert data_cmd.main(["planetoid", "--name", "cora", "--root", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    line = _one_error_line(captured.err)
    assert f"{directory / 'ind.cora.x'} is corrupt (SHA-256" in line and "cannot be reached" in line
    assert "put the eight Planetoid files" in line and f"{directory / 'ind.cora.x'} is corrupt" in captured.out
    assert _files(tmp_path) == before


@needs_planetoid
def test_data_planetoid_online_replaces_the_altered_file_and_says_so(tmp_path: Path, monkeypatch, capsys) -> None:
    served = {file_name("cora", s): (PLANETOID / file_name("cora", s)).read_bytes() for s in SUFFIXES}
    monkeypatch.setattr(planetoid_fetch, "download", lambda url: served[url.rsplit("/", 1)[1]])
    monkeypatch.setattr(planetoid_fetch, "reachable", lambda *a, **k: True)
    directory = _copy_cora(tmp_path)
    _alter(directory / "ind.cora.graph")
    assert data_cmd.main(["planetoid", "--name", "cora", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"{directory / 'ind.cora.graph'} is corrupt (SHA-256" in out and "fetching the eight files again" in out
    assert all((directory / name).read_bytes() == data for name, data in served.items())
    assert np.array_equal(load_planetoid("cora", str(tmp_path)).adjacency.indices, _reference_indices())


def _reference_indices() -> np.ndarray:
    return load_planetoid("cora", str(SHARED)).adjacency.indices


# --------------------------------------------------------------------------- siblings: the MNIST files


def test_mnist_checksums_read_bounded(tmp_path: Path) -> None:
    import gzip

    from svae_bench.data import fetch

    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(bomb, "wb", compresslevel=1) as f:  # 65 MiB of zeros in about 64 kB
        for _ in range(65):
            f.write(bytes(1 << 20))
    with pytest.raises(planetoid.TooLarge, match="larger than 67108864 bytes uncompressed"):
        fetch.sha256_file(bomb)
    assert not fetch.verify_file(bomb, "train-images-idx3-ubyte")
    fifo = tmp_path / "t10k-labels-idx1-ubyte"
    os.mkfifo(fifo)
    with fifo_watchdog(fifo) as hung:
        with pytest.raises(planetoid.NotReadable, match="a FIFO"):
            fetch.sha256_file(fifo)
        assert not fetch.verify_file(fifo, "t10k-labels-idx1-ubyte")
    assert not hung
    small = tmp_path / "t10k-labels-idx1-ubyte.gz"
    small.write_bytes(gzip.compress(b"abc"))
    assert fetch.sha256_file(small) == fetch.sha256_bytes(b"abc")
    # a gzip header, then a deflate block of the reserved type: zlib.error, once a traceback of `data mnist`
    small.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff\x07" + bytes(16))
    assert not fetch.verify_file(small, "t10k-labels-idx1-ubyte")
