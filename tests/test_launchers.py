"""Hydra's own launchers: a sweep through joblib (2 parallel workers sharing one runs root) and
through submitit_local gives complete records identical to the serial basic launcher's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SWEEP = [
    "-m",
    "model=nvae,svae",
    "seed=0,1",
    "trainer.max_epochs=3",
    "eval.is_samples=20",
    "eval.knn_repeats=2",
    "dataset.n_train=1200",
    "dataset.n_val=200",
    "dataset.n_test=200",
    "trainer.progress=false",
    "trainer.num_threads=1",
]
LAUNCHERS = {
    "basic": [],
    "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    "submitit_local": ["hydra/launcher=submitit_local"],
}


def sweep(root: Path, launcher: str) -> dict[str, dict]:
    out = subprocess.run(
        [sys.executable, "-m", "svae_bench", "run", *SWEEP, *LAUNCHERS[launcher]],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    records = {}
    for path in sorted((root / "runs").rglob("result.json")):
        record = json.loads(path.read_text())
        assert record["status"] == "complete"
        assert json.loads((path.parent / "status.json").read_text())["status"] == "complete"
        records[str(path.parent.relative_to(root / "runs"))] = record
    return records


@pytest.fixture(scope="module")
def serial(tmp_path_factory) -> dict[str, dict]:
    return sweep(tmp_path_factory.mktemp("basic"), "basic")


@pytest.mark.parametrize("launcher", ["joblib", pytest.param("submitit_local", marks=pytest.mark.slow)])  # 22 s
def test_launcher_matches_serial_sweep(serial, tmp_path, launcher):
    pytest.importorskip(
        {"joblib": "hydra_plugins.hydra_joblib_launcher", "submitit_local": "hydra_plugins.hydra_submitit_launcher"}[
            launcher
        ]
    )
    records = sweep(tmp_path, launcher)
    assert sorted(records) == sorted(serial) and len(records) == 4
    for cell, record in records.items():
        assert record["metrics"] == serial[cell]["metrics"], cell
        assert record["epochs"] == serial[cell]["epochs"]
    leftovers = [p for p in (tmp_path / "runs").rglob("*.tmp")]
    assert not leftovers  # every atomic write completed
