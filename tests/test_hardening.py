"""Regression tests from an adversarial pass: late validation, run directories outside the runs
root, blow-ups that escaped the NaN handling, races between identical runs, sweeps that wrote
before checking data, absurd records, inconsistent checkpoints, leftovers of a kill."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

import svae_bench.launch.resolvers  # noqa: F401  (registers the svae_fmt resolver)
from svae_bench.checks import check_inside
from svae_bench.errors import ConfigError
from svae_bench.launch.preflight import check_run_overrides
from svae_bench.launch.sweep import compose_jobs
from svae_bench.records import RunLock, is_locked, run_state, write_json_atomic
from svae_bench.tasks.vae_checks import check_run_config

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TINY = [
    "trainer.max_epochs=2",
    "trainer.patience=100",
    "eval.is_samples=5",
    "eval.knn_repeats=1",
    "dataset.n_train=1200",
    "dataset.n_val=100",
    "dataset.n_test=100",
    "trainer.progress=false",
    "trainer.num_threads=1",
]
RUN = Path("runs/default/synthetic/svae/d=2/beta=1/seed=0")


def cli(cwd: Path, *args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "svae_bench", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


# --------------------------------------------------------------------------- 2: every value checked first

BAD_VALUES = [
    (["seed=-1"], "seed=-1 must be an integer >= 0"),
    (["seed=2147483648"], "seed=2147483648 must be an integer >= 0 (at most 2147483647)"),
    (["seed=12345678901234567890123"], "seed=12345678901234567890123 must be an integer"),
    (["beta=nan"], "beta=nan must be a finite number >= 0"),
    (["beta=inf"], "beta=inf must be a finite number >= 0"),
    (["beta=-inf"], "beta=-inf must be a finite number >= 0"),
    (["latent_dim=${nosuch}"], "latent_dim cannot be resolved: Interpolation key 'nosuch' not found"),
    (["latent_dim=1000000000000000000000000000000"], "latent_dim=1000000000000000000000000000000 must be"),
    (["dataset.noise_std=nan"], "dataset.noise_std=nan must be a finite number >= 0"),
    (["dataset.concentration=0"], "dataset.concentration=0 must be a number > 0"),
    (["dataset.data_seed=-5"], "dataset.data_seed=-5 must be an integer >= 0"),
    (["dataset.n_test=0"], "dataset.n_test=0 must be a positive integer"),
    (["trainer.lr=inf"], "trainer.lr=inf must be a finite number > 0"),
    (["trainer.num_threads=0"], "trainer.num_threads=0 must be a positive integer"),
    (["trainer.nan_lr_factor=2"], "trainer.nan_lr_factor=2 must be a number > 0 and <= 1"),
    (["model.hidden_dims=[0]"], "model.hidden_dims=[0] must be a list of positive integers"),
    (["model.concentration_offset=nan"], "model.concentration_offset=nan must be a finite number >= 0"),
    (["model.activation=gelu"], "model.activation='gelu' must be one of relu"),
    (["eval.knn_neighbors=200"], "eval.knn_neighbors=200 must be at most the smallest number of labels"),
    (["eval.latent_plot=3"], "eval.latent_plot=3 must be true or false"),
    (["dataset=mnist", "dataset.n_val=60000"], "dataset.n_val=60000 must be an integer >= 1 (at most 59999)"),
    (["-m", "seed=0,-1"], "seed=-1 must be an integer >= 0 (at most 2147483647) (sweep job"),
    (["-m", "beta=1,nan"], "beta=nan must be a finite number >= 0"),
    # no -m, but the experiment sets hydra.mode=MULTIRUN: a sweep, every job checked, the second one bad
    (
        ["experiment=table1", "dataset=mnist", "latent_dim=2,0"],
        "latent_dim=0 must be an integer >= 1 (at most 100000) (sweep job",
    ),
]


@pytest.mark.parametrize("args,expected", BAD_VALUES, ids=[" ".join(a) for a, _ in BAD_VALUES])
def test_every_value_is_checked_before_the_run(args, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    problem = check_run_overrides([*args, f"dataset.data_root={SHARED}"] if "dataset=mnist" in args else args)
    assert problem is not None and expected in problem, problem
    assert "\n" not in problem


def test_a_bad_seed_exits_2_before_anything_is_written(tmp_path):
    for args in (["seed=-1"], ["-m", "seed=0,-1"], ["beta=nan"], ["latent_dim=${nosuch}"]):
        out = cli(tmp_path, "run", *TINY, *args)
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        assert out.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), out.stderr
        assert "Traceback" not in out.stderr and not files_under(tmp_path), files_under(tmp_path)


def hydra_cfg(*overrides: str):
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module("svae_bench.conf", version_base="1.3"):
            return compose("config", overrides=list(overrides))
    finally:
        GlobalHydra.instance().clear()


def test_run_one_checks_its_values_itself(tmp_path):
    """Without the preflight (SVAE_BENCH_DEBUG=1, or a library caller), run_one refuses before writing."""
    from svae_bench.tasks.harness import run_one

    cfg = hydra_cfg(*TINY, "seed=-1")
    with pytest.raises(ConfigError, match="seed=-1"):
        run_one(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_check_run_config_accepts_every_shipped_experiment():
    for args in (
        ["experiment=table1", "budget=paper"],
        ["experiment=table2", "budget=laptop"],
        ["experiment=synthetic_figure"],
        ["experiment=mnist_latent"],
        ["model=psvae"],
        ["model=ae"],
    ):
        for job in compose_jobs(args, multirun=True)[:3]:
            check_run_config(job.values)


# --------------------------------------------------------------------------- 3: run directories stay inside

NAME = "must be a name of letters, digits and _ . + = - (no path separators, not starting with a dot)"


@pytest.mark.parametrize(
    "args,expected",
    [
        (["experiment_name=../../escaped"], NAME),
        (["model.name=../../../x"], NAME),
        (["-m", "experiment_name=/tmp/svae_bench_escaped", "seed=0,1"], NAME),
        (["experiment_name=.."], NAME),
        (["budget_name=x/../../y"], NAME),
        (["dataset.name=a/b"], "dataset.name='a/b' is unknown"),
    ],
)
def test_names_from_the_config_cannot_leave_the_runs_root(args, expected, tmp_path):
    out = cli(tmp_path, "run", *TINY, *args)
    assert out.returncode == 2 and expected in out.stderr, out.stderr
    assert not files_under(tmp_path) and not Path("/tmp/svae_bench_escaped").exists()


def test_the_run_directory_must_resolve_inside_the_runs_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    problem = check_run_overrides(["hydra.sweep.subdir=../outside"])
    assert problem is not None and "is outside runs_root=runs" in problem
    check_inside(tmp_path / "runs" / "a" / "b", tmp_path / "runs")
    with pytest.raises(ConfigError, match="outside"):
        check_inside(tmp_path / "runs" / ".." / "x", tmp_path / "runs")


# --------------------------------------------------------------------------- 4: blow-ups go through rollback


def test_an_overflowing_learning_rate_ends_in_a_failed_record(tmp_path):
    out = cli(tmp_path, "run", *TINY, "trainer.lr=1e8")
    assert out.returncode == 1, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    record = json.loads((tmp_path / RUN / "result.json").read_text())
    assert record["status"] == "failed" and "metrics" not in record
    assert "non-finite" in record["reason"]
    state, status = run_state(tmp_path / RUN)
    assert state == "failed" and status["status"] == "failed"
    assert not (tmp_path / RUN / "state.pt").exists() or state == "failed"


def test_a_value_error_from_non_finite_weights_is_rolled_back(monkeypatch):
    """A distribution's argument check raising inside a step is a numerical fault, not a crash."""
    from svae_bench.data import build_dataset
    from svae_bench.tasks.vae import model_for
    from svae_bench.tasks.vae_objective import train_vae

    cfg = hydra_cfg(*TINY, "trainer.max_epochs=2", "trainer.nan_lr_factor=0.5")
    torch.manual_seed(0)
    data = build_dataset(cfg.dataset)
    model = model_for(cfg.model, 2, data)
    original, calls = model.terms, {"n": 0}

    def poisoned(x):
        calls["n"] += 1
        if calls["n"] == 5:  # the weights overflowed: the posterior's argument check refuses its loc
            raise ValueError(
                "Expected parameter loc (Tensor of shape (64, 3)) of distribution VonMisesFisher "
                "to satisfy the constraint UnitSphere(), but found invalid values"
            )
        return original(x)

    monkeypatch.setattr(model, "terms", poisoned)
    result = train_vae(model, data, cfg.trainer, 1.0, 0)
    faults = [e for e in result.events if e["event"] == "non_finite"]
    assert len(faults) == 1 and faults[0]["step"] == 5 and faults[0]["lr"] == pytest.approx(5e-4)
    assert result.epochs == 2


def test_an_unrelated_error_in_a_step_is_not_swallowed(monkeypatch):
    from svae_bench.data import build_dataset
    from svae_bench.tasks.vae import model_for
    from svae_bench.tasks.vae_objective import train_vae

    cfg = hydra_cfg(*TINY)
    data = build_dataset(cfg.dataset)
    model = model_for(cfg.model, 2, data)
    monkeypatch.setattr(model, "terms", lambda x: (_ for _ in ()).throw(RuntimeError("shape mismatch (a bug)")))
    with pytest.raises(RuntimeError, match="a bug"):
        train_vae(model, data, cfg.trainer, 1.0, 0)


def test_an_unexpected_error_marks_the_run_failed_not_running(tmp_path, monkeypatch):
    import svae_bench.tasks.harness as run_module
    import svae_bench.tasks.vae as vae_task

    def broken(*args, **kwargs):
        raise RuntimeError("evaluation broke")

    monkeypatch.setattr(vae_task, "evaluate", broken)
    cfg = hydra_cfg(*TINY, "trainer.max_epochs=1")
    with pytest.raises(RuntimeError, match="evaluation broke"):
        run_module.run_one(cfg, tmp_path / "run")
    state, status = run_state(tmp_path / "run")
    assert state == "failed" and "RuntimeError: evaluation broke" in status["reason"]
    assert not (tmp_path / "run" / "result.json").exists()


# --------------------------------------------------------------------------- 5: one process per run


def test_a_held_lock_makes_a_second_process_skip(tmp_path):
    run_dir = tmp_path / RUN
    lock = RunLock(run_dir)
    assert lock.acquire()
    try:
        assert is_locked(run_dir) and run_state(run_dir)[0] == "running"
        assert not RunLock(run_dir).acquire()  # a second descriptor, even in the same process
        out = cli(tmp_path, "run", *TINY)
        assert out.returncode == 0 and f"is being run by process {os.getpid()}" in out.stderr + out.stdout
        assert not (run_dir / "result.json").exists() and not (run_dir / "status.json").exists()
    finally:
        lock.release()
    assert not is_locked(run_dir)
    out = cli(tmp_path, "run", *TINY)  # the lock file of a finished holder is no obstacle
    assert out.returncode == 0 and json.loads((run_dir / "result.json").read_text())["status"] == "complete"


def test_two_identical_runs_started_together_train_once(tmp_path):
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "svae_bench", "run", *TINY, "trainer.max_epochs=4"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    trained = [o for o in outputs if "done:" in o]
    skipped = [o for o in outputs if "is being run by" in o or "is complete (force=true" in o]
    assert len(trained) == 1 and len(skipped) == 1, outputs
    record = json.loads((tmp_path / RUN / "result.json").read_text())
    assert record["resumed_from_epoch"] == 0 and record["events"] == []


def test_a_lock_left_by_a_killed_process_is_recovered(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; from svae_bench.records import RunLock; "
                f"assert RunLock({str(tmp_path / RUN)!r}).acquire(); print('held', flush=True); time.sleep(600)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert is_locked(tmp_path / RUN)
    finally:
        holder.kill()
        holder.wait(timeout=60)
    assert not is_locked(tmp_path / RUN)
    out = cli(tmp_path, "run", *TINY)
    assert out.returncode == 0 and "done:" in out.stderr + out.stdout


# --------------------------------------------------------------------------- 6: data checked before Hydra


@pytest.mark.parametrize("root", ["{tmp}/nope", "{tmp}/empty"])
def test_a_sweep_with_missing_data_writes_nothing(tmp_path, root):
    (tmp_path / "empty").mkdir()
    out = cli(tmp_path, "run", "-m", "dataset=mnist", f"dataset.data_root={root.format(tmp=tmp_path)}", "seed=0,1")
    assert out.returncode == 2 and ("does not exist" in out.stderr or "is missing" in out.stderr), out.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "multirun.yaml").exists()


def test_a_flipped_byte_inside_a_gzip_idx_is_a_one_line_error(tmp_path):
    from svae_bench.data.mnist import read_idx

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    payload = bytes(range(256)) * 40
    blob = bytearray(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x27\x10" + payload))
    blob[len(blob) // 2] ^= 0xFF  # inside the deflate stream: zlib.error, not BadGzipFile
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(bytes(blob))
    with pytest.raises(ConfigError, match="is corrupt"):
        read_idx(raw, "t10k-labels-idx1-ubyte")


# --------------------------------------------------------------------------- 7: absurd records

GOOD = {
    "status": "complete",
    "experiment": "e",
    "model": "svae",
    "dataset": "synthetic",
    "latent_dim": 2,
    "beta": 1.0,
    "seed": 0,
    "metrics": {"ll": -1.0, "elbo": -2.0, "re": -1.5, "kl": 0.5, "knn_acc": {"100": 0.9}},
}


def absurd_records(root: Path) -> dict[str, str]:
    """Write one good record and many absurd ones; name -> text expected in its skip reason."""

    def put(name: str, text: str) -> Path:
        (root / name).mkdir(parents=True)
        (root / name / "result.json").write_text(text)
        return root / name

    put("good", json.dumps(GOOD))
    digits400, digits5000 = "9" * 400, "9" * 5000
    put("ll400", json.dumps(GOOD).replace('"ll": -1.0', f'"ll": {digits400}'))
    put("ll5000", json.dumps(GOOD).replace('"ll": -1.0', f'"ll": {digits5000}'))
    put("deep", "[" * 100_000 + "]" * 100_000)
    put("seed30", json.dumps({**GOOD, "seed": 10**30}))
    put("dim30", json.dumps({**GOOD, "latent_dim": 10**30}))
    put("beta400", json.dumps(GOOD).replace('"beta": 1.0', f'"beta": {digits400}'))
    put("knnkey", json.dumps({**GOOD, "metrics": {**GOOD["metrics"], "knn_acc": {digits400: 0.5}}}))
    put("epochs30", json.dumps({**GOOD, "seed": 1, "epochs": 10**30, "train_seconds": 10**400}))
    (root / "dir" / "result.json").mkdir(parents=True)
    (root / "fifo").mkdir()
    os.mkfifo(root / "fifo" / "result.json")
    return {
        "ll400": "not finite",
        "ll5000": "invalid JSON",
        "deep": "nested too deeply",
        "seed30": "seed is not an integer from 0 to",
        "dim30": "latent_dim is not an integer from 1 to",
        "beta400": "beta is not a finite number",
        "knnkey": "knn_acc key",
        "dir": "is a directory",
        "fifo": "not a regular file",
    }


def test_tables_skip_absurd_records_with_their_reason(tmp_path):
    expected = absurd_records(tmp_path / "runs")
    out = cli(tmp_path, "tables", "--runs", "runs", "--out", "tables", timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    for name, reason in expected.items():
        line = next((x for x in out.stderr.splitlines() if f"/{name}/result.json" in x), "")
        assert line.startswith("skipped") and reason in line, (name, line, out.stderr[-3000:])
    runs = (tmp_path / "tables" / "runs.csv").read_text().splitlines()
    assert len(runs) == 3  # header, the good record, and epochs30 (its bad bookkeeping fields become empty)


def test_status_never_blocks_on_a_fifo(tmp_path):
    run_dir = tmp_path / "runs" / "x"
    run_dir.mkdir(parents=True)
    os.mkfifo(run_dir / "status.json")
    os.mkfifo(run_dir / "config.yaml")
    out = cli(tmp_path, "status", "--runs", "runs", timeout=60)
    assert out.returncode == 0 and "interrupted" in out.stdout, out.stdout + out.stderr


def test_a_huge_pid_in_status_json_is_not_a_crash(tmp_path):
    run_dir = tmp_path / RUN
    write_json_atomic(
        run_dir / "status.json",
        {"status": "running", "host": os.uname().nodename, "pid": 10**20, "updated": time.time()},
    )
    assert run_state(run_dir)[0] == "interrupted"
    assert cli(tmp_path, "status", "--runs", "runs", timeout=60).returncode == 0
    out = cli(tmp_path, "run", *TINY)
    assert out.returncode == 0 and "done:" in out.stderr + out.stdout, out.stderr[-2000:]


# --------------------------------------------------------------------------- 8, 9: checkpoints and leftovers


def test_a_state_with_wrong_shapes_is_set_aside_and_the_run_restarts(tmp_path):
    """A readable state.pt whose tensors do not fit the model: restart from scratch, same numbers."""
    import svae_bench.tasks.harness as run_module
    from svae_bench.tasks.vae import VaeTask
    from svae_bench.training.state import load_state, save_state

    (tmp_path / "ref").mkdir()
    assert cli(tmp_path / "ref", "run", *TINY).returncode == 0
    reference = json.loads((tmp_path / "ref" / RUN / "result.json").read_text())

    # A real state after epoch 1 (as a kill leaves it), then its weights replaced by wrong shapes.
    state_dir = tmp_path / "work" / RUN
    from svae_bench.data import build_dataset
    from svae_bench.tasks.vae import model_for
    from svae_bench.tasks.vae_objective import train_vae

    cfg = hydra_cfg(*TINY)
    torch.manual_seed(0)
    data = build_dataset(cfg.dataset)
    model = model_for(cfg.model, 2, data)
    one_epoch = hydra_cfg(*TINY, "trainer.max_epochs=1").trainer
    train_vae(
        model,
        data,
        one_epoch,
        1.0,
        0,
        run_dir=state_dir,
        resume_config=run_module.resume_values(cfg, VaeTask.resume_ignored),
    )
    state = load_state(state_dir)
    state["model"] = {k: torch.zeros(3, 3) for k in state["model"]}
    save_state(state_dir, state)

    out = cli(tmp_path / "work", "run", *TINY)
    assert out.returncode == 0, out.stderr[-3000:]
    record = json.loads((state_dir / "result.json").read_text())
    assert [e["event"] for e in record["events"]] == ["corrupt_checkpoint"]
    assert "does not fit this run" in record["events"][0]["detail"]
    assert record["metrics"] == reference["metrics"] and record["resumed_from_epoch"] == 0


def test_skipping_a_complete_run_finishes_its_cleanup(tmp_path):
    out = cli(tmp_path, "run", *TINY)
    assert out.returncode == 0
    run_dir = tmp_path / RUN
    before = (run_dir / "result.json").read_bytes()
    # what a kill between result.json and the clean-up leaves behind
    (run_dir / "state.pt").write_bytes(b"stale")
    (run_dir / ".status.json.abc123.tmp").write_text("{")
    write_json_atomic(
        run_dir / "status.json", {"status": "running", "host": "elsewhere", "pid": 1, "updated": time.time()}
    )
    out = cli(tmp_path, "run", *TINY)
    assert out.returncode == 0 and "is complete" in out.stderr + out.stdout
    assert not (run_dir / "state.pt").exists() and not list(run_dir.glob(".*.tmp"))
    assert json.loads((run_dir / "status.json").read_text())["status"] == "complete"
    assert (run_dir / "result.json").read_bytes() == before
    assert run_state(run_dir)[0] == "complete"


# --------------------------------------------------------------------------- 10: fast sweep expansion, same jobs


def test_fast_sweep_expansion_equals_composing_every_job(monkeypatch, tmp_path):
    """The in-place expansion gives each job exactly the config Hydra composes for it alone,
    including values that interpolate swept keys (experiment_name: table1_${budget_name})."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from svae_bench.checks import resolved

    monkeypatch.chdir(tmp_path)
    sweep = [
        "experiment=table1",
        "budget=laptop,paper",
        "model=nvae,svae",
        "latent_dim=2,10",
        "seed=0,1",
        "beta=0.5,1",
        "eval.knn_labels=[100],[100,600]",
        "runs_root=R",
        "budget_name=x,y",
    ]
    jobs = compose_jobs(sweep, multirun=True)
    parser = OverridesParser.create()
    expected = [job for batch in BasicSweeper.split_arguments(parser.parse_overrides(sweep), None) for job in batch]
    assert len(jobs) == len(expected) == 2**7
    GlobalHydra.instance().clear()
    with initialize_config_module("svae_bench.conf", version_base="1.3"):
        for job, lines in list(zip(jobs, expected))[::7]:
            cfg = compose("config", overrides=list(lines), return_hydra_config=True)
            assert job.values == resolved(cfg, exclude=("hydra",)), lines
            assert job.run_dir == Path(cfg.hydra.sweep.dir) / cfg.hydra.sweep.subdir
    GlobalHydra.instance().clear()
    assert {j.values["experiment_name"] for j in jobs} == {"table1_x", "table1_y"}  # ${budget_name}, swept


def test_figures_find_runs_skips_fifos_and_absurd_records(tmp_path):
    from svae_bench.report.figures import find_runs

    expected = absurd_records(tmp_path / "runs")
    (tmp_path / "runs" / "good" / "latent.npz").write_bytes(b"")
    assert expected and find_runs(tmp_path / "runs", seed=0, latent_dim=2) == [tmp_path / "runs" / "good"]


def test_a_state_pt_directory_is_set_aside(tmp_path):
    from svae_bench.training.state import CorruptCheckpoint, load_state, remove_state

    (tmp_path / "state.pt" / "x").mkdir(parents=True)
    with pytest.raises(CorruptCheckpoint):
        load_state(tmp_path)
    remove_state(tmp_path)
    assert not (tmp_path / "state.pt").exists()
