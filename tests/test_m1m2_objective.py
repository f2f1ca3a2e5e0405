"""The M1+M2 training objective: its terms carry the documented weights, and only joint training
moves M1."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from svae_bench.models.m2 import build_m2
from svae_bench.models.vae import build_model
from svae_bench.tasks.m1m2_objective import M1M2, M2Objective, active_coordinates


def _model(joint: bool) -> M1M2:
    torch.manual_seed(0)
    m1 = build_model(latent="vmf", hidden_dims=[16], latent_dim=3, observed_dim=12, likelihood="bernoulli")
    m2 = build_m2(z1_ambient=4, z1_family="vmf", z2_dim=2, z2_family="gaussian", hidden_dims=[8], n_classes=3)
    return M1M2(m1, m2, joint=joint)


def _objective(alpha: float = 0.1) -> M2Objective:
    """z1 = M1's location (not the task's default sample), so that the codes are deterministic."""
    gen = torch.Generator().manual_seed(1)
    return M2Objective(
        labelled_x=torch.bernoulli(torch.full((6, 12), 0.5), generator=gen),
        labelled_y=torch.tensor([0, 1, 2, 0, 1, 2]),
        n_train=60,
        val_y=torch.zeros(5, dtype=torch.int64),
        alpha=alpha,
        z1="mean",
    )


@pytest.mark.parametrize("joint", [False, True])
def test_only_joint_training_sends_gradient_into_m1(joint: bool) -> None:
    model = _model(joint)
    batch = torch.bernoulli(torch.full((10, 12), 0.5), generator=torch.Generator().manual_seed(2))
    objective, _ = _objective().train_terms(model, batch, epoch=1)
    objective.backward()
    m1_grads = [p.grad for p in model.m1.parameters()]
    if joint:
        assert all(g is not None for g in m1_grads) and sum(g.abs().sum() for g in m1_grads) > 0
    else:
        assert all(g is None for g in m1_grads)
    assert all(p.grad is not None for p in model.m2.parameters())


def test_the_objective_weights_its_terms_as_documented() -> None:
    """(N_u/N) mean U + (N_l/N) mean L + alpha mean log q (Kingma et al.'s alpha; + M1's ELBO when joint)."""
    model = _model(joint=False)
    batch = torch.bernoulli(torch.full((10, 12), 0.5), generator=torch.Generator().manual_seed(2))
    terms = {}
    for alpha in (0.0, 0.5):
        torch.manual_seed(3)  # the same z2 draws for both
        terms[alpha] = _objective(alpha).train_terms(model, batch, epoch=1)
    (obj0, (u, lab, log_q)), (obj5, _) = terms[0.0], terms[0.5]
    torch.testing.assert_close(obj0, 54 / 60 * u + 6 / 60 * lab)
    torch.testing.assert_close(obj5 - obj0, 0.5 * log_q)
    expected_log_q = F.log_softmax(model.m2.classify(model.codes(_objective().labelled_x, False)), -1)
    torch.testing.assert_close(log_q, expected_log_q[torch.arange(6), _objective().labelled_y].mean())


def test_kl_warm_up_schedule_and_the_family_defaults():
    """M2's KL weight rises as epoch / warmup_epochs to 1 (1 throughout without warm-up); S+S takes
    the budget's M1 warm-up, the Gaussian-z2 families none."""
    from hydra import compose, initialize_config_module

    empty = torch.zeros(0)
    schedule = M2Objective(labelled_x=empty, labelled_y=empty, n_train=1, val_y=empty, warmup_epochs=4)
    assert [schedule.kl_weight(e) for e in (1, 2, 4, 5)] == [0.25, 0.5, 1.0, 1.0]
    none = M2Objective(labelled_x=empty, labelled_y=empty, n_train=1, val_y=empty)
    assert none.kl_weight(1) == 1.0
    with initialize_config_module(config_module="svae_bench.conf", version_base="1.3"):
        for family, expected in (("S+S", 4), ("S+N", 0), ("N+N", 0)):
            cfg = compose(config_name="config", overrides=["experiment=table3", "budget=laptop", f"family={family}"])
            assert cfg.semisup.warmup_epochs == expected, family


def test_every_family_samples_z1_and_n_plus_n_prunes() -> None:
    """Every family draws z1 from q(z1 | x), as Kingma et al.'s code does (with the posterior location
    M2's bound grows without limit at z1 = 50: N+N fell to 10%, S+S and S+N lost accuracy while it
    rose); N+N also drops switched-off coordinates, the spherical M1s keep every coordinate."""
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="svae_bench.conf", version_base="1.3"):
        for family, z1, prune in (("N+N", "sample", 0.1), ("S+S", "sample", 0.0), ("S+N", "sample", 0.0)):
            cfg = compose(config_name="config", overrides=["experiment=table3", "budget=laptop", f"family={family}"])
            assert (cfg.semisup.z1, cfg.semisup.prune_below) == (z1, prune), family


@pytest.mark.parametrize("z1", ["mean", "sample"])
def test_validation_reads_z1_as_training_does(z1: str) -> None:
    """The validation bound is the mean unlabelled bound on the codes training uses: M1's posterior
    location, or (``z1="sample"``) one seeded draw of q(z1 | x) per image."""
    model = _model(joint=True)
    x = torch.bernoulli(torch.full((7, 12), 0.5), generator=torch.Generator().manual_seed(5))
    objective = M2Objective(
        labelled_x=x[:3], labelled_y=torch.tensor([0, 1, 2]), n_train=10, val_y=torch.zeros(7, dtype=torch.int64), z1=z1
    )
    _, values = objective.validate(model, x, seed=11)
    with torch.no_grad():
        torch.manual_seed(11)
        expected = model.m2.unlabelled_bound(model.codes(x, z1 == "sample")).double().mean().item()
        torch.manual_seed(11)
        at_mean = model.m2.unlabelled_bound(model.codes(x, False)).double().mean().item()
    assert values["val_bound"] == pytest.approx(expected, rel=1e-6)
    assert (values["val_bound"] == pytest.approx(at_mean, rel=1e-6)) == (z1 == "mean")


@pytest.mark.parametrize("z2_family", ["gaussian", "vmf"])
def test_m1m2_trains_and_validates_in_float64_through_the_loop(z2_family: str) -> None:
    """The same code in float64: joint M1+M2 through the training loop keeps every parameter, term
    and validation value in float64 (nothing in the objective or its validation fixes float32)."""
    from svae_bench.data import DataBundle, Split
    from svae_bench.training import TrainSettings, train

    torch.manual_seed(0)
    m1 = build_model(latent="vmf", hidden_dims=[16], latent_dim=3, observed_dim=12, likelihood="bernoulli")
    m2 = build_m2(z1_ambient=4, z1_family="vmf", z2_dim=2, z2_family=z2_family, hidden_dims=[8], n_classes=3)
    model = M1M2(m1, m2, joint=True).double()
    gen = torch.Generator().manual_seed(4)

    def split(n: int) -> Split:
        return Split(torch.bernoulli(torch.full((n, 12), 0.5, dtype=torch.float64), generator=gen), torch.arange(n) % 3)

    data = DataBundle("bits", split(60), split(20), split(20), "bernoulli")
    objective = M2Objective(
        labelled_x=data.train.x[:6], labelled_y=data.train.y[:6], n_train=66, val_y=data.val.y, warmup_epochs=2
    )
    terms, _ = objective.train_terms(model, data.train.x[6:16], epoch=1)
    assert terms.dtype == torch.float64
    settings = TrainSettings(lr=1e-3, batch_size=10, max_epochs=2, patience=10, progress=False)
    result = train(model, data, objective, settings, seed=0)
    assert all(p.dtype == torch.float64 for p in model.parameters())
    assert len(result.history) == 2 and all(math.isfinite(r["val_bound"]) for r in result.history)
    assert model.predict(data.test.x).dtype == torch.int64


def test_pruning_keeps_the_coordinates_whose_location_varies_and_m2_sees_only_those() -> None:
    """Kingma et al.'s pruning: a coordinate whose posterior location hardly varies over the images
    (a switched-off dimension) is dropped; M2's codes are the kept coordinates of M1's, in order,
    for the location and for samples alike."""
    torch.manual_seed(0)
    m1 = build_model(latent="gaussian", hidden_dims=[16], latent_dim=4, observed_dim=12, likelihood="bernoulli")
    with torch.no_grad():  # coordinates 1 and 3 switched off: their location is a constant
        m1.head.linear.weight[[1, 3]] = 0.0
        m1.head.linear.bias[[1, 3]] = 0.25
    x = torch.bernoulli(torch.full((50, 12), 0.5), generator=torch.Generator().manual_seed(6))
    keep = active_coordinates(m1, x, 0.01)
    assert keep.tolist() == [0, 2] and keep.dtype == torch.int64
    m2 = build_m2(z1_ambient=2, z1_family="gaussian", z2_dim=2, z2_family="gaussian", hidden_dims=[8], n_classes=3)
    model = M1M2(m1, m2, joint=True, keep=keep)
    torch.testing.assert_close(model.codes(x, False), m1.code(x)[:, [0, 2]])
    torch.manual_seed(7)
    sampled = model.codes(x, True)
    torch.manual_seed(7)
    torch.testing.assert_close(sampled, m1.head.posterior(m1.encoder(x)).rsample()[:, [0, 2]])
    assert "keep" in model.state_dict()  # a checkpoint carries the choice, so a resumed run keeps it
