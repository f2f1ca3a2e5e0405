"""Probe Table 1's LL estimate of complete runs: how it moves with the number of importance samples.

Not the task's evaluation (that is part of ``svae-bench run``): a diagnostic for the question
whether 500 importance samples (the paper's protocol) leave the S-VAE and the N-VAE equally far
below their true log p(x). For each RUN_DIR (a complete Table 1 run: config.yaml, checkpoint.pt)
it rebuilds the run's data and model exactly as the task does, then estimates the LL on the first
``--points`` test images with each number of samples in ``--samples``, ``--repeats`` times with
different noise, and prints the mean and the standard error over repeats. The estimate
log (1/S) sum_s w_s is a lower bound in expectation whose gap shrinks about like var(w / p(x)) / 2S,
so the change from 500 to 5000 samples is about nine tenths of what 500 samples still miss.

    python scripts/probe_ll.py RUN_DIR [RUN_DIR ...] --data-root ../shared/data \
        [--samples 500 5000] [--points 1000] [--repeats 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import yaml

from svae_bench.data import build_dataset
from svae_bench.tasks.vae import model_for
from svae_bench.tasks.vae_metrics import importance_sampled


def load_run(run_dir: Path, data_root: str | None):
    """(data, model, config) of a complete run, the model at its saved (best) weights."""
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    dataset = dict(cfg["dataset"])
    if data_root is not None:
        dataset["data_root"] = data_root
    data = build_dataset(dataset)
    model = model_for(cfg["model"], int(cfg["latent_dim"]), data)
    saved = torch.load(run_dir / "checkpoint.pt", weights_only=True, map_location="cpu")
    model.load_state_dict(saved["model"])
    return data, model.eval(), cfg


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dirs", type=Path, nargs="+")
    p.add_argument("--data-root", default=None, help="overrides the runs' dataset.data_root")
    p.add_argument("--samples", type=int, nargs="+", default=[500, 5000])
    p.add_argument("--points", type=int, default=1000, help="first N test images")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print(f"LL (nats) on the first {a.points} test images; mean ± standard error over {a.repeats} repeats")
    print(f"{'run':<44} " + " ".join(f"{'S=' + str(s):>16}" for s in a.samples) + "   seconds")
    for run_dir in a.run_dirs:
        data, model, cfg = load_run(run_dir, a.data_root)
        x = data.test.x[: a.points]
        t0 = time.perf_counter()
        cells = []
        for s in a.samples:
            values = []
            for r in range(a.repeats):
                torch.manual_seed(1000 * r + s)
                values.append(importance_sampled(model, x, s, batch_points=max(1, 50_000 // s))["ll"])
            se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else float("nan")
            cells.append(f"{statistics.mean(values):9.3f} ± {se:5.3f}")
        name = f"{cfg['model']['name']} d={cfg['latent_dim']} seed={cfg['seed']}"
        print(f"{name:<44} " + " ".join(f"{c:>16}" for c in cells) + f"   {time.perf_counter() - t0:7.0f}")


if __name__ == "__main__":
    main()
