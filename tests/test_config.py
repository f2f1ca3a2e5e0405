"""Every config group composes, and run directories follow the choices that define a run."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

import svae_bench.launch.resolvers  # noqa: F401  (registers the svae_fmt resolver)


@pytest.fixture
def hydra_compose():
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="svae_bench.conf", version_base="1.3"):
        yield lambda *overrides, **kw: compose(config_name="config", overrides=list(overrides), **kw)
    GlobalHydra.instance().clear()


@pytest.mark.parametrize(
    "model,latent", [("ae", "deterministic"), ("nvae", "gaussian"), ("svae", "vmf"), ("psvae", "power_spherical")]
)
def test_every_model_composes(hydra_compose, model, latent):
    cfg = hydra_compose(f"model={model}", "latent_dim=10")
    assert cfg.model.name == model and cfg.model.latent == latent
    assert cfg.latent_dim == 10 and cfg.dataset.name == "synthetic"
    for group in ("trainer", "eval"):
        assert OmegaConf.to_container(cfg[group], resolve=True)


def test_run_dir_is_derived_from_the_run_choices(hydra_compose):
    cfg = hydra_compose("model=nvae", "latent_dim=5", "beta=1", "seed=3", return_hydra_config=True)
    assert cfg.hydra.run.dir == "runs/default/synthetic/nvae/d=5/beta=1/seed=3"
    # beta=1, beta=1.0 and beta=1e0 name the same run; 0.1 stays 0.1
    assert hydra_compose("beta=1.0", return_hydra_config=True).hydra.run.dir.endswith("beta=1/seed=0")
    assert "beta=0.1/" in hydra_compose("beta=0.1", return_hydra_config=True).hydra.run.dir
    sweep = hydra_compose("runs_root=/tmp/r", return_hydra_config=True).hydra.sweep
    assert sweep.dir == "/tmp/r" and sweep.subdir == "default/synthetic/svae/d=2/beta=1/seed=0"


def test_synthetic_figure_experiment(hydra_compose):
    cfg = hydra_compose("experiment=synthetic_figure", return_hydra_config=True)
    assert cfg.experiment_name == "synthetic_figure" and cfg.latent_dim == 2
    assert cfg.hydra.mode.name == "MULTIRUN"
    cells = cfg.hydra.sweeper.params["+variant"].split(",")
    assert len(cells) == 5
    composed = {}
    for cell in cells:
        c = hydra_compose("experiment=synthetic_figure", f"+variant={cell}")
        composed[cell] = (c.model.name, c.beta)
    assert sorted(composed.values()) == [("ae", 1.0), ("nvae", 0.1), ("nvae", 1.0), ("nvae", 10.0), ("svae", 1.0)]


def test_experiment_files_are_global_packages():
    from importlib.resources import files

    for f in files("svae_bench.conf").joinpath("experiment").iterdir():
        if f.name.endswith(".yaml"):
            assert f.read_text().startswith("# @package _global_"), f.name


def test_mnist_dataset_composes(hydra_compose, monkeypatch):
    monkeypatch.setenv("SVAE_BENCH_DATA", "/data/here")
    cfg = hydra_compose("dataset=mnist", "model=nvae")
    assert cfg.dataset.name == "mnist" and cfg.dataset.likelihood == "bernoulli"
    assert cfg.dataset.data_root == "/data/here"
