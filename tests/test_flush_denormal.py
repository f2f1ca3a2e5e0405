"""trainer.flush_denormal: a run's process flushes subnormal floats (they cost ~100x per op on x86,
and a trained decoder makes them), as configured; records made before the option ran without."""

from __future__ import annotations

import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from svae_bench.tasks.vae import set_up_process

SUBNORMAL = 1e-39  # below float32's smallest normal number, 1.18e-38


def _is_flushed() -> bool:
    return (torch.tensor([SUBNORMAL], dtype=torch.float32) * 1.0).item() == 0.0


def test_run_process_flushes_subnormals_as_configured():
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        for trainer, flushed in (({"flush_denormal": True}, True), ({"flush_denormal": False}, False), ({}, False)):
            set_up_process(OmegaConf.create({"device": "cpu", "seed": 0, "trainer": trainer}))
            assert _is_flushed() is flushed, trainer
    finally:
        torch.set_flush_denormal(False)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    assert not _is_flushed()


def test_flushing_is_the_default():
    with initialize_config_module(config_module="svae_bench.conf", version_base="1.3"):
        assert compose(config_name="config").trainer.flush_denormal is True
