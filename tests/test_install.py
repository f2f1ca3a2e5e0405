"""The console script works from a regular (non-editable) wheel install, from any directory.

Builds the wheel, unpacks it into a fresh venv (its dependencies come from the
test environment through a path entry, so no network is needed) and runs
`svae-bench run --cfg job` and a 1-epoch run from an unrelated directory: the
Hydra configs must be found inside the installed package.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_install_finds_its_configs(tmp_path):
    wheel_dir = tmp_path / "wheel"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheel_dir),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = wheel_dir.glob("svae_bench-*.whl")

    env_dir = tmp_path / "fresh"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    # dependencies (torch, hydra, ...) from this environment, appended after the fresh site-packages
    (site / "zz_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    where = subprocess.run(
        [py, "-c", "import svae_bench; print(svae_bench.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr  # the wheel's copy, not the checkout
    cfg = subprocess.run(
        [py, "-m", "svae_bench", "run", "--cfg", "job", "model=nvae"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cfg.returncode == 0 and "name: nvae" in cfg.stdout, cfg.stderr[-2000:]
    # the paper's numbers ship inside the wheel
    ref = subprocess.run(
        [py, "-c", "from svae_bench.report.comparison import load_reference; print(len(load_reference()))"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ref.returncode == 0 and ref.stdout.strip() == "97", ref.stderr[-2000:]
    # the console script's entry point resolves to the installed copy
    script = (
        "from importlib.metadata import entry_points; import sys; "
        "ep = next(e for e in entry_points(group='console_scripts') if e.name == 'svae-bench'); "
        "print(ep.value); sys.exit(ep.load()(['--help']))"
    )
    ep = subprocess.run([py, "-c", script], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert ep.returncode == 0 and ep.stdout.startswith("svae_bench.cli:main") and "tables" in ep.stdout, ep.stderr
    run = subprocess.run(
        [
            py,
            "-m",
            "svae_bench",
            "run",
            "trainer.max_epochs=1",
            "eval.is_samples=5",
            "eval.knn_repeats=1",
            "dataset.n_train=1000",
            "dataset.n_val=100",
            "dataset.n_test=100",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    record = json.loads((elsewhere / "runs/default/synthetic/svae/d=2/beta=1/seed=0/result.json").read_text())
    assert record["status"] == "complete" and record["git_commit"] is None  # an installed copy has no checkout
