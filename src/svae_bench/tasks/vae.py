"""The VAE task (Tables 1 and 2, the synthetic figure): train an AE / N-VAE / S-VAE / PS-VAE, then
measure the importance-sampled log-likelihood, the ELBO terms and k-NN accuracies on the test set.

Artefacts in the run directory: metrics.csv (a row per epoch), checkpoint.pt (the
best-validation weights, which are the ones evaluated), latent.npz (test-set
posterior locations, labels, true sphere points) and latent.png for d = 2.
"""

from __future__ import annotations

import io
import logging
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from ..checks import check_device
from ..data import DataBundle, build_dataset, check_data_available
from ..errors import ConfigError
from ..models import VAE, build_model
from ..plots import save_latent_png
from ..records import CHECKPOINT_FILE, format_number, write_bytes_atomic
from ..schema import migrate_trainer
from .base import RunContext, Task, TaskOutput, loop_fields, model_identity
from .registry import register_task
from .vae_checks import check_run_config
from .vae_metrics import codes, evaluate
from .vae_objective import train_vae

log = logging.getLogger("svae_bench")
LATENT_FILE = "latent.npz"
LATENT_PLOT = "latent.png"


def pick_device(name: str) -> torch.device:
    """The torch device a checked ``device`` value names ("auto": CUDA when available)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    check_device(name)
    return torch.device(name)


@dataclass
class Prepared:
    data: DataBundle
    model: VAE
    device: torch.device


class VaeTask(Task):
    name = "vae"
    resume_ignored = (
        "force",
        "runs_root",
        "trainer.progress",
        "trainer.num_threads",
        "trainer.compile",
        "dataset.data_root",
        "eval",
    )

    def check(self, cfg: Any) -> dict:
        return check_run_config(cfg)

    def check_data(self, values: dict) -> None:
        check_data_available(values["dataset"])

    def data_key(self, values: dict) -> str:
        return repr(sorted(values["dataset"].items()))  # the files read depend on the dataset group only

    def identity(self, cfg: DictConfig) -> dict[str, Any]:
        return model_identity(self.name, cfg)

    def prepare(self, cfg: DictConfig) -> Prepared:
        device = set_up_process(cfg)
        data = build_dataset(plain(cfg.dataset))
        model = model_for(plain(cfg.model), int(cfg.latent_dim), data)
        return Prepared(data, model.to(device), device)

    def describe(self, cfg: DictConfig, prepared: Prepared) -> str:
        return (
            f"{cfg.model.name} on {prepared.data.name}, d={cfg.latent_dim} (ambient "
            f"{prepared.model.head.ambient_dim}), beta={cfg.beta}, seed={cfg.seed}, "
            f"{len(prepared.data.train)} train points"
        )

    reevaluates = True

    def reevaluate(self, cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
        """:meth:`run`'s evaluation of the weights in ``run_dir``'s checkpoint.pt, with the same seeds."""
        prepared = self.prepare(cfg)
        load_weights(prepared.model, run_dir / CHECKPOINT_FILE)
        return self.evaluate(cfg, prepared)

    def evaluate(self, cfg: DictConfig, prepared: Prepared) -> dict[str, Any]:
        """The test metrics of the trained ``prepared.model`` (vae_metrics.evaluate), noise seeded by the run's seed."""
        data, device = prepared.data, prepared.device
        torch.manual_seed(int(cfg.seed) + 3)
        test_x, test_y = data.test.x.to(device), data.test.y
        return evaluate(prepared.model, data.train.x.to(device), data.train.y, test_x, test_y, cfg.eval, int(cfg.seed))

    def run(self, cfg: DictConfig, prepared: Prepared, ctx: RunContext) -> TaskOutput:
        model, data, device = prepared.model, prepared.data, prepared.device
        result = train_vae(
            model,
            data,
            plain(cfg.trainer),
            float(cfg.beta),
            int(cfg.seed),
            **ctx.loop_kwargs(),
        )
        ctx.save_checkpoint(model, result.best_epoch)

        t0 = time.perf_counter()
        metrics = self.evaluate(cfg, prepared)
        eval_seconds = time.perf_counter() - t0
        save_latent(ctx.out_dir, model, data, cfg)
        return TaskOutput(
            metrics=metrics,
            identity={"ambient_dim": int(model.head.ambient_dim), "budget": str(cfg.get("budget_name", "none"))},
            fields={
                **loop_fields(result),
                "train_seconds": round(result.seconds, 3),
                "eval_seconds": round(eval_seconds, 3),
                "device": str(device),
            },
            summary=summary_line(metrics),
        )


def load_weights(model: VAE, path: Path) -> None:
    """The weights of a checkpoint.pt into ``model`` (``weights_only``: loading runs no code);
    ConfigError (one line) when the file cannot be read or its tensors do not fit the model."""
    try:
        with warnings.catch_warnings():  # torch warns about an odd pickle protocol before refusing it
            warnings.simplefilter("ignore")
            saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling refused, truncated, empty or not a torch file
        raise ConfigError(f"{path} cannot be loaded as weights: {error_summary(err)}") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("model"), dict):
        raise ConfigError(f"{path} is not a checkpoint of this project (a dict with the model's state_dict)")
    try:
        model.load_state_dict(saved["model"])
    except (RuntimeError, TypeError, KeyError, ValueError, AttributeError) as err:
        raise ConfigError(f"{path} does not fit the model its run's config builds now: {error_summary(err)}") from None


def error_summary(err: BaseException, limit: int = 240) -> str:
    """An exception as one line: its first lines joined (torch's "Error(s) in loading state_dict
    for VAE:" says nothing without the next), or its type when it has no message."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    text = lines[0] if not lines[0].endswith(":") or len(lines) == 1 else f"{lines[0]} {lines[1]}"
    return text[:limit]


def set_up_process(cfg: DictConfig) -> torch.device:
    """What a run sets for its whole process before loading data: the device it names, torch's
    thread count (trainer.num_threads), flushing of subnormal floats (trainer.flush_denormal), the
    seeds of torch and numpy, deterministic algorithms.

    Subnormal floats (float32 below 1.2e-38) cost an x86 core up to ~100x per operation, and a
    trained MNIST decoder makes them: its logits on the always-black border pixels drift towards
    -100, whose exp (in softplus) and gradients underflow into that range. A d = 2 S-VAE epoch from
    epoch 280 weights took 5.5 s instead of 3.8 s (docs/benchmarks.md, "Training and evaluation speed").
    Flushing them to zero (FTZ/DAZ) changes only values below 1.2e-38 (2.2e-308 in float64); a
    record made before the option ran without (:func:`svae_bench.schema.migrate_trainer`)."""
    device = pick_device(str(cfg.device))
    trainer = migrate_trainer(cfg.trainer)  # a config of today: unchanged
    if trainer["num_threads"]:
        torch.set_num_threads(int(trainer["num_threads"]))
    torch.set_flush_denormal(bool(trainer["flush_denormal"]))
    torch.manual_seed(int(cfg.seed))
    np.random.seed(int(cfg.seed))
    torch.use_deterministic_algorithms(True, warn_only=True)
    return device


def plain(group: DictConfig) -> dict[str, Any]:
    """A config group's resolved values as plain Python (what models, data and training take)."""
    return OmegaConf.to_container(group, resolve=True)


def model_for(model: Mapping[str, Any], latent_dim: int, data: DataBundle) -> VAE:
    """The VAE a model config group's values describe, with d = ``latent_dim``, for ``data``."""
    return build_model(
        latent=model["latent"],
        hidden_dims=model["hidden_dims"],
        activation=model.get("activation", "relu"),
        concentration_offset=model.get("concentration_offset", 1.0),
        latent_dim=latent_dim,
        observed_dim=data.observed_dim,
        likelihood=data.likelihood,
        obs_scale=data.obs_scale,
    )


def summary_line(metrics: dict) -> str:
    parts = [f"{k} {metrics[k]:.3f}" for k in ("ll", "elbo", "re", "kl") if k in metrics]
    parts += [f"knn@{n} {v:.3f}" for n, v in metrics.get("knn_acc", {}).items()]
    return ", ".join(parts)


def save_latent(out_dir, model: VAE, data: DataBundle, cfg: DictConfig) -> None:
    """latent.npz (test-set codes, labels, true sphere points) and, for d = 2, latent.png."""
    z = codes(model, data.test.x.to(next(model.parameters()).device)).cpu().numpy()
    arrays = {
        "z": z,
        "labels": data.test.y.numpy(),
        "geometry": np.array(model.head.geometry),
        "model": np.array(str(cfg.model.name)),
        "beta": np.array(float(cfg.beta)),
    }
    if data.test.truth is not None:
        arrays["truth"] = data.test.truth.numpy()
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    write_bytes_atomic(out_dir / LATENT_FILE, buf.getvalue())
    if cfg.eval.latent_plot and int(cfg.latent_dim) == 2:
        title = f"{cfg.model.name}, d = {cfg.latent_dim}, β = {format_number(cfg.beta)}"
        save_latent_png(out_dir / LATENT_PLOT, z, data.test.y.numpy(), model.head.geometry, title)


register_task(VaeTask())
