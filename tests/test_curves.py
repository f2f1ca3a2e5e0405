"""``svae-bench figures --curves``: learning curves of every run of an experiment, finished or not."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image as mpimg

from svae_bench.commands.figures import main
from svae_bench.records import write_csv_atomic
from svae_bench.report.curves import find_curves
from svae_bench.tasks.vae_objective import METRIC_COLUMNS


def fake_run(root: Path, model: str, d: int, seed: int, epochs: int, complete: bool) -> Path:
    run = root / "exp" / "mnist" / model / f"d={d}" / "beta=1" / f"seed={seed}"
    rows = [{"epoch": e, "val_elbo": -150 + 40 * (1 - 0.9**e), "val_kl": 20 + e % 3} for e in range(1, epochs + 1)]
    write_csv_atomic(run / "metrics.csv", METRIC_COLUMNS, rows)
    if complete:
        (run / "result.json").write_text(
            json.dumps({"status": "complete", "model": model, "latent_dim": d, "seed": seed, "metrics": {}})
        )
    else:
        (run / "config.yaml").write_text(f"model:\n  name: {model}\nlatent_dim: {d}\nseed: {seed}\n")
    return run


def test_curves_of_finished_and_running_runs(tmp_path, capsys):
    for model in ("nvae", "svae"):
        for d in (2, 10):
            fake_run(tmp_path, model, d, 0, 30, complete=True)
    fake_run(tmp_path, "svae", 10, 1, 12, complete=False)  # still running: read from config.yaml
    (tmp_path / "exp" / "junk").mkdir()
    (tmp_path / "exp" / "junk" / "metrics.csv").write_text("not,a\ncsv of ours\n")  # skipped, not a crash
    curves = find_curves(tmp_path / "exp")
    assert [(c.latent_dim, c.model, c.seed, c.complete) for c in curves] == [
        (2, "nvae", 0, True),
        (2, "svae", 0, True),
        (10, "nvae", 0, True),
        (10, "svae", 0, True),
        (10, "svae", 1, False),
    ]
    assert curves[-1].epoch.tolist() == list(range(1, 13))
    assert main(["--curves", "--runs", str(tmp_path), "--experiment", "exp"]) == 0
    out = tmp_path / "exp" / "curves.png"
    assert "5 runs, 4 complete" in capsys.readouterr().out
    image = mpimg.imread(out)
    assert image.shape[0] > 500 and image.shape[1] > 1000


def test_curves_without_runs_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "exp").mkdir()
    assert main(["--curves", "--runs", str(tmp_path), "--experiment", "exp"]) == 2
    assert "no runs with a metrics.csv" in capsys.readouterr().err
