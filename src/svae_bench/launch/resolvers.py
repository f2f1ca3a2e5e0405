"""OmegaConf resolvers the configs use (importing this module registers them)."""

from __future__ import annotations

from omegaconf import OmegaConf

from ..records import format_number

if not OmegaConf.has_resolver("svae_fmt"):
    OmegaConf.register_new_resolver("svae_fmt", format_number)
