"""The committed results/ are outputs of the project's own commands: `svae-bench tables` run on
the committed run records reproduces the committed tables byte for byte."""

from __future__ import annotations

import importlib.util
import shlex
from pathlib import Path

import pytest
import yaml

from svae_bench.commands import tables as tables_cmd

REPO = Path(__file__).resolve().parents[1]
RESULTS = sorted(p.parent for p in (REPO / "results").glob("*/tables") if (p.parent / "runs").is_dir())


def test_every_results_folder_has_runs_and_tables() -> None:
    assert {p.name for p in RESULTS} >= {"synthetic_figure", "mnist_laptop"}


@pytest.mark.parametrize("folder", RESULTS, ids=[p.name for p in RESULTS])
def test_tables_reproduce_from_committed_records(folder: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(REPO)  # the captions name the --runs path as given on the command line
    runs = folder.relative_to(REPO) / "runs"
    assert tables_cmd.main(["--runs", str(runs), "--out", str(tmp_path)]) == 0
    assert "(0 skipped)" in capsys.readouterr().out
    committed = sorted(p.name for p in (folder / "tables").iterdir() if p.is_file() and p.suffix != ".pdf")
    assert sorted(p.name for p in tmp_path.iterdir()) == committed
    for name in committed:
        assert (tmp_path / name).read_bytes() == (folder / "tables" / name).read_bytes(), name


def test_budget_comparison_reproduces_from_committed_records(monkeypatch, capsys) -> None:
    """results/budgets.md (scripts/compare_budgets.py) is remade byte for byte by the command on its first line."""
    committed = REPO / "results" / "budgets.md"
    if not committed.exists():
        pytest.skip("no results/budgets.md committed")
    text = committed.read_text(encoding="utf-8")
    first = text.splitlines()[0]
    prefix, suffix = "<!-- made by: python scripts/compare_budgets.py ", " -->"
    assert first.startswith(prefix) and first.endswith(suffix), first
    spec = importlib.util.spec_from_file_location("compare_budgets", REPO / "scripts" / "compare_budgets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.chdir(REPO)
    assert module.main(shlex.split(first[len(prefix) : -len(suffix)])) == text
    assert "skipped" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "committed", sorted((REPO / "results").glob("*/ll_estimators.md")), ids=lambda p: p.parent.name
)
def test_ll_estimator_comparison_reproduces_from_committed_records(committed: Path, monkeypatch, capsys) -> None:
    """results/*/ll_estimators.md (scripts/compare_ll_estimators.py, issue 31) is remade byte for byte
    by the command on its first line."""
    text = committed.read_text(encoding="utf-8")
    first = text.splitlines()[0]
    prefix, suffix = "<!-- made by: python scripts/compare_ll_estimators.py ", " -->"
    assert first.startswith(prefix) and first.endswith(suffix), first
    spec = importlib.util.spec_from_file_location("compare_ll", REPO / "scripts" / "compare_ll_estimators.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.chdir(REPO)
    assert module.main(shlex.split(first[len(prefix) : -len(suffix)])) == text
    assert "skipped" not in capsys.readouterr().err


def _markdown_rows(text: str, header_start: str) -> list[list[str]]:
    """The body rows (cells stripped) of the first Markdown table whose header row starts with ``header_start``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


@pytest.mark.parametrize("page", ["README.md", "docs/table1.md"])
def test_readme_budget_summary_matches_budget_comparison(page: str) -> None:
    """The "What each budget gives" table of the README and of docs/table1.md is a condensed copy of
    results/budgets.md (and of conf/budget/): every figure in it must be the one those files hold, so
    a new record that changes budgets.md cannot leave either page behind."""
    committed = REPO / "results" / "budgets.md"
    if not committed.exists():
        pytest.skip("no results/budgets.md committed")
    comparison = committed.read_text(encoding="utf-8")
    by_cell = {(row[0], row[1], row[2]): row for row in _markdown_rows(comparison, "| budget | d | model |")}
    cost = {row[0]: row for row in _markdown_rows(comparison, "| budget | runs shown |")}
    readme = (REPO / page).read_text(encoding="utf-8")
    summary = _markdown_rows(readme, "| budget | epochs / patience / warm-up |")
    assert [row[0] for row in summary] == ["`laptop`", "`medium`", "`paper`"]
    for row in summary:
        name = row[0].strip("`")
        trainer = yaml.safe_load((REPO / "conf" / "budget" / f"{name}.yaml").read_text())["trainer"]
        assert row[1] == f"{trainer['max_epochs']} / {trainer['patience']} / {trainer['warmup_epochs']}", name
        for k, d in enumerate(("2", "10", "40")):
            n, s = by_cell[(name, d, "N-VAE")], by_cell[(name, d, "S-VAE")]
            ref = "0" if n[4] == s[4] == "0" else f"{n[4]}, {s[4]}"
            assert row[2 + k] == ref, (name, d, "Δ paper budget")
            assert row[5 + k] == f"{n[5]}, {s[5]}", (name, d, "Δ published")
        minutes = [float(r[7]) for key, r in by_cell.items() if key[0] == name]
        assert row[8] == f"{round(min(minutes))}-{round(max(minutes))}", (name, "minutes per run")
        assert row[9] == f"~{cost[name][4]} core-hours", (name, "Table 1 core-hours")
