"""Every output file of ``svae-bench tables``, from the runs frame: the registered tables and their
comparison with the paper (nothing is written here; the command writes them atomically)."""

from __future__ import annotations

import pandas as pd

from .collect import runs_csv, summary_frame
from .comparison import build_comparisons, render_comparison_latex, render_comparison_outputs
from .spec import TABLE_SPECS
from .tables import Table, build_tables, latex_document, render_latex, render_markdown, tables_csv


def render_outputs(runs: pd.DataFrame, source: str) -> dict[str, str]:
    """File name -> content for every output file (nothing is written here)."""
    groups = build_tables(runs, source)
    comparisons = {id(c.table): c for c in build_comparisons([t for group in groups for t in group])}

    def section(table: Table) -> str:
        comp = comparisons.get(id(table))
        return render_latex(table) + ("" if comp is None else "\n" + render_comparison_latex(comp))

    outputs = {"runs.csv": runs_csv(runs), "summary.csv": summary_frame(runs).to_csv(index=False)}
    for name in TABLE_SPECS:
        tables = [t for group in groups for t in group if t.spec.name == name]
        if tables:
            outputs[f"{name}.csv"] = tables_csv(tables)
            outputs[f"{name}.tex"] = "\n".join(render_latex(t) for t in tables)
            outputs[f"{name}.md"] = "\n".join(render_markdown(t) for t in tables)
    outputs.update(render_comparison_outputs(list(comparisons.values())))
    # \clearpage after each (experiment, dataset) flushes floats: pdflatex stops at 18 pending.
    body = "\n".join("\n".join(section(t) for t in group) + "\n\\clearpage\n" for group in groups)
    outputs["tables.tex"] = latex_document(body)
    return outputs
