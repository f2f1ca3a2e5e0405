"""`svae-bench` end to end, in subprocesses: a run, its record, skipping, a sweep, tables, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

FAST = [
    "trainer.max_epochs=2",
    "eval.is_samples=20",
    "eval.knn_repeats=2",
    "dataset.n_train=1200",
    "dataset.n_val=200",
    "dataset.n_test=200",
    "trainer.progress=false",
]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "svae_bench", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def test_help_lists_subcommands(tmp_path):
    out = cli("--help", cwd=tmp_path)
    assert out.returncode == 0
    for command in ("run", "tables", "figures", "data"):
        assert f"  {command}" in out.stdout
    assert cli("run", "--help", cwd=tmp_path).returncode == 0
    assert cli("frobnicate", cwd=tmp_path).returncode == 2


@pytest.fixture(scope="module")
def one_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    out = cli("run", "model=svae", "latent_dim=2", *FAST, cwd=root)
    assert out.returncode == 0, out.stderr[-3000:]
    return root, root / "runs/default/synthetic/svae/d=2/beta=1/seed=0", out


def test_run_writes_a_complete_record(one_run):
    _, run_dir, _ = one_run
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "complete"
    assert (result["model"], result["dataset"], result["latent_dim"], result["ambient_dim"]) == (
        "svae",
        "synthetic",
        2,
        3,
    )
    assert (result["beta"], result["seed"], result["epochs"]) == (1.0, 0, 2)
    m = result["metrics"]
    assert set(m) == {"elbo", "re", "kl", "ll", "ll_tf_example", "knn_acc"} and set(m["knn_acc"]) == {
        "100",
        "600",
        "1000",
    }
    assert m["kl"] >= 0 and abs(m["elbo"] - (m["re"] - m["kl"])) < 1e-9
    assert result["versions"]["torch"] and "train_seconds" in result and "git_commit" in result
    assert "name: svae" in (run_dir / "config.yaml").read_text() and (run_dir / "checkpoint.pt").exists()
    assert len((run_dir / "metrics.csv").read_text().strip().splitlines()) == 1 + 2
    assert (run_dir / "latent.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(run_dir.glob("*.tmp"))


def test_rerun_skips_and_force_reruns(one_run):
    root, run_dir, _ = one_run
    before = (run_dir / "result.json").stat().st_mtime_ns
    out = cli("run", "model=svae", "latent_dim=2", *FAST, cwd=root)
    assert out.returncode == 0 and "skip" in out.stdout + out.stderr
    assert (run_dir / "result.json").stat().st_mtime_ns == before
    # a different budget in the same cell is still skipped, with a note naming what differs
    out = cli("run", "model=svae", "latent_dim=2", *FAST, "trainer.lr=0.01", cwd=root)
    assert "skip" in out.stdout + out.stderr and "trainer.lr" in out.stdout + out.stderr
    assert "lr: 0.001" in (run_dir / "config.yaml").read_text()
    out = cli("run", "model=svae", "latent_dim=2", *FAST, "force=true", cwd=root)
    assert out.returncode == 0 and (run_dir / "result.json").stat().st_mtime_ns != before


def test_same_seed_same_result(one_run, tmp_path):
    _, run_dir, _ = one_run
    out = cli("run", "model=svae", "latent_dim=2", *FAST, cwd=tmp_path)
    assert out.returncode == 0
    again = json.loads((tmp_path / "runs/default/synthetic/svae/d=2/beta=1/seed=0/result.json").read_text())
    first = json.loads((run_dir / "result.json").read_text())
    assert again["metrics"] == first["metrics"]


def test_sweep_then_tables(tmp_path):
    out = cli("run", "-m", "model=nvae,svae", "latent_dim=2,3", *FAST, "eval.latent_plot=false", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    records = sorted(tmp_path.glob("runs/default/synthetic/*/d=*/beta=1/seed=0/result.json"))
    assert len(records) == 4
    assert all(json.loads(r.read_text())["status"] == "complete" for r in records)
    out = cli("tables", "--runs", "runs", "--out", "tables", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    for name in ("runs.csv", "summary.csv", "table1.csv", "table1.tex", "table2.csv", "table2.tex"):
        assert (tmp_path / "tables" / name).exists(), name
    assert len((tmp_path / "tables/runs.csv").read_text().strip().splitlines()) == 1 + 4


@pytest.mark.parametrize(
    "override,key",
    [
        ("latent_dim=0", "latent_dim"),
        ("beta=-1", "beta"),
        ("trainer.batch_size=0", "trainer.batch_size"),
        ("eval.knn_labels=[5000]", "knn_labels"),
    ],
)
def test_bad_values_exit_2_without_a_record(tmp_path, override, key):
    out = cli("run", override, *FAST, cwd=tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and key in lines[0]
    assert not list(tmp_path.rglob("result.json")) and not list(tmp_path.rglob("config.yaml"))


def test_ae_and_power_spherical_runs(tmp_path):
    out = cli("run", "-m", "model=ae,psvae", "latent_dim=2", *FAST, "trainer.max_epochs=1", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    ae = json.loads((tmp_path / "runs/default/synthetic/ae/d=2/beta=1/seed=0/result.json").read_text())
    ps = json.loads((tmp_path / "runs/default/synthetic/psvae/d=2/beta=1/seed=0/result.json").read_text())
    assert set(ae["metrics"]) == {"re", "knn_acc"} and ae["ambient_dim"] == 2
    assert set(ps["metrics"]) == {"elbo", "re", "kl", "ll", "ll_tf_example", "knn_acc"} and ps["ambient_dim"] == 3


SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "MNIST" / "raw"


@pytest.mark.parametrize("damage", ["no_root", "truncated"])
def test_bad_mnist_data_exits_2_naming_the_problem(tmp_path, damage):
    root = tmp_path / "data"
    if damage == "truncated":
        if not SHARED_MNIST.is_dir():
            pytest.skip("../shared/data not present")
        import gzip
        import shutil

        raw = root / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for f in SHARED_MNIST.iterdir():
            shutil.copy(f, raw / f.name)
        target = raw / "train-labels-idx1-ubyte.gz"
        target.write_bytes(gzip.compress(gzip.decompress(target.read_bytes())[:-7]))
    out = cli("run", "dataset=mnist", f"dataset.data_root={root}", "trainer.progress=false", cwd=tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), out.stderr
    expected = "data_root" if damage == "no_root" else "train-labels-idx1-ubyte"
    assert expected in lines[0] and "svae-bench data mnist" in lines[0]
    assert not list(tmp_path.rglob("result.json")) and not list(tmp_path.rglob("config.yaml"))
