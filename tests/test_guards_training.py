"""Guards found by mutation testing: early stopping (the exact stopping epoch, warm-up, ties),
the best weights returned, and resume with dynamic binarisation (on a slice of real MNIST
when it is there, on binarised synthetic grey levels always).

training/loop.py and tasks/vae_objective.py promise (docstrings): the validation objective at
the full beta every epoch; the best epoch's weights kept and returned; training stops after
``patience`` epochs without improvement, counted once warm-up is over; beta_t = beta * min(1,
epoch / warmup_epochs); a call with the same run directory continues after the last completed
epoch and ends with the same numbers as an uninterrupted run.
"""

from __future__ import annotations

import copy
import dataclasses
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import svae_bench.tasks.vae_objective as train_mod
from svae_bench.data import DataBundle, Split
from svae_bench.models import VAE
from svae_bench.tasks.vae_objective import train_vae as train

MNIST_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"


def trainer_cfg(**kw):
    base = {
        "optimizer": "adam",
        "lr": 1e-3,
        "batch_size": 32,
        "max_epochs": 20,
        "patience": 3,
        "warmup_epochs": 0,
        "num_threads": None,
        "progress": False,
        "nan_retries": 3,
        "nan_lr_factor": 0.5,
        # what these tests trained with before the trainer schema (the .get fallbacks' values)
        "compile": False,
        "fused": False,
        "flush_denormal": True,
    }
    return OmegaConf.create({**base, **kw})


def gaussian_data(n_train: int = 128, n_val: int = 64, dim: int = 12, seed: int = 0) -> DataBundle:
    g = torch.Generator().manual_seed(seed)
    split = lambda n: Split(torch.randn(n, dim, generator=g), torch.randint(3, (n,), generator=g))  # noqa: E731
    return DataBundle(
        name="toy", train=split(n_train), val=split(n_val), test=split(n_val), likelihood="gaussian", obs_scale=0.5
    )


def small_vae(dim: int, likelihood: str = "gaussian", seed: int = 0) -> VAE:
    torch.manual_seed(seed)
    return VAE(dim, 2, [16], "vmf", likelihood, 0.5)


def state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class ScriptedValidation:
    """Stands in for vae_objective.validation_terms: returns scripted (re, kl) pairs, one per epoch,
    and keeps a copy of the weights each epoch was validated with."""

    def __init__(self, values: list[tuple[float, float]]):
        self.values = list(values)
        self.states: list[dict] = []

    def __call__(self, model, x, batch, seed):
        assert len(self.states) < len(self.values), "more epochs than scripted"
        self.states.append(copy.deepcopy(model.state_dict()))
        return self.values[len(self.states) - 1]


def expected_stop(objectives: list[float], patience: int, warm: int, max_epochs: int) -> tuple[int, int]:
    """(last epoch, best epoch) by the documented rule, for a sequence of validation objectives."""
    best, best_epoch, since = -float("inf"), 0, 0
    for epoch, value in enumerate(objectives[:max_epochs], 1):
        if value > best:
            best, best_epoch, since = value, epoch, 0
        elif epoch > warm:
            since += 1
        if since >= patience:
            return epoch, best_epoch
    return min(max_epochs, len(objectives)), best_epoch


def run_scripted(monkeypatch, values, tmp_path=None, beta: float = 1.0, on_epoch=None, **cfg):
    script = ScriptedValidation(values)
    monkeypatch.setattr(train_mod, "validation_terms", script)
    data = gaussian_data()
    model = small_vae(data.observed_dim)
    result = train(
        model,
        data,
        trainer_cfg(**cfg),
        beta=beta,
        seed=0,
        run_dir=tmp_path,
        resume_config={"test": 1} if tmp_path is not None else None,
        on_epoch=on_epoch,
    )
    return model, result, script


# re values with kl = 0: the objective is re. Epochs 4-6 do not improve on epoch 3 (epoch 5
# ties it): with patience 3 training stops after epoch 6 although epoch 7 would improve.
TIE_THEN_STOP = [1.0, 2.0, 3.0, 2.5, 3.0, 2.0, 4.0, 3.0, 3.5, 3.9, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]


def test_early_stopping_after_exactly_patience_epochs_without_improvement(monkeypatch):
    values = [(v, 0.0) for v in TIE_THEN_STOP]
    model, result, script = run_scripted(monkeypatch, values, patience=3, max_epochs=20)
    assert expected_stop(TIE_THEN_STOP, 3, 0, 20) == (6, 3)
    assert (result.epochs, result.best_epoch, result.best_val_objective) == (6, 3, 3.0)
    assert len(result.history) == 6 and len(script.states) == 6
    assert [row["epoch"] for row in result.history] == list(range(1, 7))
    assert [row["val_objective"] for row in result.history] == TIE_THEN_STOP[:6]
    # the returned model holds the weights validated at the best epoch, not the last ones
    assert state_equal(model.state_dict(), script.states[2])
    assert not state_equal(model.state_dict(), script.states[-1])


@pytest.mark.parametrize("patience", [1, 2, 4])
def test_stopping_epoch_follows_the_rule_for_other_patiences(monkeypatch, patience):
    values = [(v, 0.0) for v in TIE_THEN_STOP]
    model, result, script = run_scripted(monkeypatch, values, patience=patience, max_epochs=15)
    last, best = expected_stop(TIE_THEN_STOP, patience, 0, 15)
    assert last < 15  # an early stop, not the epoch limit
    assert (result.epochs, result.best_epoch) == (last, best)
    assert state_equal(model.state_dict(), script.states[best - 1])


def test_epochs_without_improvement_during_warm_up_do_not_count(monkeypatch):
    # warm-up over 4 epochs: epochs 2-4 do not improve but are not counted; 5 and 6 are
    re = [5.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    model, result, script = run_scripted(monkeypatch, [(v, 0.0) for v in re], warmup_epochs=4, patience=2)
    assert expected_stop(re, 2, 4, 20) == (6, 1)
    assert (result.epochs, result.best_epoch) == (6, 1)
    assert state_equal(model.state_dict(), script.states[0])


def test_validation_objective_uses_the_full_beta_during_warm_up(monkeypatch):
    # epoch 1: re 0, kl 10 -> objective -10 at beta = 1 (-2.5 at beta_t = 1/4);
    # epoch 2: re -5, kl 0 -> -5 either way. The best epoch is 2 at the full beta.
    values = [(0.0, 10.0), (-5.0, 0.0), (-6.0, 0.0), (-6.0, 0.0), (-6.0, 0.0), (-6.0, 0.0), (-6.0, 0.0)]
    model, result, script = run_scripted(monkeypatch, values, beta=1.0, warmup_epochs=4, patience=2)
    assert [row["beta_t"] for row in result.history] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert [row["val_objective"] for row in result.history] == [-10.0, -5.0, -6.0, -6.0, -6.0, -6.0]
    assert [row["val_elbo"] for row in result.history] == [-10.0, -5.0, -6.0, -6.0, -6.0, -6.0]
    assert (result.epochs, result.best_epoch) == (6, 2)
    assert state_equal(model.state_dict(), script.states[1])


def test_beta_schedule_and_objective_with_beta_not_one(monkeypatch):
    values = [(-1.0, 2.0), (-1.0, 1.0), (-2.0, 0.5), (-3.0, 0.0)]
    model, result, script = run_scripted(monkeypatch, values, beta=2.0, warmup_epochs=2, patience=10, max_epochs=4)
    assert [row["beta_t"] for row in result.history] == [1.0, 2.0, 2.0, 2.0]
    assert [row["val_objective"] for row in result.history] == [-5.0, -3.0, -3.0, -3.0]  # re - 2 kl
    assert [row["val_elbo"] for row in result.history] == [-3.0, -2.0, -2.5, -3.0]
    assert (result.epochs, result.best_epoch) == (4, 2)  # ties (epochs 3, 4) do not replace the best
    assert state_equal(model.state_dict(), script.states[1])


def test_runs_exactly_max_epochs_without_an_early_stop(monkeypatch):
    values = [(float(v), 0.0) for v in range(10)]  # always improving
    model, result, script = run_scripted(monkeypatch, values, max_epochs=5, patience=2)
    assert (result.epochs, result.best_epoch) == (5, 5) and len(script.states) == 5
    assert state_equal(model.state_dict(), script.states[-1])


class Interrupt(Exception):
    pass


def interrupt_after(epoch: int):
    def on_epoch(e):
        if e == epoch:
            raise Interrupt

    return on_epoch


def test_resume_keeps_the_early_stopping_state(monkeypatch, tmp_path):
    values = [(v, 0.0) for v in TIE_THEN_STOP]
    # interrupted after epoch 5 (two epochs without improvement so far), then resumed
    with pytest.raises(Interrupt):
        run_scripted(monkeypatch, values, tmp_path, on_epoch=interrupt_after(5), patience=3)
    script = ScriptedValidation(values[5:])
    monkeypatch.setattr(train_mod, "validation_terms", script)
    data = gaussian_data()
    model = small_vae(data.observed_dim, seed=99)  # other initial weights: they must be restored
    result = train(model, data, trainer_cfg(patience=3), beta=1.0, seed=0, run_dir=tmp_path, resume_config={"test": 1})
    assert result.resumed_from == 5
    assert (result.epochs, result.best_epoch) == (6, 3) and len(script.states) == 1


def test_resuming_a_run_that_already_stopped_trains_no_further(monkeypatch, tmp_path):
    values = [(v, 0.0) for v in TIE_THEN_STOP]
    first_model, first, first_script = run_scripted(monkeypatch, values, tmp_path, patience=3)
    assert (first.epochs, first.best_epoch) == (6, 3)
    script = ScriptedValidation(values[6:])
    monkeypatch.setattr(train_mod, "validation_terms", script)
    data = gaussian_data()
    model = small_vae(data.observed_dim, seed=99)
    result = train(model, data, trainer_cfg(patience=3), beta=1.0, seed=0, run_dir=tmp_path, resume_config={"test": 1})
    assert script.states == []  # not one more epoch
    assert (result.epochs, result.best_epoch, result.resumed_from) == (6, 3, 6)
    assert state_equal(model.state_dict(), first_script.states[2])


def test_a_state_file_missing_keys_restarts_from_scratch(tmp_path):
    torch.save({"format": 1, "epoch": 3, "model": {}}, tmp_path / "state.pt")
    data = gaussian_data()
    model = small_vae(data.observed_dim)
    result = train(
        model, data, trainer_cfg(max_epochs=1), beta=1.0, seed=0, run_dir=tmp_path, resume_config={"test": 1}
    )
    assert result.resumed_from == 0 and result.epochs == 1
    assert [e["event"] for e in result.events] == ["corrupt_checkpoint"]


def test_real_training_stops_by_the_rule_and_returns_the_best_weights():
    # no scripting: a high learning rate on 128 points plateaus within a few epochs
    torch.manual_seed(0)
    data = gaussian_data()
    model = small_vae(data.observed_dim)
    patience, max_epochs = 2, 40
    result = train(model, data, trainer_cfg(lr=0.05, patience=patience, max_epochs=max_epochs), beta=1.0, seed=4)
    objectives = [row["val_objective"] for row in result.history]
    last, best = expected_stop(objectives, patience, 0, max_epochs)
    assert last < max_epochs, "did not stop early: nothing about early stopping was tested"
    assert (result.epochs, result.best_epoch) == (last, best) == (len(objectives), best)
    assert result.best_val_objective == max(objectives)
    # the returned weights give the best epoch's validation objective again (same fixed noise)
    re, kl = train_mod.validation_terms(model, data.val.x, 1000, 4 + 2)
    assert re - kl == result.best_val_objective
    assert objectives[-1] != result.best_val_objective


# -- resume with dynamic binarisation -------------------------------------------------------------


def run_interrupted_and_uninterrupted(data: DataBundle, tmp_path: Path, epochs: int = 4, stop_after: int = 2):
    """(uninterrupted result and weights, resumed result and weights): same seeds, same data."""
    cfg = trainer_cfg(max_epochs=epochs, patience=100, batch_size=64)
    model_a = small_vae(data.observed_dim, data.likelihood)  # seeds torch's generator, then builds
    ref = train(model_a, data, cfg, beta=1.0, seed=3, run_dir=tmp_path / "a", resume_config={"test": 1})

    model_b = small_vae(data.observed_dim, data.likelihood)  # the same weights and random state
    with pytest.raises(Interrupt):
        train(
            model_b,
            data,
            cfg,
            beta=1.0,
            seed=3,
            run_dir=tmp_path / "b",
            resume_config={"test": 1},
            on_epoch=interrupt_after(stop_after),
        )
    # a new process would start from other global random states: scramble them all
    torch.manual_seed(12345)
    np.random.seed(6789)
    random.seed(42)
    model_c = small_vae(data.observed_dim, data.likelihood, seed=77)
    resumed = train(model_c, data, cfg, beta=1.0, seed=3, run_dir=tmp_path / "b", resume_config={"test": 1})
    return ref, model_a, resumed, model_c


def assert_same_run(ref, model_a, resumed, model_c, stop_after: int) -> None:
    assert resumed.resumed_from == stop_after and ref.resumed_from == 0
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(resumed.history) == strip(ref.history)  # exact floats
    assert (resumed.epochs, resumed.best_epoch) == (ref.epochs, ref.best_epoch)
    assert state_equal(model_c.state_dict(), model_a.state_dict())


def grey_data(n_train: int = 256, n_val: int = 128, dim: int = 30) -> DataBundle:
    """Grey levels in [0, 1], binarised afresh each epoch (like MNIST), binary val/test sets."""
    g = torch.Generator().manual_seed(8)
    grey = torch.rand(n_train + 2 * n_val, dim, generator=g)
    y = torch.randint(3, (n_train + 2 * n_val,), generator=g)
    val_bin = torch.bernoulli(grey[n_train:], generator=g)
    return DataBundle(
        name="grey",
        train=Split(grey[:n_train], y[:n_train]),
        val=Split(val_bin[:n_val], y[n_train : n_train + n_val]),
        test=Split(val_bin[n_val:], y[n_train + n_val :]),
        likelihood="bernoulli",
        binarize_train=True,
    )


def test_resume_with_dynamic_binarisation_matches_an_uninterrupted_run(tmp_path):
    data = grey_data()
    ref, model_a, resumed, model_c = run_interrupted_and_uninterrupted(data, tmp_path)
    assert_same_run(ref, model_a, resumed, model_c, stop_after=2)


@pytest.mark.skipif(not (MNIST_ROOT / "MNIST" / "raw").is_dir(), reason="real MNIST not in ../shared/data")
def test_resume_on_real_mnist_matches_an_uninterrupted_run(tmp_path):
    from svae_bench.data import build_dataset

    conf = Path(__file__).resolve().parents[1] / "conf" / "dataset" / "mnist.yaml"
    cfg = OmegaConf.merge(OmegaConf.load(conf), {"data_root": str(MNIST_ROOT)})
    full = build_dataset(cfg)
    assert full.binarize_train  # the property under test: training batches are redrawn each epoch
    part = lambda s, n: dataclasses.replace(s, x=s.x[:n].contiguous(), y=s.y[:n].contiguous())  # noqa: E731
    data = dataclasses.replace(full, train=part(full.train, 512), val=part(full.val, 256), test=part(full.test, 256))
    ref, model_a, resumed, model_c = run_interrupted_and_uninterrupted(data, tmp_path)
    assert_same_run(ref, model_a, resumed, model_c, stop_after=2)
