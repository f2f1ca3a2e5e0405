"""argparse for the subcommands: they return exit statuses instead of exiting."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None):
    """``parser.parse_args(argv)``, or the exit status argparse wanted (0 after --help, 2 on a
    usage error): subcommands return it instead of exiting."""
    try:
        return parser.parse_args(None if argv is None else list(argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
