"""Table 3 at a glance: test accuracy heat maps, one panel per family, z1 by z2, ours beside the paper's.

Each cell shows our mean test accuracy (%) over the seeds of that cell and, below it, the
paper's; the colour is ours (one scale for all panels). Built from the records alone
(:func:`svae_bench.report.collect.collect_runs`), so it can be drawn while a sweep runs.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..plots import plot_text, save_figure_atomic
from .collect import TASK_COLUMN, collect_runs, label_columns, runs_frame
from .comparison import load_reference, reference_values
from .specs.semisup import FAMILIES


def accuracy_grid(runs: pd.DataFrame) -> tuple[list[int], list[int], dict[str, np.ndarray], str | None]:
    """(z1 values, z2 values, family -> mean accuracy % grid (z1 x z2, NaN where no run), accuracy column)."""
    runs = runs[runs[TASK_COLUMN] == "m1m2"] if TASK_COLUMN in runs else runs.iloc[0:0]
    columns = label_columns(runs.columns, "acc")
    if runs.empty or not columns:
        return [], [], {}, None
    column = columns[0]
    z1s, z2s = sorted(set(runs["latent_dim"])), sorted(set(runs["z2_dim"]))
    grids = {}
    for family in FAMILIES:
        grid = np.full((len(z1s), len(z2s)), math.nan)
        for (z1, z2), frame in runs[runs["model"] == family].groupby(["latent_dim", "z2_dim"]):
            values = frame[column].dropna()
            if len(values):
                grid[z1s.index(z1), z2s.index(z2)] = 100 * values.mean()
        grids[family] = grid
    return [int(v) for v in z1s], [int(v) for v in z2s], grids, column


def plot_heatmaps(runs_dir: Path, out: Path, title: str, skipped: list[tuple[Path, str]] | None = None) -> int:
    """Draw the heat maps of the m1m2 runs under ``runs_dir`` into ``out``; returns the number of runs
    used (0: nothing drawn). The (path, reason) of every record left out is added to ``skipped``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    rows, left_out = collect_runs(runs_dir)
    if skipped is not None:
        skipped.extend(left_out)
    if not rows:
        return 0
    runs = runs_frame(rows)
    z1s, z2s, grids, column = accuracy_grid(runs)
    if column is None:
        return 0
    paper = reference_values(load_reference(), "table3")
    values = np.concatenate([g[np.isfinite(g)] for g in grids.values()] or [np.array([])])
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 100.0)
    fig = Figure(figsize=(3.4 * len(grids) + 0.8, 3.2))
    axes = fig.subplots(1, len(grids), squeeze=False)[0]
    image = None
    for k, (ax, (family, grid)) in enumerate(zip(axes, grids.items())):
        image = ax.imshow(grid, cmap="viridis", vmin=lo, vmax=max(hi, lo + 1e-9), origin="lower")
        for i, z1 in enumerate(z1s):
            for j, z2 in enumerate(z2s):
                ours = "–" if math.isnan(grid[i, j]) else f"{grid[i, j]:.1f}"
                ref = paper.get((family, (z1, z2), column))
                text = ours + ("" if ref is None else f"\n({ref[0]:.1f})")
                bright = not math.isnan(grid[i, j]) and (grid[i, j] - lo) > 0.6 * max(hi - lo, 1e-9)
                ax.text(j, i, text, ha="center", va="center", fontsize=8, color="black" if bright else "white")
        ax.set_xticks(range(len(z2s)), [str(v) for v in z2s])
        ax.set_yticks(range(len(z1s)), [str(v) for v in z1s])
        ax.set_xlabel("z2")
        if k == 0:
            ax.set_ylabel("z1")
        ax.set_title(family)
    if image is not None:
        fig.colorbar(image, ax=list(axes), label="test accuracy (%), ours")
    fig.suptitle(f"{plot_text(title, 200)}; paper's value in brackets", fontsize=9)
    save_figure_atomic(fig, out)
    return len(runs[runs[TASK_COLUMN] == "m1m2"])
