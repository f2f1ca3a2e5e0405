"""Runs and sweeps under concurrency and refusal, with real processes: a run finished by another
process while this one loaded its data is skipped, not trained again; a sweep's preflight checks
the dependencies of every cell (not only the first) before any cell trains; a job refused inside
Hydra leaves no directory or log behind."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from svae_bench.launch.preflight import check_run_overrides
from svae_bench.launch.sweep import compose_jobs
from svae_bench.tasks import get_task
from svae_bench.tasks.m1m2 import m1_values

TINY = [
    "trainer.max_epochs=2",
    "eval.is_samples=10",
    "eval.knn_repeats=1",
    "eval.knn_labels=[30]",
    "dataset.n_train=600",
    "dataset.n_val=100",
    "dataset.n_test=100",
    "trainer.progress=false",
    "trainer.num_threads=1",
]
RUN = Path("runs/default/synthetic/svae/d=2/beta=1/seed=0")

# a `svae-bench run` whose data loading waits until a flag file exists (and says when it got there)
WAITING_RUN = """
import pathlib, sys, time
import svae_bench.tasks.vae as vae
ready, flag = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
load = vae.build_dataset
def waiting(*args, **kwargs):
    ready.touch()
    deadline = time.time() + 300
    while not flag.exists() and time.time() < deadline:
        time.sleep(0.05)
    return load(*args, **kwargs)
vae.build_dataset = waiting
from svae_bench.cli import main
sys.exit(main(["run", *sys.argv[3:]]))
"""


def fingerprint(run_dir: Path) -> dict[str, tuple[int, str]]:
    return {
        name: ((run_dir / name).stat().st_mtime_ns, hashlib.sha256((run_dir / name).read_bytes()).hexdigest())
        for name in ("result.json", "checkpoint.pt", "config.yaml", "metrics.csv")
    }


def test_a_run_finished_while_another_process_loaded_its_data_is_not_trained_again(tmp_path):
    ready, flag = tmp_path / "ready", tmp_path / "flag"
    late = subprocess.Popen(
        [sys.executable, "-c", WAITING_RUN, str(ready), str(flag), *TINY],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.time() + 120
        while not ready.exists():  # the late process found the run missing and is loading its data
            assert late.poll() is None and time.time() < deadline, "the waiting run never reached its data"
            time.sleep(0.05)
        first = subprocess.run(
            [sys.executable, "-m", "svae_bench", "run", *TINY], cwd=tmp_path, capture_output=True, text=True
        )
        assert first.returncode == 0, first.stderr[-2000:]
        before = fingerprint(tmp_path / RUN)
        flag.touch()
        out, _ = late.communicate(timeout=300)
    finally:
        if late.poll() is None:
            late.kill()
    assert late.returncode == 0, out[-2000:]
    assert "is complete" in out and "skip" in out, out[-2000:]
    assert fingerprint(tmp_path / RUN) == before  # nothing rewritten: not the record, not the weights


M1M2 = [
    "experiment=table3",
    "dataset=synthetic",
    "semisup.labels=30",
    "family=S+N",
    "latent_dim=2",
    "semisup.z2_dim=2",
    "n_seeds=3",
    "trainer.progress=false",
]


def test_a_sweep_whose_third_cells_m1_mismatches_is_refused_before_the_first_cell_trains(tmp_path):
    runs = tmp_path / "runs"
    overrides = [*M1M2, f"runs_root={runs}"]
    jobs = compose_jobs(overrides, multirun=True)
    assert [job.values["seed"] for job in jobs] == [0, 1, 2]
    third = jobs[2]
    (m1_dir,) = get_task("m1m2").dependencies(third.values)
    made_with = m1_values(third.values)
    made_with["trainer"] = {**made_with["trainer"], "lr": 0.05}  # another M1 than the cell would train
    m1_dir.mkdir(parents=True)
    record = {"status": "complete", "task": "vae", "metrics": {"ll": -1.0}, "config": made_with}
    (m1_dir / "result.json").write_text(json.dumps(record))
    problem = check_run_overrides(["-m", *overrides])
    assert problem is not None and "made with other settings" in problem and "trainer.lr" in problem, problem
    assert "seed=2" in problem  # names the job
    # and through the command: exit 2, one line, nothing trained for the first two cells
    out = subprocess.run(
        [sys.executable, "-m", "svae_bench", "run", "-m", *overrides], cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert sorted(p.relative_to(runs).as_posix() for p in runs.rglob("*") if p.is_file()) == [
        m1_dir.relative_to(runs).as_posix() + "/result.json"
    ]


def test_a_job_refused_inside_hydra_leaves_nothing_behind(tmp_path):
    # SVAE_BENCH_DEBUG skips the preflight: the bad value reaches the job, which Hydra has given a
    # directory and a log file; the refusal removes both (and the directories it made)
    env = {**os.environ, "SVAE_BENCH_DEBUG": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "svae_bench", "run", "trainer.lr=-1", "runs_root=runs"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.returncode != 0 and "trainer.lr" in out.stderr
    assert list(tmp_path.iterdir()) == [], sorted(p.as_posix() for p in tmp_path.rglob("*"))


def test_the_job_log_is_the_documented_run_log(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "svae_bench", "run", *TINY], cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    names = {p.name for p in (tmp_path / RUN).iterdir()}
    assert "run.log" in names and not any(n.endswith(".log") and n != "run.log" for n in names), names
    assert "done:" in (tmp_path / RUN / "run.log").read_text()


def test_a_run_directory_whose_record_path_is_a_directory_is_refused_before_anything_is_written(tmp_path):
    (tmp_path / RUN / "result.json").mkdir(parents=True)
    before = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    out = subprocess.run(
        [sys.executable, "-m", "svae_bench", "run", *TINY], cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "result.json is a directory" in out.stderr and "Traceback" not in out.stderr
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == before


def test_too_large_counts_say_the_bound_they_are_over():
    problem = check_run_overrides(["trainer.warmup_epochs=1000000000000"])
    assert problem == "trainer.warmup_epochs=1000000000000 must be an integer >= 0 (at most 1000000000)"
    problem = check_run_overrides(["trainer.patience=1000000000000"])
    assert problem == "trainer.patience=1000000000000 must be a positive integer (at most 1000000000)"
