"""Regression tests from an adversarial pass over the report layer and the read-only commands
(`tables`, `figures`, `status`), issue 32: hostile run records and run directories.

Every case ends in a result, or in skipped records with their reasons, or in one line
``error: ...`` with exit status 2, never a traceback, a hang, memory sized by the file, or
output that breaks where it is used (LaTeX that pdflatex stops on, a Markdown row split in two,
terminal escape codes printed raw).
"""

from __future__ import annotations

import json
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from svae_bench.commands import figures as figures_cmd
from svae_bench.commands import status as status_cmd
from svae_bench.commands import tables as tables_cmd
from svae_bench.launch.preflight import check_run_overrides
from svae_bench.records import RunLock, run_state, write_csv_atomic
from svae_bench.report import markup

# --------------------------------------------------------------------------- helpers

#: the child prints its peak memory (kB: VmHWM, of this program alone, unlike ru_maxrss, which counts
#: the forked parent's pages too) on the last line of stderr
MAXRSS = (
    "import re, sys\n"
    "from svae_bench.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "status = open('/proc/self/status').read()\n"
    "print('maxrss', re.search(r'VmHWM:\\s*(\\d+)', status).group(1), file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


def _limit_memory() -> None:  # never let a regression take the machine's memory
    resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))


def cli(cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """``svae-bench <args>`` in a child process (address space capped at 6 GiB), which reports its peak memory."""
    return subprocess.run(
        [sys.executable, "-c", MAXRSS, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=_limit_memory,
    )


def peak_mb(proc: subprocess.CompletedProcess) -> float:
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("maxrss "), proc.stderr[-3000:]
    return int(line.split()[1]) / 1024


def stderr_lines(proc_or_err: subprocess.CompletedProcess | str) -> list[str]:
    text = proc_or_err if isinstance(proc_or_err, str) else proc_or_err.stderr
    return [line for line in text.splitlines() if line.strip() and not line.startswith("maxrss ")]


def assert_one_line_error(err: str, *, contains: str = "") -> None:
    lines = stderr_lines(err)
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err[-3000:]
    assert all(line.startswith(("error: ", "skipped ")) for line in lines), err[-3000:]
    assert contains in errors[0], errors[0]


def vae_record(**fields) -> dict:
    rec = {
        "schema_version": 1,
        "status": "complete",
        "task": "vae",
        "experiment": "e",
        "model": "svae",
        "dataset": "synthetic",
        "latent_dim": 2,
        "beta": 1.0,
        "seed": 0,
        "metrics": {"ll": -1.0, "elbo": -2.0, "re": -1.5, "kl": 0.5, "knn_acc": {"100": 0.9}},
    }
    rec.update(fields)
    return rec


def m1m2_record(z1: int, z2, seed: int = 0, **fields) -> dict:
    rec = {
        "schema_version": 1,
        "status": "complete",
        "task": "m1m2",
        "experiment": "t3",
        "model": "S+N",
        "dataset": "mnist",
        "latent_dim": z1,
        "z2_dim": z2,
        "beta": 1.0,
        "seed": seed,
        "metrics": {"acc": {"100": 0.9}},
    }
    rec.update(fields)
    return rec


def vgae_record(model: str, dataset: str, seed: int, auc, ap, **fields) -> dict:
    rec = {
        "schema_version": 1,
        "status": "complete",
        "task": "vgae",
        "experiment": "t4",
        "model": model,
        "dataset": dataset,
        "latent_dim": 16,
        "beta": 1.0,
        "seed": seed,
        "metrics": {"auc": auc, "ap": ap, "val_auc": 0.9, "val_ap": 0.9},
    }
    rec.update(fields)
    return rec


def put(run_dir: Path, record: dict | str) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "result.json").write_text(record if isinstance(record, str) else json.dumps(record))
    return run_dir


def skip_line(err: str, where: str) -> str:
    return next((line for line in err.splitlines() if line.startswith("skipped ") and where in line), "")


def curve_run(root: Path, name: str, *, model="svae", d=2, seed=0, rows=None, record=True) -> Path:
    """A run directory with a metrics.csv (``rows``: epoch, val_elbo, val_kl) and, with ``record``, its result.json."""
    run = root / name
    rows = rows if rows is not None else [(e, -150.0 + e, 10.0) for e in range(1, 11)]
    write_csv_atomic(
        run / "metrics.csv",
        ["epoch", "val_elbo", "val_kl"],
        [{"epoch": e, "val_elbo": v, "val_kl": k} for e, v, k in rows],
    )
    if record:
        (run / "result.json").write_text(json.dumps(vae_record(model=model, latent_dim=d, seed=seed)))
    return run


# --------------------------------------------------------------------------- 2: sizes bounded before parsing

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h,*h]
model:
  name: *i
latent_dim: 2
seed: 0
"""


def test_curves_read_config_yaml_and_metrics_csv_bounded(tmp_path):
    """One child process: a YAML alias bomb in config.yaml (it was expanded until memory ran out), a
    40 MB metrics.csv (it cost 1.25 GiB), and FIFOs for either (it blocked for ever) are skipped with
    their reasons, in bounded memory; the good run is drawn."""
    exp = tmp_path / "runs" / "exp"
    (curve_run(exp, "bomb", record=False) / "config.yaml").write_text(BILLION_LAUGHS)
    big = curve_run(exp, "big")
    with open(big / "metrics.csv", "wb") as f:  # a valid, absurdly long metrics.csv: 40 MB, 3 million epochs
        f.write(b"epoch,val_elbo,val_kl\n")
        rows = b"".join(b"%d,-100.5,10.25\n" % e for e in range(1, 10_001))
        while f.tell() < 40 << 20:
            f.write(rows)
    os.mkfifo(curve_run(exp, "fifo_config", record=False) / "config.yaml")
    (exp / "fifo_metrics").mkdir()
    (exp / "fifo_metrics" / "result.json").write_text(json.dumps(vae_record()))
    os.mkfifo(exp / "fifo_metrics" / "metrics.csv")
    curve_run(exp, "good")
    proc = cli(tmp_path, "figures", "--curves", "--runs", "runs", "--experiment", "exp")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "(1 runs, 1 complete)" in proc.stdout
    assert "found an alias" in skip_line(proc.stderr, "bomb"), proc.stderr[-3000:]
    assert "is larger than" in skip_line(proc.stderr, "big"), proc.stderr[-3000:]
    assert "not a regular file" in skip_line(proc.stderr, "fifo_config"), proc.stderr[-3000:]
    assert "not a regular file" in skip_line(proc.stderr, "fifo_metrics"), proc.stderr[-3000:]
    assert len(stderr_lines(proc)) == 4
    assert peak_mb(proc) < 450, peak_mb(proc)


def _npz_bomb(path: Path, n_bytes: int) -> None:
    """A latent.npz whose z is ``n_bytes`` of zeros, deflated to a few MB."""
    from numpy.lib import format as npy

    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("z.npy", "w", force_zip64=True) as f:
            npy.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (n_bytes // 16, 2)})
            chunk = bytes(16 << 20)
            for _ in range(n_bytes // len(chunk)):
                f.write(chunk)
        for name, value in (("labels", np.zeros(n_bytes // 16, np.int8)[:0]), ("geometry", np.array("euclidean"))):
            with zf.open(f"{name}.npy", "w") as f:
                npy.write_array(f, value)


def test_a_latent_npz_that_inflates_to_gigabytes_is_refused(tmp_path):
    run = put(tmp_path / "runs" / "synthetic_figure" / "bomb", vae_record())
    _npz_bomb(run / "latent.npz", 320 << 20)
    assert (run / "latent.npz").stat().st_size < 4 << 20
    proc = cli(tmp_path, "figures", "--runs", "runs")
    assert peak_mb(proc) < 400, peak_mb(proc)  # np.load inflated it: 320 MB more
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert_one_line_error(proc.stderr, contains="arrays take more than")
    assert not (tmp_path / "runs" / "synthetic_figure" / "figure.png").exists()


# --------------------------------------------------------------------------- 3: tracebacks where one line is promised


def test_status_with_a_401_digit_time(tmp_path, capsys):
    run = tmp_path / "runs" / "x"
    run.mkdir(parents=True)
    (run / "status.json").write_text(
        '{"status": "running", "host": "elsewhere", "pid": 1, "updated": 1' + "0" * 400 + "}"
    )
    assert run_state(run)[0] == "interrupted"
    assert status_cmd.main(["--runs", str(tmp_path / "runs")]) == 0
    assert "interrupted" in capsys.readouterr().out


def test_status_with_an_infinite_time_is_not_running_for_ever(tmp_path):
    run = tmp_path / "x"
    run.mkdir()
    (run / "status.json").write_text('{"status": "running", "host": "elsewhere", "pid": 1, "updated": Infinity}')
    assert run_state(run)[0] == "interrupted"  # it was "running": now - inf < stale_after


@pytest.mark.parametrize("z2", [10**30, -5, 0, True, 2.5], ids=["1e30", "-5", "0", "true", "2.5"])
def test_tables_and_heatmap_skip_an_out_of_range_z2_dim(tmp_path, capsys, z2):
    runs = tmp_path / "runs"
    put(runs / "t3" / "bad", m1m2_record(10, z2))
    put(runs / "t3" / "good", m1m2_record(10, 5))
    assert tables_cmd.main(["--runs", str(runs), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "z2_dim is not an integer from 1 to 100000" in skip_line(err, "bad"), err
    assert "10/5" in (tmp_path / "out" / "table3.md").read_text()
    assert not re.search(r"10/-|10/0\b|10/1e|10/True", (tmp_path / "out" / "table3.md").read_text())
    assert figures_cmd.main(["--heatmap", "--runs", str(runs), "--experiment", "t3"]) == 0
    captured = capsys.readouterr()
    assert "(1 runs)" in captured.out and "z2_dim is not an integer" in skip_line(captured.err, "bad")


def test_an_identity_column_without_a_range_is_kept_to_an_int64(tmp_path, capsys):
    """A third-party record kind with an integer identity column that INT_RANGES does not name."""
    from svae_bench.report.collect import RecordError, parse_record

    with pytest.raises(RecordError, match="latent_dim is not an integer from 1 to 100000"):
        parse_record(vae_record(latent_dim=10**30), "x")
    from svae_bench.report import collect

    kind = collect.RecordKind("hostile_task", (collect.IdentityColumn("width", "int"),), (collect.MetricField("acc"),))
    collect.register_record_kind(kind)
    try:
        record = vae_record(task="hostile_task", width=10**30, metrics={"acc": 0.5})
        with pytest.raises(RecordError, match="width is not an integer from"):
            parse_record(record, "x")
        assert parse_record({**record, "width": 7}, "x")["width"] == 7
    finally:
        del collect.RECORD_KINDS["hostile_task"]


def _curves(tmp_path: Path, capsys) -> tuple[int, str, str]:
    rc = figures_cmd.main(["--curves", "--runs", str(tmp_path / "runs"), "--experiment", "exp"])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_curves_with_nan_and_infinite_metrics_are_drawn_with_gaps(tmp_path, capsys):
    exp = tmp_path / "runs" / "exp"
    curve_run(
        exp, "nan", rows=[(1, math.nan, math.nan), (2, -120.0, math.inf), (3, -math.inf, 5.0), (4, 1e308, -1e308)]
    )
    curve_run(exp, "allnan", d=10, rows=[(1, math.nan, math.nan)])
    rc, out, err = _curves(tmp_path, capsys)
    assert rc == 0 and "(2 runs, 2 complete)" in out, err
    assert (exp / "curves.png").read_bytes().startswith(b"\x89PNG")


def test_curves_skip_a_200000_character_csv_field(tmp_path, capsys):
    exp = tmp_path / "runs" / "exp"
    run = curve_run(exp, "wide")
    (run / "metrics.csv").write_text("epoch,val_elbo,val_kl\n1,-100," + "9" * 200_000 + "\n")
    curve_run(exp, "good")
    rc, out, err = _curves(tmp_path, capsys)
    assert rc == 0 and "(1 runs, 1 complete)" in out, err
    assert "field larger than field limit" in skip_line(err, "wide"), err


@pytest.mark.parametrize(
    "config",
    [
        "model:\n  name: svae\nlatent_dim: 2\nseed: abc\n",
        "model:\n  name: svae\nlatent_dim: 2\nseed: 1.5\n",
        "model:\n  name: svae\nlatent_dim: 2\nseed: -1\n",
        "model:\n  name: svae\nlatent_dim: 100000000000000000000000000000\nseed: 0\n",
        "model:\n  name: [1, 2]\nlatent_dim: 2\nseed: 0\n",
        "model: svae\nlatent_dim: 2\nseed: 0\n",
        "- just a list\n",
        "model: {name: svae\n",
        "[" * 2000 + "]" * 2000 + "\n",
    ],
    ids=["seed-abc", "seed-1.5", "seed-neg", "dim-1e29", "model-list", "model-str", "list", "bad-yaml", "deep"],
)
def test_curves_skip_a_run_whose_config_does_not_name_it(tmp_path, capsys, config):
    exp = tmp_path / "runs" / "exp"
    run = curve_run(exp, "odd", record=False)
    (run / "config.yaml").write_text(config)
    curve_run(exp, "good")
    rc, out, err = _curves(tmp_path, capsys)
    assert rc == 0 and "(1 runs, 1 complete)" in out, err
    assert skip_line(err, "odd"), err


def test_curves_skip_a_record_with_a_non_integer_seed(tmp_path, capsys):
    exp = tmp_path / "runs" / "exp"
    for name, seed in (("str", '"abc"'), ("float", "1.5"), ("none", "null"), ("huge", "1" + "0" * 400)):
        run = curve_run(exp, name)
        (run / "result.json").write_text(json.dumps(vae_record()).replace('"seed": 0', f'"seed": {seed}'))
    curve_run(exp, "good")
    rc, out, err = _curves(tmp_path, capsys)
    assert rc == 0 and "(1 runs, 1 complete)" in out, err
    for name in ("str", "float", "none", "huge"):
        assert "seed is not an integer" in skip_line(err, f"/{name}"), (name, err)


def test_curves_of_too_many_latent_dimensions_is_one_line(tmp_path, capsys):
    exp = tmp_path / "runs" / "exp"
    for d in range(1, 18):
        curve_run(exp, f"d{d}", d=d, rows=[(1, -100.0, 1.0)])
    rc, out, err = _curves(tmp_path, capsys)
    assert rc == 2 and not out
    assert_one_line_error(err, contains="17 latent dimensions")
    assert not (exp / "curves.png").exists()


@pytest.mark.parametrize("dataset", ["synthetic_graph", "cora"])
def test_linkpred_with_null_auc_and_ap(tmp_path, capsys, dataset):
    runs = tmp_path / "runs"
    put(runs / "t4" / "a", vgae_record("svgae", dataset, 0, None, None))
    put(runs / "t4" / "b", vgae_record("nvgae", dataset, 0, None, None))
    assert figures_cmd.main(["--linkpred", "--runs", str(runs), "--experiment", "t4"]) == 0, capsys.readouterr().err
    assert "(2 runs)" in capsys.readouterr().out
    assert (runs / "t4" / "figure.png").read_bytes().startswith(b"\x89PNG")


def test_names_are_never_parsed_as_mathtext(tmp_path, capsys):
    runs = tmp_path / "runs"
    put(runs / "t4" / "a", vgae_record("svgae", r"$\nosuchcommand{$", 0, 0.9, 0.9))
    assert figures_cmd.main(["--linkpred", "--runs", str(runs), "--experiment", "t4"]) == 0, capsys.readouterr().err
    curve_run(runs / "exp", "m", model=r"$\frac{$")
    rc, out, err = _curves(tmp_path, capsys)
    assert rc == 0, err


MODES = {
    "latent": [],
    "curves": ["--curves", "--experiment", "exp"],
    "heatmap": ["--heatmap", "--experiment", "t3"],
    "linkpred": ["--linkpred", "--experiment", "t4"],
}


@pytest.mark.parametrize("mode", MODES)
def test_an_unknown_image_format_is_one_line_and_writes_nothing(tmp_path, capsys, mode):
    runs = tmp_path / "runs"
    latent = put(runs / "synthetic_figure" / "r", vae_record())
    np.savez(latent / "latent.npz", z=np.zeros((4, 2)), labels=np.arange(4), geometry=np.array("euclidean"))
    curve_run(runs / "exp", "c")
    put(runs / "t3" / "r", m1m2_record(10, 10))
    put(runs / "t4" / "r", vgae_record("svgae", "cora", 0, 0.9, 0.9))
    out = tmp_path / "new" / "out.xyz"
    assert figures_cmd.main([*MODES[mode], "--runs", str(runs), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert not captured.out
    assert_one_line_error(captured.err, contains="unknown image format 'xyz'")
    assert not (tmp_path / "new").exists()


# ---- latent.npz that is not one


def _latent_run(runs: Path, **arrays) -> Path:
    run = put(runs / "synthetic_figure" / "r", vae_record())
    np.savez(run / "latent.npz", **arrays)
    return run


@pytest.mark.parametrize(
    "case",
    ["not-a-zip", "bad-zip", "string-labels", "complex-z", "object-z", "huge-z", "inf-z"],
)
def test_a_latent_npz_that_is_not_one_is_one_line(tmp_path, capsys, case):
    runs = tmp_path / "runs"
    good = {"z": np.zeros((4, 2)), "labels": np.arange(4), "geometry": np.array("euclidean")}
    if case == "not-a-zip":
        run = put(runs / "synthetic_figure" / "r", vae_record())
        (run / "latent.npz").write_bytes(b"not an npz at all")
    elif case == "bad-zip":
        run = _latent_run(runs, **good)
        data = bytearray((run / "latent.npz").read_bytes())
        data[40:80] = bytes(40)  # inside the first member
        (run / "latent.npz").write_bytes(bytes(data))
    elif case == "string-labels":
        _latent_run(runs, **{**good, "labels": np.array(["a", "b", "c", "d"])})
    elif case == "complex-z":
        _latent_run(runs, **{**good, "z": np.zeros((4, 2), complex)})
    elif case == "object-z":
        run = put(runs / "synthetic_figure" / "r", vae_record())
        np.savez(run / "latent.npz", **{**good, "z": np.array([{"a": 1}] * 4, dtype=object)}, allow_pickle=True)
    elif case == "huge-z":
        _latent_run(runs, **{**good, "z": np.full((4, 2), 1e308)})
    else:
        _latent_run(runs, **{**good, "z": np.array([[np.inf, 0], [0, -np.inf], [np.nan, 1], [1, 1]])})
    rc = figures_cmd.main(["--runs", str(runs)])
    captured = capsys.readouterr()
    if rc == 0:  # drawn (matplotlib skips what it cannot place)
        assert case in ("huge-z", "inf-z") and (runs / "synthetic_figure" / "figure.png").exists()
        return
    assert rc == 2 and not captured.out
    assert_one_line_error(captured.err)
    assert not (runs / "synthetic_figure" / "figure.png").exists()


def test_the_latent_figure_passes_over_records_with_a_401_digit_seed(tmp_path, capsys):
    runs = tmp_path / "runs"
    for name, seed in (("huge", "1" + "0" * 400), ("good", "0")):
        run = put(runs / "synthetic_figure" / name, json.dumps(vae_record()).replace('"seed": 0', f'"seed": {seed}'))
        np.savez(run / "latent.npz", z=np.zeros((4, 2)), labels=np.arange(4), geometry=np.array("euclidean"))
    assert figures_cmd.main(["--runs", str(runs)]) == 0, capsys.readouterr().err
    assert "(1 panels)" in capsys.readouterr().out


# ---- a runs root 1,100 directories deep


@pytest.fixture
def deep_runs(tmp_path):
    """runs/d/d/.../d (1,100 levels) holding one run of each kind; removed without recursion. In
    /dev/shm where there is one: 1,100 rmdir calls take seconds on a journaling file system."""
    import tempfile

    shm = Path("/dev/shm")
    base = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() and os.access(shm, os.W_OK) else tmp_path
    runs = base / "runs"
    deep = runs
    runs.mkdir()
    for _ in range(1100):  # os.makedirs recurses once per level too
        deep = deep / "d"
        deep.mkdir()
    put(deep / "vae", vae_record())
    np.savez(deep / "vae" / "latent.npz", z=np.zeros((4, 2)), labels=np.arange(4), geometry=np.array("euclidean"))
    curve_run(deep, "vae")
    put(deep / "m1m2", m1m2_record(10, 10))
    put(deep / "vgae", vgae_record("svgae", "cora", 0, 0.9, 0.9))
    (deep / "failed").mkdir()
    (deep / "failed" / "status.json").write_text(json.dumps({"status": "failed", "reason": "boom"}))
    yield runs
    shutil.rmtree(deep)  # the runs at the bottom, a few levels; then the 1,100 levels, without recursion
    path = os.fspath(deep)
    for _ in range(1100):
        path = os.path.dirname(path)
        os.rmdir(path)
    if base != tmp_path:
        shutil.rmtree(base)


def test_a_runs_root_1100_directories_deep(deep_runs, tmp_path, capsys):
    assert tables_cmd.main(["--runs", str(deep_runs), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "3 complete runs (0 skipped)" in out and "1 runs without a complete result.json" in out
    assert status_cmd.main(["--runs", str(deep_runs)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("4 runs") and "failed" in out
    for args in ([], ["--curves"], ["--heatmap"], ["--linkpred"]):
        out_file = tmp_path / f"fig{len(args)}{''.join(args)}.png"
        rc = figures_cmd.main([*args, "--runs", str(deep_runs.parent), "--experiment", "runs", "--out", str(out_file)])
        captured = capsys.readouterr()
        assert rc == 0 and out_file.exists(), (args, captured.err)


# --------------------------------------------------------------------------- 5: output that breaks


def test_table4_of_a_synthetic_graph_run_compiles(tmp_path, capsys):
    """A real `model=svgae dataset=synthetic_graph` run: its row was not escaped ("Missing $ inserted")."""
    runs = tmp_path / "runs"
    for model in ("nvgae", "svgae"):
        put(runs / model, vgae_record(model, "synthetic_graph", 0, 0.91, 0.92, experiment="linkpred_smoke"))
    assert tables_cmd.main(["--runs", str(runs), "--out", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    tex = (tmp_path / "out" / "table4.tex").read_text()
    assert "\nsynthetic\\_graph & $91.0$ & $92.0$ & $91.0$ & $92.0$ \\\\\n" in tex, tex
    assert "| synthetic\\_graph | 91.0 |" in (tmp_path / "out" / "table4.md").read_text()
    if shutil.which("pdflatex") is None:
        return  # the escaping is checked above; compiling needs pdflatex
    proc = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "tables.tex"],
        cwd=tmp_path / "out",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]


HOSTILE_NAMES = [
    "synthetic_graph",
    "100% [x] & $y$ #1 {z} ~ ^ \\ <a>|b",
    "*starred",
    "[bracketed]",
    "- listed",
    "1. numbered",
    "naïve Ångström ß β-set µ",
    "日本語 ☃",
]


@pytest.fixture(scope="module")
def hostile_tables(tmp_path_factory):
    """Tables 1, 3 and 4 from records whose names hold every special character; names with control
    characters or unpaired surrogates are skipped. (exit status, output directory, stderr)"""
    import contextlib
    import io

    tmp_path = tmp_path_factory.mktemp("hostile")
    runs = tmp_path / "runs"
    for i, name in enumerate(HOSTILE_NAMES):
        for seed in range(2):
            auc = 0.9 + 0.01 * seed
            put(runs / "t4" / f"n{i}" / f"s{seed}", vgae_record("nvgae", name, seed, auc, auc))
            put(runs / "t4" / f"s{i}" / f"s{seed}", vgae_record("svgae", name, seed, auc + 0.02, auc))
        put(runs / "t1" / f"{i}", vae_record(experiment=f"exp {name}", dataset=name, model=name, budget=name))
    put(runs / "t3" / "a", m1m2_record(10, 10, experiment="t3 ¬ & _", model="S+N"))
    put(runs / "bad" / "newline", vae_record(dataset="a\nb"))
    put(runs / "bad" / "surrogate", json.dumps(vae_record(dataset="x")).replace('"x"', '"\\udcff"'))
    put(runs / "bad" / "escape", vae_record(model="\x1b[31mred"))
    out = tmp_path / "out"
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = tables_cmd.main(["--runs", str(runs), "--out", str(out)])
    return rc, out, err.getvalue()


def test_hostile_names_are_skipped_or_escaped(hostile_tables):
    rc, out, err = hostile_tables
    assert rc == 0, err
    for name in ("newline", "surrogate", "escape"):
        assert "control characters or unpaired surrogates" in skip_line(err, f"bad/{name}"), err
    for name in ("table1.tex", "table3.tex", "table4.tex", "tables.tex", "table4_vs_paper.tex"):
        tex = (out / name).read_text(encoding="utf-8") if (out / name).exists() else ""
        assert tex.isascii(), name  # plain LaTeX, whatever the document's input encoding
    t4 = (out / "table4.tex").read_text()
    assert "\nsynthetic\\_graph & " in t4 and "synthetic_graph &" not in t4
    assert "{*}starred" in t4 and "{[}bracketed{]}" in t4
    assert r"na\"{i}ve \r{A}ngstr\"{o}m \ss{} \ensuremath{\beta}-set \ensuremath{\mu}" in t4
    assert r"100\% {[}x{]} \& \$y\$ \#1 \{z\} \textasciitilde{} \textasciicircum{} \textbackslash{}" in t4


def _md_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("|")]


def test_markdown_rows_stay_rows(hostile_tables):
    rc, out, _ = hostile_tables
    for name in ("table1.md", "table4.md"):
        md = (out / name).read_text(encoding="utf-8")
        rows = _md_rows(md)
        widths = {len(re.findall(r"(?<!\\)\|", row)) for row in rows}
        assert rows and len(widths) == 1, (name, widths)  # no row split or widened by a "|"
        assert "\\- listed" in md and "1\\. numbered" in md and "日本語 ☃" in md
        for line in md.splitlines():
            assert not line.startswith(("- ", "1. ", "* ", "[", "#  ")), line  # no list, link or heading made


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed: the escaping is tested directly")
def test_hostile_tables_compile_with_pdflatex(hostile_tables, tmp_path):
    rc, out, _ = hostile_tables
    build = tmp_path / "latex"
    build.mkdir()
    shutil.copy(out / "tables.tex", build / "tables.tex")
    proc = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "tables.tex"],
        cwd=build,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Missing character" not in (build / "tables.log").read_text(errors="replace")


def test_latex_escape_is_ascii_and_compiles_alone():
    for text in ["a\nb\tc", "\x1b[0m", "\u202eevil", "\udcff", "€", "ǖ", "ﬁ²", "Ω ς"]:
        escaped = markup.latex_escape(text)
        assert escaped.isascii() and "\n" not in escaped and "\x1b" not in escaped, (text, escaped)
    assert markup.latex_escape("a\nb\x1b[0m") == r"a b\textless{}U+001B\textgreater{}{[}0m"
    assert markup.markdown_escape("a|b\nc\x1b") == r"a\|b c\<U+001B\>"
    assert markup.markdown_escape("0.5") == "0.5" and markup.markdown_escape("S+N") == "S+N"


def test_status_prints_a_failure_reason_on_one_line(tmp_path, capsys):
    run = tmp_path / "runs" / "x"
    run.mkdir(parents=True)
    reason = "line1\nline2\r\x1b[31mred\x1b[0m \u202e" + "y" * 5000
    (run / "status.json").write_text(json.dumps({"status": "failed", "reason": reason}))
    odd = tmp_path / "runs" / "new\nline\x1b[2J"
    odd.mkdir()
    status = {"status": "running", "host": "h\x1b]0;x\x07", "pid": "1\n2", "epoch": 3, "updated": time.time()}
    (odd / "status.json").write_text(json.dumps(status))
    assert status_cmd.main(["--runs", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out and "\u202e" not in out
    lines = out.splitlines()
    assert len(lines) == 3, out[:2000]
    failed = next(line for line in lines if line.startswith("failed"))
    assert "line1\\nline2\\r\\x1b[31mred\\x1b[0m \\u202e" in failed and len(failed) < 1000
    assert "new\\nline\\x1b[2J" in out and "h\\x1b]0;x\\x07" in out


def test_tables_print_skipped_paths_and_reasons_on_one_line(tmp_path, capsys):
    runs = tmp_path / "runs"
    put(runs / "odd\ndir\x1b[2J", "{")
    put(runs / "good", vae_record())
    big = vae_record()
    big["metrics"]["knn_acc"] = list(range(100_000))
    put(runs / "big", big)
    assert tables_cmd.main(["--runs", str(runs), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "\x1b" not in err and "odd\\ndir\\x1b[2J/result.json: invalid JSON" in err
    assert len(stderr_lines(err)) == 2 and all(len(line) < 1200 for line in stderr_lines(err)), err[:3000]


def test_a_lock_file_that_is_a_fifo_never_blocks(tmp_path):
    import threading

    os.mkfifo(tmp_path / ".lock")
    found: list[str] = []
    reader = threading.Thread(target=lambda: found.append(RunLock(tmp_path).holder()), daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert found == ["another process"]  # it blocked in open() for ever
    (tmp_path / ".lock").unlink()
    (tmp_path / ".lock").write_text('{"pid": 1, "host": "h"}' + " " * (50 << 20))
    assert RunLock(tmp_path).holder() == "another process"  # 1000 bytes read: not all of the JSON
    (tmp_path / ".lock").write_text(json.dumps({"pid": 7, "host": "a\nb\x1b"}))
    assert RunLock(tmp_path).holder() == "process 7 on a\\nb\\x1b"


# --------------------------------------------------------------------------- 6: status refuses what run refuses


@pytest.mark.parametrize(
    "overrides",
    [
        ["experiment=table1", "latent_dim=10", "seed=-1"],
        ["experiment=table3", "family=S+N", "latent_dim=10", "semisup.z2_dim=-5", "n_seeds=1"],
        ["model=nvae,svea"],
        ["latent_dim=3", "beta=1,nan"],
    ],
    ids=lambda o: " ".join(o),
)
def test_status_refuses_overrides_that_run_refuses(overrides, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    expected = check_run_overrides(["-m", *overrides])
    assert expected is not None
    assert status_cmd.main(overrides) == 2
    captured = capsys.readouterr()
    assert not captured.out
    assert stderr_lines(captured.err) == [f"error: {expected}"]


def test_status_of_a_valid_sweep_needs_no_data_and_no_writable_root(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    overrides = ["experiment=table1", "latent_dim=10", "n_seeds=1", "dataset.data_root=/nonexistent"]
    assert check_run_overrides(["-m", *overrides]) is not None  # run refuses: no MNIST there
    assert status_cmd.main(overrides) == 0
    assert capsys.readouterr().out.startswith("2 runs")
