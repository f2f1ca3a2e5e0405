"""Helpers for low per-op overhead in eager PyTorch.

At VAE batch sizes (tens to thousands of rows) an elementwise op costs a few
microseconds of dispatch and only nanoseconds of arithmetic, so the
distributions here count ops: constant tensors are built once and cached
(:func:`constant_cache`), and hand-written backwards refuse double backward
cheaply (:func:`refuse_double_backward`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TypeVar

import torch
from torch import Tensor

F = TypeVar("F", bound=Callable)


def constant_cache(maxsize: int | None = None) -> Callable[[F], F]:
    """A cache (least recently built first out) for functions that build constant tensors.

    Under torch.jit.trace the build is not recorded: a cache filled during a trace
    would otherwise record the build ops on the first call and a constant on later
    ones, and the trace would fail its check (its graphs would differ). Under
    torch.compile a cached value is read like any global tensor; a missing one is
    built by the traced code (slower to compile, same values), not stored.
    """

    def decorate(fn: F) -> F:
        store: dict = {}

        @wraps(fn)
        def wrapper(*args):
            value = store.get(args)
            if value is not None:
                return value
            if torch.compiler.is_compiling():
                return fn(*args)
            state = torch._C._get_tracing_state()
            torch._C._set_tracing_state(None)
            try:
                value = fn(*args)
            finally:
                torch._C._set_tracing_state(state)
            if maxsize is not None and len(store) >= maxsize:
                del store[next(iter(store))]
            store[args] = value
            return value

        wrapper.cache_clear = store.clear  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


@constant_cache()
def constants(values: tuple[float, ...], dtype: torch.dtype, device: torch.device) -> tuple[Tensor, ...]:
    """Cached 0-dim tensors holding ``values`` (read-only: never modify them in place).

    An op between a tensor and a Python scalar costs about twice an op between
    two tensors, because the scalar is wrapped into a tensor on every call.
    """
    return tuple(torch.tensor(values, dtype=dtype, device=device).unbind())


def refuse_double_backward(name: str) -> None:
    """Raise inside a custom backward if a graph of the backward is being built.

    Does the job of ``torch.autograd.function.once_differentiable`` (whose
    wrapper costs ~10 µs per call) for backwards that are only first-order exact.
    """
    if torch.is_grad_enabled():
        raise RuntimeError(f"{name} supports first derivatives only (no create_graph=True / double backward)")
