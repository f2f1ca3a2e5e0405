"""Table 4 at a glance: test AUC and AP per data set, N-VGAE beside S-VGAE, the paper's values marked.

One panel per metric (AUC, AP); per data set a group of two models: every run a dot, the mean a
bar with ± one standard deviation, the published mean a black tick. Built from the records alone
(:func:`svae_bench.report.collect.collect_runs`), like the tables.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..plots import plot_text, save_figure_atomic
from .collect import TASK_COLUMN, collect_runs, runs_frame
from .comparison import reference_values
from .markup import model_name
from .specs.linkpred import DATASETS, MODELS, load_reference_table4

COLOURS = {"nvgae": "#4c72b0", "svgae": "#dd8452"}


def plot_linkpred(runs_dir: Path, out: Path, title: str, skipped: list[tuple[Path, str]] | None = None) -> int:
    """Draw the figure of the vgae runs under ``runs_dir`` into ``out``; the number of runs used (0: none).
    The (path, reason) of every record left out is added to ``skipped``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    rows, left_out = collect_runs(runs_dir)
    if skipped is not None:
        skipped.extend(left_out)
    runs = runs_frame(rows) if rows else None
    if runs is None or TASK_COLUMN not in runs or not (runs[TASK_COLUMN] == "vgae").any():
        return 0
    runs = runs[runs[TASK_COLUMN] == "vgae"]
    datasets = [d for d in DATASETS if d in set(runs["dataset"])] + sorted(set(runs["dataset"]) - set(DATASETS))
    models = [m for m in MODELS if m in set(runs["model"])]
    paper = reference_values(load_reference_table4(), "table4")
    fig = Figure(figsize=(4.2 * 2, 3.4))
    axes = fig.subplots(1, 2, sharey=True)
    width = 0.8 / max(len(models), 1)
    rng = np.random.default_rng(0)  # horizontal jitter of the dots only
    for ax, (metric, label) in zip(axes, (("auc", "AUC"), ("ap", "AP"))):
        for k, model in enumerate(models):
            for i, dataset in enumerate(datasets):
                values = 100 * runs[(runs["model"] == model) & (runs["dataset"] == dataset)][metric].dropna().to_numpy()
                x = i + (k - (len(models) - 1) / 2) * width
                if values.size:
                    std = values.std(ddof=1) if values.size > 1 else 0.0
                    ax.bar(
                        x,
                        values.mean(),
                        width * 0.9,
                        yerr=std,
                        color=COLOURS.get(model),
                        alpha=0.55,
                        capsize=3,
                        label=model_name(model) if i == 0 else None,
                    )
                    ax.scatter(x + rng.uniform(-0.15, 0.15, values.size) * width, values, s=6, color="black", zorder=3)
                ref = paper.get((model, dataset, metric))
                if ref is not None:
                    ax.hlines(
                        ref[0],
                        x - width * 0.45,
                        x + width * 0.45,
                        colors="black",
                        linewidth=2.2,
                        zorder=4,
                        label="paper" if (i == 0 and k == 0) else None,
                    )
        ax.set_xticks(range(len(datasets)), [plot_text(d) for d in datasets])
        ax.set_title(f"test {label} (%)")
        ax.grid(axis="y", alpha=0.3)
    values = 100 * runs[["auc", "ap"]].to_numpy(dtype=float)
    refs = [v[0] for (m, d, _), v in paper.items() if d in datasets and m in models]
    shown = np.concatenate([values.ravel(), refs])
    shown = shown[np.isfinite(shown)]  # auc and ap may be null (not measured): NaN
    if shown.size:  # else no value at all: the axes' default limits
        axes[0].set_ylim(float(shown.min()) - 1.5, min(100.0, float(shown.max()) + 1.0))
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=8, loc="upper left")
    title = plot_text(title, 200)
    fig.suptitle(f"{title}; bars: mean ± std of our runs, dots: runs, black ticks: the paper", fontsize=9)
    save_figure_atomic(fig, out)
    return len(runs)
