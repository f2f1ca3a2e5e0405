"""M2 (Kingma et al. 2014) over M1 codes: the bounds are what their formulas say."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from svae_bench.errors import ConfigError
from svae_bench.models.m2 import build_m2


def _codes(family: str, b: int, n1: int, gen: torch.Generator, dtype=torch.float64) -> torch.Tensor:
    z1 = torch.randn(b, n1, generator=gen, dtype=dtype)
    return F.normalize(z1, dim=-1) if family == "vmf" else z1


FAMILIES = [("gaussian", "gaussian"), ("vmf", "vmf"), ("vmf", "gaussian"), ("gaussian", "vmf")]


@pytest.mark.parametrize(("z1_family", "z2_family"), FAMILIES)
def test_unlabelled_bound_is_the_q_weighted_sum_of_labelled_bounds_plus_entropy(z1_family, z2_family):
    torch.manual_seed(0)
    n1 = 6 if z1_family == "vmf" else 5
    model = build_m2(z1_ambient=n1, z1_family=z1_family, z2_dim=3, z2_family=z2_family, hidden_dims=[16]).double()
    z1 = _codes(z1_family, 7, n1, torch.Generator().manual_seed(1))
    u = model.unlabelled_bound(z1, sample=False)
    q = F.softmax(model.classify(z1), dim=-1)
    explicit = torch.zeros(7, dtype=torch.float64)
    for y in range(10):
        onehot = F.one_hot(torch.full((7,), y), 10).double()
        explicit += q[:, y] * model.labelled_bound(z1, onehot, sample=False)
    explicit -= (q * q.log()).sum(-1)
    assert u.shape == (7,)
    torch.testing.assert_close(u, explicit, rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize(("z1_family", "z2_family"), FAMILIES)
def test_labelled_bound_terms(z1_family, z2_family):
    """L = log p(z1 | y, z2 = loc) + log(1/10) - KL, recomputed from the pieces."""
    torch.manual_seed(0)
    n1 = 4
    model = build_m2(z1_ambient=n1, z1_family=z1_family, z2_dim=2, z2_family=z2_family, hidden_dims=[8, 8]).double()
    z1 = _codes(z1_family, 5, n1, torch.Generator().manual_seed(2))
    y = F.one_hot(torch.arange(5) % 10, 10).double()
    q = model.q_z2(z1, y)
    z2 = model.z2_head.code(q)
    expected = model.p_z1(y, z2).log_prob(z1) - math.log(10) - model.z2_head.kl(q)
    torch.testing.assert_close(model.labelled_bound(z1, y, sample=False), expected)
    # a KL warm-up weight scales the KL term only, in L and (through it) in U
    for w in (0.0, 0.25):
        torch.testing.assert_close(
            model.labelled_bound(z1, y, sample=False, kl_weight=w), expected + (1 - w) * model.z2_head.kl(q)
        )
    u_w, u_1 = model.unlabelled_bound(z1, sample=False, kl_weight=0.5), model.unlabelled_bound(z1, sample=False)
    assert (u_w > u_1).all()  # the KL is positive, so a lighter KL weight raises the bound
    sampled = model.labelled_bound(z1, y)  # one reparameterised sample: finite, differentiable
    sampled.sum().backward()
    assert torch.isfinite(sampled).all()
    assert all(p.grad is not None for p in model.z2_head.parameters())


def test_sampled_unlabelled_bound_is_finite_and_trains_the_classifier():
    torch.manual_seed(0)
    model = build_m2(z1_ambient=4, z1_family="vmf", z2_dim=3, z2_family="gaussian", hidden_dims=[8])
    z1 = F.normalize(torch.randn(32, 4), dim=-1)
    u = model.unlabelled_bound(z1)
    assert u.shape == (32,) and torch.isfinite(u).all() and u.dtype == torch.float32
    u.mean().backward()
    assert model.classifier[-1].weight.grad.abs().sum() > 0  # the label weights reach the classifier


def test_bad_values_are_config_errors():
    with pytest.raises(ConfigError, match="z2 family 'beta' is unknown; allowed: gaussian, vmf"):
        build_m2(z1_ambient=4, z1_family="vmf", z2_dim=3, z2_family="beta", hidden_dims=[8])
    with pytest.raises(ConfigError, match="hidden_dims"):
        build_m2(z1_ambient=4, z1_family="vmf", z2_dim=3, z2_family="vmf", hidden_dims=[])


# --------------------------------------------------------------------------- the labelled subset


def test_labelled_subset_has_exactly_10_per_class_and_depends_on_the_seed_only():
    from svae_bench.data.labels import labelled_subset

    labels = torch.randint(0, 10, (5000,), generator=torch.Generator().manual_seed(0))
    idx = labelled_subset(labels, 100, seed=3)
    assert idx.shape == (100,) and idx.unique().numel() == 100
    assert torch.bincount(labels[idx], minlength=10).tolist() == [10] * 10
    assert torch.equal(idx, labelled_subset(labels, 100, seed=3))  # the same seed: the same points
    torch.manual_seed(123)  # the global generator plays no part
    assert torch.equal(idx, labelled_subset(labels, 100, seed=3))
    assert not torch.equal(idx, labelled_subset(labels, 100, seed=4))
    with pytest.raises(ConfigError, match="labels=105 must be a positive multiple of the 10 classes"):
        labelled_subset(labels, 105, seed=0)
    with pytest.raises(ConfigError, match="labels=0 must be"):
        labelled_subset(labels, 0, seed=0)
    with pytest.raises(ConfigError, match="semisup.labels=10000 needs 1000 training points of each of the 10 classes"):
        labelled_subset(labels, 10000, seed=0)


def test_labelled_and_unlabelled_images_partition_the_training_split_apart_from_validation_and_test():
    """What an M1+M2 run trains on: the labelled subset and the unlabelled stream (the training split
    without it) together are the training split, share no image, and no image of either is in
    validation or test. Every image carries its own id in x[:, 0], so membership is exact."""
    from svae_bench.data import DataBundle, Split
    from svae_bench.data.labels import labelled_subset
    from svae_bench.tasks.m1m2 import unlabelled_only

    gen = torch.Generator().manual_seed(0)

    def split(ids: range) -> Split:
        x = torch.rand(len(ids), 5, generator=gen)
        x[:, 0] = torch.tensor(list(ids), dtype=torch.float32)
        return Split(x, torch.randint(0, 10, (len(ids),), generator=gen))

    data = DataBundle("ids", split(range(0, 3000)), split(range(3000, 3500)), split(range(3500, 4000)), "gaussian")
    labelled = labelled_subset(data.train.y, 100, seed=1)
    unlabelled = unlabelled_only(data, labelled)
    ids = {name: set(s.x[:, 0].long().tolist()) for name, s in (("val", data.val), ("test", data.test))}
    ids["labelled"] = set(data.train.x[labelled, 0].long().tolist())
    ids["unlabelled"] = set(unlabelled.train.x[:, 0].long().tolist())
    assert len(ids["labelled"]) == 100 and len(unlabelled.train) == len(ids["unlabelled"]) == 2900
    assert ids["labelled"] | ids["unlabelled"] == set(range(3000))
    for a, b in [("labelled", "unlabelled"), ("labelled", "val"), ("labelled", "test"), ("unlabelled", "val")]:
        assert not ids[a] & ids[b], (a, b)
    assert torch.equal(unlabelled.train.y, data.train.y[[i for i in range(3000) if i not in ids["labelled"]]])
    assert unlabelled.val is data.val and unlabelled.test is data.test
