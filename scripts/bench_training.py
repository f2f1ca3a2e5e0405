"""Seconds per MNIST training epoch (N-VAE vs S-VAE) and the cost of the 500-sample LL.

Usage:
    python scripts/bench_training.py [--data-root DIR] [--threads 2] [--dims 10 40]
                                     [--repeats 3] [--quick] [--json FILE]
                                     [--compile] [--unfused] [--checkpoint state.pt] [--no-ll]

In one process, on dynamically binarised MNIST (50k training images, batch 64,
the paper's MLP 784-256-128), for each latent_dim d in --dims:

* epoch: seconds for one training epoch (782 Adam steps: binarise, encode,
  rsample, KL, decode, backward, the finite check, step) of svae_bench.training
  itself, for the N-VAE and the S-VAE; its validation pass is given 64 points
  so that it adds nothing noticeable. Median over --repeats epochs, the two
  models interleaved so that machine noise hits both alike. Target:
  S-VAE / N-VAE <= 1.15 (the vMF sampler should be negligible next to the MLP).
* LL: seconds for svae_bench.tasks.vae_metrics.importance_sampled (500 importance
  samples per test point, 100 points per batch) over the 10k test images, and
  for a bare decoder forward pass over the same number of latent samples
  (S x B codes per batch, no sampling, no likelihood). Target: the LL
  throughput is >= 50% of the bare decoder's.

--quick uses 1000 test points for the LL and 200 steps per "epoch" (scaled to
782) for a fast look; report only full runs. Writes nothing but --json.

--compile also times each model's epoch with ``trainer.compile`` (the training
step through torch.compile; compiled in an untimed epoch first). Target: the
compiled S-VAE epoch at most as long as the eager N-VAE epoch.

--unfused also times each eager epoch with torch's default CPU Adam kernel (one
loop over the parameters; ``trainer.fused=false``, what runs before that option
were trained with) against the fused kernel every other variant uses.

--checkpoint state.pt (a run's resumable state, or checkpoint.pt) also times the
S-VAE from those trained weights ("svae@ckpt"), whose concentrations are those
of a late epoch rather than of initialisation (the N-VAE's step cost does not
depend on its weights). It prints the checkpoint's concentrations on a training
batch. --no-ll skips the LL timing.

Subnormal floats are flushed to zero, as a run does by default (``trainer.flush_denormal``);
--keep-denormals times without (what runs before that option did): it matters for trained
weights, whose decoder makes subnormal numbers (see ``--checkpoint``).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import statistics
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from svae_bench.data import build_dataset
from svae_bench.data.bundle import Split
from svae_bench.data.mnist import default_data_root
from svae_bench.tasks.vae import model_for
from svae_bench.tasks.vae_metrics import importance_sampled
from svae_bench.tasks.vae_objective import VaeObjective
from svae_bench.training import TrainSettings, train

REPO = Path(__file__).resolve().parents[1]
MODELS = ("nvae", "svae")


def model_config(name: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "model" / f"{name}.yaml"))


SETTINGS = TrainSettings(lr=1e-3, batch_size=64, max_epochs=1, patience=10, progress=False, nan_retries=0, fused=True)


def epoch_seconds(model, data, n_train: int, seed: int, compiled: bool = False, fused: bool = True) -> float:
    """Seconds of one epoch of svae_bench.training.train on the first ``n_train`` images, scaled to the full set.

    The model is trained on a copy, so every repeat starts from the same weights. With
    ``compiled``, two epochs run and the second is timed (the first compiles)."""
    small = dataclasses.replace(
        data, train=Split(data.train.x[:n_train], data.train.y[:n_train]), val=Split(data.val.x[:64], data.val.y[:64])
    )
    settings = dataclasses.replace(SETTINGS, compile=compiled, max_epochs=2 if compiled else 1, fused=fused)
    result = train(copy.deepcopy(model), small, VaeObjective(beta=1.0), settings, seed=seed)
    return result.history[-1]["seconds"] * len(data.train) / n_train


def load_weights(model, path: Path) -> None:
    """A run's state.pt ("model") or checkpoint.pt (a state dict, or {"model": ...})."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(saved["model"] if "model" in saved else saved)


@torch.no_grad()
def concentration_summary(model, x) -> str:
    q = model.head.posterior(model.encoder(x))
    k = q.concentration
    qs = torch.quantile(k, torch.tensor([0.1, 0.5, 0.9]))
    return f"k on a batch of {len(k)}: 10/50/90% = {qs[0]:.1f} / {qs[1]:.1f} / {qs[2]:.1f}, max {k.max():.1f}"


@torch.no_grad()
def decoder_seconds(model, n_points: int, n_samples: int, batch_points: int) -> float:
    """Bare decoder forward over n_points x n_samples codes, in the LL's batch shape."""
    m = model.head.ambient_dim
    model.eval()
    t0 = time.perf_counter()
    for i in range(0, n_points, batch_points):
        b = min(batch_points, n_points - i)
        z = torch.randn(n_samples, b, m)
        model.decoder(z)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    shared = REPO.parent / "shared" / "data"
    p.add_argument("--data-root", default=str(shared) if shared.is_dir() else default_data_root())
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dims", type=int, nargs="+", default=[10, 40])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--is-samples", type=int, default=500)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    p.add_argument("--compile", action="store_true", help="also time epochs with trainer.compile")
    p.add_argument("--unfused", action="store_true", help="also time eager epochs with trainer.fused=false")
    p.add_argument("--checkpoint", type=Path, default=None, help="also time the S-VAE from these weights")
    p.add_argument("--no-ll", action="store_true", help="skip the LL timing")
    p.add_argument(
        "--keep-denormals", action="store_true", help="do not flush subnormal floats (trainer.flush_denormal=false)"
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(not args.keep_denormals)  # as a run does (trainer.flush_denormal)
    cfg = OmegaConf.load(REPO / "conf" / "dataset" / "mnist.yaml")
    cfg.data_root = args.data_root
    data = build_dataset(OmegaConf.to_container(cfg, resolve=True))
    n_train = 12800 if args.quick else len(data.train)
    steps = math.ceil(n_train / 64)
    n_test = 1000 if args.quick else len(data.test)
    test_x = data.test.x[:n_test]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32 CPU; "
        f"{len(data.train)} training images, batch 64, {steps} steps timed per epoch"
        f"{' (scaled)' if args.quick else ''}; LL: {args.is_samples} samples x {n_test} test points"
    )
    out: dict = {
        "threads": args.threads,
        "quick": args.quick,
        "is_samples": args.is_samples,
        "test_points": n_test,
        "dims": {},
    }
    for d in args.dims:
        torch.manual_seed(0)
        models = {name: model_for(model_config(name), d, data) for name in MODELS}
        variants = [(name, name, False, True) for name in MODELS]  # (label, model, compiled, fused)
        if args.checkpoint is not None:
            models["svae@ckpt"] = model_for(model_config("svae"), d, data)
            load_weights(models["svae@ckpt"], args.checkpoint)
            variants.append(("svae@ckpt", "svae@ckpt", False, True))
            x = data.train_inputs(data.train.x[:1024], torch.Generator().manual_seed(0))
            print(f"checkpoint {args.checkpoint}: {concentration_summary(models['svae@ckpt'], x)}")
        eager = list(variants)
        if args.compile:
            variants += [(f"{label}+compile", model, True, True) for label, model, _, _ in eager]
        if args.unfused:
            variants += [(f"{label}+unfused", model, False, False) for label, model, _, _ in eager]
        epochs: dict[str, list[float]] = {label: [] for label, *_ in variants}
        for r in range(args.repeats):
            for label, model, compiled, fused in variants:
                epochs[label].append(epoch_seconds(models[model], data, n_train, r, compiled=compiled, fused=fused))
        row: dict = {label: {"epoch_s": statistics.median(v), "epochs_s": v} for label, v in epochs.items()}
        for name in MODELS if not args.no_ll else ():
            torch.manual_seed(1)
            t0 = time.perf_counter()
            importance_sampled(models[name], test_x, args.is_samples, 100)
            ll = time.perf_counter() - t0
            dec = decoder_seconds(models[name], n_test, args.is_samples, 100)
            row[name] |= {"ll_s": ll, "decoder_s": dec, "ll_vs_decoder_throughput": dec / ll}
        nvae = row["nvae"]["epoch_s"]
        for label in row:
            row[label]["vs_eager_nvae"] = row[label]["epoch_s"] / nvae
        row["epoch_ratio_svae_nvae"] = row["svae"]["epoch_s"] / nvae
        out["dims"][d] = row
        print(f"\nd = {d}")
        print(f"  {'model':18} {'epoch (s)':>10} {'/ eager nvae':>12} {'LL (s)':>8} {'LL / decoder':>12}")
        for label in epochs:
            r_ = row[label]
            ll = f"{r_['ll_s']:8.1f} {100 * r_['ll_vs_decoder_throughput']:11.0f}%" if "ll_s" in r_ else ""
            print(f"  {label:18} {r_['epoch_s']:10.2f} {r_['vs_eager_nvae']:12.3f} {ll}")
        print(f"  S-VAE / N-VAE epoch: {row['epoch_ratio_svae_nvae']:.3f} (target <= 1.15)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
