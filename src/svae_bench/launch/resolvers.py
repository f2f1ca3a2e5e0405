"""OmegaConf resolvers the configs use (importing this module registers them).

``svae_fmt``: a number as run directory names write it (:func:`svae_bench.records.format_number`).
``svae_run_dir``: a model run's directory below ``runs_root`` (:func:`svae_bench.schema.run_subdir`),
the one function that both conf/hydra/default.yaml and an M1+M2 cell locating its M1 use.
"""

from __future__ import annotations

from omegaconf import OmegaConf

from ..records import format_number
from ..schema import run_subdir

if not OmegaConf.has_resolver("svae_fmt"):
    OmegaConf.register_new_resolver("svae_fmt", format_number)
if not OmegaConf.has_resolver("svae_run_dir"):
    OmegaConf.register_new_resolver("svae_run_dir", run_subdir)
