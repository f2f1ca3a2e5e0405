"""Tests for svae_bench.report.tables: records -> runs.csv, summary.csv, Tables 1 and 2 (CSV, LaTeX, Markdown)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from svae_bench.commands import tables as tables_cmd
from svae_bench.records import RecordError
from svae_bench.report import collect, markup, stats, tables

DATASET = "binarized_mnist"  # the underscore must be escaped in LaTeX
OUTPUTS = {
    "runs.csv",
    "summary.csv",
    "table1.csv",
    "table1.tex",
    "table1.md",
    "table2.csv",
    "table2.tex",
    "table2.md",
    "tables.tex",
}

# (model, d) -> metric -> one value per seed. Chosen so that at d = 2 S-VAE beats N-VAE
# clearly (p << 0.01) on LL, L[q], RE and 100-label k-NN, and at d = 5 nothing differs.
METRICS: dict[tuple[str, int], dict[str, list[float]]] = {
    ("nvae", 2): {
        "ll": [-140.0, -140.5, -139.5],
        "elbo": [-142.0, -143.0, -141.0],
        "re": [-130.0, -131.0, -129.0],
        "kl": [12.0, 12.5, 11.5],
        "100": [0.70, 0.71, 0.72],
        "600": [0.80, 0.85, 0.90],
        "1000": [0.85, 0.86, 0.87],
    },
    ("svae", 2): {
        "ll": [-130.0, -130.2, -129.8],
        "elbo": [-132.0, -132.5, -131.5],
        "re": [-120.0, -120.5, -119.5],
        "kl": [20.0, 21.0, 22.0],
        "100": [0.80, 0.81, 0.82],
        "600": [0.82, 0.86, 0.84],
        "1000": [0.88, 0.89, 0.90],
    },
    ("nvae", 5): {
        "ll": [-110.0, -108.0, -112.0],
        "elbo": [-113.0, -111.0, -115.0],
        "re": [-100.0, -98.0, -102.0],
        "kl": [13.0, 13.5, 12.5],
        "100": [0.80, 0.85, 0.90],
        "600": [0.90, 0.91, 0.92],
        "1000": [0.92, 0.93, 0.94],
    },
    ("svae", 5): {
        "ll": [-109.0, -111.0, -107.0],
        "elbo": [-112.0, -114.0, -110.0],
        "re": [-99.0, -101.0, -97.0],
        "kl": [13.0, 14.0, 12.0],
        "100": [0.84, 0.86, 0.82],
        "600": [0.91, 0.90, 0.92],
        "1000": [0.93, 0.92, 0.94],
    },
}
AE = {"re": -125.0, "knn_acc": {"100": 0.60, "600": 0.70, "1000": 0.75}, "elbo": None}
N_COMPLETE = 3 * len(METRICS) + 1
N_BAD = 4


def record(model: str, d: int, seed: int, metrics: dict, **extra) -> dict:
    rec = {
        "status": "complete",
        "experiment": "default",
        "model": model,
        "dataset": DATASET,
        "latent_dim": d,
        "ambient_dim": d + 1 if model == "svae" else d,
        "beta": 1.0,
        "seed": seed,
        "metrics": metrics,
        "epochs": 40,
        "best_epoch": 31,
        "train_seconds": 55.1,
        "eval_seconds": 9.8,
        "versions": {"svae_bench": "0.1.0"},
        "git_commit": "abc123",
        "config": {},
    }
    rec.update(extra)
    return rec


def seed_metrics(model: str, d: int, seed: int) -> dict:
    values = METRICS[(model, d)]
    out = {k: values[k][seed] for k in ("ll", "elbo", "re", "kl")}
    out["knn_acc"] = {k: values[k][seed] for k in ("100", "600", "1000")}
    return out


def write(path: Path, content: dict | str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    text = content if isinstance(content, str) else json.dumps(content)
    (path / "result.json").write_text(text)


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    runs = tmp_path / "my_runs"
    for model, d in METRICS:
        for seed in range(3):
            rec = record(model, d, seed, seed_metrics(model, d, seed))
            write(runs / DATASET / f"{model}_d{d}_s{seed}", rec)
    ae = record("ae", 2, 0, AE)
    del ae["experiment"]  # old records have no experiment: "default"
    write(runs / DATASET / "ae_d2_s0", ae)
    write(runs / "bad" / "truncated", '{"status": "complete", "model": "svae", "metrics": {"ll": -9')
    write(runs / "bad" / "running", record("svae", 2, 7, seed_metrics("svae", 2, 0), status="running"))
    missing = record("svae", 2, 8, seed_metrics("svae", 2, 0))
    del missing["seed"]
    write(runs / "bad" / "missing", missing)
    write(runs / "bad" / "text_metric", record("svae", 2, 9, {"ll": "abc", "re": -1.0}))
    return runs


@pytest.fixture
def built(runs_dir: Path, tmp_path: Path, capsys) -> tuple[Path, str, str]:
    out = tmp_path / "out" / "tables"
    assert tables_cmd.main(["--runs", str(runs_dir), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    return out, captured.out, captured.err


def md_row(text: str, first: str) -> list[str]:
    """The cells of the Markdown table row whose first cell is `first` (first table in text)."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first:
            return cells
    raise AssertionError(f"no row {first!r}")


def md_header(text: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith("|"))
    return [c.strip() for c in line.strip().strip("|").split("|")]


def assert_balanced(tex: str) -> None:
    """\\begin/\\end pairs nest properly and unescaped braces balance."""
    stack: list[str] = []
    for kind, name in re.findall(r"\\(begin|end)\{([^}]*)\}", tex):
        if kind == "begin":
            stack.append(name)
        else:
            assert stack and stack.pop() == name, f"\\end{{{name}}} does not close an open environment"
    assert not stack, f"unclosed environments: {stack}"
    # As TeX reads it: without comments (an unescaped % would swallow the rest of a line).
    code = re.sub(r"(?<!\\)%.*", "", tex.replace("\\\\", ""))
    depth = 0
    for char in re.sub(r"\\[{}]", "", code):
        depth += {"{": 1, "}": -1}.get(char, 0)
        assert depth >= 0, "unbalanced closing brace"
    assert depth == 0, "unbalanced braces"


# --------------------------------------------------------------------------- main and records


def test_main_writes_all_outputs_and_reports(built, runs_dir: Path) -> None:
    out, stdout, _ = built
    assert {p.name for p in out.iterdir()} == OUTPUTS  # and no temp files left behind
    assert f"tables: {N_COMPLETE} complete runs ({N_BAD} skipped) from {runs_dir} -> {out}" in stdout
    for name in OUTPUTS:
        assert str(out / name) in stdout


def test_bad_records_are_reported_and_skipped(built, runs_dir: Path) -> None:
    out, _, stderr = built
    lines = stderr.strip().splitlines()
    assert len(lines) == N_BAD
    reasons = {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in lines}
    bad = runs_dir / "bad"
    assert reasons[f"skipped {bad / 'truncated' / 'result.json'}"].startswith("invalid JSON")
    assert "running" in reasons[f"skipped {bad / 'running' / 'result.json'}"]
    assert reasons[f"skipped {bad / 'missing' / 'result.json'}"] == "missing keys: seed"
    assert "'ll' is not numeric" in reasons[f"skipped {bad / 'text_metric' / 'result.json'}"]
    runs = pd.read_csv(out / "runs.csv")
    assert not runs["path"].str.startswith("bad").any()


def test_duplicate_run_is_skipped(runs_dir: Path, tmp_path: Path, capsys) -> None:
    shutil.copytree(runs_dir / DATASET / "svae_d2_s0", runs_dir / "zz_copy")
    assert tables_cmd.main(["--runs", str(runs_dir), "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert f"skipped {runs_dir / 'zz_copy' / 'result.json'}: duplicate of run '{DATASET}/svae_d2_s0'" in err
    assert len(pd.read_csv(tmp_path / "o" / "runs.csv")) == N_COMPLETE


def test_parse_record_rejects_bad_values() -> None:
    good = record("svae", 2, 0, seed_metrics("svae", 2, 0))
    assert collect.parse_record(good, "x")["knn_acc_600"] == 0.82
    for change, reason in [
        ({"metrics": {"kl": float("nan")}}, "not finite"),
        ({"metrics": {"knn_acc": {"100": 81.0}}}, "not a fraction"),
        ({"metrics": {"knn_acc": {"many": 0.5}}}, "not an integer"),
        ({"latent_dim": "2"}, "latent_dim is not an integer"),
        ({"beta": True}, "beta is not a finite number"),
        ({"status": "failed"}, "status 'failed'"),
    ]:
        with pytest.raises(RecordError, match=reason):
            collect.parse_record({**good, **change}, "x")
    with pytest.raises(RecordError, match="not a JSON object"):
        collect.parse_record([good], "x")


def test_missing_runs_dir_returns_2_and_writes_nothing(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert tables_cmd.main(["--runs", str(tmp_path / "nope"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: runs directory '{tmp_path / 'nope'}' does not exist"
    assert not out.exists()


def test_no_complete_runs_returns_2_and_writes_nothing(tmp_path: Path, capsys) -> None:
    write(tmp_path / "runs" / "a", '{"status": "comp')
    write(tmp_path / "runs" / "b", record("svae", 2, 0, {}, status="failed"))
    out = tmp_path / "out"
    assert tables_cmd.main(["--runs", str(tmp_path / "runs"), "--out", str(out)]) == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 3 and err_lines[-1].startswith("error: no complete runs")
    assert not out.exists()


# --------------------------------------------------------------------------- CSV outputs


def test_runs_csv_rows_and_values(built) -> None:
    out, _, _ = built
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs.columns) == [
        "path",
        "experiment",
        "dataset",
        "model",
        "latent_dim",
        "ambient_dim",
        "beta",
        "seed",
        "budget",
        "epochs",
        "best_epoch",
        "train_seconds",
        "eval_seconds",
        "elbo",
        "re",
        "kl",
        "ll",
        "knn_acc_100",
        "knn_acc_600",
        "knn_acc_1000",
    ]
    assert len(runs) == N_COMPLETE
    # sorted by experiment, dataset, model (ae, nvae, svae, psvae), latent_dim, beta, seed
    assert list(zip(runs["model"], runs["latent_dim"], runs["seed"])) == (
        [("ae", 2, 0)] + [(m, d, s) for m in ("nvae", "svae") for d in (2, 5) for s in range(3)]
    )
    assert (runs["experiment"] == "default").all() and (runs["dataset"] == DATASET).all()
    assert (runs["budget"] == "none").all()  # records without a budget (nor config.budget_name)
    ae = runs.iloc[0]
    assert ae["path"] == f"{DATASET}/ae_d2_s0" and ae["re"] == -125.0 and ae["knn_acc_600"] == 0.70
    assert np.isnan(ae["ll"]) and np.isnan(ae["elbo"]) and np.isnan(ae["kl"])
    sv = runs[(runs["model"] == "svae") & (runs["latent_dim"] == 5) & (runs["seed"] == 1)].iloc[0]
    assert sv["path"] == f"{DATASET}/svae_d5_s1" and sv["ambient_dim"] == 6
    assert sv["ll"] == -111.0 and sv["knn_acc_100"] == 0.86 and sv["epochs"] == 40


def test_summary_csv_matches_numpy(built) -> None:
    out, _, _ = built
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns) == [
        "experiment",
        "dataset",
        "model",
        "latent_dim",
        "beta",
        "metric",
        "mean",
        "std",
        "n",
    ]
    checked = 0
    for (model, d), values in METRICS.items():
        for key, vals in values.items():
            metric = key if key in ("ll", "elbo", "re", "kl") else f"knn_acc_{key}"
            row = summary[(summary["model"] == model) & (summary["latent_dim"] == d) & (summary["metric"] == metric)]
            assert len(row) == 1
            assert row["mean"].iloc[0] == pytest.approx(np.mean(vals), abs=1e-12)
            assert row["std"].iloc[0] == pytest.approx(np.std(vals, ddof=1), abs=1e-12)
            assert row["n"].iloc[0] == 3
            checked += 1
    assert checked == 4 * 7
    ae = summary[summary["model"] == "ae"]
    assert list(ae["metric"]) == ["re", "knn_acc_100", "knn_acc_600", "knn_acc_1000"]  # no ll/elbo/kl rows
    assert (ae["n"] == 1).all() and ae["std"].isna().all()


def test_table_csvs_keep_numbers(built) -> None:
    out, _, _ = built
    t1 = pd.read_csv(out / "table1.csv")
    assert list(t1["d"]) == [2, 5] and (t1["beta"] == 1.0).all()
    assert t1.loc[0, "svae_ll_mean"] == pytest.approx(-130.0)
    assert t1.loc[0, "svae_ll_std"] == pytest.approx(0.2)
    assert t1.loc[0, "svae_ll_n"] == 3
    assert t1.loc[0, "ae_re_mean"] == -125.0 and t1.loc[0, "ae_re_n"] == 1
    assert np.isnan(t1.loc[0, "ae_ll_mean"])
    assert t1.loc[1, "ae_re_n"] == 0  # no AE run at d = 5
    t2 = pd.read_csv(out / "table2.csv")
    assert t2.loc[0, "svae_knn100_pct_mean"] == pytest.approx(81.0)
    assert t2.loc[0, "nvae_knn600_pct_std"] == pytest.approx(5.0)


# --------------------------------------------------------------------------- rendered tables


def test_table1_markdown_cells(built) -> None:
    out, _, _ = built
    md = (out / "table1.md").read_text()
    header = md_header(md)
    assert header[:5] == ["d", "AE LL", "AE L[q]", "AE RE", "AE KL"]
    assert header[5:9] == ["N-VAE LL", "N-VAE L[q]", "N-VAE RE", "N-VAE KL"]
    row2 = dict(zip(header, md_row(md, "2")))
    assert row2["AE LL"] == row2["AE L[q]"] == row2["AE KL"] == "–"
    assert row2["AE RE"] == "-125.00"  # n = 1: no std
    assert row2["N-VAE LL"] == "-140.00 ± 0.50"
    assert row2["N-VAE KL"] == "12.00 ± 0.50"
    row5 = dict(zip(header, md_row(md, "5")))
    assert row5["S-VAE LL"] == "-109.00 ± 2.00" and row5["AE RE"] == "–"
    assert "n = 1–3 runs per cell" in md and "binarized\\_mnist" in md


def test_table2_markdown_cells(built) -> None:
    out, _, _ = built
    md = (out / "table2.md").read_text()
    header = md_header(md)
    assert header[:4] == ["d", "AE 100", "AE 600", "AE 1000"]
    row2 = dict(zip(header, md_row(md, "2")))
    assert row2["AE 600"] == "70.0"
    assert row2["N-VAE 100"] == "71.0 ± 1.0"
    assert row2["N-VAE 600"] == "85.0 ± 5.0"
    assert row2["S-VAE 1000"] == "89.0 ± 1.0"


def test_bold_only_where_welch_significant(built) -> None:
    out, _, _ = built
    md1 = (out / "table1.md").read_text()
    header = md_header(md1)
    row2, row5 = dict(zip(header, md_row(md1, "2"))), dict(zip(header, md_row(md1, "5")))
    assert row2["S-VAE LL"] == "**-130.00 ± 0.20**"
    assert row2["S-VAE L[q]"] == "**-132.00 ± 0.50**"
    assert row2["S-VAE RE"] == "**-120.00 ± 0.50**"
    assert row2["S-VAE KL"] == "21.00 ± 1.00"  # KL differs significantly but is never compared
    assert not any("**" in row2[c] for c in header if c.startswith("N-VAE"))
    assert not any("**" in v for v in row5.values())  # d = 5: no significant difference
    md2 = (out / "table2.md").read_text()
    header2 = md_header(md2)
    row2 = dict(zip(header2, md_row(md2, "2")))
    assert row2["S-VAE 100"] == "**81.0 ± 1.0**"
    assert row2["S-VAE 600"] == "84.0 ± 2.0" and row2["N-VAE 600"] == "85.0 ± 5.0"
    assert "Welch t-test" in md1 and "p < 0.01" in md2
    tex = (out / "table1.tex").read_text()
    assert r"{\boldmath$-130.00 \pm 0.20$}" in tex
    assert r"$-140.00 \pm 0.50$" in tex and r"{\boldmath$-140.00" not in tex


def test_bold_hook_overrides_default(built, runs_dir: Path) -> None:
    runs = collect.runs_frame(collect.collect_runs(runs_dir)[0])
    t1, _ = tables.build_tables(runs, "src")[0]
    cell = ((5,), ("nvae", "kl"))
    md = tables.render_markdown(t1, bold={cell})
    row5 = dict(zip(md_header(md), md_row(md, "5")))
    assert row5["N-VAE KL"] == "**13.00 ± 0.50**" and row5["S-VAE LL"] == "-109.00 ± 2.00"
    assert "**" not in tables.render_latex(t1, bold=set()).replace("boldmath", "")
    assert r"\boldmath" not in tables.render_latex(t1, bold=set())


def test_latex_snippets_escape_and_use_booktabs(built, runs_dir: Path) -> None:
    out, _, _ = built
    for name in ("table1.tex", "table2.tex"):
        tex = (out / name).read_text()
        for rule in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{table}", r"\caption{"):
            assert rule in tex
        assert r"binarized\_mnist" in tex and "binarized_mnist" not in tex
        assert r"my\_runs" in tex and "my_runs" not in tex  # the source directory, escaped
        assert r"$n = 1$--$3$ runs per cell" in tex
        assert "±" not in tex and "–" not in tex  # ASCII LaTeX only
        assert_balanced(tex)
    tex1 = (out / "table1.tex").read_text()
    assert r"\multicolumn{4}{c}{S-VAE}" in tex1 and r"$\mathcal{L}[q]$" in tex1
    assert re.search(r"^2 & -- & -- & \$-125\.00\$ & -- & ", tex1, re.M)


def test_standalone_document_is_balanced(built) -> None:
    out, _, _ = built
    doc = (out / "tables.tex").read_text()
    assert doc.startswith(r"\documentclass{article}") and r"\usepackage{booktabs}" in doc
    assert doc.count(r"\begin{table}") == 2 and doc.rstrip().endswith(r"\end{document}")
    assert_balanced(doc)
    wrapped = tables.latex_document("BODY")
    assert wrapped.index(r"\begin{document}") < wrapped.index("BODY") < wrapped.index(r"\end{document}")


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not on PATH")
def test_standalone_document_compiles(built, tmp_path: Path) -> None:
    out, _, _ = built
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
    assert (build / "tables.pdf").exists()


def test_latex_escape() -> None:
    assert markup.latex_escape("a_b & 50% $x$ #1 {y} ~ ^ \\") == (
        r"a\_b \& 50\% \$x\$ \#1 \{y\} \textasciitilde{} \textasciicircum{} \textbackslash{}"
    )


# --------------------------------------------------------------------------- beta choice and statistics


def beta_runs(tmp_path: Path, betas: list[float]) -> Path:
    runs = tmp_path / "beta_runs"
    for beta in betas:
        for seed in range(2):
            metrics = {"ll": -100.0 - beta - seed, "elbo": -101.0, "re": -90.0, "kl": 11.0}
            write(runs / f"b{beta}_s{seed}", record("nvae", 2, seed, metrics, beta=beta))
    return runs


def test_several_betas_with_one_shows_only_beta_1(tmp_path: Path, capsys) -> None:
    runs = beta_runs(tmp_path, [0.1, 1.0, 10.0])
    assert tables_cmd.main(["--runs", str(runs), "--out", str(tmp_path / "o")]) == 0
    md = (tmp_path / "o" / "table1.md").read_text()
    assert "Only runs with β = 1 are shown (β ∈ {0.1, 1, 10} present" in md
    assert md_row(md, "2")[1] == "-101.50 ± 0.71"
    assert len(pd.read_csv(tmp_path / "o" / "summary.csv").query("metric == 'll'")) == 3
    assert_balanced((tmp_path / "o" / "tables.tex").read_text())


def test_no_beta_1_keys_rows_by_beta(tmp_path: Path, capsys) -> None:
    runs = beta_runs(tmp_path, [0.5, 2.0])
    assert tables_cmd.main(["--runs", str(runs), "--out", str(tmp_path / "o")]) == 0
    md = (tmp_path / "o" / "table1.md").read_text()
    assert md_header(md)[:3] == ["β", "d", "N-VAE LL"]
    assert md_row(md, "0.5")[:3] == ["0.5", "2", "-101.00 ± 0.71"]
    assert md_row(md, "2")[:3] == ["2", "2", "-102.50 ± 0.71"]
    assert list(pd.read_csv(tmp_path / "o" / "table1.csv")["beta"]) == [0.5, 2.0]
    assert r"\multicolumn{4}{c}{N-VAE}" in (tmp_path / "o" / "table1.tex").read_text()


def test_welch_significant() -> None:
    a = np.array([1.0, 1.1, 0.9, 1.05])
    assert stats.welch_significant(a, a + 5.0)
    assert not stats.welch_significant(a, a[::-1] + 0.01)
    assert not stats.welch_significant(np.array([1.0]), np.array([5.0, 5.1, 5.2]))  # < 2 values
    assert not stats.welch_significant(np.array([1.0, np.nan]), a + 5.0)  # NaN dropped -> 1 value
    assert stats.welch_significant(np.array([1.0, np.nan, 1.1, 0.9]), a + 5.0)
    assert not stats.welch_significant(np.ones(3), np.ones(3))  # undefined p-value
    assert not stats.welch_significant(a, a + 0.3, alpha=1e-6)


def test_unfinished_runs_are_counted_not_tabulated(runs_dir: Path, tmp_path: Path, capsys) -> None:
    failed = runs_dir / DATASET / "svae_d2_s5"
    failed.mkdir(parents=True)
    (failed / "status.json").write_text(json.dumps({"status": "failed", "reason": "non-finite objective"}))
    assert tables_cmd.main(["--runs", str(runs_dir), "--out", str(tmp_path / "t")]) == 0
    out = capsys.readouterr().out
    assert f"{N_COMPLETE} complete runs" in out and "1 runs without a complete result.json" in out
    assert len(pd.read_csv(tmp_path / "t" / "runs.csv")) == N_COMPLETE
