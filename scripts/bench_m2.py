"""Seconds per MNIST training epoch of M2 (Table 3) beside the M1 epoch it builds on.

Usage:
    python scripts/bench_m2.py [--data-root DIR] [--threads 1] [--cells 10,10 50,50]
                               [--family S+N] [--z1 sample|mean] [--repeats 3] [--quick] [--json FILE]

In one process, on dynamically binarised MNIST (50k training images, the paper's MLP
784-256-128 for M1; M2 with one hidden layer of 500 per network, 100 labels), for each
(z1, z2) in --cells:

* M1 epoch: svae_bench.training.train with the VAE objective, batch 64 (782 steps);
* M2 epoch: the same loop with the M1+M2 objective of the m1m2 task, batch 100 (500 steps),
  each step encoding the batch and the 100 labelled images with M1 and evaluating the
  unlabelled bound for all 10 classes in one pass: two-stage (M1 fixed) and joint (M1
  fine-tuned with its ELBO, the task's default), each reported.

Both with a validation pass of 64 points only; median over --repeats epochs, M1 and M2
interleaved so that machine noise hits all alike. Target: M2 / M1 <= 2 at (10, 10).
--quick times 12800 images per epoch (scaled to 50k). Writes nothing but --json.

M2's networks use softplus (Kingma et al.), and on an AVX512 CPU PyTorch 2.14's float32
softplus is about 4x slower than its AVX2 kernel: ``ATEN_CPU_CAPABILITY=avx2`` (an environment
variable PyTorch reads) cut the M2 epoch by about 45% on the project's machine (results/README.md,
"bench"). The header line names the kernels used.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from pathlib import Path

import torch
from omegaconf import OmegaConf

from svae_bench.data import build_dataset
from svae_bench.data.bundle import Split
from svae_bench.data.labels import labelled_subset
from svae_bench.data.mnist import default_data_root
from svae_bench.models.m2 import build_m2
from svae_bench.tasks.m1m2 import FAMILIES
from svae_bench.tasks.m1m2_objective import M1M2, Z1_INPUTS, M2Objective
from svae_bench.tasks.vae import model_for
from svae_bench.tasks.vae_objective import VaeObjective
from svae_bench.training import TrainSettings, train

REPO = Path(__file__).resolve().parents[1]


def settings(batch: int) -> TrainSettings:
    return TrainSettings(lr=1e-3, batch_size=batch, max_epochs=1, patience=10, progress=False, nan_retries=0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    shared = REPO.parent / "shared" / "data"
    p.add_argument("--data-root", default=str(shared) if shared.is_dir() else default_data_root())
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cells", nargs="+", default=["10,10", "50,50"], help="z1,z2 pairs")
    p.add_argument("--family", default="S+N", choices=sorted(FAMILIES))
    p.add_argument("--z1", default="sample", choices=Z1_INPUTS, help="M2's input (the task's semisup.z1)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = OmegaConf.load(REPO / "conf" / "dataset" / "mnist.yaml")
    cfg.data_root = args.data_root
    data = build_dataset(OmegaConf.to_container(cfg, resolve=True))
    n_train = 12800 if args.quick else len(data.train)
    small = dataclasses.replace(
        data, train=Split(data.train.x[:n_train], data.train.y[:n_train]), val=Split(data.val.x[:64], data.val.y[:64])
    )
    scale = len(data.train) / n_train
    m1_latent, z2_latent = FAMILIES[args.family]
    model_cfg = OmegaConf.to_container(
        OmegaConf.load(REPO / "conf" / "model" / ("svae.yaml" if m1_latent == "vmf" else "nvae.yaml"))
    )
    labelled = labelled_subset(data.train.y, 100, seed=0)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32 CPU "
        f"({torch.backends.cpu.get_cpu_capability()} kernels); family {args.family}, "
        f"z1 {args.z1}; "
        f"{n_train} images timed per epoch{' (scaled to 50k)' if args.quick else ''}"
    )
    out: dict = {
        "threads": args.threads,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "family": args.family,
        "z1": args.z1,
        "quick": args.quick,
        "cells": {},
    }
    for cell in args.cells:
        z1, z2 = (int(v) for v in cell.split(","))
        torch.manual_seed(0)
        m1 = model_for(model_cfg, z1, data)
        m2 = build_m2(
            z1_ambient=m1.head.ambient_dim, z1_family=m1_latent, z2_dim=z2, z2_family=z2_latent, hidden_dims=[500]
        )
        objective = M2Objective(
            labelled_x=torch.bernoulli(data.train.x[labelled], generator=torch.Generator().manual_seed(0)),
            labelled_y=data.train.y[labelled],
            n_train=len(data.train),
            val_y=small.val.y,
            z1=args.z1,
        )
        m1_times, m2_times, joint_times = [], [], []
        for r in range(args.repeats):
            res = train(m1, small, VaeObjective(beta=1.0), settings(64), seed=r)
            m1_times.append(res.history[0]["seconds"] * scale)
            res = train(M1M2(m1, m2, joint=False), small, objective, settings(100), seed=r)
            m2_times.append(res.history[0]["seconds"] * scale)
            res = train(M1M2(m1, m2, joint=True), small, objective, settings(100), seed=r)
            joint_times.append(res.history[0]["seconds"] * scale)
        row = {
            "m1_epoch_s": statistics.median(m1_times),
            "m2_epoch_s": statistics.median(m2_times),
            "joint_epoch_s": statistics.median(joint_times),
        }
        row["ratio"] = row["m2_epoch_s"] / row["m1_epoch_s"]
        row["joint_ratio"] = row["joint_epoch_s"] / row["m1_epoch_s"]
        row.update(m1_epochs_s=m1_times, m2_epochs_s=m2_times, joint_epochs_s=joint_times)
        out["cells"][cell] = row
        print(
            f"(z1, z2) = ({z1}, {z2}): M1 epoch {row['m1_epoch_s']:.1f} s, M2 epoch two-stage "
            f"{row['m2_epoch_s']:.1f} s (M2 / M1 {row['ratio']:.2f}), joint {row['joint_epoch_s']:.1f} s "
            f"(M2 / M1 {row['joint_ratio']:.2f})" + ("  (target <= 2)" if (z1, z2) == (10, 10) else "")
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
