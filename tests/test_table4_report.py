"""Table 4 (link prediction) from vgae records: rows are data sets, AUC and AP per model, Welch bolding,
the comparison with the paper's shipped numbers, and the figure."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from svae_bench.commands import figures as figures_cmd
from svae_bench.commands import tables as tables_cmd
from svae_bench.report import comparison
from svae_bench.report.specs.linkpred import load_reference_table4

SHARED_REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "paper" / "reference_table4.csv"
#: (model, dataset) -> test AUC of three seeds; AP = AUC + 0.005. S-VGAE clearly ahead on Cora only.
AUC = {
    ("nvgae", "cora"): [0.920, 0.921, 0.922],
    ("svgae", "cora"): [0.940, 0.941, 0.942],
    ("nvgae", "citeseer"): [0.900, 0.930, 0.910],
    ("svgae", "citeseer"): [0.910, 0.920, 0.935],
}


def _record(model: str, dataset: str, seed: int, auc: float) -> dict:
    return {
        "schema_version": 1,
        "status": "complete",
        "task": "vgae",
        "experiment": "table4",
        "model": model,
        "dataset": dataset,
        "latent_dim": 16,
        "beta": 1.0,
        "seed": seed,
        "ambient_dim": 17 if model == "svgae" else 16,
        "split_seed": 0,
        "metrics": {"auc": auc, "ap": auc + 0.005, "val_auc": auc - 0.01, "val_ap": auc - 0.005},
        "epochs": 200,
    }


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("t4")
    runs = root / "runs" / "table4"
    for (model, dataset), values in AUC.items():
        for seed, auc in enumerate(values):
            run = runs / dataset / model / "d=16" / "beta=1" / f"seed={seed}"
            run.mkdir(parents=True)
            (run / "result.json").write_text(json.dumps(_record(model, dataset, seed, auc)))
    assert tables_cmd.main(["--runs", str(root / "runs"), "--out", str(root / "tables")]) == 0
    return root / "tables"


def test_reference_ships_with_the_package() -> None:
    ref = load_reference_table4()
    assert len(ref) == 12 and set(ref["d"]) == {"cora", "citeseer", "pubmed"}
    values = comparison.reference_values(comparison.load_reference(), "table4")
    assert values[("svgae", "cora", "auc")] == (94.1, 0.1) and values[("nvgae", "citeseer", "ap")] == (91.5, 0.5)
    shipped = comparison.resources.files("svae_bench.report").joinpath("reference_table4.csv").read_text()
    if SHARED_REFERENCE.is_file():
        assert shipped == SHARED_REFERENCE.read_text()


def test_table4_rows_are_data_sets_and_bold_needs_welch(out: Path) -> None:
    md = (out / "table4.md").read_text()
    assert "| data set | N-VGAE AUC | N-VGAE AP | S-VGAE AUC | S-VGAE AP |" in md
    assert "| cora | 92.1 ± 0.1 | 92.6 ± 0.1 | **94.1 ± 0.1** | **94.6 ± 0.1** |" in md
    assert "| citeseer | 91.3 ± 1.5 | 91.8 ± 1.5 | 92.2 ± 1.3 | 92.7 ± 1.3 |" in md  # not significant: no bold
    frame = pd.read_csv(out / "table4.csv")
    cora = frame[frame["dataset"] == "cora"].iloc[0]
    assert cora["svgae_auc_pct_mean"] == pytest.approx(94.1) and cora["svgae_auc_pct_n"] == 3


def test_table4_against_the_paper(out: Path) -> None:
    frame = pd.read_csv(out / "table4_vs_paper.csv")
    row = frame[(frame["data set"] == "cora") & (frame["metric"] == "auc")].iloc[0]
    assert row["svgae_paper_mean"] == 94.1 and row["nvgae_paper_mean"] == 92.7
    assert row["svgae_diff"] == pytest.approx(0.0, abs=1e-9) and row["order_holds"] == "yes"
    assert row["welch_p"] < 0.01
    md = (out / "table4_vs_paper.md").read_text()
    assert "### Table 4 against the paper: cora (experiment table4)" in md
    assert "| cora | AUC | 92.1 ± 0.1 | 92.7 ± 0.2 | -0.6 | **94.1 ± 0.1** | 94.1 ± 0.1 | 0.0 | S > N | S > N |" in md


def test_table4_figure(out: Path, capsys) -> None:
    runs = out.parent / "runs"
    target = out.parent / "figure.png"
    assert figures_cmd.main(["--linkpred", "--runs", str(runs), "--experiment", "table4", "--out", str(target)]) == 0
    assert target.stat().st_size > 10_000 and "12 runs" in capsys.readouterr().out
    assert figures_cmd.main(["--linkpred", "--runs", str(runs), "--experiment", "nothing"]) == 2
