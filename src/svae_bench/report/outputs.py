"""Every output file of ``svae-bench tables``, from the runs frame: the tables and their comparison
with the paper (nothing is written here; the command writes them atomically)."""

from __future__ import annotations

import pandas as pd

from .comparison import build_comparisons, render_comparison_latex, render_comparison_outputs
from .tables import (
    Table,
    build_tables,
    latex_document,
    render_latex,
    render_markdown,
    summary_frame,
    tables_csv,
)


def render_outputs(runs: pd.DataFrame, source: str) -> dict[str, str]:
    """File name -> content for every output file (nothing is written here)."""
    pairs = build_tables(runs, source)
    t1 = [pair[0] for pair in pairs]
    t2 = [pair[1] for pair in pairs]
    # \clearpage after each (experiment, dataset) flushes floats: pdflatex stops at 18 pending.
    comparisons = {id(c.table): c for c in build_comparisons(t1 + t2)}

    def section(table: Table) -> str:
        comp = comparisons.get(id(table))
        return render_latex(table) + ("" if comp is None else "\n" + render_comparison_latex(comp))

    document_body = "\n".join(section(a) + "\n" + section(b) + "\n\\clearpage\n" for a, b in pairs)
    return {
        "runs.csv": runs.to_csv(index=False),
        "summary.csv": summary_frame(runs).to_csv(index=False),
        "table1.csv": tables_csv(t1),
        "table1.tex": "\n".join(render_latex(t) for t in t1),
        "table1.md": "\n".join(render_markdown(t) for t in t1),
        "table2.csv": tables_csv(t2),
        "table2.tex": "\n".join(render_latex(t) for t in t2),
        "table2.md": "\n".join(render_markdown(t) for t in t2),
        **render_comparison_outputs(list(comparisons.values())),
        "tables.tex": latex_document(document_body),
    }
