"""Tasks (one per kind of experiment) behind one harness that owns the run directory.

The config's ``task`` key picks a :class:`~svae_bench.tasks.base.Task` from the
registry; :func:`register_task` adds one, so a new experiment is a new task
module (plus its model, configs and table spec), not an edit of the harness.
"""

from __future__ import annotations

from . import vae  # noqa: F401  (registers the built-in tasks)
from .base import RunContext, Task, TaskOutput
from .registry import TASKS, get_task, register_task

__all__ = ["TASKS", "RunContext", "Task", "TaskOutput", "get_task", "register_task"]
