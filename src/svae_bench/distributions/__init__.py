"""Hyperspherical distributions for PyTorch: exact, numerically stable, vectorised.

>>> import torch
>>> from torch.distributions import kl_divergence
>>> from svae_bench.distributions import VonMisesFisher, HypersphericalUniform
>>> q = VonMisesFisher(torch.nn.functional.normalize(torch.randn(64, 11), dim=-1), torch.full((64,), 50.0))
>>> z = q.rsample()                                   # (64, 11), unit rows, differentiable
>>> kl = kl_divergence(q, HypersphericalUniform(11))  # (64,), closed form
"""

from .constraints import unit_sphere
from .hyperspherical_uniform import HypersphericalUniform
from .power_spherical import PowerSpherical
from .special import bessel_iv_ratio, log_bessel_iv, log_bessel_ive
from .sphere import log_sphere_surface
from .von_mises_fisher import VonMisesFisher

__all__ = [
    "VonMisesFisher",
    "HypersphericalUniform",
    "PowerSpherical",
    "log_bessel_iv",
    "log_bessel_ive",
    "bessel_iv_ratio",
    "log_sphere_surface",
    "unit_sphere",
]
