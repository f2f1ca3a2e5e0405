#!/usr/bin/env python
"""Time the expansion and the preflight of a large sweep (what `svae-bench status` and `run -m` do
before anything runs). Target: 10^4 cells in seconds, linear in the number of cells.

    python scripts/bench_sweep_expansion.py [--cells 10000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from svae_bench.launch.preflight import check_run_overrides
from svae_bench.launch.sweep import compose_jobs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=10_000, help="cells of the sweep (a multiple of 10)")
    args = p.parse_args()
    os.chdir(tempfile.mkdtemp())
    for n in (args.cells // 10, args.cells):
        sweep = ["latent_dim=range(1,11)", f"seed=range({n // 10})"]
        t0 = time.perf_counter()
        jobs = compose_jobs(sweep, multirun=True)
        expand = time.perf_counter() - t0
        t0 = time.perf_counter()
        problem = check_run_overrides(["-m", *sweep])
        preflight = time.perf_counter() - t0
        assert problem is None and len(jobs) == n, problem
        print(
            f"{n:>6} cells: expansion {expand:6.2f} s ({1e3 * expand / n:.2f} ms/cell), "
            f"preflight {preflight:6.2f} s ({1e3 * preflight / n:.2f} ms/cell)"
        )


if __name__ == "__main__":
    main()
