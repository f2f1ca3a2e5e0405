"""Table 4's numbers pinned by behaviour (issue 32): what a VGAE run trains on and reports, recomputed
here from scratch with NumPy, SciPy and scikit-learn.

* The objective of the first step (metrics.csv, epoch 1) equals Kipf's loss computed by hand from the
  very sample the run drew: norm * mean over all N^2 pairs of the pos_weight-weighted cross-entropy
  against A_train + I, plus beta * KL / N (``kl_scale: nodes``) or beta * KL (``none``); the
  posterior's parameters equal a dense GCN on D^-1/2 (A_train + I) D^-1/2; the record reports the
  pos_weight and norm the objective used.
* The record's test AUC / AP equal scikit-learn's on the test edges against the test non-edges,
  scored by hand from checkpoint.pt on the training graph; the validation ones likewise; the two
  differ on this split (a test metric computed on the validation pairs cannot pass).
* The training adjacency and the reconstruction target hold no validation or test edge, the
  target's diagonal is 1, and Kipf's weights are those of the training graph.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from scipy.special import gammaln, ive
from sklearn.metrics import average_precision_score, roc_auc_score

from svae_bench.data.graph import link_data, split_edges, synthetic_graph
from svae_bench.data.planetoid import load_planetoid
from svae_bench.models.vgae import VGAE
from svae_bench.tasks.harness import run_one

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
#: the generated graph of the runs below (conf/dataset/synthetic_graph.yaml's other values)
GRAPH = {"n_nodes": 120, "n_features": 24, "n_edges": 400, "n_communities": 4, "p_within": 0.85}
RUN = [
    "dataset=synthetic_graph",
    *(f"dataset.{k}={v}" for k, v in GRAPH.items()),
    "model.hidden_dims=[16]",
    "latent_dim=4",
    "vgae.dtype=float64",
    "trainer.progress=false",
    "trainer.num_threads=1",
]


@pytest.fixture
def hydra_compose():
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="svae_bench.conf", version_base="1.3"):
        yield lambda *overrides: compose(config_name="config", overrides=list(overrides))
    GlobalHydra.instance().clear()


# --------------------------------------------------------------------------- independent references


def softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


class Reference:
    """The run's graph and split, and everything Kipf's code derives from them, as dense arrays."""

    def __init__(self, split_seed: int = 0, val: float = 0.05, test: float = 0.1):
        graph = synthetic_graph(**GRAPH, feature_density=0.1, seed=0)
        self.split = split_edges(graph.adjacency, split_seed, val, test)
        n = self.n = graph.n_nodes
        a = np.zeros((n, n))
        tr = self.split.train
        a[tr[:, 0], tr[:, 1]] = a[tr[:, 1], tr[:, 0]] = 1
        self.a_train = a
        self.target = a + np.eye(n)  # Kipf's adj_label = adj_train + I
        d = self.target.sum(1) ** -0.5
        self.a_hat = d[:, None] * self.target * d[None, :]
        self.x = graph.features.toarray().astype(np.float64)
        s = a.sum()  # Kipf: adj = adj_train (no diagonal)
        self.pos_weight = (n * n - s) / s
        self.norm = n * n / (2 * (n * n - s))

    def encoder(self, weights: dict) -> tuple[np.ndarray, np.ndarray]:
        """(A~ H W_loc, A~ H W_spread) of a one-hidden-layer GCN, H = relu(A~ X W0)."""
        w = {k: v.detach().double().numpy() for k, v in weights.items()}
        h = np.maximum(self.a_hat @ self.x @ w["hidden.0"], 0)
        return self.a_hat @ h @ w["w_loc"], self.a_hat @ h @ w["w_spread"]

    def recon(self, z: np.ndarray, scale: float, pos_weight: float, norm: float) -> float:
        logits = scale * z @ z.T
        t = self.target
        return float(norm * np.mean(pos_weight * t * softplus(-logits) + (1 - t) * softplus(logits)))


def kl_gaussian(mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """KL(N(mu, sigma^2) || N(0, I)) per node: Kipf's -0.5 sum(1 + 2 log sigma - mu^2 - sigma^2)."""
    return -0.5 * np.sum(1 + 2 * np.log(sigma) - mu**2 - sigma**2, axis=1)


def kl_vmf_uniform(kappa: np.ndarray, m: int) -> np.ndarray:
    """KL(vMF(mu, kappa) || uniform on S^(m-1)) = kappa A_m(kappa) + log C_m(kappa) + log |S^(m-1)|."""
    v = m / 2 - 1
    log_iv = np.log(ive(v, kappa)) + kappa
    a_m = ive(m / 2, kappa) / ive(v, kappa)
    log_c = v * np.log(kappa) - (m / 2) * np.log(2 * np.pi) - log_iv
    log_area = np.log(2) + (m / 2) * np.log(np.pi) - gammaln(m / 2)
    return kappa * a_m + log_c + log_area


def test_the_reference_kl_formulas_are_right() -> None:
    """The two formulas above against torch's own, on arbitrary values (so the check below is sound)."""
    from svae_bench.distributions import HypersphericalUniform, VonMisesFisher

    mu, sigma = np.array([[0.3, -1.2]]), np.array([[0.5, 2.0]])
    q = torch.distributions.Normal(torch.tensor(mu), torch.tensor(sigma))
    p = torch.distributions.Normal(torch.zeros(1, 2, dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64))
    assert kl_gaussian(mu, sigma) == pytest.approx(torch.distributions.kl_divergence(q, p).sum(1).numpy())
    kappa = np.array([0.7, 3.0, 40.0])
    loc = torch.nn.functional.normalize(torch.ones(3, 5, dtype=torch.float64), dim=-1)
    vmf = VonMisesFisher(loc, torch.tensor(kappa))
    ours = torch.distributions.kl_divergence(vmf, HypersphericalUniform(5, dtype=torch.float64)).numpy()
    assert kl_vmf_uniform(kappa, 5) == pytest.approx(ours, rel=1e-9)


@pytest.fixture
def drawn(monkeypatch):
    """Every posterior sample a run draws, with the distribution it came from, the model's weights
    and its decoder scale at that moment (the spy changes nothing)."""
    seen: list[dict] = []
    posterior = VGAE.posterior

    def spy(self, features, adjacency):
        q = posterior(self, features, adjacency)
        rsample = q.rsample

        def recorded(*args, **kwargs):
            z = rsample(*args, **kwargs)
            weights = {k: v.detach().clone() for k, v in self.state_dict().items()}
            seen.append(
                {"q": q, "z": z.detach().double().numpy(), "weights": weights, "scale": float(self.scale().detach())}
            )
            return z

        q.rsample = recorded
        return q

    monkeypatch.setattr(VGAE, "posterior", spy)
    return seen


def first_row(run_dir: Path) -> dict[str, float]:
    with (run_dir / "metrics.csv").open() as f:
        row = next(csv.DictReader(f))
    return {k: float(v) for k, v in row.items()}


def record(run_dir: Path) -> dict:
    return json.loads((run_dir / "result.json").read_text())


# --------------------------------------------------------------------------- the objective


@pytest.mark.parametrize(
    ("model", "kl_scale", "beta", "weights"),
    [
        ("nvgae", "nodes", 1.0, None),
        ("svgae", "nodes", 1.0, None),
        ("nvgae", "none", 0.5, None),
        ("svgae", "none", 2.0, None),
        ("nvgae", "nodes", 1.0, (2.5, 0.7)),  # numbers instead of Kipf's weights
    ],
)
def test_first_step_objective_equals_kipfs_loss_by_hand(
    hydra_compose, drawn, tmp_path: Path, model: str, kl_scale: str, beta: float, weights
) -> None:
    overrides = [f"model={model}", *RUN, "vgae.epochs=1", f"vgae.kl_scale={kl_scale}", f"beta={beta}"]
    if weights is not None:
        overrides += [f"vgae.pos_weight={weights[0]}", f"vgae.norm={weights[1]}"]
    rec = run_one(hydra_compose(*overrides), tmp_path)
    ref = Reference()
    pos_weight, norm = weights if weights is not None else (ref.pos_weight, ref.norm)
    first = drawn[0]  # the training step's sample (validation scores the posterior's location)
    loc, spread = ref.encoder(first["weights"])
    z, q = first["z"], first["q"]
    if model == "nvgae":
        mu, sigma = loc, np.exp(spread)
        assert np.allclose(q.base_dist.loc.detach().numpy(), mu, rtol=1e-10, atol=1e-12)
        assert np.allclose(q.base_dist.scale.detach().numpy(), sigma, rtol=1e-10, atol=1e-12)
        kl = kl_gaussian(mu, sigma)
        assert first["scale"] == 1.0
    else:
        direction = loc / np.linalg.norm(loc, axis=1, keepdims=True)
        kappa = softplus(spread[:, 0]) + 1.0  # model.concentration_offset
        assert np.allclose(q.loc.detach().numpy(), direction, rtol=1e-10, atol=1e-12)
        assert np.allclose(q.concentration.detach().numpy(), kappa, rtol=1e-10, atol=1e-12)
        assert np.allclose(np.linalg.norm(z, axis=1), 1.0)
        kl = kl_vmf_uniform(kappa, 5)
    recon = ref.recon(z, first["scale"], pos_weight, norm)
    divisor = ref.n if kl_scale == "nodes" else 1.0
    row = first_row(tmp_path)
    assert row["train_recon"] == pytest.approx(recon, rel=1e-9)
    assert row["train_kl"] == pytest.approx(kl.mean(), rel=1e-9)
    assert row["train_objective"] == pytest.approx(-(recon + beta * kl.mean() / divisor), rel=1e-9)
    # the record reports the weights the objective used
    assert rec["graph"]["pos_weight"] == pytest.approx(pos_weight, rel=1e-12)
    assert rec["graph"]["norm"] == pytest.approx(norm, rel=1e-12)
    assert rec["graph"]["n_train_edges"] == ref.split.train.shape[0] == int(ref.a_train.sum() / 2)


# --------------------------------------------------------------------------- the reported metrics


@pytest.mark.parametrize("model", ["nvgae", "svgae"])
def test_reported_auc_and_ap_are_sklearns_on_the_test_edges(hydra_compose, tmp_path: Path, model: str) -> None:
    rec = run_one(hydra_compose(f"model={model}", *RUN, "vgae.epochs=25"), tmp_path)
    ref = Reference()
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["model"]
    loc, _ = ref.encoder(state)
    if model == "svgae":
        loc = loc / np.linalg.norm(loc, axis=1, keepdims=True)
        scale = math.exp(float(state["decoder_scale"]))
    else:
        scale = 1.0

    def metrics(pos: np.ndarray, neg: np.ndarray) -> tuple[float, float]:
        pairs = np.concatenate([pos, neg])
        scores = 1 / (1 + np.exp(-scale * np.sum(loc[pairs[:, 0]] * loc[pairs[:, 1]], axis=1)))
        labels = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
        return roc_auc_score(labels, scores), average_precision_score(labels, scores)

    auc, ap = metrics(ref.split.test, ref.split.test_false)
    val_auc, val_ap = metrics(ref.split.val, ref.split.val_false)
    m = rec["metrics"]
    assert m["auc"] == pytest.approx(auc, abs=1e-9) and m["ap"] == pytest.approx(ap, abs=1e-9)
    assert m["val_auc"] == pytest.approx(val_auc, abs=1e-9) and m["val_ap"] == pytest.approx(val_ap, abs=1e-9)
    # on this split the test and validation numbers differ: a test metric from validation pairs shows
    assert abs(auc - val_auc) > 1e-3 and abs(ap - val_ap) > 1e-3
    assert 0.5 < auc < 1 and rec["best_epoch"] == 25


def test_every_seed_of_a_cell_is_scored_on_the_split_of_dataset_split_seed(hydra_compose) -> None:
    """The seed draws the weights; the edge split is dataset.split_seed's, the same for every seed."""
    from svae_bench.tasks.vgae import VgaeTask

    task = VgaeTask()
    for seed, split_seed in ((1, 0), (2, 0), (1, 3)):
        data = task.prepare(hydra_compose("model=nvgae", *RUN, f"seed={seed}", f"dataset.split_seed={split_seed}")).data
        split = Reference(split_seed=split_seed).split
        for name in ("val", "val_false", "test", "test_false"):
            assert np.array_equal(getattr(data, name).numpy(), getattr(split, name)), (seed, split_seed, name)
    assert not np.array_equal(Reference(split_seed=0).split.test, Reference(split_seed=3).split.test)


# --------------------------------------------------------------------------- what training sees


def _pairs_of(matrix: np.ndarray) -> set[tuple[int, int]]:
    return set(zip(*np.nonzero(matrix)))


def _check_training_graph(data, split, n: int) -> None:
    train = {(int(i), int(j)) for i, j in split.train} | {(int(j), int(i)) for i, j in split.train}
    held_out = {(int(i), int(j)) for p in (split.val, split.test) for i, j in p}
    held_out |= {(j, i) for i, j in held_out}
    diagonal = {(i, i) for i in range(n)}
    positives = {tuple(p) for p in data.positives.tolist()}
    assert len(positives) == data.positives.shape[0]  # distinct
    assert positives == train | diagonal  # Kipf's A_train + I, both directions
    assert not positives & held_out
    adjacency = data.adjacency.to_dense().double().numpy()
    assert _pairs_of(adjacency) == train | diagonal and not _pairs_of(adjacency) & held_out
    a = np.zeros((n, n))
    for i, j in train:
        a[i, j] = 1
    d = (a + np.eye(n)).sum(1) ** -0.5
    assert np.allclose(adjacency, d[:, None] * (a + np.eye(n)) * d[None, :], rtol=1e-6, atol=1e-7)
    s = a.sum()
    assert data.pos_weight == pytest.approx((n * n - s) / s, rel=1e-12)
    assert data.norm == pytest.approx(n * n / (2 * (n * n - s)), rel=1e-12)
    for name in ("val", "val_false", "test", "test_false"):
        assert np.array_equal(getattr(data, name).numpy(), getattr(split, name)), name


def test_training_adjacency_and_target_hold_no_held_out_edge_and_a_unit_diagonal() -> None:
    graph = synthetic_graph(**GRAPH, feature_density=0.1, seed=0)
    for seed in (0, 1):
        data = link_data(graph, seed, 0.05, 0.1, dtype=torch.float64)
        _check_training_graph(data, split_edges(graph.adjacency, seed, 0.05, 0.1), graph.n_nodes)
    featureless = link_data(graph, 0, 0.05, 0.1, use_features=False)
    assert torch.equal(featureless.features.to_dense(), torch.eye(graph.n_nodes))


@pytest.mark.skipif(not (SHARED / "planetoid" / "ind.cora.x").is_file(), reason="../shared/data not present")
def test_cora_training_graph_holds_no_held_out_edge() -> None:
    graph = load_planetoid("cora", str(SHARED))
    data = link_data(graph, 0, 0.05, 0.1)
    split = split_edges(graph.adjacency, 0, 0.05, 0.1)
    assert (split.val.shape[0], split.test.shape[0], split.train.shape[0]) == (263, 527, 4488)
    positives = sp.coo_matrix(
        (np.ones(data.positives.shape[0]), data.positives.numpy().T), shape=(graph.n_nodes, graph.n_nodes)
    ).tocsr()
    assert (positives.diagonal() == 1).all() and positives.nnz == 2 * 4488 + graph.n_nodes
    for held in (split.val, split.test):
        assert positives[held[:, 0], held[:, 1]].sum() == 0 and positives[held[:, 1], held[:, 0]].sum() == 0
    adjacency = data.adjacency.coalesce().indices().numpy()
    keys = set((adjacency[0] * graph.n_nodes + adjacency[1]).tolist())
    assert keys == set((data.positives[:, 0] * graph.n_nodes + data.positives[:, 1]).tolist())
