"""Cost of the SLURM launcher: submission time of a 100-cell array and the overhead per job.

    python scripts/bench_slurm.py [--cells 100] [--fresh-cells 10] [--json FILE]

Uses the cluster of $SLURM_CONF when `sinfo` answers, otherwise starts a one-node cluster with
scripts/local_slurm.sh in a temporary directory and stops it at the end. Cells are cheap runs
(synthetic data, 200 training points, 1 epoch), one per seed:

1. the basic launcher (one process, `svae-bench run -m`) trains the cells, then runs the same
   command again, when every cell skips as complete;
2. `hydra/launcher=slurm` on a copy of those complete runs: the time until sbatch has the array
   (the preflight's expansion and checks, Hydra's sweep, submitit's pickles; an sbatch wrapper
   records when it is called and when it returns), and until every job has skipped;
3. `hydra/launcher=slurm` on --fresh-cells fresh cells, against the basic launcher's time per cell.

The overhead per job is a job's elapsed time (sacct) less the basic launcher's time for the same
cell in its one process: the job's Python start, imports, unpickling and Hydra set-up.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "local_slurm.sh"
CHEAP = [
    "trainer.max_epochs=1",
    "dataset.n_train=200",
    "dataset.n_val=50",
    "dataset.n_test=50",
    "eval.knn_labels=[50]",
    "eval.is_samples=5",
    "eval.knn_repeats=1",
    "eval.latent_plot=false",
    "trainer.progress=false",
    "trainer.num_threads=1",
]


def svae(args: list[str], env: dict, cwd: Path) -> float:
    began = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "svae_bench", *args], env=env, cwd=cwd, capture_output=True, text=True)
    took = time.monotonic() - began
    if out.returncode != 0:
        sys.exit(f"svae-bench {' '.join(args[:4])} ... failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return took


def cluster_answers(env: dict) -> bool:
    if not env.get("SLURM_CONF") or not shutil.which("sinfo"):
        return False
    out = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True, timeout=30)
    return out.returncode == 0 and bool(out.stdout.strip())


def job_times(job: str, env: dict, cells: int) -> list[dict]:
    """sacct's ElapsedRaw, Start and End of the array's tasks, once all are recorded."""
    for _ in range(60):
        out = subprocess.run(
            ["sacct", "-X", "-n", "-P", "-o", "JobID,State,ElapsedRaw,Start,End", "-j", job],
            env=env,
            capture_output=True,
            text=True,
        ).stdout
        rows = [dict(zip(("id", "state", "elapsed", "start", "end"), line.split("|"))) for line in out.splitlines()]
        if len([r for r in rows if r["state"] == "COMPLETED"]) >= cells:
            return rows
        time.sleep(1)
    sys.exit(f"sacct does not show the {cells} tasks of job {job} complete:\n{out}")


def slurm_sweep(cells: list[str], root: Path, tmp: Path, env: dict, n: int, wrapper_log: Path) -> dict:
    launcher = [
        "hydra/launcher=slurm",
        "hydra.launcher.partition=local",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=1",
        "hydra.launcher.timeout_min=10",
        f"hydra.launcher.submitit_folder={tmp}/submitit/%j",
    ]
    wrapper_log.write_text("")
    began = time.time()
    total = svae(["run", "-m", *cells, f"runs_root={root}", *launcher], env, tmp)
    lines = wrapper_log.read_text().split()
    called, answered, job = float(lines[0]), float(lines[1]), lines[2]
    rows = job_times(job, env, n)
    elapsed = [int(r["elapsed"]) for r in rows]
    return {
        "cells": n,
        "until_sbatch_s": round(called - began, 2),
        "sbatch_s": round(answered - called, 2),
        "submission_s": round(answered - began, 2),
        "total_s": round(total, 1),
        "job_elapsed_mean_s": round(statistics.mean(elapsed), 2),
        "job_elapsed_min_s": min(elapsed),
        "job_elapsed_max_s": max(elapsed),
        "wall_per_job_s": round(total / n, 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cells", type=int, default=100, help="cells of the array that skips (default 100)")
    p.add_argument("--fresh-cells", type=int, default=10, help="cells trained through SLURM (default 10)")
    p.add_argument("--json", type=Path, help="also write the numbers here")
    args = p.parse_args()

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_JOB", "SLURM_ARRAY", "SBATCH_"))}
    tmp = Path(tempfile.mkdtemp(prefix="svae-bench-slurm-"))
    tmp.chmod(0o755)
    started = None
    try:
        if not cluster_answers(env):
            started = tmp / "cluster"
            out = subprocess.run(["bash", str(SCRIPT), "start", str(started)], env=env, text=True)
            if out.returncode != 0:
                sys.exit(f"no SLURM cluster (scripts/local_slurm.sh start: exit {out.returncode})")
            env["SLURM_CONF"] = str(started / "etc" / "slurm.conf")
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        wrapper_log = tmp / "sbatch.times"
        (bin_dir / "sbatch").write_text(
            "#!/bin/sh\n"
            f"date +%s.%N >> {wrapper_log}\n"
            f'out=$({shutil.which("sbatch")} "$@")\n'
            "rc=$?\n"
            f"date +%s.%N >> {wrapper_log}\n"
            f'echo "$out" | sed -n "s/^Submitted batch job //p" >> {wrapper_log}\n'
            'echo "$out"\n'
            "exit $rc\n"
        )
        (bin_dir / "sbatch").chmod(0o755)
        env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
        nodes = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %c"], env=env, capture_output=True, text=True).stdout

        cells = [f"seed=range({args.cells})", *CHEAP]
        basic_root = tmp / "basic"
        basic_fresh = svae(["run", "-m", *cells, f"runs_root={basic_root}"], env, tmp)
        basic_skip = svae(["run", "-m", *cells, f"runs_root={basic_root}"], env, tmp)
        shutil.copytree(basic_root, tmp / "slurm_skip")
        skip = slurm_sweep(cells, tmp / "slurm_skip", tmp, env, args.cells, wrapper_log)
        fresh_cells = [f"seed=range({args.fresh_cells})", *CHEAP]
        fresh = slurm_sweep(fresh_cells, tmp / "slurm_fresh", tmp, env, args.fresh_cells, wrapper_log)

        per_fresh, per_skip = basic_fresh / args.cells, basic_skip / args.cells
        result = {
            "nodes": nodes.strip(),
            "basic": {
                "cells": args.cells,
                "fresh_s": round(basic_fresh, 1),
                "skip_s": round(basic_skip, 1),
                "fresh_per_cell_s": round(per_fresh, 3),
                "skip_per_cell_s": round(per_skip, 3),
            },
            "slurm_skip": {**skip, "overhead_per_job_s": round(skip["job_elapsed_mean_s"] - per_skip, 2)},
            "slurm_fresh": {**fresh, "overhead_per_job_s": round(fresh["job_elapsed_mean_s"] - per_fresh, 2)},
        }
        b, s, f = result["basic"], result["slurm_skip"], result["slurm_fresh"]
        print(f"cluster: {result['nodes']} (node, CPUs); cells: {' '.join(CHEAP)}")
        print(
            f"basic launcher, {b['cells']} cells: {b['fresh_s']} s trained ({b['fresh_per_cell_s']} s per cell), "
            f"{b['skip_s']} s when all skip ({b['skip_per_cell_s']} s per cell)"
        )
        for name, r in (("complete, all skip", s), ("fresh", f)):
            print(
                f"slurm, {r['cells']} cells {name}: submitted in {r['submission_s']} s "
                f"(sbatch called after {r['until_sbatch_s']} s, answered in {r['sbatch_s']} s); "
                f"all done after {r['total_s']} s ({r['wall_per_job_s']} s per job on the node); "
                f"job elapsed {r['job_elapsed_mean_s']} s mean ({r['job_elapsed_min_s']}-{r['job_elapsed_max_s']}); "
                f"overhead per job vs the basic launcher: {r['overhead_per_job_s']} s"
            )
        if args.json:
            args.json.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        if started is not None:
            subprocess.run(["bash", str(SCRIPT), "stop", str(started)], env=env)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
