"""Helpers for low per-op overhead in eager PyTorch.

At VAE batch sizes (tens to thousands of rows) an elementwise op costs a few
microseconds of dispatch and only nanoseconds of arithmetic, so the
distributions here count ops. Two helpers do that work.
"""

from __future__ import annotations

from functools import cache

import torch
from torch import Tensor


@cache
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
