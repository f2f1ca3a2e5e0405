"""Table 3 (semi-supervised M1+M2) from m1m2 records: layout, bold across three families, the paper."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from svae_bench.commands import tables as tables_cmd
from svae_bench.report import comparison

#: accuracies per (family, z1, z2): three seeds each; S+N clearly best at 10/10, a tie at 5/5
ACC = {
    ("N+N", 5, 5): [0.90, 0.91, 0.92],
    ("S+S", 5, 5): [0.905, 0.915, 0.925],
    ("S+N", 5, 5): [0.90, 0.92, 0.91],
    ("N+N", 10, 10): [0.80, 0.81, 0.82],
    ("S+S", 10, 10): [0.85, 0.86, 0.87],
    ("S+N", 10, 10): [0.950, 0.951, 0.952],
    ("N+N", 5, 10): [0.85, 0.86, 0.87],
    ("S+S", 5, 10): [0.88, 0.89, 0.90],
    ("S+N", 5, 10): [0.89, 0.90, 0.91],
    ("N+N", 10, 5): [0.70, 0.71, 0.72],
    ("S+S", 10, 5): [0.75, 0.76, 0.77],
    ("S+N", 10, 5): [0.80, 0.81, 0.82],
}


def _record(family: str, z1: int, z2: int, seed: int, acc: float) -> dict:
    return {
        "schema_version": 1,
        "status": "complete",
        "task": "m1m2",
        "experiment": "table3_laptop",
        "model": family,
        "dataset": "mnist",
        "latent_dim": z1,
        "z2_dim": z2,
        "beta": 1.0,
        "seed": seed,
        "budget": "laptop",
        "metrics": {"acc": {"100": acc}, "val_acc": {"100": acc - 0.01}},
        "epochs": 20,
    }


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("t3")
    runs = root / "runs"
    for (family, z1, z2), values in ACC.items():
        for seed, acc in enumerate(values):
            run = runs / family / f"z1={z1}" / f"z2={z2}" / f"seed={seed}"
            run.mkdir(parents=True)
            (run / "result.json").write_text(json.dumps(_record(family, z1, z2, seed, acc)))
    assert tables_cmd.main(["--runs", str(runs), "--out", str(root / "tables")]) == 0
    return root / "tables"


def _rows(md: str) -> dict[str, list[str]]:
    lines = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| z1")]
    return {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines)}


def test_table3_layout_rows_z1_z2_and_bold_only_against_both_others(out: Path) -> None:
    names = sorted(p.name for p in out.iterdir())
    assert {"table3.csv", "table3.md", "table3.tex", "table3_vs_paper.csv", "table3_vs_paper.md"} <= set(names)
    assert not any(n.startswith(("table1", "table2")) for n in names)  # no VAE runs: no Tables 1 and 2
    md = (out / "table3.md").read_text()
    assert "| z1/z2 | N+N 100 labels | S+S 100 labels | S+N 100 labels |" in md
    rows = _rows(md)
    assert list(rows) == ["5/5", "5/10", "10/5", "10/10"]  # numeric order of (z1, z2)
    assert rows["10/10"] == ["81.0 ± 1.0", "86.0 ± 1.0", "**95.1 ± 0.1**"]
    assert not any("**" in c for c in rows["5/5"])  # no family beats both others
    # 5/10: S+N 90 vs S+S 89 (same spread): not significant against S+S, so not bold
    assert not any("**" in c for c in rows["5/10"])
    frame = pd.read_csv(out / "table3.csv")
    assert list(frame.columns[:4]) == ["experiment", "dataset", "beta", "z1/z2"]
    assert frame.loc[frame["z1/z2"] == "10/10", "S+N_acc100_pct_mean"].item() == pytest.approx(95.1)
    tex = (out / "table3.tex").read_text()
    assert r"$z_1/z_2$" in tex and r"\multicolumn{1}{c}{S+N}" in tex


def test_table3_against_the_paper(out: Path) -> None:
    ref = comparison.reference_values(comparison.load_reference(), "table3")
    assert ref[("S+N", (10, 10), "acc_100")] == (95.9, pytest.approx(float("nan"), nan_ok=True))
    assert len(ref) == 27
    frame = pd.read_csv(out / "table3_vs_paper.csv")
    row = frame[frame["z1/z2"] == "10/10"].iloc[0]
    assert row["S+N_paper_mean"] == 95.9 and row["S+N_diff"] == pytest.approx(95.1 - 95.9)
    assert row["paper_order"] == "S+S>S+N>N+N" and row["our_order"] == "S+N>S+S>N+N"
    assert row["order_holds"] == "no"
    md = (out / "table3_vs_paper.md").read_text()
    assert "S+N > S+S > N+N" in md and "Table 3: test accuracy (%) with 100 labelled images" in md


def test_heatmap_figure_of_table3(out: Path) -> None:
    from svae_bench.commands import figures as figures_cmd
    from svae_bench.report.collect import collect_runs, runs_frame
    from svae_bench.report.heatmap import accuracy_grid

    runs = out.parent / "runs"
    z1s, z2s, grids, column = accuracy_grid(runs_frame(collect_runs(runs)[0]))
    assert (z1s, z2s, column) == ([5, 10], [5, 10], "acc_100") and list(grids) == ["N+N", "S+S", "S+N"]
    assert grids["S+N"][1, 1] == pytest.approx(95.1) and grids["N+N"][0, 0] == pytest.approx(91.0)
    png = out.parent / "heatmap.png"
    assert figures_cmd.main(["--heatmap", "--runs", str(out.parent), "--experiment", "runs", "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = out.parent / "empty"
    empty.mkdir()
    assert figures_cmd.main(["--heatmap", "--runs", str(out.parent), "--experiment", "empty"]) == 2
