"""Guards found by mutation testing: which records count as complete (so that a failed or
incomplete run is re-run, not skipped), and where the atomic writer puts its temporary file.

records/record.py and records/atomic.py promise: result.json with ``status: complete`` (and its
metrics) marks a finished run; every file is written to a temporary file *in the same directory*
and renamed into place (a rename within one directory is atomic; across file systems os.replace
fails or copies). tasks/harness.py promises: a run whose result.json is complete is skipped
unless force=true; any other run is (re-)run.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

import svae_bench.tasks.harness as run_mod
import svae_bench.tasks.vae as vae_task
from svae_bench.records import is_complete_record, read_result, write_bytes_atomic, write_json_atomic

METRICS = {"elbo": -1.0, "re": -0.5, "kl": 0.5, "ll": -0.9, "knn_acc": {"100": 0.9}}


@pytest.mark.parametrize(
    "record,complete",
    [
        ({"status": "complete", "metrics": METRICS}, True),
        ({"status": "failed", "reason": "non-finite objective", "events": []}, False),
        ({"status": "failed", "metrics": METRICS}, False),
        ({"status": "running", "metrics": METRICS}, False),
        ({"metrics": METRICS}, False),
        ({"status": "complete"}, False),
        ({"status": "complete", "metrics": None}, False),
        ({"status": "complete", "metrics": [1.0, 2.0]}, False),
        ({"status": "complete", "metrics": "ll=-0.9"}, False),
        ({"status": "Complete", "metrics": METRICS}, False),
        (None, False),
    ],
)
def test_is_complete_record(record, complete):
    assert is_complete_record(record) is complete


@pytest.mark.parametrize(
    "text",
    ['[{"status": "complete", "metrics": {}}]', '"complete"', "17", "null", '{"status": "complete", "metrics": {', ""],
)
def test_read_result_gives_none_for_anything_but_a_json_object(tmp_path, text):
    (tmp_path / "result.json").write_text(text)
    assert read_result(tmp_path) is None
    assert is_complete_record(read_result(tmp_path)) is False


def test_read_result_missing_file(tmp_path):
    assert read_result(tmp_path) is None


# -- run_one: skip only complete records ------------------------------------------------------------


class Reran(Exception):
    """Raised where run_one starts the actual work (building the dataset): the run was not skipped."""


@pytest.fixture
def cfg_for():
    with initialize_config_module(config_module="svae_bench.conf", version_base="1.3"):
        yield lambda *overrides: compose(config_name="config", overrides=["trainer.progress=false", *overrides])


@pytest.fixture
def no_work(monkeypatch):
    def build_dataset(cfg):
        raise Reran

    monkeypatch.setattr(vae_task, "build_dataset", build_dataset)


def write_record(run_dir: Path, record) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "result.json").write_text(json.dumps(record))


@pytest.mark.parametrize(
    "record",
    [
        {"status": "failed", "reason": "non-finite objective at epoch 4, step 150, after 3 retries", "events": []},
        {"status": "complete"},  # complete-looking, without metrics
        {"status": "complete", "metrics": None},
        {"status": "running", "metrics": METRICS},
        [{"status": "complete", "metrics": METRICS}],  # not a JSON object
    ],
    ids=["failed", "no-metrics", "null-metrics", "running", "list"],
)
def test_a_failed_or_incomplete_record_is_rerun(tmp_path, cfg_for, no_work, record):
    write_record(tmp_path, record)
    with pytest.raises(Reran):
        run_mod.run_one(cfg_for(), tmp_path)


def write_complete_record(run_dir: Path, cfg) -> None:
    """A complete record of ``cfg``'s run (METRICS, 3 epochs) in ``run_dir``."""
    from omegaconf import OmegaConf

    config = OmegaConf.to_container(cfg, resolve=True)
    write_record(run_dir, {"status": "complete", "metrics": METRICS, "epochs": 3, "config": config})


def test_a_complete_record_is_skipped_unless_forced(tmp_path, cfg_for, no_work):
    cfg = cfg_for()
    write_complete_record(tmp_path, cfg)
    assert run_mod.run_one(cfg, tmp_path) is None  # skipped: the work never started
    assert json.loads((tmp_path / "result.json").read_text())["metrics"] == METRICS  # untouched
    with pytest.raises(Reran):
        run_mod.run_one(cfg_for("force=true"), tmp_path)


def test_a_forced_rerun_removes_the_old_record_before_it_trains(tmp_path, cfg_for, monkeypatch):
    """A forced re-run killed while it trains must not leave the old numbers standing as its record."""
    write_complete_record(tmp_path, cfg_for())
    seen = {}

    def train_vae(*args, **kwargs):  # the moment training starts: a kill -9 from here on
        seen["record when training starts"] = read_result(tmp_path)
        raise Reran

    monkeypatch.setattr(vae_task, "train_vae", train_vae)
    with pytest.raises(Reran):
        run_mod.run_one(cfg_for("force=true"), tmp_path)
    assert seen == {"record when training starts": None}


# -- the atomic writer's temporary file ------------------------------------------------------------


@pytest.fixture
def observed(monkeypatch):
    """Records the temporary files mkstemp makes and the renames, calling the real functions."""
    seen: dict[str, list] = {"mkstemp": [], "replace": []}
    real_mkstemp, real_replace = tempfile.mkstemp, os.replace

    def mkstemp(*args, **kwargs):
        fd, path = real_mkstemp(*args, **kwargs)
        seen["mkstemp"].append(Path(path))
        return fd, path

    def replace(src, dst, *args, **kwargs):
        seen["replace"].append((Path(src), Path(dst)))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(os, "replace", replace)
    return seen


@pytest.mark.parametrize("writer", ["bytes", "json"])
def test_atomic_write_makes_its_temporary_file_beside_the_target(tmp_path, observed, writer):
    target = tmp_path / "deep" / "run" / ("r.json" if writer == "json" else "a.bin")
    if writer == "json":
        write_json_atomic(target, {"x": 1})
    else:
        write_bytes_atomic(target, b"abc")
    (tmp,) = observed["mkstemp"]
    ((src, dst),) = observed["replace"]
    assert tmp.parent.resolve() == target.parent.resolve()  # same directory, so the rename is atomic
    assert src == tmp and dst.resolve() == target.resolve()
    assert os.stat(target).st_dev == os.stat(target.parent).st_dev
    assert not tmp.exists() and sorted(p.name for p in target.parent.iterdir()) == [target.name]
    assert target.read_bytes() == (b'{\n  "x": 1\n}\n' if writer == "json" else b"abc")


def test_atomic_write_never_uses_the_system_temp_dir(tmp_path, observed, monkeypatch):
    # even with TMPDIR pointing elsewhere, the temporary file goes beside the target
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("TMPDIR", str(elsewhere))
    monkeypatch.setattr(tempfile, "tempdir", str(elsewhere))
    target = tmp_path / "out" / "f.bin"
    write_bytes_atomic(target, b"x" * 1000)
    (tmp,) = observed["mkstemp"]
    assert tmp.parent.resolve() == target.parent.resolve()
    assert list(elsewhere.iterdir()) == []
