"""The committed results/ are outputs of the project's own commands: `svae-bench tables` run on
the committed run records reproduces the committed tables byte for byte."""

from __future__ import annotations

import importlib.util
import shlex
from pathlib import Path

import pytest

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
