"""The uniform distribution on the unit sphere S^(dim-1) in R^dim."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Distribution

from .constraints import unit_sphere
from .sphere import log_sphere_surface


class HypersphericalUniform(Distribution):
    """Uniform on S^(dim-1); ``dim`` is the ambient dimension (event_shape == (dim,)).

    ``log_prob`` is -log|S^(dim-1)| nats everywhere on the sphere (surface measure).
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
    ):
        if int(dim) != dim or dim < 1:
            raise ValueError(f"dim must be an integer >= 1 (ambient dimension), got {dim!r}")
        self.dim = int(dim)
        self._dtype = dtype or torch.get_default_dtype()
        self._device = torch.device(device) if device is not None else torch.device("cpu")
        super().__init__(torch.Size(), torch.Size([self.dim]), validate_args=validate_args)

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def device(self) -> torch.device:
        return self._device

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        x = torch.randn(*self._extended_shape(sample_shape), dtype=self._dtype, device=self._device)
        return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(torch.finfo(self._dtype).tiny)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return torch.full(value.shape[:-1], -log_sphere_surface(self.dim), dtype=value.dtype, device=value.device)

    def entropy(self) -> Tensor:
        return torch.tensor(log_sphere_surface(self.dim), dtype=self._dtype, device=self._device)
