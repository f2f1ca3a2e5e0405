"""Constraints for points on the unit sphere, for ``validate_args``."""

from __future__ import annotations

import torch
from torch.distributions import constraints


class _UnitSphere(constraints.Constraint):
    """Vectors of unit Euclidean norm along the last dimension (event_dim = 1).

    The tolerance scales with the dtype so that float32 results of
    ``x / x.norm()`` pass while genuinely unnormalised input fails.
    """

    event_dim = 1

    def check(self, value: torch.Tensor) -> torch.Tensor:
        tol = 1e3 * torch.finfo(value.dtype).eps if value.is_floating_point() else 1e-6
        return (torch.linalg.vector_norm(value, dim=-1) - 1).abs() <= tol

    def __repr__(self) -> str:
        return "unit_sphere()"


unit_sphere = _UnitSphere()
