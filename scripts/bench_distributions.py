"""Time one training-style step (rsample + KL to the uniform + backward) per latent family.

Usage:
    python scripts/bench_distributions.py [--threads 2] [--repeats 7] [--quick] [--official]
        [--batches 64 1024] [--dims 3 6 11 21 41] [--ks 10 50 100] [--compile]

For float32 on CPU it prints, per batch size in {64, 1024}, ambient dimension m
in {3, 6, 11, 21, 41} and concentration k in {10, 50, 100}, the median time in
milliseconds of one step for

* vMF: svae_bench.distributions.VonMisesFisher (exact sampler, implicit gradient),
* PS: svae_bench.distributions.PowerSpherical,
* Gauss: torch.distributions.Normal with N(0, I) prior (the floor),
* with --official, "Off.": a re-implementation of the official s-vae-pytorch
  algorithm as ../shared/paper/NOTES.md describes it (SciPy `ive` on the host
  for the Bessel terms, a Python while-loop over a mask with one Beta proposal
  per row per round, float64 sampling, Householder with a 1e-5 fudge), to
  measure the speed-up against the structure of the official code,

and the ratios vMF / Gauss and vMF / PS. Argument validation is off for all
three, as in a training loop. Timings are medians over --repeats blocks,
interleaving the families so that machine noise hits all of them alike.

With --compile, each family's whole step (forward and backward) is also run
through ``torch.compile`` (inductor; the vMF step has one graph break, where the
sampler's draws run eagerly) and timed the same way, after compiling outside
the timed blocks. Targets (issue 16): eager vMF <= 2.5x Gauss at batch 64
(m = 3, 11, 41), <= 2x PS at batch 1024; compiled vMF <= 1.5x compiled Gauss
at batch 64.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
from torch.distributions import Normal, kl_divergence

from svae_bench.distributions import HypersphericalUniform, PowerSpherical, VonMisesFisher, log_sphere_surface


class _HostIve(torch.autograd.Function):
    """scipy.special.ive through the host, as the official code does (for timing only)."""

    @staticmethod
    def forward(ctx, v, z):
        import scipy.special

        ctx.save_for_backward(z)
        ctx.v = v
        return torch.as_tensor(scipy.special.ive(v, z.detach().cpu().numpy()), dtype=z.dtype).to(z.device)

    @staticmethod
    def backward(ctx, grad):
        (z,) = ctx.saved_tensors
        v = ctx.v
        return None, grad * (_HostIve.apply(v - 1, z) - _HostIve.apply(v, z) * (v + z) / z)


def official_style_step(loc_raw, k_raw, weight):
    """One step with the official algorithm's structure (see module docstring)."""
    m = loc_raw.shape[-1]
    loc = torch.nn.functional.normalize(loc_raw, dim=-1)
    k = k_raw.unsqueeze(-1)
    k64 = k.detach().double()
    b = (-2 * k64 + torch.sqrt(4 * k64**2 + (m - 1) ** 2)) / (m - 1)
    a = (m - 1 + 2 * k64 + torch.sqrt(4 * k64**2 + (m - 1) ** 2)) / 4
    d = 4 * a * b / (1 + b) - (m - 1) * math.log(m - 1)
    w = torch.zeros_like(k64)
    todo = torch.ones_like(k64, dtype=torch.bool)
    beta = torch.distributions.Beta(torch.tensor((m - 1) / 2.0), torch.tensor((m - 1) / 2.0))
    while todo.sum() != 0:  # one proposal per row per round, a host sync each round
        e = beta.sample(k64.shape).double()
        u = torch.rand_like(k64)
        w_ = (1 - (1 + b) * e) / (1 - (1 - b) * e)
        log_t = 2 * a * b / (1 - (1 - b) * e)
        accept = (m - 1) * torch.log(log_t) - log_t + d > torch.log(u)
        new = todo & accept
        w[new] = w_[new]
        todo &= ~accept
    v = torch.randn(*k64.shape[:-1], m - 1, dtype=torch.float64)
    v = v / v.norm(dim=-1, keepdim=True)
    x = torch.cat([w, torch.sqrt(1 - w**2) * v], -1)
    e1 = torch.zeros(m)
    e1[0] = 1
    u = (e1 - loc).double()
    u = u / (u.norm(dim=-1, keepdim=True) + 1e-5)
    z = (x - 2 * (x * u).sum(-1, keepdim=True) * u).float()
    ratio = _HostIve.apply(m / 2, k) / _HostIve.apply(m / 2 - 1, k)
    log_norm = (
        (m / 2 - 1) * torch.log(k) - (m / 2) * math.log(2 * math.pi) - (k + torch.log(_HostIve.apply(m / 2 - 1, k)))
    )
    entropy = -k * ratio + log_norm
    kl = -entropy.squeeze(-1) + log_sphere_surface(m)
    (z @ weight + kl).sum().backward()


def make_step(family: str, batch: int, m: int, k: float, compiled: bool = False):
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
    elif family == "official":

        def step():
            official_style_step(loc_raw, k_raw, weight)
    else:

        def step():
            q = Normal(loc_raw, scale_raw.exp())
            (q.rsample() @ weight + kl_divergence(q, prior).sum(-1)).sum().backward()

    if compiled:
        # the whole step, backward included (dynamo traces .backward() as a graph break, and
        # AOTAutograd compiles the backward of each graph)
        return torch.compile(step)
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
    parser.add_argument("--official", action="store_true", help="also time the official-style algorithm")
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 1024])
    parser.add_argument("--dims", type=int, nargs="+", default=[3, 6, 11, 21, 41])
    parser.add_argument("--ks", type=float, nargs="+", default=[10.0, 50.0, 100.0])
    parser.add_argument("--compile", action="store_true", help="also time each step under torch.compile")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.distributions.Distribution.set_default_validate_args(False)

    cells = [(64, 11, 50.0)] if args.quick else [(b, m, k) for b in args.batches for m in args.dims for k in args.ks]
    print(f"torch {torch.__version__}, {args.threads} threads, float32 CPU; ms per step (median of {args.repeats})")
    families = ("vmf", "ps", "gauss") + (("official",) if args.official else ())
    header = f"{'batch':>5} {'m':>3} {'k':>5} {'vMF':>8} {'PS':>8} {'Gauss':>8} {'vMF/Gauss':>9} {'vMF/PS':>6}"
    if args.official:
        header += f" {'Off.':>8} {'Off./vMF':>8}"
    if args.compile:
        header += f" {'c.vMF':>8} {'c.Gauss':>8} {'c.vMF/c.Gauss':>13}"
    print(header)
    for batch, m, k in cells:
        steps = {f: make_step(f, batch, m, k) for f in families}
        if args.compile:
            steps |= {f"c.{f}": make_step(f, batch, m, k, compiled=True) for f in ("vmf", "gauss")}
        n = 200 if batch == 64 else 40
        for step in steps.values():  # warm-up (compiles the compiled steps)
            time_block(step, n // 4)
        times: dict[str, list[float]] = {f: [] for f in steps}
        for _ in range(args.repeats):
            for f, step in steps.items():
                times[f].append(time_block(step, n))
        med = {f: statistics.median(v) for f, v in times.items()}
        line = (
            f"{batch:>5} {m:>3} {k:>5.0f} {med['vmf']:>8.3f} {med['ps']:>8.3f} {med['gauss']:>8.3f}"
            f" {med['vmf'] / med['gauss']:>9.2f} {med['vmf'] / med['ps']:>6.2f}"
        )
        if args.official:
            line += f" {med['official']:>8.3f} {med['official'] / med['vmf']:>8.2f}"
        if args.compile:
            line += f" {med['c.vmf']:>8.3f} {med['c.gauss']:>8.3f} {med['c.vmf'] / med['c.gauss']:>13.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
