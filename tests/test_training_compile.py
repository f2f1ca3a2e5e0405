"""trainer.compile: the training step through torch.compile trains the same model as eager code.

The sampler's draws run outside the compiled graphs with torch's own generator, so a
compiled and an eager run from the same seed see the same noise; their per-epoch
numbers agree to float tolerance. The default tier compiles with the ``aot_eager``
backend (dynamo's capture and AOTAutograd's backward; seconds to compile); the real
default backend (inductor, which generates C++) runs in the slow tier.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from svae_bench.data import build_dataset
from svae_bench.data.bundle import Split
from svae_bench.errors import ConfigError
from svae_bench.schema import TrainerConfig, defaults, migrate_trainer, rules, typed
from svae_bench.tasks.vae import model_for
from svae_bench.tasks.vae_objective import VaeObjective, trainer_settings
from svae_bench.training import TrainSettings, train

CONF = Path(__file__).resolve().parents[1] / "conf"


def tiny_run(model_name: str, compile_backend: str | None, monkeypatch) -> list[dict]:
    values = OmegaConf.to_container(OmegaConf.load(CONF / "dataset" / "synthetic.yaml"))
    data = build_dataset(values)
    data = dataclasses.replace(
        data,
        train=Split(data.train.x[:256], data.train.y[:256]),
        val=Split(data.val.x[:64], data.val.y[:64]),
    )
    torch.manual_seed(0)
    model = model_for(OmegaConf.to_container(OmegaConf.load(CONF / "model" / f"{model_name}.yaml")), 2, data)
    calls = []
    if compile_backend is not None:
        real_compile = torch.compile

        def compile_with(fn, **kwargs):
            calls.append(fn)
            return real_compile(fn, backend=compile_backend, **kwargs)

        monkeypatch.setattr(torch, "compile", compile_with)
    settings = TrainSettings(
        lr=1e-3, batch_size=64, max_epochs=2, patience=10, progress=False, compile=compile_backend is not None
    )
    torch._dynamo.reset()
    result = train(model, data, VaeObjective(beta=1.0, warmup_epochs=2), settings, seed=3)
    assert len(calls) == (compile_backend is not None)
    return [{k: v for k, v in row.items() if k != "seconds"} for row in result.history]


@pytest.mark.parametrize("model_name", ["svae", pytest.param("nvae", marks=pytest.mark.slow)])
def test_compiled_training_step_matches_eager(model_name, monkeypatch):
    eager = tiny_run(model_name, None, monkeypatch)
    compiled = tiny_run(model_name, "aot_eager", monkeypatch)
    assert len(compiled) == len(eager) == 2
    for a, b in zip(compiled, eager):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-4), key


def test_trainer_compile_option_reaches_the_loop_and_is_checked():
    # a trainer group without the options (a record made before they existed), read as the tasks read one
    base = {k: v for k, v in defaults(TrainerConfig).items() if k not in ("compile", "fused")}

    def settings(trainer: dict):
        return trainer_settings(typed(TrainerConfig, migrate_trainer(trainer), "trainer."))

    assert settings(base).compile is False  # off by default
    assert settings({**base, "compile": True}).compile is True
    assert OmegaConf.load(CONF / "trainer" / "default.yaml").compile is False
    # fused Adam: on in the config; a record made before the option existed replays without it
    assert OmegaConf.load(CONF / "trainer" / "default.yaml").fused is True
    assert settings(base).fused is False and settings({**base, "fused": True}).fused is True
    TRAINER = rules(TrainerConfig)
    assert TRAINER["fused"](False) is None and TRAINER["fused"]("no") is not None
    assert TRAINER["compile"](True) is None and TRAINER["compile"]("yes") is not None
    with pytest.raises(ConfigError):
        from svae_bench.checks import check_values

        check_values({"compile": "yes"}, TRAINER, "trainer.")


@pytest.mark.slow
def test_inductor_training_step_matches_eager(monkeypatch):
    eager = tiny_run("svae", None, monkeypatch)
    compiled = tiny_run("svae", "inductor", monkeypatch)
    for a, b in zip(compiled, eager):
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-3, abs=1e-3), key


# ------------------------------------------------------------------ every task reads trainer.compile

#: tiny runs of the two other tasks (a generated graph; the synthetic mixture's M1+M2)
VGAE_TINY = [
    "dataset=synthetic_graph",
    "dataset.n_nodes=120",
    "dataset.n_features=24",
    "dataset.n_edges=400",
    "model=svgae",
    "model.hidden_dims=[16]",
    "latent_dim=4",
    "vgae.epochs=4",
]
M1M2_TINY = [
    "experiment=table3",
    "dataset=synthetic",
    "dataset.n_train=600",
    "dataset.n_val=120",
    "dataset.n_test=120",
    "semisup.labels=30",
    "semisup.hidden_dims=[32]",
    "family=S+N",
    "latent_dim=2",
    "semisup.z2_dim=2",
    "trainer.max_epochs=2",
    "semisup.trainer.max_epochs=2",
    "eval.is_samples=10",
    "eval.knn_repeats=1",
    "eval.knn_labels=[30]",
]


@pytest.mark.parametrize(
    ("overrides", "metric"),
    [(VGAE_TINY, "auc"), pytest.param(M1M2_TINY, "acc", marks=pytest.mark.slow)],  # M1+M2: ~25 s, two trainings
    ids=["vgae", "m1m2"],
)
def test_every_task_compiles_its_training_step_when_asked(overrides, metric, tmp_path, monkeypatch):
    """trainer.compile reaches the loop in the VGAE and M1+M2 tasks too (not only the VAE's), and
    the compiled run gives the eager run's numbers."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from svae_bench.tasks.harness import run_one

    compiled = []
    real_compile = torch.compile

    def compile_with(fn, **kwargs):
        compiled.append(getattr(fn, "__qualname__", repr(fn)))
        return real_compile(fn, backend="aot_eager", **kwargs)

    monkeypatch.setattr(torch, "compile", compile_with)
    records = {}
    for flag in ("false", "true"):
        GlobalHydra.instance().clear()
        with initialize_config_module(config_module="svae_bench.conf", version_base="1.3"):
            common = ["trainer.progress=false", "trainer.num_threads=1", f"runs_root={tmp_path / flag}"]
            cfg = compose(config_name="config", overrides=[*overrides, *common, f"trainer.compile={flag}"])
        GlobalHydra.instance().clear()
        torch._dynamo.reset()
        records[flag] = run_one(cfg, tmp_path / flag / "run")
    assert compiled and all("train_terms" in name for name in compiled), compiled
    if metric == "acc":  # M1 (a VAE run of its own) and M2 both compiled
        assert {n.split(".")[0] for n in compiled} == {"VaeObjective", "M2Objective"}, compiled
    eager, fast = records["false"]["metrics"], records["true"]["metrics"]
    assert fast[metric] == pytest.approx(eager[metric], rel=1e-3, abs=1e-3)
