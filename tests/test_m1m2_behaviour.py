"""What an M1+M2 cell (Table 3) reports, pinned by behaviour: a tiny end-to-end cell on the synthetic
mixture, run in this process, and every number of its record recomputed here from its checkpoint,
its metrics.csv and the data, independently of the task's code.

The mixture is made hard on purpose (concentration 3: the three components overlap), so that test
and validation accuracies differ, a draw of q(z1 | x) classifies otherwise than M1's posterior
location, and the validation bound and the validation accuracy peak at different epochs; each test
first checks that its data can tell the right number from the wrong one.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from svae_bench.data import build_dataset
from svae_bench.data.labels import labelled_subset
from svae_bench.models.m2 import build_m2
from svae_bench.models.vae import build_model
from svae_bench.tasks.m1m2 import M1M2Task, m1_dir, m1_mismatch, m1_values
from svae_bench.tasks.m1m2_objective import M1M2, M2Objective

#: 1500 training points of 3 overlapping classes (30 labelled), 400 validation, 350 test; M1 an
#: S-VAE with d = 2 (3 epochs), M2 6 epochs without early stopping's patience running out
BASE = [
    "experiment=table3",
    "dataset=synthetic",
    "dataset.n_train=1500",
    "dataset.n_val=400",
    "dataset.n_test=350",
    "dataset.concentration=3",
    "semisup.labels=30",
    "semisup.hidden_dims=[32]",
    "family=S+N",
    "latent_dim=2",
    "semisup.z2_dim=2",
    "trainer.max_epochs=3",
    "semisup.trainer.max_epochs=6",
    "semisup.trainer.patience=100",
    "eval.is_samples=10",
    "eval.knn_repeats=1",
    "eval.knn_labels=[30]",
    "trainer.progress=false",
    "trainer.num_threads=1",
]
LABELS = "30"


def compose_cell(root: Path, *extra: str):
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="svae_bench.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*BASE, f"runs_root={root}", *extra])
    GlobalHydra.instance().clear()
    return cfg


def plain(cfg) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True)


def rows_of(run_dir: Path) -> list[dict[str, float]]:
    with open(run_dir / "metrics.csv") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def first_argmax(values: list[float]) -> int:
    """The 1-based epoch of the first maximum (the loop keeps an epoch only when it improves)."""
    return values.index(max(values)) + 1


def row_keys(x: torch.Tensor) -> list[bytes]:
    """Each row of x (N, D) as bytes: exact membership of images (the mixture's rows are distinct)."""
    return [r.numpy().tobytes() for r in x.detach().cpu().contiguous()]


def run_cell(root: Path, out: Path, *extra: str) -> dict:
    """One cell through the harness in this process, the M2 objective's inputs and every Adam
    optimiser's kernel recorded on the way."""
    from svae_bench.tasks.harness import run_one

    seen: dict = {"batches": [], "objectives": [], "adam_fused": []}
    real_terms, real_adam = M2Objective.train_terms, torch.optim.Adam

    def train_terms(self, model, batch, epoch):
        if epoch == 1:
            seen["batches"].append(batch.detach().clone())
        if not any(o is self for o in seen["objectives"]):
            seen["objectives"].append(self)
        return real_terms(self, model, batch, epoch)

    def adam(params, *args, **kwargs):
        seen["adam_fused"].append(bool(kwargs.get("fused")))
        return real_adam(params, *args, **kwargs)

    cfg = compose_cell(root, *extra)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(M2Objective, "train_terms", train_terms)
        mp.setattr(torch.optim, "Adam", adam)
        record = run_one(cfg, out)
    assert record is not None and record["status"] == "complete"
    return {"cfg": cfg, "record": record, "dir": out, **seen}


@pytest.fixture(scope="module")
def cells(tmp_path_factory) -> dict:
    """Two cells on one M1 (trained by the first): early stopping on the bound (the default), and
    on validation accuracy; two-stage, so that the checkpoint's M1 is the M1 run's."""
    root = tmp_path_factory.mktemp("m1m2_behaviour")
    bound = run_cell(root, root / "bound", "semisup.training=two_stage")
    accuracy = run_cell(root, root / "accuracy", "semisup.training=two_stage", "semisup.early_stop=accuracy")
    data = build_dataset(plain(bound["cfg"].dataset))
    return {"root": root, "bound": bound, "accuracy": accuracy, "data": data}


def load_cell(cell: dict) -> tuple[M1M2, int]:
    """The cell's M1 and M2 rebuilt from its config and loaded from its checkpoint.pt (the weights
    it evaluated), and the epoch they are from."""
    values = plain(cell["cfg"])
    ds, model, semisup = values["dataset"], values["model"], values["semisup"]
    m1 = build_model(
        latent=model["latent"],
        hidden_dims=model["hidden_dims"],
        latent_dim=values["latent_dim"],
        observed_dim=ds["observed_dim"],
        likelihood=ds["likelihood"],
        obs_scale=ds["obs_scale"],
        activation=model["activation"],
    )
    m2 = build_m2(
        z1_ambient=values["latent_dim"] + 1,
        z1_family="vmf",
        z2_dim=semisup["z2_dim"],
        z2_family="gaussian",
        hidden_dims=semisup["hidden_dims"],
        activation=semisup["activation"],
        n_classes=ds["n_components"],
    )
    model = M1M2(m1, m2, joint=False)
    saved = torch.load(cell["dir"] / "checkpoint.pt", weights_only=True)
    model.load_state_dict(saved["model"])
    return model.eval(), int(saved["epoch"])


@torch.no_grad()
def location_accuracy(model: M1M2, x: torch.Tensor, y: torch.Tensor) -> float:
    """argmax q(y | z1) at M1's posterior location, computed from the networks' layers here: the vMF
    mean direction normalise(linear(h))[:-1] of the S-VAE's head."""
    out = model.m1.head.linear(model.m1.encoder(x))
    loc = F.normalize(out[:, :-1], dim=-1)
    return (model.m2.classifier(loc).argmax(-1) == y).double().mean().item()


@torch.no_grad()
def sampled_accuracy(model: M1M2, x: torch.Tensor, y: torch.Tensor, seed: int) -> float:
    torch.manual_seed(seed)
    z1 = model.m1.head.posterior(model.m1.encoder(x)).rsample()
    return (model.m2.classifier(z1).argmax(-1) == y).double().mean().item()


# --------------------------------------------------------------------------- the reported accuracy


def test_the_recorded_accuracy_is_argmax_q_y_at_m1s_location_on_the_test_images(cells) -> None:
    """metrics.acc is the test accuracy of argmax q(y | z1 = M1's posterior location) with the
    checkpoint's weights: not the validation accuracy, not an accuracy on a draw of q(z1 | x)."""
    data, cell = cells["data"], cells["bound"]
    model, epoch = load_cell(cell)
    metrics = cell["record"]["metrics"]
    test = location_accuracy(model, data.test.x, data.test.y)
    val = location_accuracy(model, data.val.x, data.val.y)
    sampled = [sampled_accuracy(model, data.test.x, data.test.y, seed) for seed in range(5)]
    # the data can tell these apart
    assert test != val and all(s != test for s in sampled), (test, val, sampled)
    assert metrics["acc"][LABELS] == test
    assert metrics["val_acc"][LABELS] == val
    labelled = labelled_subset(data.train.y, 30, seed=0, n_classes=3)
    assert metrics["labelled_acc"][LABELS] == location_accuracy(model, data.train.x[labelled], data.train.y[labelled])
    assert epoch == cell["record"]["best_epoch"]  # the weights evaluated are the best epoch's


def test_the_checkpoint_holds_the_m1_run_unchanged_in_two_stage_training(cells) -> None:
    """Two-stage training never moves M1: the cell's checkpoint carries the M1 run's weights, so the
    location the accuracy reads is the one of the M1 the record names."""
    model, _ = load_cell(cells["bound"])
    m1_saved = torch.load(m1_dir(plain(cells["bound"]["cfg"])) / "checkpoint.pt", weights_only=True)["model"]
    for key, tensor in model.m1.state_dict().items():
        assert torch.equal(tensor, m1_saved[key]), key


# --------------------------------------------------------------------------- early stopping


def test_early_stopping_on_the_bound_keeps_the_epoch_of_the_best_validation_bound(cells) -> None:
    """early_stop=bound (the default): the epoch kept is the first maximum of the unlabelled bound
    on the validation images, not of the validation accuracy (which needs 10,000 labels)."""
    rows = rows_of(cells["bound"]["dir"])
    by_bound = first_argmax([r["val_bound"] for r in rows])
    by_accuracy = first_argmax([r["val_acc"] for r in rows])
    assert by_bound != by_accuracy, rows  # the two curves peak at different epochs
    assert cells["bound"]["record"]["best_epoch"] == by_bound
    assert [r["val_objective"] for r in rows] == [r["val_bound"] for r in rows]


def test_early_stopping_on_accuracy_keeps_the_epoch_of_the_best_validation_accuracy(cells) -> None:
    rows = rows_of(cells["accuracy"]["dir"])
    by_bound = first_argmax([r["val_bound"] for r in rows])
    by_accuracy = first_argmax([r["val_acc"] for r in rows])
    assert by_bound != by_accuracy, rows
    assert cells["accuracy"]["record"]["best_epoch"] == by_accuracy
    assert [r["val_objective"] for r in rows] == [r["val_acc"] for r in rows]
    _, epoch = load_cell(cells["accuracy"])
    assert epoch == by_accuracy


def test_validation_selects_what_early_stop_names() -> None:
    """The objective's validation value is the bound or the accuracy as asked; a misspelt choice is
    refused instead of falling silently to accuracy (or z1 to the location)."""
    torch.manual_seed(0)
    m1 = build_model(latent="vmf", hidden_dims=[16], latent_dim=3, observed_dim=12, likelihood="bernoulli")
    m2 = build_m2(z1_ambient=4, z1_family="vmf", z2_dim=2, z2_family="gaussian", hidden_dims=[8], n_classes=3)
    model = M1M2(m1, m2, joint=False)
    x = torch.bernoulli(torch.full((9, 12), 0.5), generator=torch.Generator().manual_seed(1))
    y = torch.arange(9) % 3
    for early_stop, key in (("bound", "val_bound"), ("accuracy", "val_acc")):
        objective = M2Objective(labelled_x=x[:3], labelled_y=y[:3], n_train=9, val_y=y, early_stop=early_stop)
        value, row = objective.validate(model, x, seed=2)
        assert value == row[key] == row["val_objective"]
        assert row["val_bound"] != row["val_acc"]
    for bad in ({"early_stop": "Bound"}, {"early_stop": "bound "}, {"z1": "samples"}, {"warmup_epochs": -1}):
        with pytest.raises(ValueError, match="must be"):
            M2Objective(labelled_x=x[:3], labelled_y=y[:3], n_train=9, val_y=y, **bad)


# --------------------------------------------------------------------------- the labelled images


def test_the_labelled_images_are_10_per_class_of_the_training_split_and_not_in_the_unlabelled_stream(cells) -> None:
    """What M2 was trained on: 10 labelled images of each class, all of the training split, with
    their training labels; the unlabelled stream is the rest of the training split, each image once
    per epoch, none of them labelled; N in the objective's weights is the whole training split."""
    data, cell = cells["data"], cells["bound"]
    (objective,) = cell["objectives"]
    train = row_keys(data.train.x)
    where = {key: i for i, key in enumerate(train)}
    labelled_rows = row_keys(objective.labelled_x)
    assert all(key in where for key in labelled_rows)  # all from the training split...
    index = torch.tensor([where[key] for key in labelled_rows])
    assert index.unique().numel() == 30
    assert torch.equal(objective.labelled_y, data.train.y[index])  # ...with their training labels
    assert torch.bincount(data.train.y[index], minlength=3).tolist() == [10, 10, 10]
    others = set(row_keys(data.val.x)) | set(row_keys(data.test.x))
    assert not others & set(labelled_rows)
    stream = [key for batch in cell["batches"] for key in row_keys(batch)]
    assert len(stream) == len(set(stream)) == 1500 - 30  # epoch 1: every unlabelled image once
    assert set(stream) == set(train) - set(labelled_rows)
    assert objective.n_train == 1500


def test_the_labelled_subset_is_drawn_by_the_cells_seed_from_the_training_labels(tmp_path: Path) -> None:
    """prepare's labelled indices point into the training split, 10 per class by the training labels,
    the same for the same seed and others for another seed."""
    task = M1M2Task()
    drawn = {}
    for seed in (0, 0, 1):
        cfg = compose_cell(tmp_path, f"seed={seed}")
        prepared = task.prepare(cfg)
        y = prepared.data.train.y
        assert prepared.labelled.dtype == torch.int64
        assert 0 <= int(prepared.labelled.min()) and int(prepared.labelled.max()) < len(y)
        assert torch.bincount(y[prepared.labelled], minlength=3).tolist() == [10, 10, 10]
        if seed in drawn:
            assert torch.equal(drawn[seed], prepared.labelled)
        drawn[seed] = prepared.labelled
    assert not torch.equal(drawn[0], drawn[1])
    assert not (tmp_path / "table3_paper").exists()  # prepare writes nothing


# --------------------------------------------------------------------------- the KL warm-up


def _gaussian_kl(q) -> torch.Tensor:
    """KL(N(mu, diag sigma^2) || N(0, I)) per point, by its formula."""
    mu, sigma = q.base_dist.loc, q.base_dist.scale
    return 0.5 * (mu.pow(2) + sigma.pow(2) - 1 - 2 * sigma.log()).sum(-1)


def test_the_kl_warm_up_weighs_the_kl_of_both_the_labelled_and_the_unlabelled_bound() -> None:
    """At warm-up weight w (epoch e of W: w = e / W) the objective is the full objective plus
    (1 - w) times the z2 KL it contains: (N_u/N) mean_u sum_y q(y|z1) KL(z1, y) + (N_l/N) mean_l KL(z1, y)."""
    torch.manual_seed(0)
    m1 = build_model(latent="vmf", hidden_dims=[16], latent_dim=3, observed_dim=12, likelihood="bernoulli")
    m2 = build_m2(z1_ambient=4, z1_family="vmf", z2_dim=2, z2_family="gaussian", hidden_dims=[8], n_classes=3)
    model = M1M2(m1, m2, joint=False).double()
    gen = torch.Generator().manual_seed(1)
    labelled_x = torch.bernoulli(torch.full((6, 12), 0.5, dtype=torch.float64), generator=gen)
    labelled_y = torch.tensor([0, 1, 2, 0, 1, 2])
    batch = torch.bernoulli(torch.full((10, 12), 0.5, dtype=torch.float64), generator=gen)
    n_train, n_l = 60, 6

    def objective(warmup: int, epoch: int) -> torch.Tensor:
        terms = M2Objective(
            labelled_x=labelled_x,
            labelled_y=labelled_y,
            n_train=n_train,
            val_y=labelled_y,
            z1="mean",
            alpha=0.5,
            warmup_epochs=warmup,
        )
        torch.manual_seed(3)  # the same z2 draws at every weight
        return terms.train_terms(model, batch, epoch)[0].detach()

    with torch.no_grad():  # the KL the objective holds, by hand
        z1_u, z1_l = model.codes(batch, False), model.codes(labelled_x, False)
        q_y = F.softmax(model.m2.classifier(z1_u), -1)
        kl_u = torch.stack(
            [_gaussian_kl(model.m2.q_z2(z1_u, F.one_hot(torch.full((10,), y), 3).double())) for y in range(3)], -1
        )
        kl_l = _gaussian_kl(model.m2.q_z2(z1_l, F.one_hot(labelled_y, 3).double()))
        unlabelled_kl = (n_train - n_l) / n_train * (q_y * kl_u).sum(-1).mean()
        labelled_kl = n_l / n_train * kl_l.mean()
    assert unlabelled_kl > 1e-3 and labelled_kl > 1e-3  # both terms are there to be weighed
    full = objective(0, 1)
    assert objective(4, 4) == full and objective(4, 9) == full  # warm-up over: the objective itself
    for epoch, w in ((1, 0.25), (2, 0.5), (3, 0.75)):
        torch.testing.assert_close(objective(4, epoch), full + (1 - w) * (unlabelled_kl + labelled_kl))


# --------------------------------------------------------------------------- Adam's kernel


def test_m2_trains_with_the_adam_kernel_the_run_names(cells, tmp_path: Path) -> None:
    """trainer.fused reaches M2's optimiser as it reaches M1's: fused kernels for both by default
    (the first cell trained its M1, then M2; the second reused the M1), the multi-tensor kernel for
    both with trainer.fused=false."""
    assert plain(cells["bound"]["cfg"])["trainer"]["fused"] is True
    assert cells["bound"]["adam_fused"] == [True, True]
    assert cells["accuracy"]["adam_fused"] == [True]
    unfused = run_cell(
        tmp_path, tmp_path / "cell", "trainer.fused=false", "trainer.max_epochs=1", "semisup.trainer.max_epochs=1"
    )
    assert unfused["adam_fused"] == [False, False]
    assert unfused["record"]["config"]["trainer"]["fused"] is False


def test_another_adam_kernel_is_another_run_on_resume_and_on_m1_reuse(tmp_path: Path) -> None:
    """trainer.fused changes the numbers (the kernels round differently), so it is not a speed-only
    setting: an M2 state saved with one kernel is not resumed with the other, and an M1 trained
    with one is not reused by a cell that asks for the other. A record made before the option
    existed was trained with the multi-tensor kernel. trainer.progress, by contrast, is ignored."""
    from svae_bench.tasks.harness import resume_values

    task = M1M2Task()
    fused, unfused = compose_cell(tmp_path), compose_cell(tmp_path, "trainer.fused=false")
    quiet = compose_cell(tmp_path, "trainer.progress=true")
    assert resume_values(fused, task.resume_ignored) != resume_values(unfused, task.resume_ignored)
    assert resume_values(fused, task.resume_ignored) == resume_values(quiet, task.resume_ignored)
    made_fused = {"config": m1_values(plain(fused))}
    assert m1_mismatch(made_fused, plain(fused)) == []
    assert m1_mismatch(made_fused, plain(quiet)) == []
    assert m1_mismatch(made_fused, plain(unfused)) == ["trainer.fused"]
    before_option = m1_values(plain(fused))
    del before_option["trainer"]["fused"]
    assert m1_mismatch({"config": before_option}, plain(unfused)) == []
    assert m1_mismatch({"config": before_option}, plain(fused)) == ["trainer.fused"]


def test_the_fused_kernel_changes_m2s_numbers() -> None:
    """Why the kernel is part of a run: the same M2 steps with the fused and the multi-tensor Adam
    kernels end in different weights (float32, on this CPU)."""
    ends = []
    for fused in (True, None):
        torch.manual_seed(0)
        m2 = build_m2(z1_ambient=4, z1_family="vmf", z2_dim=2, z2_family="gaussian", hidden_dims=[32], n_classes=3)
        opt = torch.optim.Adam(m2.parameters(), lr=3e-3, fused=fused)
        z1 = F.normalize(torch.randn(64, 4, generator=torch.Generator().manual_seed(1)), dim=-1)
        for step in range(20):
            torch.manual_seed(step)
            opt.zero_grad()
            (-m2.unlabelled_bound(z1).mean()).backward()
            opt.step()
        ends.append(torch.cat([p.detach().flatten() for p in m2.parameters()]))
    assert not torch.equal(ends[0], ends[1])
    assert math.isclose(ends[0].norm().item(), ends[1].norm().item(), rel_tol=1e-3)  # the same update to rounding
