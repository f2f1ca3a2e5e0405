"""OmegaConf resolvers the configs use (importing this module registers them)."""

from __future__ import annotations

from omegaconf import OmegaConf


def format_number(x) -> str:
    """Numbers in run directory names: 1, 1.0 and 1e0 all give '1'; 0.1 gives '0.1'."""
    return format(float(x), "g")


if not OmegaConf.has_resolver("svae_fmt"):
    OmegaConf.register_new_resolver("svae_fmt", format_number)
