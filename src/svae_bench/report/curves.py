"""Learning curves: the validation ELBO and KL of every run of an experiment, per epoch.

One column per latent dimension d, two rows (validation ELBO, validation KL, in
nats), one line per run coloured by model; the paper's published test ELBO and
KL for that d (``reference.csv``, Table 1) are dashed lines in the model's
colour. Runs still in progress are drawn too (their ``metrics.csv`` grows after
every epoch), so a sweep can be watched while it runs.

Reads, per run directory: ``metrics.csv`` (written by the training loop) and
the run's identity from ``result.json``, else from ``config.yaml``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..plots import DPI, save_figure_atomic
from ..records import CONFIG_FILE, METRICS_FILE, read_result
from .comparison import load_reference

#: line colours of the models (matplotlib's default cycle: N-VAE blue, S-VAE red, ...)
COLORS = {"nvae": "tab:blue", "svae": "tab:red", "psvae": "tab:green", "ae": "tab:gray"}
NAMES = {"ae": "AE", "nvae": "N-VAE", "svae": "S-VAE", "psvae": "PS-VAE"}


@dataclass
class Curve:
    """One run's validation curve."""

    run_dir: Path
    model: str
    latent_dim: int
    seed: int
    complete: bool
    epoch: np.ndarray  # (E,)
    elbo: np.ndarray  # (E,) nats
    kl: np.ndarray  # (E,) nats


def _identity(run_dir: Path) -> tuple[dict, bool] | None:
    """(model, latent_dim, seed) of a run from its record, else its config.yaml; None if neither."""
    record = read_result(run_dir)
    if record is not None and {"model", "latent_dim", "seed"} <= record.keys():
        return record, record.get("status") == "complete"
    try:
        import yaml

        with open(run_dir / CONFIG_FILE) as f:
            cfg = yaml.safe_load(f)
        return {"model": cfg["model"]["name"], "latent_dim": cfg["latent_dim"], "seed": cfg["seed"]}, False
    except (OSError, ValueError, KeyError, TypeError, ImportError, yaml.YAMLError):
        return None


def read_curve(run_dir: Path) -> Curve | None:
    """The run's validation curve, or None when it has no readable metrics.csv or identity."""
    ident = _identity(run_dir)
    if ident is None:
        return None
    info, complete = ident
    try:
        with open(run_dir / METRICS_FILE, newline="") as f:
            rows = list(csv.DictReader(f))
        epoch = np.array([int(r["epoch"]) for r in rows])
        elbo = np.array([float(r["val_elbo"]) for r in rows])
        kl = np.array([float(r["val_kl"]) for r in rows])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if epoch.size == 0 or not isinstance(info["latent_dim"], int):
        return None
    return Curve(run_dir, str(info["model"]), int(info["latent_dim"]), int(info["seed"]), complete, epoch, elbo, kl)


def find_curves(root: Path) -> list[Curve]:
    """Every run under ``root`` with a metrics.csv, sorted by (d, model, seed)."""
    curves = [c for p in sorted(root.rglob(METRICS_FILE)) if (c := read_curve(p.parent)) is not None]
    return sorted(curves, key=lambda c: (c.latent_dim, c.model, c.seed))


def _reference(dataset_metric: str) -> dict[tuple[str, int], float]:
    """(model, d) -> the paper's Table 1 value of ``dataset_metric`` (ELBO or KL)."""
    ref = load_reference()
    rows = ref[(ref["table"] == "table1") & (ref["metric"] == dataset_metric)]
    return {(str(r.model), int(r.d)): float(r.mean) for r in rows.itertuples(index=False) if str(r.d).isdigit()}


def _lower_limit(values: Sequence[np.ndarray], paper: Sequence[float]) -> float:
    """A y-axis floor that shows the converged part: the 10th percentile after the first tenth."""
    tails = [v[len(v) // 10 :] for v in values if v.size]
    pooled = np.concatenate(tails) if tails else np.array([])
    floor = float(np.percentile(pooled, 10)) if pooled.size else math.inf
    return min([floor, *paper]) - 2.0


def plot_curves(curves: Sequence[Curve], out: Path, title: str) -> Path:
    """Write the learning-curve figure of ``curves`` to ``out`` (PNG, atomically)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not curves:
        raise ValueError("no runs with a metrics.csv")
    dims = sorted({c.latent_dim for c in curves})
    ref_elbo, ref_kl = _reference("ELBO"), _reference("KL")
    fig = Figure(figsize=(max(4.2 * len(dims), 9.0), 6.4), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, len(dims), squeeze=False)
    for j, d in enumerate(dims):
        ax_e, ax_k = axes[0, j], axes[1, j]
        here = [c for c in curves if c.latent_dim == d]
        for c in here:
            color = COLORS.get(c.model, "black")
            style = "-" if c.complete else ":"
            ax_e.plot(c.epoch, c.elbo, style, color=color, lw=0.9, alpha=0.8)
            ax_k.plot(c.epoch, c.kl, style, color=color, lw=0.9, alpha=0.8)
        paper_elbo = []
        for model in sorted({c.model for c in here}):
            if (model, d) in ref_elbo:
                paper_elbo.append(ref_elbo[(model, d)])
                ax_e.axhline(ref_elbo[(model, d)], color=COLORS.get(model, "black"), ls="--", lw=1.0)
            if (model, d) in ref_kl:
                ax_k.axhline(ref_kl[(model, d)], color=COLORS.get(model, "black"), ls="--", lw=1.0)
        top = max(float(np.max(c.elbo)) for c in here)
        ax_e.set_ylim(_lower_limit([c.elbo for c in here], paper_elbo), max(top, *paper_elbo, -math.inf) + 1.0)
        ax_e.set_title(f"d = {d}")
        ax_k.set_xlabel("epoch")
        if j == 0:
            ax_e.set_ylabel("validation ELBO (nats)")
            ax_k.set_ylabel("validation KL (nats)")
        for ax in (ax_e, ax_k):
            ax.grid(alpha=0.3)
    from matplotlib.lines import Line2D

    models = sorted({c.model for c in curves}, key=lambda m: list(COLORS).index(m) if m in COLORS else 99)
    handles = [Line2D([], [], color=COLORS.get(m, "black"), label=NAMES.get(m, m)) for m in models]
    handles += [
        Line2D([], [], color="black", ls="--", label="paper (test, Table 1)"),
        Line2D([], [], color="black", ls=":", label="run not finished"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    return save_figure_atomic(fig, out)
