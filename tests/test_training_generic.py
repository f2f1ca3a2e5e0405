"""The training loop with a model and objective it has never seen (least squares on a linear map):
the objective is the caller's, and NaN rollback, resume and early stopping work for any model.
Faults come from the test hook (svae_bench.training.hooks), not from a config value."""

from __future__ import annotations

import csv
import math

import pytest
import torch
from torch import Tensor, nn

from svae_bench.data import DataBundle, Split
from svae_bench.training import TrainingFailed, TrainSettings, train
from svae_bench.training.hooks import STEP_HOOKS, inject_nan

COLUMNS = ["epoch", "train_objective", "train_abs", "val_objective", "seconds"]


class LeastSquares:
    """Maximise -mean ||W x - target||^2 for a fixed target map; reports the mean |error| too."""

    columns = COLUMNS
    warmup_epochs = 0

    def __init__(self, target: Tensor):
        self.target = target

    def train_terms(self, model: nn.Module, batch: Tensor, epoch: int) -> tuple[Tensor, tuple[Tensor]]:
        err = model(batch) - batch @ self.target.T
        return -err.pow(2).sum(-1).mean(), (err.abs().mean(),)

    @torch.no_grad()
    def validate(self, model: nn.Module, x: Tensor, seed: int) -> tuple[float, dict[str, float]]:
        value = -float((model(x) - x @ self.target.T).pow(2).sum(-1).mean())
        return value, {"val_objective": value}

    def row(self, epoch: int, train_means: list[float], validation: dict[str, float]) -> dict[str, float]:
        objective, abs_err = train_means
        return {"train_objective": objective, "train_abs": abs_err, **validation}

    def summary(self, row: dict[str, float]) -> str:
        return f"train {row['train_objective']:.4f}  val {row['val_objective']:.4f}"


def problem(seed: int = 0) -> tuple[nn.Module, DataBundle, LeastSquares]:
    g = torch.Generator().manual_seed(5)
    x = torch.randn(300, 4, generator=g)
    split = lambda lo, hi: Split(x[lo:hi], torch.zeros(hi - lo, dtype=torch.int64))  # noqa: E731
    data = DataBundle("linear", split(0, 200), split(200, 250), split(250, 300), likelihood="gaussian")
    torch.manual_seed(seed)
    return nn.Linear(4, 3, bias=False), data, LeastSquares(torch.randn(3, 4, generator=g))


def strip(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


SETTINGS = TrainSettings(lr=0.05, batch_size=32, max_epochs=6, patience=100, progress=False, nan_lr_factor=0.5)


def test_the_loop_maximises_the_given_objective_and_writes_its_columns(tmp_path):
    model, data, objective = problem()
    result = train(model, data, objective, SETTINGS, seed=0, metrics_path=tmp_path / "metrics.csv")
    values = [row["val_objective"] for row in result.history]
    assert result.epochs == 6 and values[-1] > values[0] and result.best_val_objective == max(values)
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == COLUMNS and len(rows) == 6
    assert [float(r["train_abs"]) for r in rows] == [row["train_abs"] for row in result.history]


def test_an_injected_nan_rolls_back_any_model():
    model, data, objective = problem()
    ref = train(model, data, objective, SETTINGS, seed=0)
    model, data, objective = problem()
    with inject_nan(at_step=15, times=2):  # 7 steps per epoch: step 15 is in epoch 3
        result = train(model, data, objective, SETTINGS, seed=0)
    assert STEP_HOOKS == []  # removed after the block
    faults = [e for e in result.events if e["event"] == "non_finite"]
    assert [(e["epoch"], e["step"], e["attempt"], e["lr"]) for e in faults] == [(3, 15, 1, 0.025), (3, 15, 2, 0.0125)]
    assert result.epochs == 6
    assert strip(result.history[:2]) == strip(ref.history[:2])  # the epochs before the fault
    assert result.history[2]["val_objective"] != ref.history[2]["val_objective"]  # lower lr from epoch 3


def test_persistent_nan_fails_with_the_events():
    model, data, objective = problem()
    settings = TrainSettings(lr=0.05, batch_size=32, max_epochs=6, patience=100, progress=False, nan_retries=2)
    with inject_nan(at_step=3, times=100), pytest.raises(TrainingFailed, match="non-finite objective") as err:
        train(model, data, objective, settings, seed=0)
    assert [e["attempt"] for e in err.value.events if e["event"] == "non_finite"] == [1, 2, 3]


class Interrupt(Exception):
    pass


def test_resume_of_any_model_gives_the_uninterrupted_numbers(tmp_path):
    model_a, data, objective = problem()
    ref = train(model_a, data, objective, SETTINGS, seed=1, run_dir=tmp_path / "a", resume_config={"k": 1})

    def stop_after_3(epoch: int) -> None:
        if epoch == 3:
            raise Interrupt

    model_b, _, _ = problem()
    with pytest.raises(Interrupt):
        train(
            model_b,
            data,
            objective,
            SETTINGS,
            seed=1,
            run_dir=tmp_path / "b",
            resume_config={"k": 1},
            on_epoch=stop_after_3,
        )
    model_c, _, _ = problem(seed=9)  # other initial weights: the saved ones must be restored
    torch.manual_seed(1234)
    resumed = train(model_c, data, objective, SETTINGS, seed=1, run_dir=tmp_path / "b", resume_config={"k": 1})
    assert resumed.resumed_from == 3 and strip(resumed.history) == strip(ref.history)
    assert torch.equal(model_c.weight, model_a.weight)
    assert math.isfinite(resumed.best_val_objective)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_adam_takes_the_same_steps_as_the_multi_tensor_kernel(dtype):
    """trainer.fused changes the kernel, not the algorithm: the same run to rounding."""
    runs = {}
    for fused in (False, True):
        model, data, objective = problem()
        model = model.to(dtype)
        data = DataBundle(
            "linear", *(Split(s.x.to(dtype), s.y) for s in (data.train, data.val, data.test)), likelihood="gaussian"
        )
        objective.target = objective.target.to(dtype)
        settings = TrainSettings(lr=0.05, batch_size=32, max_epochs=3, patience=100, progress=False, fused=fused)
        result = train(model, data, objective, settings, seed=0)
        runs[fused] = (model.weight.detach().clone(), [r["val_objective"] for r in result.history])
    (w_ref, v_ref), (w_fused, v_fused) = runs[False], runs[True]
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(w_fused, w_ref, rtol=tol, atol=tol)
    assert v_fused == pytest.approx(v_ref, rel=tol)
