"""MNIST from IDX files: the real files in ../shared/data, and corrupt or missing ones."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import pytest
import torch

from svae_bench.data import build_dataset
from svae_bench.data.mnist import read_idx
from svae_bench.errors import ConfigError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_mnist = pytest.mark.skipif(not (SHARED / "MNIST/raw").is_dir(), reason="../shared/data/MNIST/raw not present")


def cfg(root) -> dict:
    return {
        "name": "mnist",
        "data_root": str(root),
        "n_val": 10000,
        "split_seed": 0,
        "binarize_seed": 0,
        "likelihood": "bernoulli",
    }


@needs_mnist
def test_real_mnist_splits():
    data = build_dataset(cfg(SHARED))
    assert (len(data.train), len(data.val), len(data.test)) == (50000, 10000, 10000)
    assert data.train.x.shape == (50000, 784) and data.likelihood == "bernoulli" and data.binarize_train
    assert 0 <= data.train.x.min() and data.train.x.max() <= 1
    assert set(data.test.x.unique().tolist()) == {0.0, 1.0} and set(data.val.x.unique().tolist()) == {0.0, 1.0}
    # published test label counts (../shared/data/README.md)
    assert torch.bincount(data.test.y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    # the split is fixed: train and validation together are the 60k training labels
    counts = torch.bincount(torch.cat([data.train.y, data.val.y])).tolist()
    assert counts == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    again = build_dataset(cfg(SHARED))
    assert torch.equal(again.val.x, data.val.x) and torch.equal(again.train.y, data.train.y)


@needs_mnist
def test_reader_gives_the_published_bytes():
    labels = read_idx(SHARED / "MNIST/raw", "train-labels-idx1-ubyte")
    raw = gzip.decompress((SHARED / "MNIST/raw/train-labels-idx1-ubyte.gz").read_bytes())
    assert hashlib.sha256(raw).hexdigest() == "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"
    assert labels.tobytes() == raw[8:]


@needs_mnist
@pytest.mark.parametrize("damage", ["missing", "truncated", "bad_magic", "not_gzip"])
def test_missing_or_corrupt_files_name_the_file(tmp_path, damage):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (SHARED / "MNIST/raw").iterdir():
        shutil.copy(f, raw / f.name)
    target = raw / "t10k-labels-idx1-ubyte.gz"
    data = gzip.decompress(target.read_bytes())
    if damage == "missing":
        target.unlink()
    elif damage == "truncated":
        target.write_bytes(gzip.compress(data[:-100]))
    elif damage == "bad_magic":
        target.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + data[4:]))
    else:
        target.write_bytes(b"this is not gzip")
    with pytest.raises(ConfigError, match="t10k-labels-idx1-ubyte") as err:
        build_dataset(cfg(tmp_path))
    assert "\n" not in str(err.value) and "MNIST/raw" in str(err.value)


def test_missing_data_root(tmp_path):
    with pytest.raises(ConfigError, match="data_root"):
        build_dataset(cfg(tmp_path / "nope"))


def test_a_fifo_in_place_of_an_idx_file_is_refused_at_once(tmp_path):
    import os
    import threading

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    os.mkfifo(raw / "t10k-labels-idx1-ubyte")
    done: list = []
    worker = threading.Thread(target=lambda: done.append(_refusal(raw, "t10k-labels-idx1-ubyte")), daemon=True)
    worker.start()
    worker.join(30)
    if worker.is_alive():  # unblock the reader before failing
        with open(raw / "t10k-labels-idx1-ubyte", "wb"):
            pass
        pytest.fail("reading a FIFO blocked")
    assert "is not a regular file" in done[0]


def _refusal(raw: Path, stem: str) -> str:
    with pytest.raises(ConfigError) as err:
        read_idx(raw, stem)
    return str(err.value)


def test_a_gzip_bomb_is_refused_without_inflating_it(tmp_path):
    import resource

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    # 2 GB of zeros in a ~2 MB file, where 7,840,016 bytes are expected
    with gzip.open(raw / "t10k-images-idx3-ubyte.gz", "wb", compresslevel=9) as fh:
        block = bytes(1 << 24)
        for _ in range(128):
            fh.write(block)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    message = _refusal(raw, "t10k-images-idx3-ubyte")
    assert "has 7840017 bytes uncompressed, expected 7840016" in message
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # far below the 2 GB
