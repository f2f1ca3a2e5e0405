"""The unit-sphere constraint, for ``validate_args``, and its transforms for constrained parameters.

``transform_to(unit_sphere)`` is the normalisation x -> x / |x| of R^m (not a
bijection: like torch's ``SoftmaxTransform`` for the simplex, it forgets the
radius, and its inverse is the identity on the sphere, a right inverse).
``biject_to(unit_sphere)`` is the inverse stereographic projection from
R^(m-1) onto the sphere without its south pole -e_m (a null set, as the
simplex's boundary is for ``StickBreakingTransform``). Its log |det J| is with
respect to the surface measure, the measure every ``log_prob`` here uses, so a
``TransformedDistribution`` through it has a density on the sphere.
"""

from __future__ import annotations

import math

import torch
from torch.distributions import constraints
from torch.distributions.constraint_registry import biject_to, transform_to
from torch.distributions.transforms import Transform


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


class SphereProjectionTransform(Transform):
    """x -> x / |x| from R^m (0 excluded) onto S^(m-1); not bijective (see the module docstring)."""

    domain = constraints.real_vector
    codomain = unit_sphere
    bijective = False

    def __eq__(self, other):
        return isinstance(other, SphereProjectionTransform)

    def __hash__(self):
        return hash(type(self))

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y  # a right inverse: the projection of a unit vector is itself


class StereographicTransform(Transform):
    """Inverse stereographic projection R^(m-1) -> S^(m-1) without -e_m; shapes (..., m-1) -> (..., m).

    y -> (2 y, 1 - |y|²) / (1 + |y|²). It is conformal with factor 2 / (1 + |y|²),
    so log |det J| = (m-1) log(2 / (1 + |y|²)) with respect to the surface measure.
    """

    domain = constraints.real_vector
    codomain = unit_sphere
    bijective = True

    def __eq__(self, other):
        return isinstance(other, StereographicTransform)

    def __hash__(self):
        return hash(type(self))

    def _call(self, y: torch.Tensor) -> torch.Tensor:
        s = (y * y).sum(-1, keepdim=True)
        return torch.cat([2 * y, 1 - s], dim=-1) / (1 + s)

    def _inverse(self, z: torch.Tensor) -> torch.Tensor:
        last, rest = z[..., -1:], z[..., :-1]
        # 1 + z_m cancels near the excluded pole; there use 1 + z_m = |rest|² / (1 - z_m) instead
        r2 = (rest * rest).sum(-1, keepdim=True)
        return rest / torch.where(last >= 0, 1 + last, r2 / (1 - last))

    def log_abs_det_jacobian(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return y.shape[-1] * (math.log(2.0) - torch.log1p((y * y).sum(-1)))

    def forward_shape(self, shape):
        return torch.Size(shape[:-1]) + (shape[-1] + 1,)

    def inverse_shape(self, shape):
        return torch.Size(shape[:-1]) + (shape[-1] - 1,)


@transform_to.register(_UnitSphere)
def _transform_to_unit_sphere(constraint: _UnitSphere) -> Transform:
    return SphereProjectionTransform()


@biject_to.register(_UnitSphere)
def _biject_to_unit_sphere(constraint: _UnitSphere) -> Transform:
    return StereographicTransform()
