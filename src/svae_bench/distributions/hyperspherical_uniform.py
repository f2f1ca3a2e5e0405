"""The uniform distribution on the unit sphere S^(dim-1) in R^dim."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Distribution

from .constraints import unit_sphere
from .sphere import log_sphere_surface


class HypersphericalUniform(Distribution):
    """Uniform on S^(dim-1); ``dim`` is the ambient dimension (event_shape == (dim,)).

    ``log_prob`` is -log|S^(dim-1)| nats everywhere on the sphere (surface measure).
    It has no parameters, so its batch shape is given (``batch_shape``, default
    ``()``) or made by :meth:`expand`. The mean is 0 and each coordinate has
    variance 1/dim; the mode is undefined (NaN, as for torch's ``Uniform``).
    """

    arg_constraints: dict = {}
    support = unit_sphere
    has_rsample = True  # sampling does not depend on any parameter

    def __init__(
        self,
        dim: int,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        validate_args: bool | None = None,
        batch_shape: torch.Size | tuple[int, ...] = torch.Size(),
    ):
        if isinstance(dim, bool) or int(dim) != dim or dim < 1:
            raise ValueError(f"dim must be an integer >= 1 (ambient dimension), got {dim!r}")
        self.dim = int(dim)
        self._dtype = dtype or torch.get_default_dtype()
        self._device = torch.device(device) if device is not None else torch.device("cpu")
        super().__init__(torch.Size(batch_shape), torch.Size([self.dim]), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(HypersphericalUniform, _instance)
        new.dim, new._dtype, new._device = self.dim, self._dtype, self._device
        super(HypersphericalUniform, new).__init__(torch.Size(batch_shape), self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def device(self) -> torch.device:
        return self._device

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim}, batch_shape={tuple(self.batch_shape)})"

    @property
    def mean(self) -> Tensor:
        return torch.zeros(self.batch_shape + self.event_shape, dtype=self._dtype, device=self._device)

    @property
    def variance(self) -> Tensor:
        # E[z_i²] = 1/dim by symmetry (the coordinates' squares sum to 1), and E[z_i] = 0
        return torch.full(self.batch_shape + self.event_shape, 1.0 / self.dim, dtype=self._dtype, device=self._device)

    @property
    def mode(self) -> Tensor:
        return torch.full(self.batch_shape + self.event_shape, math.nan, dtype=self._dtype, device=self._device)

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        x = torch.randn(self._extended_shape(sample_shape), dtype=self._dtype, device=self._device)
        return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(torch.finfo(self._dtype).tiny)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        shape = torch.broadcast_shapes(value.shape[:-1], self.batch_shape)
        return torch.full(shape, -log_sphere_surface(self.dim), dtype=value.dtype, device=value.device)

    def entropy(self) -> Tensor:
        return torch.full(self.batch_shape, log_sphere_surface(self.dim), dtype=self._dtype, device=self._device)
