"""Time one training-style step (rsample + KL to the uniform + backward) per latent family.

Usage:
    python scripts/bench_distributions.py [--threads 2] [--repeats 7] [--quick]

For float32 on CPU it prints, per batch size in {64, 1024}, ambient dimension m
in {3, 6, 11, 21, 41} and concentration k in {10, 50, 100}, the median time in
milliseconds of one step for

* vMF: svae_bench.distributions.VonMisesFisher (exact sampler, implicit gradient),
* PS: svae_bench.distributions.PowerSpherical,
* Gauss: torch.distributions.Normal with N(0, I) prior (the floor),

and the ratio vMF / Gauss. Argument validation is off for all three, as in a
training loop. Timings are medians over --repeats blocks, interleaving the
families so that machine noise hits all of them alike.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.distributions import Normal, kl_divergence

from svae_bench.distributions import HypersphericalUniform, PowerSpherical, VonMisesFisher


def make_step(family: str, batch: int, m: int, k: float):
    torch.manual_seed(0)
    loc_raw = torch.randn(batch, m, requires_grad=True)
    k_raw = torch.full((batch,), k, requires_grad=True)
    scale_raw = torch.zeros(batch, m, requires_grad=True)
    weight = torch.randn(m)
    uniform = HypersphericalUniform(m)
    prior = Normal(torch.zeros(()), torch.ones(()))

    if family == "vmf":
        def step():
            q = VonMisesFisher(torch.nn.functional.normalize(loc_raw, dim=-1), k_raw)
            (q.rsample() @ weight + kl_divergence(q, uniform)).sum().backward()
    elif family == "ps":
        def step():
            q = PowerSpherical(torch.nn.functional.normalize(loc_raw, dim=-1), k_raw)
            (q.rsample() @ weight + kl_divergence(q, uniform)).sum().backward()
    else:
        def step():
            q = Normal(loc_raw, scale_raw.exp())
            (q.rsample() @ weight + kl_divergence(q, prior).sum(-1)).sum().backward()
    return step


def time_block(step, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - t0) / n * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7, help="timed blocks per cell (median reported)")
    parser.add_argument("--quick", action="store_true", help="only batch 64, m = 11, k = 50")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.distributions.Distribution.set_default_validate_args(False)

    cells = [(64, 11, 50.0)] if args.quick else [
        (b, m, k) for b in (64, 1024) for m in (3, 6, 11, 21, 41) for k in (10.0, 50.0, 100.0)
    ]
    print(f"torch {torch.__version__}, {args.threads} threads, float32 CPU; ms per step (median of {args.repeats})")
    print(f"{'batch':>5} {'m':>3} {'k':>5} {'vMF':>8} {'PS':>8} {'Gauss':>8} {'vMF/Gauss':>9}")
    for batch, m, k in cells:
        steps = {f: make_step(f, batch, m, k) for f in ("vmf", "ps", "gauss")}
        n = 200 if batch == 64 else 40
        for step in steps.values():  # warm-up
            time_block(step, n // 4)
        times: dict[str, list[float]] = {f: [] for f in steps}
        for _ in range(args.repeats):
            for f, step in steps.items():
                times[f].append(time_block(step, n))
        med = {f: statistics.median(v) for f, v in times.items()}
        print(
            f"{batch:>5} {m:>3} {k:>5.0f} {med['vmf']:>8.3f} {med['ps']:>8.3f} {med['gauss']:>8.3f}"
            f" {med['vmf'] / med['gauss']:>9.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
