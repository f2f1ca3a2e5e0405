"""Graph data for link prediction: the edge split, the normalised adjacency, a generated graph.

:func:`split_edges` is Kipf & Welling's ``mask_test_edges`` (VGAE, 2016), vectorised and seeded:
of the undirected edges (self-loops removed), ``floor(E * test_fraction)`` are test edges and
``floor(E * val_fraction)`` validation edges, drawn by a permutation from ``split_seed``; the
training graph is the rest. As many non-edges as edges are drawn for each of the two sets,
uniformly among unordered node pairs that are not edges of the *full* graph, without repeats,
test and validation non-edges disjoint. (Kipf's loop draws validation non-edges that only avoid
training and validation edges, so a test edge can be a validation "non-edge"; here they are
true non-edges.) Everything is a function of the graph and ``split_seed``.

:func:`normalised_adjacency` is D^-1/2 (A + I) D^-1/2 of the training graph, the GCN's
propagation matrix. :class:`LinkData` holds what a run needs as torch tensors (sparse features and
adjacency), built once in the run's dtype and device: no SciPy and no host round trip in training.

:func:`synthetic_graph` generates a graph with community structure and features correlated with
the communities (a planted-partition model), for tests and for exercising Pubmed's size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from ..errors import ConfigError
from .bundle import DataBundle, Split
from .planetoid import Graph, symmetric_adjacency


@dataclass(frozen=True)
class EdgeSplit:
    """Edges as (k, 2) int64 arrays of node pairs (i < j): one direction per undirected edge."""

    train: np.ndarray
    val: np.ndarray
    val_false: np.ndarray
    test: np.ndarray
    test_false: np.ndarray
    n_nodes: int

    def train_adjacency(self) -> sp.csr_matrix:
        """The symmetric 0/1 adjacency of the training edges."""
        return symmetric_adjacency(self.train[:, 0], self.train[:, 1], self.n_nodes)


def upper_edges(adjacency: sp.spmatrix) -> np.ndarray:
    """(E, 2) int64 node pairs (i < j) of a symmetric adjacency, in row-major order."""
    upper = sp.triu(adjacency, k=1).tocoo()
    pairs = np.stack([upper.row, upper.col], axis=1).astype(np.int64)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def _pair_keys(pairs: np.ndarray, n: int) -> np.ndarray:
    """One int64 per unordered pair: min * n + max."""
    lo, hi = np.minimum(pairs[:, 0], pairs[:, 1]), np.maximum(pairs[:, 0], pairs[:, 1])
    return lo * np.int64(n) + hi


def sample_non_edges(
    rng: np.random.Generator, n: int, count: int, forbidden: np.ndarray, max_rounds: int = 100
) -> np.ndarray:
    """``count`` distinct unordered pairs (i < j) drawn uniformly among pairs whose key
    (:func:`_pair_keys`) is not in ``forbidden`` (sorted int64 keys). Vectorised: candidates are drawn
    in batches, in the generator's order, until enough are found."""
    total_pairs = n * (n - 1) // 2
    if count > total_pairs - forbidden.size:
        raise ConfigError(f"the graph has fewer than {count} non-edges to sample")
    found = np.empty(0, dtype=np.int64)
    for _ in range(max_rounds):
        need = count - found.size
        if need <= 0:
            break
        draw = rng.integers(0, n, size=(2 * need + 64, 2), dtype=np.int64)
        draw = draw[draw[:, 0] != draw[:, 1]]
        keys = _pair_keys(draw, n)
        keys = keys[~np.isin(keys, forbidden, assume_unique=False)]
        keys = keys[~np.isin(keys, found)]
        _, first = np.unique(keys, return_index=True)
        found = np.concatenate([found, keys[np.sort(first)][:need]])
    if found.size < count:
        raise ConfigError(f"could not sample {count} non-edges in {max_rounds} rounds (the graph is too dense)")
    return np.stack([found // n, found % n], axis=1)


def split_sizes(n_edges: int, val_fraction: float, test_fraction: float, subject: str = "") -> tuple[int, int]:
    """(validation, test) edge counts of :func:`split_edges` for a graph of ``n_edges`` edges:
    floor(E * fraction) each; ConfigError unless both are at least one and training edges remain
    (the message starts with ``subject``, default "the graph's E edges are"). A function of the three
    numbers, so a config check knows it before the graph is built."""
    n_test = int(np.floor(n_edges * test_fraction))
    n_val = int(np.floor(n_edges * val_fraction))
    if n_test < 1 or n_val < 1 or n_test + n_val >= n_edges:
        subject = subject or f"the graph's {n_edges} edges are"
        raise ConfigError(
            f"{subject} too few for dataset.test_fraction={test_fraction:g} and "
            f"dataset.val_fraction={val_fraction:g}: floor(E x fraction) gives {n_test} test and {n_val} "
            "validation edges (each needs at least one, and training edges must remain)"
        )
    return n_val, n_test


def split_edges(adjacency: sp.spmatrix, split_seed: int, val_fraction: float = 0.05, test_fraction: float = 0.1):
    """Kipf's edge split of a symmetric adjacency (see the module docstring) -> :class:`EdgeSplit`."""
    n = adjacency.shape[0]
    edges = upper_edges(adjacency)
    n_val, n_test = split_sizes(edges.shape[0], val_fraction, test_fraction)
    rng = np.random.default_rng(split_seed)
    perm = rng.permutation(edges.shape[0])
    val, test, train = perm[:n_val], perm[n_val : n_val + n_test], perm[n_val + n_test :]
    forbidden = np.sort(_pair_keys(edges, n))
    test_false = sample_non_edges(rng, n, n_test, forbidden)
    forbidden = np.sort(np.concatenate([forbidden, _pair_keys(test_false, n)]))
    val_false = sample_non_edges(rng, n, n_val, forbidden)
    return EdgeSplit(
        train=edges[np.sort(train)],
        val=edges[np.sort(val)],
        val_false=val_false,
        test=edges[np.sort(test)],
        test_false=test_false,
        n_nodes=n,
    )


def normalised_adjacency(adjacency: sp.spmatrix) -> sp.csr_matrix:
    """D^-1/2 (A + I) D^-1/2 (float64 CSR), D the degrees of A + I."""
    a = sp.csr_matrix(adjacency, dtype=np.float64) + sp.identity(adjacency.shape[0], dtype=np.float64, format="csr")
    d = np.asarray(a.sum(axis=1)).ravel() ** -0.5
    out = sp.diags(d) @ a @ sp.diags(d)
    out = sp.csr_matrix(out)
    out.sort_indices()
    return out


def to_torch_sparse(matrix: sp.spmatrix, dtype: torch.dtype, device: torch.device | str) -> Tensor:
    """A SciPy sparse matrix as a coalesced torch sparse COO tensor."""
    coo = sp.coo_matrix(matrix)
    index = torch.from_numpy(np.stack([coo.row, coo.col]).astype(np.int64))
    values = torch.from_numpy(coo.data.astype(np.float64))
    out = torch.sparse_coo_tensor(index, values, coo.shape, dtype=dtype, check_invariants=True).coalesce()
    return out.to(device)


@dataclass
class LinkData:
    """One graph prepared for link prediction, as tensors in one dtype on one device.

    features (N, F) and adjacency (N, N, the normalised training adjacency with self-loops): sparse.
    positives (P, 2): the entries labelled 1 in the reconstruction target, Kipf's ``adj_train + I``
    (both directions of every training edge and the diagonal). val/val_false/test/test_false (k, 2):
    the evaluation pairs. pos_weight, norm: Kipf's weights, from the training graph (see
    :func:`kipf_weights`). info: plain numbers for the record.
    """

    name: str
    features: Tensor
    adjacency: Tensor
    positives: Tensor
    val: Tensor
    val_false: Tensor
    test: Tensor
    test_false: Tensor
    pos_weight: float
    norm: float
    info: dict

    @property
    def n_nodes(self) -> int:
        return int(self.adjacency.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.features.shape[1])

    def loop_bundle(self) -> DataBundle:
        """What the training loop iterates over: the whole graph is one data point, so every epoch is
        one full-batch step (batch size 1); the objective holds the graph itself."""
        one = Split(torch.zeros(1, 1), torch.zeros(1, dtype=torch.int64))
        return DataBundle(self.name, train=one, val=one, test=one, likelihood="bernoulli")


def kipf_weights(n_nodes: int, n_train_edges: int) -> tuple[float, float]:
    """Kipf's (pos_weight, norm) for a training graph with ``n_train_edges`` undirected edges:
    with S = 2 E (the 1-entries of the symmetric adjacency), pos_weight = (N^2 - S) / S and
    norm = N^2 / (2 (N^2 - S))."""
    n2, s = float(n_nodes) ** 2, 2.0 * n_train_edges
    return (n2 - s) / s, n2 / (2.0 * (n2 - s))


def link_data(
    graph: Graph,
    split_seed: int,
    val_fraction: float,
    test_fraction: float,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    use_features: bool = True,
) -> LinkData:
    """Split ``graph``'s edges and build its tensors (SciPy here, torch from then on)."""
    split = split_edges(graph.adjacency, split_seed, val_fraction, test_fraction)
    train_adj = split.train_adjacency()
    n = graph.n_nodes
    pos_weight, norm = kipf_weights(n, split.train.shape[0])
    label = (train_adj + sp.identity(n, format="csr")).tocoo()
    positives = torch.from_numpy(np.stack([label.row, label.col], axis=1).astype(np.int64))
    features = graph.features if use_features else sp.identity(n, dtype=np.float32, format="csr")

    def pairs(a: np.ndarray) -> Tensor:
        return torch.from_numpy(a).to(device)

    return LinkData(
        name=graph.name,
        features=to_torch_sparse(features, dtype, device),
        adjacency=to_torch_sparse(normalised_adjacency(train_adj), dtype, device),
        positives=positives.to(device),
        val=pairs(split.val),
        val_false=pairs(split.val_false),
        test=pairs(split.test),
        test_false=pairs(split.test_false),
        pos_weight=pos_weight,
        norm=norm,
        info={
            "n_nodes": n,
            "n_features": int(features.shape[1]),
            "n_edges": graph.n_edges,
            "n_train_edges": int(split.train.shape[0]),
            "n_val_edges": int(split.val.shape[0]),
            "n_test_edges": int(split.test.shape[0]),
            "split_seed": int(split_seed),
            "pos_weight": pos_weight,
            "norm": norm,
        },
    )


#: bounds of :func:`synthetic_graph`'s edge draws: rounds of candidates, and candidate pairs drawn per
#: edge (a feasible configuration needs a few rounds and about 2 candidates per edge, a dense one a
#: hundred or so rounds; the bounds turn a near-impossible one into an error, not a loop without end)
MAX_EDGE_ROUNDS = 1000
MAX_DRAWS_PER_EDGE = 256


def _draw_budget(n_edges: int) -> int:
    return MAX_DRAWS_PER_EDGE * n_edges + 64 * MAX_EDGE_ROUNDS


def _communities(n_nodes: int, n_communities: int, rng: np.random.Generator) -> np.ndarray:
    """Each node's community: :func:`synthetic_graph`'s first draw from its generator."""
    return rng.integers(0, n_communities, size=n_nodes)


def synthetic_graph_problem(n_nodes: int, n_edges: int, n_communities: int, p_within: float, seed: int) -> str | None:
    """Why :func:`synthetic_graph` cannot draw this graph (one line naming the dataset.* keys), or None.

    Exact where the answer does not depend on chance: n_nodes >= 2 n_communities, 1 <= n_edges <=
    n_nodes (n_nodes - 1) / 4 and, with ``p_within`` = 1 (every edge inside a community), n_edges at
    most the node pairs inside the communities that ``seed`` draws (a function of the seed: the
    generator's first draw, O(n_nodes)). With ``p_within`` < 1, the edges beyond those pairs come
    from the draws between communities only: refused when even their expected number exceeds the
    draw bound. A configuration that passes may still exhaust the bound by chance (the sampler then
    raises; a sweep's preflight draws the graph once to know it first)."""
    if n_nodes < 2 * n_communities:
        return (
            f"dataset.n_nodes={n_nodes} is too few for dataset.n_communities={n_communities} "
            "(a synthetic graph needs n_nodes >= 2 n_communities)"
        )
    most = n_nodes * (n_nodes - 1) // 4
    if not 1 <= n_edges <= most:
        return (
            f"dataset.n_edges={n_edges} is not possible with dataset.n_nodes={n_nodes}: a synthetic graph has "
            f"1 to n_nodes (n_nodes - 1) / 4 = {most} edges"
        )
    if p_within <= 0:
        return None
    sizes = np.bincount(_communities(n_nodes, n_communities, np.random.default_rng(seed)), minlength=n_communities)
    inside = int((sizes * (sizes - 1) // 2).sum())
    if n_edges <= inside:
        return None
    where = (
        f"the {n_communities} communities of the {n_nodes} nodes (dataset.data_seed={seed}) hold only {inside} "
        "node pairs"
    )
    if p_within >= 1:
        return (
            f"dataset.n_edges={n_edges} is not possible with dataset.p_within={p_within:g}: {where}; "
            "lower n_edges or p_within, or use fewer communities"
        )
    # the n_edges - inside edges between communities come only from the 1 - p_within of the draws
    # that pair two uniform nodes: at least this many candidates are needed on average
    draws = (n_edges - inside) / (1.0 - p_within)
    if draws > _draw_budget(n_edges):
        return (
            f"dataset.n_edges={n_edges} cannot be drawn with dataset.p_within={p_within:g}: {where}, so "
            f"{n_edges - inside} edges must come from the {1 - p_within:.3g} of the draws between communities "
            f"(about {draws:.3g} candidates, more than the {_draw_budget(n_edges)} allowed); lower n_edges or "
            "p_within, or use fewer communities"
        )
    return None


def synthetic_graph(
    n_nodes: int, n_features: int, n_edges: int, n_communities: int, p_within: float, feature_density: float, seed: int
) -> Graph:
    """A planted-partition graph: nodes in ``n_communities`` communities (each node's drawn uniformly),
    ``n_edges`` distinct undirected edges, each candidate drawn inside a community with probability
    ``p_within`` (else between two uniform nodes); binary features, each community with its own
    preferred block of features (``feature_density`` of a row is set, three quarters of it in the
    block). A function of the arguments only; no Python loop over nodes or edges. ConfigError when
    the graph cannot be drawn (:func:`synthetic_graph_problem`) or its edges are not found within
    :data:`MAX_EDGE_ROUNDS` rounds and :data:`MAX_DRAWS_PER_EDGE` candidates per edge."""
    problem = synthetic_graph_problem(n_nodes, n_edges, n_communities, p_within, seed)
    if problem is not None:
        raise ConfigError(problem)
    rng = np.random.default_rng(seed)
    community = _communities(n_nodes, n_communities, rng)
    order = np.argsort(community, kind="stable")
    members = np.split(order, np.cumsum(np.bincount(community, minlength=n_communities))[:-1])
    sizes = np.array([m.size for m in members])
    found = np.empty(0, dtype=np.int64)  # pair keys, in the order drawn
    drawn, rounds, budget = 0, 0, _draw_budget(n_edges)
    while found.size < n_edges and rounds < MAX_EDGE_ROUNDS:
        need = n_edges - found.size
        k = 2 * need + 64
        if drawn + k > budget:
            break
        drawn, rounds = drawn + k, rounds + 1
        a = rng.integers(0, n_nodes, size=k)
        within = rng.random(k) < p_within
        c = community[a]
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        partner_within = order[offsets[c] + (rng.random(k) * np.maximum(sizes[c], 1)).astype(np.int64)]
        b = np.where(within, partner_within, rng.integers(0, n_nodes, size=k))
        pairs = np.stack([a, b], axis=1)[a != b]
        keys = _pair_keys(pairs, n_nodes)
        keys = keys[~np.isin(keys, found)]
        _, first = np.unique(keys, return_index=True)
        found = np.concatenate([found, keys[np.sort(first)][:need]])
    if found.size < n_edges:
        raise ConfigError(
            f"dataset.n_edges={n_edges} distinct edges were not found in {rounds} rounds ({drawn} candidate pairs "
            f"drawn, {found.size} edges found) with dataset.p_within={p_within:g} and "
            f"dataset.n_communities={n_communities}: the communities hold too few node pairs; lower n_edges or "
            "p_within, or use fewer communities"
        )
    adjacency = symmetric_adjacency(found // n_nodes, found % n_nodes, n_nodes)
    per_row = max(1, int(round(feature_density * n_features)))
    block = max(1, n_features // n_communities)
    in_block = max(1, (3 * per_row) // 4)
    rows = np.repeat(np.arange(n_nodes), per_row)
    cols = np.empty((n_nodes, per_row), dtype=np.int64)
    cols[:, :in_block] = (community[:, None] * block + rng.integers(0, block, size=(n_nodes, in_block))) % n_features
    cols[:, in_block:] = rng.integers(0, n_features, size=(n_nodes, per_row - in_block))
    features = sp.csr_matrix(
        (np.ones(rows.size, dtype=np.float32), (rows, cols.ravel())), shape=(n_nodes, n_features), dtype=np.float32
    )
    features.data[:] = 1.0  # repeated (row, col) draws sum up: keep the features binary
    features.sort_indices()
    return Graph("synthetic_graph", features, adjacency)


#: dataset.name values that are graphs: the Planetoid sets and the generated one
GRAPH_DATASETS = ("cora", "citeseer", "pubmed", "synthetic_graph")


def load_graph(values: dict) -> Graph:
    """The graph a dataset config group's values name (conf/dataset/{cora,citeseer,pubmed,synthetic_graph}.yaml)."""
    from .planetoid import NAMES, load_planetoid

    name = values.get("name")
    if name in NAMES:
        return load_planetoid(name, values.get("data_root"))
    if name == "synthetic_graph":
        return synthetic_graph(
            n_nodes=int(values["n_nodes"]),
            n_features=int(values["n_features"]),
            n_edges=int(values["n_edges"]),
            n_communities=int(values["n_communities"]),
            p_within=float(values["p_within"]),
            feature_density=float(values["feature_density"]),
            seed=int(values["data_seed"]),
        )
    raise ConfigError(f"dataset.name={name!r} is not a graph; allowed: {', '.join(GRAPH_DATASETS)}")
