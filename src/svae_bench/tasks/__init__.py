"""Tasks (one per kind of experiment) behind one harness that owns the run directory.

The config's ``task`` key picks a :class:`~svae_bench.tasks.base.Task` from the
registry; :func:`register_task` adds one, so a new experiment is a new task
module (plus its model, configs and table spec), not an edit of the harness.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import RunContext, Task, TaskOutput
from .registry import TASKS, get_task, register_task

# Every module of the package is imported, so the tasks in it register themselves: a new
# experiment's task is a new module here, with no list to edit.
for _module in sorted(info.name for info in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")

__all__ = ["TASKS", "RunContext", "Task", "TaskOutput", "get_task", "register_task"]
