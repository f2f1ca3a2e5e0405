"""Test hooks of the training loop: fault injection without config keys users see.

:func:`svae_bench.training.train` passes every step's objective (a scalar
tensor, before the backward pass) through the hooks in :data:`STEP_HOOKS`, in
order; a hook returns the objective to use. The list is empty in normal use,
and nothing in the package adds to it: tests install a hook for the duration of
a ``with`` block (in the same process as the run)::

    from svae_bench.training.hooks import inject_nan

    with inject_nan(at_step=150, times=2):  # NaN at global step 150, on its first two passes
        run_one(cfg, out_dir)

A NaN objective is a numerical fault like any other: the loop rolls back, cuts
the learning rate and retries, or raises :class:`~svae_bench.training.TrainingFailed`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from torch import Tensor

#: called as ``hook(global_step, objective) -> objective``; global_step counts from 1 over the whole
#: run (epoch e, batch b: (e - 1) * batches_per_epoch + b) and restarts from the epoch rolled back to
StepHook = Callable[[int, Tensor], Tensor]

STEP_HOOKS: list[StepHook] = []


def apply_step_hooks(step: int, objective: Tensor) -> Tensor:
    """The objective after every installed hook (the same tensor when none is installed)."""
    for hook in STEP_HOOKS:
        objective = hook(step, objective)
    return objective


@contextmanager
def step_hook(hook: StepHook) -> Iterator[StepHook]:
    """Install ``hook`` for the duration of the block."""
    STEP_HOOKS.append(hook)
    try:
        yield hook
    finally:
        STEP_HOOKS.remove(hook)


@contextmanager
def inject_nan(at_step: int, times: int = 1) -> Iterator[StepHook]:
    """Make the objective NaN at global step ``at_step`` (1-based) on its first ``times`` passes
    (a rolled-back epoch passes the step again), for every training run inside the block."""
    injected = 0

    def hook(step: int, objective: Tensor) -> Tensor:
        nonlocal injected
        if step == at_step and injected < times:
            injected += 1
            return objective * float("nan")
        return objective

    with step_hook(hook):
        yield hook
