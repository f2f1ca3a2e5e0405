"""Seconds per MNIST training epoch (N-VAE vs S-VAE) and the cost of the 500-sample LL.

Usage:
    python scripts/bench_training.py [--data-root DIR] [--threads 2] [--dims 10 40]
                                     [--repeats 3] [--quick] [--json FILE]

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
"""

from __future__ import annotations

import argparse
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


SETTINGS = TrainSettings(lr=1e-3, batch_size=64, max_epochs=1, patience=10, progress=False, nan_retries=0)


def epoch_seconds(model, data, n_train: int, seed: int) -> float:
    """Seconds of one epoch of svae_bench.training.train on the first ``n_train`` images, scaled to the full set."""
    small = dataclasses.replace(
        data, train=Split(data.train.x[:n_train], data.train.y[:n_train]), val=Split(data.val.x[:64], data.val.y[:64])
    )
    result = train(model, small, VaeObjective(beta=1.0), SETTINGS, seed=seed)
    return result.history[0]["seconds"] * len(data.train) / n_train


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
    args = p.parse_args()
    torch.set_num_threads(args.threads)
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
        epochs: dict[str, list[float]] = {name: [] for name in MODELS}
        for r in range(args.repeats):
            for name in MODELS:
                epochs[name].append(epoch_seconds(models[name], data, n_train, seed=r))
        row: dict = {}
        for name in MODELS:
            torch.manual_seed(1)
            t0 = time.perf_counter()
            importance_sampled(models[name], test_x, args.is_samples, 100)
            ll = time.perf_counter() - t0
            dec = decoder_seconds(models[name], n_test, args.is_samples, 100)
            row[name] = {
                "epoch_s": statistics.median(epochs[name]),
                "epochs_s": epochs[name],
                "ll_s": ll,
                "decoder_s": dec,
                "ll_vs_decoder_throughput": dec / ll,
            }
        row["epoch_ratio_svae_nvae"] = row["svae"]["epoch_s"] / row["nvae"]["epoch_s"]
        out["dims"][d] = row
        print(f"\nd = {d}")
        print(f"  {'model':6} {'epoch (s)':>10} {'LL (s)':>8} {'decoder (s)':>12} {'LL / decoder throughput':>24}")
        for name in MODELS:
            r_ = row[name]
            print(
                f"  {name:6} {r_['epoch_s']:10.2f} {r_['ll_s']:8.1f} {r_['decoder_s']:12.1f} "
                f"{100 * r_['ll_vs_decoder_throughput']:23.0f}%"
            )
        print(f"  S-VAE / N-VAE epoch: {row['epoch_ratio_svae_nvae']:.3f} (target <= 1.15)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
