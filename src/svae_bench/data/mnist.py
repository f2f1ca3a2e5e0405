"""MNIST from the four IDX files (gzipped or not) under ``<data_root>/MNIST/raw/``.

torchvision's layout. Each file's size and header are checked before use; a
missing or corrupt file is a :class:`ConfigError` naming the file and how to get
it. The 60k training images are split into a fixed 50k/10k train/validation
split (a permutation from ``split_seed``); the 10k test set is used for every
reported number. Pixels are grey levels in [0, 1]: training batches are
binarised afresh every epoch (dynamic binarisation, seeded); the validation and
test sets are binarised once from ``binarize_seed`` so every run and every
model sees the same binary test set.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from .bundle import DataBundle, Split
from .planetoid import NotReadable, TooLarge, read_regular

#: file stem -> (IDX magic number, shape after the header)
FILES = {
    "train-images-idx3-ubyte": (2051, (60000, 28, 28)),
    "train-labels-idx1-ubyte": (2049, (60000,)),
    "t10k-images-idx3-ubyte": (2051, (10000, 28, 28)),
    "t10k-labels-idx1-ubyte": (2049, (10000,)),
}
HOW_TO_GET = (
    "run `svae-bench data mnist --root <data_root>`, or put the four MNIST IDX files (gzipped or not) in "
    "<data_root>/MNIST/raw/, torchvision's layout"
)


def default_data_root() -> str:
    """$SVAE_BENCH_DATA, else ~/.cache/svae-bench."""
    return os.environ.get("SVAE_BENCH_DATA") or str(Path.home() / ".cache" / "svae-bench")


def idx_path(raw_dir: Path, stem: str) -> Path:
    """The file holding ``stem`` (the raw file, else ``stem.gz``); ConfigError if neither exists."""
    candidates = [raw_dir / stem, raw_dir / f"{stem}.gz"]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        there = next((p for p in candidates if p.exists()), None)  # a FIFO, device, directory: never opened
        if there is not None:
            raise ConfigError(f"MNIST file {there} is not a regular file; {HOW_TO_GET}")
        raise ConfigError(f"MNIST file {candidates[1]} (or {candidates[0].name}) is missing; {HOW_TO_GET}")
    return path


#: bytes a gzipped IDX file may have beyond its content's (gzip's header and incompressible blocks)
GZIP_SLACK = 64 * 1024


def read_idx(raw_dir: Path, stem: str) -> np.ndarray:
    """One IDX file (``stem`` or ``stem.gz``) as a uint8 array, after checking its header and size."""
    magic, shape = FILES[stem]
    path = idx_path(raw_dir, stem)
    header_len = 4 + 4 * len(shape)
    expected = header_len + int(np.prod(shape))
    try:  # bounded: a regular file only (never a FIFO or a device), and never more than one byte too many
        raw = read_regular(path, max_bytes=expected + GZIP_SLACK if path.suffix == ".gz" else expected + 1)
        data = _gunzip_bounded(raw, expected + 1) if path.suffix == ".gz" else raw
    except TooLarge:
        raise ConfigError(f"MNIST file {path} is larger than the {expected} bytes expected; {HOW_TO_GET}") from None
    except NotReadable as err:
        raise ConfigError(f"MNIST file {path} {err}; {HOW_TO_GET}") from None
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as err:  # zlib.error: a flipped byte inside
        raise ConfigError(f"MNIST file {path} is corrupt ({err}); {HOW_TO_GET}") from err
    if len(data) != expected:
        raise ConfigError(f"MNIST file {path} has {len(data)} bytes uncompressed, expected {expected}; {HOW_TO_GET}")
    header = np.frombuffer(data[:header_len], dtype=">u4")
    if header[0] != magic or tuple(int(n) for n in header[1:]) != shape:
        raise ConfigError(
            f"MNIST file {path} has header {header.tolist()}, expected magic {magic} and shape {list(shape)}; "
            f"{HOW_TO_GET}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(shape)


def _gunzip_bounded(data: bytes, max_bytes: int) -> bytes:
    """``gzip.decompress(data)``, stopping at ``max_bytes`` of output (a gzip bomb costs no more)."""
    out = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, max_bytes)
    return out


def mnist_raw_dir(data_root: str | None) -> Path:
    """``<data_root>/MNIST/raw`` after checking that the root exists and the four files are there
    (a cheap check, no decompression: the preflight of a sweep runs it before anything is written)."""
    root = Path(os.path.expanduser(str(data_root or default_data_root())))
    if not root.is_dir():
        raise ConfigError(f"dataset.data_root={str(root)!r} does not exist; {HOW_TO_GET}")
    raw = root / "MNIST" / "raw"
    for stem in FILES:
        idx_path(raw, stem)
    return raw


def make_mnist(*, data_root: str | None = None, n_val: int, split_seed: int, binarize_seed: int) -> DataBundle:
    """MNIST from ``<data_root>/MNIST/raw`` (None: :func:`default_data_root`): ``60000 - n_val``
    training images (grey levels, binarised per batch), ``n_val`` validation and the 10000 test
    images binarised once; x (N, 784) float32, y (N,) int64."""
    raw = mnist_raw_dir(data_root)
    root = raw.parent.parent
    train_x = read_idx(raw, "train-images-idx3-ubyte")
    train_y = read_idx(raw, "train-labels-idx1-ubyte")
    test_x = read_idx(raw, "t10k-images-idx3-ubyte")
    test_y = read_idx(raw, "t10k-labels-idx1-ubyte")
    n_val = int(n_val)
    if not 0 < n_val < 60000:
        raise ConfigError(f"dataset.n_val={n_val} must be between 1 and 59999")

    perm = torch.randperm(60000, generator=torch.Generator().manual_seed(int(split_seed)))
    grey = torch.from_numpy(train_x.reshape(60000, -1).astype(np.float32) / 255.0)
    labels = torch.from_numpy(train_y.astype(np.int64))
    tr, va = perm[: 60000 - n_val], perm[60000 - n_val :]
    fixed = torch.Generator().manual_seed(int(binarize_seed))
    test_grey = torch.from_numpy(test_x.reshape(10000, -1).astype(np.float32) / 255.0)
    return DataBundle(
        name="mnist",
        train=Split(grey[tr].contiguous(), labels[tr].contiguous()),
        val=Split(torch.bernoulli(grey[va], generator=fixed), labels[va].contiguous()),
        test=Split(torch.bernoulli(test_grey, generator=fixed), torch.from_numpy(test_y.astype(np.int64))),
        likelihood="bernoulli",
        binarize_train=True,
        info={"data_root": str(root)},
    )
