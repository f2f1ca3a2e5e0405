"""Every bad input to `svae-bench run` gets one line naming the key, the value and what is allowed,
exit code 2, no traceback, and nothing written that could pass for a result."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

FAST = ["trainer.max_epochs=1", "eval.is_samples=5", "eval.knn_repeats=1", "trainer.progress=false"]
SMALL_SYNTHETIC = ["dataset.n_train=1200", "dataset.n_val=100", "dataset.n_test=100"]

CASES = [
    # (overrides, text the message must contain)
    (["model=svea"], "model=svea is unknown; allowed: ae, nvae, nvgae, psvae, svae, svgae"),
    (["-m", "model=nvae,svea"], "model=svea is unknown"),
    (["dataset=cifar"], "dataset=cifar is unknown; allowed: citeseer, cora, mnist, pubmed, synthetic, synthetic_graph"),
    (["experiment=tabel1"], "experiment=tabel1 is unknown; allowed: mnist_latent, synthetic_figure, table1, table2"),
    (["budget=tiny"], "budget=tiny is unknown; allowed: laptop, medium, paper"),
    (["hydra/launcher=nope"], "hydra/launcher"),
    (["latent_dims=3"], "latent_dims"),
    (["latent_dim=0"], "latent_dim=0 must be an integer >= 1"),
    (["latent_dim=2.5"], "latent_dim=2.5 must be an integer >= 1"),
    (["latent_dim=abc"], "latent_dim='abc' must be an integer >= 1"),
    (["beta=-1"], "beta=-1 must be a number >= 0"),
    (["-m", "beta=1,-1"], "beta=-1 must be a number >= 0 (sweep job"),  # before the first job runs
    (["trainer.batch_size=0"], "trainer.batch_size=0 must be a positive integer"),
    (["trainer.max_epochs=0"], "trainer.max_epochs=0 must be a positive integer"),
    (["trainer.patience=-2"], "trainer.patience=-2 must be a positive integer"),
    (["trainer.lr=-1"], "trainer.lr=-1"),
    (["eval.is_samples=0"], "eval.is_samples=0 must be a positive integer"),
    (["eval.knn_labels=[100000]"], "eval.knn_labels contains 100000"),
    (["device=tpu"], "device='tpu'"),
    (["dataset=mnist", "dataset.data_root={tmp}/nope"], "data_root"),
    (["runs_root={file}/runs"], "is not writable"),
]


@pytest.mark.parametrize("overrides,expected", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_exits_2_with_one_line(tmp_path: Path, overrides, expected):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    args = [o.format(tmp=tmp_path, file=a_file) for o in overrides]
    if not any(a.startswith("dataset=") for a in args):
        args += SMALL_SYNTHETIC
    # the case's own value last, so that it wins over FAST
    out = subprocess.run(
        [sys.executable, "-m", "svae_bench", "run", *FAST, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2, out.stderr[-2000:]
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert expected in lines[0]
    assert "Traceback" not in out.stdout + out.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p != a_file]
    assert not written, written


def test_debug_flag_shows_the_traceback(tmp_path: Path):
    import os

    env = {**os.environ, "SVAE_BENCH_DEBUG": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "svae_bench", "run", *FAST, *SMALL_SYNTHETIC, "eval.knn_labels=[5000]"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode != 0 and "Traceback" in out.stderr and "knn_labels" in out.stderr
