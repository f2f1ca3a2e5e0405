"""The link-prediction task (Table 4): train an N-VGAE or S-VGAE on a citation graph, then score the
held-out edges against as many non-edges by ROC AUC and average precision (scikit-learn).

Protocol (Kipf & Welling 2016, their ``gae`` code; every item a config value, ``conf/vgae/default.yaml``):
the edge split of :func:`svae_bench.data.graph.split_edges` (fixed by ``dataset.split_seed``); full-batch
Adam (``vgae.lr`` 0.01) for ``vgae.epochs`` (200) steps, one per epoch; the objective per step is
-(norm * mean weighted BCE over all N^2 node pairs) - beta * KL / N, where KL is the mean over nodes
of KL(q(z_i) || p(z_i)) (``vgae.kl_scale: nodes``; Kipf's (0.5 / N) * mean(sum(...)) for the Gaussian);
the weights kept are the last (``vgae.select: last``, Kipf: no early stopping; ``val``: the best
validation AUC + AP). Scores are sigmoid(s mu_i . mu_j) from the posterior's location.

Artefacts: metrics.csv (a row per epoch: loss terms, validation AUC and AP, the decoder scale),
checkpoint.pt (the evaluated weights). The record's metrics: ``auc``, ``ap`` (test), ``val_auc``,
``val_ap`` (fractions); its fields name the split (seed, edge counts) and Kipf's weights.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from omegaconf import DictConfig
from sklearn.metrics import average_precision_score, roc_auc_score
from torch import Tensor

from ..checks import (
    boolean,
    check_values,
    integer,
    list_of,
    name,
    number,
    one_of,
    optional,
    path_string,
    positive_int,
    resolved,
    shown_value,
)
from ..data.graph import GRAPH_DATASETS, LinkData, link_data, load_graph, split_sizes, synthetic_graph_problem
from ..data.planetoid import COUNTS, verify_files
from ..data.planetoid import NAMES as PLANETOID
from ..errors import ConfigError
from ..models.vgae import LATENTS, SCALE_PARAMS, VGAE
from ..records import SEED_MAX
from ..schema import RunConfig, TrainerConfig, rules, typed
from ..training import TrainSettings, train
from .base import RunContext, Task, TaskOutput, loop_fields, model_identity
from .registry import register_task
from .vae import VaeTask, plain, set_up_process
from .vae_objective import trainer_settings

log = logging.getLogger("svae_bench")

DTYPES = {"float32": torch.float32, "float64": torch.float64}
VGAE_RULES = {
    "lr": number(0, lo_open=True),
    "epochs": positive_int(10**7),
    "select": one_of("last", "val"),
    "patience": positive_int(10**7),
    "kl_scale": one_of("nodes", "none"),
    "pos_weight": None,  # "auto" or a number > 0: _auto_or_positive
    "norm": None,
    "dtype": one_of(*DTYPES),
    "chunk_elements": positive_int(2**40),
}
MODEL_RULES = {
    "name": name,
    "latent": one_of(*LATENTS),
    "hidden_dims": list_of(positive_int(10**6), "positive integers"),
    "concentration_offset": number(0),
    "scale_init": number(0, 10**6, lo_open=True),
    "scale_param": one_of(*SCALE_PARAMS),
}
SPLIT = {
    "name": name,
    "split_seed": integer(0, SEED_MAX),
    "val_fraction": number(0, 0.5, lo_open=True),
    "test_fraction": number(0, 0.5, lo_open=True),
    "features": boolean,
}
DATASETS = {
    **{n: {**SPLIT, "data_root": optional(path_string)} for n in PLANETOID},
    "synthetic_graph": {
        **SPLIT,
        "n_nodes": integer(4, 10**7),
        "n_features": positive_int(10**6),
        "n_edges": positive_int(10**9),
        "n_communities": positive_int(10**6),
        "p_within": number(0, 1),
        "feature_density": number(0, 1, lo_open=True),
        "data_seed": integer(0, SEED_MAX),
    },
}
METRIC_COLUMNS = ["epoch", "train_objective", "train_recon", "train_kl", "val_auc", "val_ap", "scale", "seconds"]


def _auto_or_positive(values: Mapping, key: str) -> None:
    value = values.get(key)
    if value == "auto" or (number(0, lo_open=True)(value) is None):
        return
    raise ConfigError(f"vgae.{key}={shown_value(value)} must be auto (Kipf's) or a number > 0")


def check_vgae_config(cfg: Any) -> dict:
    """Every value a link-prediction run uses (one-line ConfigError on the first bad one)."""
    values = resolved(cfg, exclude=("hydra",))
    check_values(values, rules(RunConfig))
    for group in ("trainer", "model", "dataset", "vgae"):
        if not isinstance(values.get(group), Mapping):
            raise ConfigError(f"{group} must be a config group; model=nvgae or model=svgae sets it")
    # the whole trainer group, as the VAE task checks it: the run reads num_threads, flush_denormal,
    # progress, nan_retries, nan_lr_factor, compile and fused from it (its lr and epochs are vgae's)
    typed(TrainerConfig, values["trainer"], "trainer.")
    check_values(values["vgae"], VGAE_RULES, "vgae.")
    for key in ("pos_weight", "norm"):
        _auto_or_positive(values["vgae"], key)
    check_values(values["model"], MODEL_RULES, "model.")
    ds = values["dataset"]
    if ds.get("name") not in DATASETS:
        raise ConfigError(
            f"dataset.name={shown_value(ds.get('name'))} is not a graph; allowed: {', '.join(GRAPH_DATASETS)}"
        )
    check_values(ds, DATASETS[ds["name"]], "dataset.")
    if ds["val_fraction"] + ds["test_fraction"] >= 1:
        raise ConfigError("dataset.val_fraction + dataset.test_fraction must be < 1 (training edges must remain)")
    check_graph_values(ds)
    from ..checks import check_device

    check_device(values.get("device", "cpu"))
    return values


def check_graph_values(ds: Mapping[str, Any]) -> None:
    """What the dataset group's values alone say the run cannot do (ConfigError, one line), before
    any data is read: a generated graph that cannot be drawn, and an edge split without a test or
    validation edge (its sizes follow from the edge count: ``dataset.n_edges``, or the published
    count of a Planetoid set)."""
    if ds["name"] == "synthetic_graph":
        problem = synthetic_graph_problem(
            int(ds["n_nodes"]),
            int(ds["n_edges"]),
            int(ds["n_communities"]),
            float(ds["p_within"]),
            int(ds["data_seed"]),
        )
        if problem is not None:
            raise ConfigError(problem)
        n_edges = int(ds["n_edges"])
        subject = f"dataset.n_edges={n_edges} is"
    else:
        n_edges = COUNTS[ds["name"]].edges
        subject = f"{ds['name']}'s {n_edges} edges are"
    split_sizes(n_edges, float(ds["val_fraction"]), float(ds["test_fraction"]), subject)


def link_metrics(scores_pos: Tensor, scores_neg: Tensor) -> tuple[float, float]:
    """(ROC AUC, average precision) of positives against negatives (scikit-learn's definitions)."""
    pos, neg = scores_pos.detach().cpu().double().numpy(), scores_neg.detach().cpu().double().numpy()
    labels = np.concatenate([np.ones(pos.size), np.zeros(neg.size)])
    scores = np.concatenate([pos, neg])
    return float(roc_auc_score(labels, scores)), float(average_precision_score(labels, scores))


def evaluate_links(model: VGAE, data: LinkData, split: str) -> tuple[float, float]:
    """(AUC, AP) on ``split`` ("val" or "test"): its edges against its non-edges."""
    model.eval()
    pos, neg = getattr(data, split), getattr(data, f"{split}_false")
    scores = model.scores(data.features, data.adjacency, torch.cat([pos, neg]))
    return link_metrics(scores[: pos.shape[0]], scores[pos.shape[0] :])


@dataclass
class VgaeObjective:
    """Kipf's objective on the whole graph (an :class:`~svae_bench.training.Objective`); the loop's
    "batch" is a placeholder, the graph is held here."""

    data: LinkData
    beta: float
    pos_weight: float
    norm: float
    kl_divisor: float
    select: str
    columns: ClassVar[list[str]] = METRIC_COLUMNS
    warmup_epochs: ClassVar[int] = 0

    def train_terms(self, model: VGAE, batch: Tensor, epoch: int) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        model.train()
        d = self.data
        recon, kl = model.terms(d.features, d.adjacency, d.positives, self.pos_weight, self.norm)
        kl_mean = kl.mean()
        with torch.no_grad():
            model.steps += 1  # restored with the weights on a rollback or resume
        return -(recon + self.beta * kl_mean / self.kl_divisor), (recon, kl_mean)

    def validate(self, model: VGAE, x: Tensor, seed: int) -> tuple[float, dict[str, float]]:
        auc, ap = evaluate_links(model, self.data, "val")
        # "last": every epoch improves on the one before, so the loop keeps the final weights
        value = float(model.steps) if self.select == "last" else (auc + ap) / 2
        return value, {"val_auc": auc, "val_ap": ap, "scale": float(model.scale().detach())}

    def row(self, epoch: int, train_means: list[float], validation: dict[str, float]) -> dict[str, float]:
        objective, recon, kl = train_means
        return {"train_objective": objective, "train_recon": recon, "train_kl": kl, **validation}

    def summary(self, row: dict[str, float]) -> str:
        return (
            f"loss {-row['train_objective']:.4f} (recon {row['train_recon']:.4f}, kl/node {row['train_kl']:.3f})  "
            f"val auc {row['val_auc']:.4f} ap {row['val_ap']:.4f}  scale {row['scale']:.3g}"
        )


def vgae_settings(trainer: Mapping[str, Any], vgae: Mapping[str, Any]) -> TrainSettings:
    """The loop's settings of a VGAE run: ``vgae``'s schedule (lr, epochs, patience; one full-batch step
    per epoch), the trainer group's progress bar, fault handling and kernels (compile, fused)."""
    return trainer_settings(
        typed(TrainerConfig, trainer, "trainer."),
        lr=float(vgae["lr"]),
        batch_size=1,  # the whole graph is one data point: one full-batch step per epoch
        max_epochs=int(vgae["epochs"]),
        patience=int(vgae["patience"]),
    )


@dataclass
class Prepared:
    data: LinkData
    model: VGAE
    device: torch.device


def build_vgae(model: Mapping[str, Any], latent_dim: int, n_features: int, chunk_elements: int) -> VGAE:
    """The VGAE a model config group's values describe (conf/model/{nvgae,svgae}.yaml)."""
    return VGAE(
        n_features=n_features,
        hidden_dims=list(model["hidden_dims"]),
        latent=model["latent"],
        latent_dim=latent_dim,
        concentration_offset=float(model.get("concentration_offset", 1.0)),
        scale_init=float(model.get("scale_init", 1.0)),
        scale_param=model.get("scale_param", "log"),
        chunk_elements=chunk_elements,
    )


class VgaeTask(Task):
    name = "vgae"
    resume_ignored = VaeTask.resume_ignored  # the same settings that do not change a run

    def check(self, cfg: Any) -> dict:
        return check_vgae_config(cfg)

    def check_data(self, values: dict) -> None:
        """The data a run would read, checked as the run checks it, so that a sweep's preflight refuses
        a bad file before its first job: a Planetoid set's files (SHA-256 where known, else parsed and
        assembled: :func:`~svae_bench.data.planetoid.verify_files`); a generated graph drawn once
        (its sampler is bounded and refuses a graph it cannot draw)."""
        ds = values["dataset"]
        if ds["name"] in PLANETOID:
            verify_files(ds["name"], ds.get("data_root"))
        else:
            load_graph(ds)

    def data_key(self, values: dict) -> str:
        return repr(sorted(values["dataset"].items()))

    def identity(self, cfg: Any) -> dict[str, Any]:
        return model_identity(self.name, cfg)

    def prepare(self, cfg: DictConfig) -> Prepared:
        device = set_up_process(cfg)
        ds, vgae = plain(cfg.dataset), plain(cfg.vgae)
        dtype = DTYPES[vgae["dtype"]]
        graph = load_graph(ds)
        data = link_data(
            graph,
            int(ds["split_seed"]),
            float(ds["val_fraction"]),
            float(ds["test_fraction"]),
            dtype=dtype,
            device=device,
            use_features=bool(ds.get("features", True)),
        )
        torch.manual_seed(int(cfg.seed))  # the initial weights: a function of the seed
        model = build_vgae(plain(cfg.model), int(cfg.latent_dim), data.n_features, int(vgae["chunk_elements"]))
        return Prepared(data, model.to(device=device, dtype=dtype), device)

    def describe(self, cfg: DictConfig, prepared: Prepared) -> str:
        info = prepared.data.info
        return (
            f"{cfg.model.name} on {prepared.data.name}: {info['n_nodes']} nodes, {info['n_edges']} edges "
            f"({info['n_train_edges']} train, {info['n_val_edges']} validation, {info['n_test_edges']} test; "
            f"split seed {info['split_seed']}), d={cfg.latent_dim} (ambient {prepared.model.ambient_dim}), "
            f"beta={cfg.beta}, seed={cfg.seed}"
        )

    def run(self, cfg: DictConfig, prepared: Prepared, ctx: RunContext) -> TaskOutput:
        model, data = prepared.model, prepared.data
        vgae = plain(cfg.vgae)
        pos_weight = data.pos_weight if vgae["pos_weight"] == "auto" else float(vgae["pos_weight"])
        norm = data.norm if vgae["norm"] == "auto" else float(vgae["norm"])
        objective = VgaeObjective(
            data,
            beta=float(cfg.beta),
            pos_weight=pos_weight,
            norm=norm,
            kl_divisor=float(data.n_nodes) if vgae["kl_scale"] == "nodes" else 1.0,
            select=vgae["select"],
        )
        result = train(
            model,
            data.loop_bundle(),
            objective,
            vgae_settings(cfg.trainer, vgae),
            int(cfg.seed),
            **ctx.loop_kwargs(),
        )
        ctx.save_checkpoint(model, result.best_epoch)
        t0 = time.perf_counter()
        auc, ap = evaluate_links(model, data, "test")
        val_auc, val_ap = evaluate_links(model, data, "val")
        metrics = {"auc": auc, "ap": ap, "val_auc": val_auc, "val_ap": val_ap}
        return TaskOutput(
            metrics=metrics,
            identity={
                "ambient_dim": int(model.ambient_dim),
                "budget": str(cfg.get("budget_name", "none")),
                "split_seed": int(data.info["split_seed"]),
            },
            fields={
                **loop_fields(result),
                "train_seconds": round(result.seconds, 3),
                "eval_seconds": round(time.perf_counter() - t0, 3),
                "device": str(prepared.device),
                "dtype": vgae["dtype"],
                "graph": {**data.info, "pos_weight": pos_weight, "norm": norm},
                "decoder_scale": float(model.scale().detach()),
            },
            summary=f"test auc {auc:.4f} ap {ap:.4f} (validation auc {val_auc:.4f} ap {val_ap:.4f})",
        )


register_task(VgaeTask())
