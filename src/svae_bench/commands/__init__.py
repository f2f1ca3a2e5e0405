"""The subcommands of ``svae-bench``: one module each, with ``HELP`` and ``main(argv) -> exit status``.

:data:`COMMANDS` lists them in the order ``svae-bench --help`` shows them; a
module is imported only when its command runs, so ``svae-bench --help`` and
``--version`` load no command and no torch (every command that reads configs or
records loads the tasks, and with them torch).
"""

from __future__ import annotations

import importlib
from types import ModuleType

COMMANDS = ("run", "evaluate", "tables", "figures", "status", "data")


def load(name: str) -> ModuleType:
    """The module of command ``name`` (one of :data:`COMMANDS`)."""
    if name not in COMMANDS:
        raise KeyError(name)
    return importlib.import_module(f"{__name__}.{name}")
