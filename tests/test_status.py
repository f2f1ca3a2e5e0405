"""`svae-bench status` and the run states behind it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from svae_bench.commands import status as sweep_status
from svae_bench.records import run_state, write_status


def make_run(root: Path, name: str, status: dict | None = None, complete: bool = False) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "config.yaml").write_text("seed: 0\n")
    if status is not None:
        (d / "status.json").write_text(json.dumps(status))
    if complete:
        (d / "result.json").write_text(json.dumps({"status": "complete", "metrics": {}}))
    return d


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_run_states(tmp_path: Path) -> None:
    host, now = socket.gethostname(), time.time()
    cases = {
        "complete": make_run(tmp_path, "a", {"status": "running", "host": host, "pid": dead_pid()}, complete=True),
        "failed": make_run(tmp_path, "b", {"status": "failed", "reason": "non-finite objective"}),
        "running": make_run(
            tmp_path, "c", {"status": "running", "host": host, "pid": os.getpid(), "epoch": 3, "updated": now}
        ),
        "interrupted": make_run(
            tmp_path, "d", {"status": "running", "host": host, "pid": dead_pid(), "epoch": 3, "updated": now}
        ),
    }
    for expected, d in cases.items():
        assert run_state(d)[0] == expected, d
    # another host: judged by the age of its last update
    fresh = make_run(tmp_path, "e", {"status": "running", "host": "elsewhere", "pid": 1, "updated": now - 60})
    stale = make_run(tmp_path, "f", {"status": "running", "host": "elsewhere", "pid": 1, "updated": now - 86400})
    assert run_state(fresh)[0] == "running" and run_state(stale)[0] == "interrupted"
    # this host, a live pid, but silent for a day: the pid was reused, the run is gone
    reused = make_run(tmp_path, "h", {"status": "running", "host": host, "pid": os.getpid(), "updated": now - 86400})
    assert run_state(reused)[0] == "interrupted"
    assert run_state(make_run(tmp_path, "g"))[0] == "interrupted"  # started, never wrote a status
    assert run_state(tmp_path / "never")[0] == "missing"


def test_write_status_names_this_process(tmp_path: Path) -> None:
    write_status(tmp_path, "running", epoch=2)
    state, status = run_state(tmp_path)
    assert state == "running" and status["pid"] == os.getpid() and status["epoch"] == 2


def test_expected_cells_of_the_table1_sweep() -> None:
    dirs = sweep_status.expected_run_dirs(["experiment=table1", "budget=laptop"], "R")
    assert len(dirs) == 2 * 5 * 3
    assert Path("R/table1_laptop/mnist/svae/d=40/beta=1/seed=2") in dirs
    # command-line lists replace the experiment's
    dirs = sweep_status.expected_run_dirs(
        ["experiment=table1", "model=nvae,svae,psvae", "latent_dim=10", "n_seeds=1"], "R"
    )
    assert sorted(d.parts[3] for d in dirs) == ["nvae", "psvae", "svae"]
    assert len(sweep_status.expected_run_dirs(["experiment=table2"], "R")) == 2 * 5 * 20
    latent = sweep_status.expected_run_dirs(["experiment=mnist_latent", "budget=laptop"], "R")
    assert latent == [Path(f"R/mnist_latent_laptop/mnist/{m}/d=2/beta=1/seed=0") for m in ("nvae", "svae")]


def test_expected_cells_of_the_table3_sweep_list_their_m1_runs_first() -> None:
    """Table 3's 81 cells share 18 M1 runs (2 M1 models x z1 in {5, 10, 50} x 3 seeds): each listed
    once, before the cells, where the cells train them."""
    dirs = sweep_status.expected_run_dirs(["experiment=table3", "budget=laptop"], "R")
    assert len(dirs) == len(set(dirs)) == 18 + 81
    m1 = dirs[:18]
    assert all(d.parts[1] == "table1_laptop" for d in m1)
    assert {(d.parts[3], d.parts[4]) for d in m1} == {(m, f"d={z}") for m in ("nvae", "svae") for z in (5, 10, 50)}
    assert all(d.parts[1] == "table3_laptop" for d in dirs[18:])
    assert Path("R/table3_laptop/mnist/S+N/z1=10/z2=10/seed=2") in dirs
    # one cell: its M1 and itself
    one = ["experiment=table3", "budget=laptop", "family=S+N", "latent_dim=10", "semisup.z2_dim=10", "n_seeds=1"]
    assert sweep_status.expected_run_dirs(one, "R") == [
        Path("R/table1_laptop/mnist/svae/d=10/beta=1/seed=0"),
        Path("R/table3_laptop/mnist/S+N/z1=10/z2=10/seed=0"),
    ]


def test_status_command_counts_and_lists(tmp_path: Path, capsys) -> None:
    root = tmp_path / "runs"
    base = "table1_laptop/mnist/{m}/d=10/beta=1/seed={s}"
    make_run(root, base.format(m="nvae", s=0), complete=True)
    make_run(root, base.format(m="svae", s=0), {"status": "failed", "reason": "boom"})
    make_run(
        root,
        base.format(m="svae", s=1),
        {"status": "running", "host": socket.gethostname(), "pid": dead_pid(), "epoch": 7},
    )
    args = ["--runs", str(root), "experiment=table1", "budget=laptop", "latent_dim=10", "n_seeds=2"]
    assert sweep_status.main(args) == 0
    out = capsys.readouterr().out
    assert (
        out.splitlines()[0] == "4 runs (experiment=table1 budget=laptop latent_dim=10 n_seeds=2): 1 complete, "
        "1 interrupted, 1 failed, 1 missing"
    )
    assert "after epoch 7: re-run the same command to resume" in out and "boom" in out
    assert sweep_status.main(["-m", *args]) == 0  # the run command's -m, pasted along
    assert capsys.readouterr().out.startswith("4 runs")
    assert sweep_status.main(["--runs", str(root)]) == 0
    assert capsys.readouterr().out.startswith("3 runs")


@pytest.mark.parametrize("args", [["model=nope"], ["experiment=table1", "latent_dims=3"]])
def test_status_bad_overrides_exit_2(args, capsys) -> None:
    assert sweep_status.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")
