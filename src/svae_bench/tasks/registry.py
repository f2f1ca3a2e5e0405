"""The task registry: the config's ``task`` value -> a :class:`~svae_bench.tasks.base.Task`."""

from __future__ import annotations

from ..errors import ConfigError
from .base import Task

TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Add ``task`` to the registry under ``task.name`` (replacing one of the same name)."""
    if not task.name:
        raise ValueError("a task needs a name")
    TASKS[task.name] = task
    return task


def get_task(name: object) -> Task:
    """The task named ``name``; ConfigError listing the known tasks otherwise."""
    if not isinstance(name, str) or name not in TASKS:
        raise ConfigError(f"task={name!r} is unknown; allowed: {', '.join(sorted(TASKS))}")
    return TASKS[name]
