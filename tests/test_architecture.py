"""The package's shape: no import cycles, the layer contracts hold, and a new experiment is a new
task registered from outside the package, run by the unchanged harness into an ordinary record, and
tabled by ``svae-bench tables`` through a table spec registered beside it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest
from omegaconf import OmegaConf

from svae_bench.checks import check_values, integer, name, one_of
from svae_bench.commands import tables as tables_cmd
from svae_bench.records import RESULT_FILE, is_complete_record, read_result, read_status
from svae_bench.report.collect import RECORD_KINDS, IdentityColumn, MetricField, RecordKind, register_record_kind
from svae_bench.report.spec import TABLE_SPECS, Column, TableSpec, register_table, static_columns
from svae_bench.tasks import TASKS, RunContext, Task, TaskOutput, register_task
from svae_bench.tasks.harness import run_one
from svae_bench.training import TrainingFailed

ROOT = Path(__file__).resolve().parents[1]


def test_no_import_cycle_between_any_two_modules():
    """Counting imports inside functions: a cycle anywhere is a design smell to fix where it starts."""
    graph = grimp.build_graph("svae_bench")
    cycles = [
        (a, b)
        for a in sorted(graph.modules)
        for b in graph.find_modules_directly_imported_by(a)
        if a != b and graph.chain_exists(importer=b, imported=a)
    ]
    assert cycles == []


@pytest.mark.skipif(
    shutil.which("lint-imports") is None and not (Path(sys.executable).parent / "lint-imports").exists(),
    reason="import-linter not installed",
)
def test_layer_contracts_hold():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    out = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:]
    assert "BROKEN" not in out.stdout and out.stdout.count("KEPT") >= 3


BIAS = {"fair": 0.5, "loaded": 0.3}


class CoinTask(Task):
    """A toy experiment: estimate a coin's bias from seeded flips (no model, no training loop)."""

    name = "coin"

    def check(self, cfg):
        values = OmegaConf.to_container(cfg, resolve=True)
        rules = {
            "experiment_name": name,
            "seed": integer(0, 2**31 - 1),
            "flips": integer(1, 10**6),
            "coin": one_of(*BIAS),
        }
        check_values(values, rules)
        return values

    def identity(self, cfg):
        return {
            "task": self.name,
            "experiment": str(cfg.experiment_name),
            "model": str(cfg.coin),
            "dataset": "flips",
            "flips": int(cfg.flips),
            "seed": int(cfg.seed),
        }

    def prepare(self, cfg):
        return int(cfg.flips)

    def run(self, cfg, prepared, ctx: RunContext) -> TaskOutput:
        import random

        if cfg.get("explode"):
            raise TrainingFailed("the coin landed on its edge", [{"event": "edge"}])
        rng = random.Random(int(cfg.seed))
        heads = sum(rng.random() < BIAS[cfg.coin] for _ in range(prepared))
        (ctx.out_dir / "flips.txt").write_text(f"{heads}/{prepared}\n")
        ctx.on_epoch(1)
        return TaskOutput(metrics={"bias": heads / prepared}, fields={"epochs": 1}, summary=f"bias {heads / prepared}")


@pytest.fixture
def coin():
    task = register_task(CoinTask())
    yield task
    TASKS.pop(task.name)


@pytest.fixture
def coin_table():
    """What the coin's records hold and its table: the only report-side files a new experiment adds."""
    register_record_kind(
        RecordKind("coin", columns=(IdentityColumn("flips"),), metrics=(MetricField("bias", fraction=True),))
    )
    spec = register_table(
        TableSpec(
            name="coin_table",
            title="Coin table",
            task="coin",
            columns=static_columns(Column("bias", "bias", "bias", "bias")),
            what=lambda columns, mk: "estimated probability of heads",
            bold_rule=lambda names, mk: f"Bold: the higher of {names[0]} and {names[1]} where Welch's p < 0.01.",
            row=("flips", "n", "$n$"),
            compared=("fair", "loaded"),
        )
    )
    yield spec
    TABLE_SPECS.pop(spec.name)
    RECORD_KINDS.pop("coin")


def coin_cfg(**kw):
    values = {"task": "coin", "experiment_name": "toy", "seed": 3, "flips": 1000, "coin": "loaded"}
    return OmegaConf.create({**values, "force": False, "runs_root": "runs", **kw})


def test_a_new_task_runs_through_the_unchanged_harness(tmp_path, coin):
    run_dir = tmp_path / "toy" / "seed=3"
    record = run_one(coin_cfg(), run_dir)
    assert is_complete_record(record) and read_result(run_dir) == record
    assert record["task"] == "coin" and record["schema_version"] == 1 and record["experiment"] == "toy"
    assert 0.25 < record["metrics"]["bias"] < 0.35 and (run_dir / "flips.txt").exists()
    assert read_status(run_dir)["status"] == "complete" and (run_dir / "config.yaml").exists()
    assert run_one(coin_cfg(), run_dir) is None  # complete: skipped
    again = run_one(coin_cfg(force=True), run_dir)  # force: run again, same seed, same numbers
    assert again is not None and again["metrics"] == record["metrics"]


def test_the_harness_records_a_new_task_s_failure_and_refuses_bad_values(tmp_path, coin):
    from svae_bench.errors import ConfigError

    run_dir = tmp_path / "boom"
    with pytest.raises(TrainingFailed):
        run_one(coin_cfg(explode=True), run_dir)
    failed = json.loads((run_dir / RESULT_FILE).read_text())
    assert failed["status"] == "failed" and failed["reason"] == "the coin landed on its edge"
    assert "metrics" not in failed and read_status(run_dir)["status"] == "failed"
    with pytest.raises(ConfigError, match="flips=0 must be an integer >= 1"):
        run_one(coin_cfg(flips=0), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_an_unknown_task_is_a_one_line_error(tmp_path):
    from svae_bench.errors import ConfigError

    with pytest.raises(ConfigError, match="task='nope' is unknown; allowed: .*vae"):
        run_one(coin_cfg(task="nope"), tmp_path / "x")


def test_a_new_task_s_records_become_a_table_through_its_spec(tmp_path, coin, coin_table, capsys):
    """No edit of the table code: the registered spec lays out the coin's runs like Tables 1 and 2."""
    runs = tmp_path / "runs"
    for coin_name in BIAS:
        for flips in (100, 1000):
            for seed in range(3):
                run_one(coin_cfg(coin=coin_name, flips=flips, seed=seed), runs / coin_name / f"{flips}-{seed}")
    out = tmp_path / "tables"
    assert tables_cmd.main(["--runs", str(runs), "--out", str(out)]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == ["coin_table.csv", "coin_table.md", "coin_table.tex", "runs.csv", "summary.csv", "tables.tex"]
    md = (out / "coin_table.md").read_text()
    assert md.startswith("### Coin table: flips (experiment toy)")
    assert "| n | fair bias | loaded bias |" in md and "over n = 3 runs per cell" in md
    rows = {line.split(" | ")[0].lstrip("| "): line for line in md.splitlines() if line.startswith("| 1")}
    assert set(rows) == {"100", "1000"}
    assert rows["1000"].count("**") == 2  # 0.5 against 0.3 with 1000 flips: fair is bold
    frame = __import__("pandas").read_csv(out / "coin_table.csv")
    assert list(frame.columns[:3]) == ["experiment", "dataset", "n"] and "beta" not in frame.columns
    assert abs(frame.loc[frame["n"] == 1000, "fair_bias_mean"].item() - 0.5) < 0.05
    assert frame["loaded_bias_n"].tolist() == [3, 3]
    runs_csv = (out / "runs.csv").read_text().splitlines()[0]
    assert runs_csv.startswith("path,experiment,dataset,model,flips,seed,") and runs_csv.endswith(",bias")
