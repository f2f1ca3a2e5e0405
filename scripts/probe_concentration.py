"""Probe the posterior concentrations of complete S-VAE runs: does the head's offset ever bind?

A diagnostic for Table 1's analysis, not part of any task. The vMF head gives
k = softplus(linear) + offset (``model.concentration_offset``, 1 by default, as in the official
code), so the offset shapes training only where softplus(linear) is small next to it. For each
RUN_DIR (a complete S-VAE run: config.yaml, checkpoint.pt) this encodes the test images and
prints quantiles of k and the fraction of images with k < 2 * offset (where the offset is at
least half of k).

    python scripts/probe_concentration.py RUN_DIR [RUN_DIR ...] --data-root ../shared/data
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from probe_ll import load_run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dirs", type=Path, nargs="+")
    p.add_argument("--data-root", default=None, help="overrides the runs' dataset.data_root")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    qs = (0.01, 0.1, 0.5, 0.9, 0.99)
    print("posterior concentration k over the test images")
    print(f"{'run':<28} " + " ".join(f"{'q' + format(q, 'g'):>9}" for q in qs) + f" {'k < 2*offset':>13}")
    for run_dir in a.run_dirs:
        data, model, cfg = load_run(run_dir, a.data_root)
        if not hasattr(model.head, "offset"):
            print(f"{run_dir}: not a vMF run (model {cfg['model']['name']})")
            continue
        with torch.no_grad():
            k = model.head.posterior(model.encoder(data.test.x)).concentration
        quantiles = torch.quantile(k.double(), torch.tensor(qs, dtype=torch.float64))
        low = (k < 2 * model.head.offset).double().mean().item()
        name = f"{cfg['model']['name']} d={cfg['latent_dim']} seed={cfg['seed']}"
        print(f"{name:<28} " + " ".join(f"{v:9.1f}" for v in quantiles.tolist()) + f" {100 * low:12.2f}%")


if __name__ == "__main__":
    main()
