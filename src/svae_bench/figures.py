"""Latent-space figures in the style of Davidson et al. (2018), Figure 2.

The paper's synthetic experiment embeds a mixture on S^2 with an AE, N-VAEs
with several KL weights beta and an S-VAE, and shows the true data next to the
learned posterior means.  This module draws those panels:

* :func:`hammer_projection` maps points of S^2 to the plane (Hammer-Aitoff,
  an equal-area projection whose image is the ellipse x^2/8 + y^2/2 <= 1);
* :func:`plot_latent` draws one latent space on a matplotlib ``Axes``;
* :func:`save_latent_png` writes a one-panel figure;
* :func:`compose_panel` writes the paper-style row of panels from run
  directories;
* :func:`main` is the ``svae-bench figures`` command.

Run directory format consumed here (written by the training code)::

    <run_dir>/result.json   {"model", "dataset", "latent_dim", "beta", "seed",
                             "experiment", "status": "complete", ...}
    <run_dir>/latent.npz    z         (N, D) float, posterior means (for the
                                      spherical models the mean directions)
                            labels    (N,) int
                            truth     (N, 3) float, optional: the true S^2
                                      points of the synthetic data, same rows
                            geometry  0-dim str, "euclidean" or "sphere"
                            model     0-dim str, ae | nvae | svae | psvae
                            beta      0-dim float

Only the non-interactive Agg canvas is used (``matplotlib.figure.Figure`` plus
``FigureCanvasAgg``); pyplot and its global state are never touched.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .records import RESULT_FILE, read_result

__all__ = [
    "DPI",
    "PANEL_SIZE",
    "SINGLE_SIZE",
    "RunLatent",
    "compose_panel",
    "find_runs",
    "hammer_projection",
    "load_run",
    "main",
    "panel_title",
    "plot_latent",
    "save_latent_png",
    "sort_runs",
]

#: Resolution of every written figure (dots per inch).
DPI = 150
#: (width, height) in inches of one panel of :func:`compose_panel`.
PANEL_SIZE = (3.2, 3.2)
#: (width, height) in inches of the figure of :func:`save_latent_png`.
SINGLE_SIZE = (4.0, 4.0)

GEOMETRIES = ("euclidean", "sphere")
_SQRT2 = math.sqrt(2.0)
# Display order of the models in the composed figure, and their names.
_MODEL_ORDER = {"ae": 0, "nvae": 1, "svae": 2, "psvae": 3}
_MODEL_NAMES = {"ae": "AE", "nvae": "N-VAE", "svae": "S-VAE", "psvae": "PS-VAE"}
_MARKER_SIZE = 4
_ALPHA = 0.7


# --------------------------------------------------------------------------
# Projection


def hammer_projection(xyz: np.ndarray) -> np.ndarray:
    """Hammer-Aitoff projection of points of S^2 to the plane.

    ``xyz`` has shape (N, 3) (a single point of shape (3,) is accepted too).
    Rows are normalised first; a row with zero norm or a non-finite entry has
    no direction, and its output row is NaN (matplotlib skips such points).
    With longitude ``lon = atan2(y, x)`` and latitude ``lat = arcsin(z)``::

        x = 2 sqrt(2) cos(lat) sin(lon / 2) / sqrt(1 + cos(lat) cos(lon / 2))
        y =   sqrt(2) sin(lat)              / sqrt(1 + cos(lat) cos(lon / 2))

    The result, of shape (N, 2), lies in the ellipse x^2/8 + y^2/2 <= 1; the
    point (1, 0, 0) maps to the origin and the poles to (0, +-sqrt(2)).
    """
    pts = np.asarray(xyz, dtype=np.float64)
    if pts.ndim == 1:
        pts = pts[None, :]
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"hammer_projection expects shape (N, 3), got {np.shape(xyz)}")

    with np.errstate(invalid="ignore", over="ignore"):
        # Scale by the largest magnitude first so the norm cannot overflow.
        scale = np.max(np.abs(pts), axis=1, keepdims=True)
        valid = np.isfinite(pts).all(axis=1) & (scale[:, 0] > 0)
        safe_scale = np.where(valid[:, None], scale, 1.0)
        unit = np.where(valid[:, None], pts, [1.0, 0.0, 0.0]) / safe_scale
        unit = unit / np.linalg.norm(unit, axis=1, keepdims=True)

    lon = np.arctan2(unit[:, 1], unit[:, 0])  # in [-pi, pi]
    lat = np.arcsin(np.clip(unit[:, 2], -1.0, 1.0))
    cos_lat = np.cos(lat)
    half = 0.5 * lon  # in [-pi/2, pi/2], so cos(half) >= 0 and denom >= 1
    denom = np.sqrt(1.0 + cos_lat * np.cos(half))
    out = np.empty((pts.shape[0], 2), dtype=np.float64)
    out[:, 0] = 2.0 * _SQRT2 * cos_lat * np.sin(half) / denom
    out[:, 1] = _SQRT2 * np.sin(lat) / denom
    out[~valid] = np.nan
    return out


def _sphere_grid(n: int = 181) -> tuple[np.ndarray, list[np.ndarray]]:
    """Projected boundary ellipse and a few meridians / parallels."""
    t = np.linspace(0.0, 2.0 * np.pi, 2 * n)
    boundary = np.stack([2.0 * _SQRT2 * np.cos(t), _SQRT2 * np.sin(t)], axis=1)
    lines: list[np.ndarray] = []
    lats = np.linspace(-np.pi / 2, np.pi / 2, n)
    for lon_deg in (-120.0, -60.0, 0.0, 60.0, 120.0):
        lon = np.deg2rad(lon_deg)
        xyz = np.stack(
            [np.cos(lats) * np.cos(lon), np.cos(lats) * np.sin(lon), np.sin(lats)], axis=1
        )
        lines.append(hammer_projection(xyz))
    lons = np.linspace(-np.pi, np.pi, n)
    for lat_deg in (-60.0, -30.0, 0.0, 30.0, 60.0):
        lat = np.deg2rad(lat_deg)
        xyz = np.stack(
            [np.cos(lat) * np.cos(lons), np.cos(lat) * np.sin(lons), np.full_like(lons, np.sin(lat))],
            axis=1,
        )
        lines.append(hammer_projection(xyz))
    return boundary, lines


# --------------------------------------------------------------------------
# Drawing


def _label_colors(labels: np.ndarray | None, n: int) -> np.ndarray:
    import matplotlib

    palette = np.asarray(matplotlib.colormaps["tab10"].colors, dtype=np.float64)
    if labels is None:
        return np.repeat(palette[:1], n, axis=0)
    lab = np.asarray(labels).reshape(-1)
    if lab.shape[0] != n:
        raise ValueError(f"labels has {lab.shape[0]} entries but z has {n} rows")
    if n and not np.issubdtype(lab.dtype, np.integer):
        if not (np.isfinite(lab).all() and np.all(lab == np.round(lab))):
            raise ValueError("labels must be integers")
    return palette[np.mod(lab.astype(np.int64), len(palette))]


def plot_latent(ax: Any, z: np.ndarray, labels: np.ndarray | None, geometry: str, title: str) -> Any:
    """Draw one latent space on ``ax`` and return ``ax``.

    * ``geometry="euclidean"``: scatter of the first two coordinates (one
      column is plotted against zeros; with more than two the first two are
      used and the title says so).
    * ``geometry="sphere"`` with ``z`` of shape (N, 3): Hammer projection with
      the boundary ellipse and light meridians / parallels, axis off.  Other
      ambient dimensions fall back to the first two coordinates, with a note.

    Points are coloured by integer label with the ``tab10`` palette (label
    modulo 10, so colours agree across panels), marker size 4, alpha 0.7,
    equal aspect.
    """
    if geometry not in GEOMETRIES:
        raise ValueError(f"geometry must be one of {GEOMETRIES}, got {geometry!r}")
    arr = np.asarray(z, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ValueError(f"z must have shape (N, D) with D >= 1, got {np.shape(z)}")
    n, dim = arr.shape
    colors = _label_colors(labels, n)

    if geometry == "sphere" and dim == 3:
        xy = hammer_projection(arr)
        boundary, grid = _sphere_grid()
        for line in grid:
            ax.plot(line[:, 0], line[:, 1], color="0.85", lw=0.5, zorder=0)
        ax.plot(boundary[:, 0], boundary[:, 1], color="0.35", lw=0.8, zorder=1)
        ax.scatter(xy[:, 0], xy[:, 1], c=colors, s=_MARKER_SIZE, alpha=_ALPHA, linewidths=0, zorder=2)
        ax.set_xlim(-2.0 * _SQRT2 * 1.03, 2.0 * _SQRT2 * 1.03)
        ax.set_ylim(-_SQRT2 * 1.06, _SQRT2 * 1.06)
        ax.set_aspect("equal")
        ax.set_axis_off()
        ax.set_title(title)
        return ax

    if dim == 1:
        x, y = arr[:, 0], np.zeros(n)
    else:
        x, y = arr[:, 0], arr[:, 1]
    note = ""
    if geometry == "sphere":
        note = f"S^{dim - 1} in R^{dim}: first {min(dim, 2)} of {dim} coords"
    elif dim > 2:
        note = f"first 2 of {dim} dims"
    ax.scatter(x, y, c=colors, s=_MARKER_SIZE, alpha=_ALPHA, linewidths=0)
    ax.set_aspect("equal", adjustable="datalim")
    ax.tick_params(labelsize=7)
    ax.set_title(f"{title}\n({note})" if note else title)
    return ax


def _save_atomic(fig: Any, path: Path) -> Path:
    """Write ``fig`` to ``path`` via a temp file in the same directory."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = path.suffix.lstrip(".").lower() or "png"
    FigureCanvasAgg(fig)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format=fmt, dpi=DPI)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def save_latent_png(
    path: str | os.PathLike[str],
    z: np.ndarray,
    labels: np.ndarray | None,
    geometry: str,
    title: str,
) -> Path:
    """Write a one-panel latent figure (``SINGLE_SIZE`` inches, ``DPI`` dpi).

    The file is written atomically: to a temp file with the same suffix in the
    same directory, then ``os.replace``-d onto ``path``.  Returns the path.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=SINGLE_SIZE, dpi=DPI, layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    plot_latent(ax, z, labels, geometry, title)
    return _save_atomic(fig, Path(path))


# --------------------------------------------------------------------------
# Run directories


@dataclass
class RunLatent:
    """The contents of one run's ``latent.npz`` (plus its ``result.json``)."""

    run_dir: Path
    z: np.ndarray
    labels: np.ndarray
    geometry: str
    model: str
    beta: float
    truth: np.ndarray | None = None
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return panel_title(self.model, self.beta)


def _scalar_str(value: np.ndarray) -> str:
    return str(np.asarray(value).reshape(()).item())


def _read_result(run_dir: Path) -> dict[str, Any]:
    return read_result(run_dir) or {}  # safe on FIFOs, directories, huge numbers, deep nesting


def load_run(run_dir: str | os.PathLike[str]) -> RunLatent:
    """Read ``<run_dir>/latent.npz`` (and ``result.json`` if present).

    ``model`` and ``beta`` fall back to ``result.json`` when the npz lacks
    them; ``geometry`` is required.
    """
    run_dir = Path(run_dir)
    result = _read_result(run_dir)
    with np.load(run_dir / "latent.npz", allow_pickle=False) as data:
        if "z" not in data or "labels" not in data or "geometry" not in data:
            raise ValueError(f"{run_dir / 'latent.npz'}: needs arrays z, labels and geometry")
        z = np.asarray(data["z"], dtype=np.float64)
        labels = np.asarray(data["labels"]).reshape(-1)
        geometry = _scalar_str(data["geometry"])
        model = _scalar_str(data["model"]) if "model" in data else str(result.get("model", ""))
        if "beta" in data:
            beta = float(np.asarray(data["beta"]).reshape(()))
        else:
            try:
                beta = float(result.get("beta", math.nan))
            except (TypeError, ValueError):
                beta = math.nan
        truth = np.asarray(data["truth"], dtype=np.float64) if "truth" in data else None
    if z.ndim == 1:
        z = z[:, None]
    if z.ndim != 2:
        raise ValueError(f"{run_dir / 'latent.npz'}: z must be 2-D, got shape {z.shape}")
    if labels.shape[0] != z.shape[0]:
        raise ValueError(f"{run_dir / 'latent.npz'}: {labels.shape[0]} labels for {z.shape[0]} rows of z")
    if geometry not in GEOMETRIES:
        raise ValueError(f"{run_dir / 'latent.npz'}: unknown geometry {geometry!r}")
    if truth is not None and (truth.ndim != 2 or truth.shape != (z.shape[0], 3)):
        raise ValueError(f"{run_dir / 'latent.npz'}: truth must have shape ({z.shape[0]}, 3), got {truth.shape}")
    return RunLatent(run_dir, z, labels, geometry, model.lower(), beta, truth, result)


def panel_title(model: str, beta: float) -> str:
    """"AE", "N-VAE, β = 0.1", "S-VAE", "PS-VAE" (β shown for S-/PS-VAE only if != 1)."""
    key = model.lower()
    name = _MODEL_NAMES.get(key, model)
    has_beta = beta is not None and math.isfinite(beta)
    if key == "nvae" and has_beta:
        return f"{name}, β = {beta:g}"
    if key in ("svae", "psvae") and has_beta and beta != 1.0:
        return f"{name}, β = {beta:g}"
    return name


def sort_runs(runs: Sequence[RunLatent]) -> list[RunLatent]:
    """Paper order: AE, N-VAE by increasing beta, S-VAE, PS-VAE, then others."""

    def key(run: RunLatent) -> tuple[int, str, float, str]:
        beta = run.beta if math.isfinite(run.beta) else math.inf
        return (_MODEL_ORDER.get(run.model, len(_MODEL_ORDER)), run.model, beta, str(run.run_dir))

    return sorted(runs, key=key)


def compose_panel(
    run_dirs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    truth_from_first: bool = True,
) -> Path:
    """Write the paper-style row of latent panels to ``out`` (atomically).

    Runs are ordered AE, N-VAE (increasing beta), S-VAE, PS-VAE.  With
    ``truth_from_first`` the first panel is "original data": the Hammer
    projection of ``truth`` from the first run (in that order) that has one,
    coloured by that run's labels; if no run has ``truth`` the panel is left
    out.  With ``truth_from_first=False`` it is always left out.  Each panel
    is ``PANEL_SIZE`` inches, at ``DPI`` dpi.  Returns ``out``.
    """
    if not run_dirs:
        raise ValueError("compose_panel needs at least one run directory")
    _compose_runs([load_run(d) for d in run_dirs], Path(out), truth_from_first)
    return Path(out)


def _compose_runs(runs: Sequence[RunLatent], out: Path, truth_from_first: bool) -> int:
    """Draw and save the composed figure; returns the number of panels."""
    from matplotlib.figure import Figure

    ordered = sort_runs(runs)
    panels: list[tuple[np.ndarray, np.ndarray, str, str]] = []
    if truth_from_first:
        source = next((r for r in ordered if r.truth is not None), None)
        if source is not None:
            panels.append((source.truth, source.labels, "sphere", "original data"))
    panels.extend((r.z, r.labels, r.geometry, r.title) for r in ordered)

    n = len(panels)
    fig = Figure(figsize=(PANEL_SIZE[0] * n, PANEL_SIZE[1]), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, (z, labels, geometry, title) in zip(axes, panels):
        plot_latent(ax, z, labels, geometry, title)
    _add_label_legend(fig, ordered[0])
    _save_atomic(fig, out)
    return n


#: legend title per dataset (what a label is); other datasets: "label"
LABEL_NAMES = {"mnist": "digit", "synthetic": "component"}


def _add_label_legend(fig: Any, run: RunLatent) -> None:
    """One legend entry per label (at most 10, the palette's size), right of the panels."""
    from matplotlib.lines import Line2D

    classes = np.unique(np.asarray(run.labels).reshape(-1))
    if not 1 < classes.size <= 10:
        return
    colors = _label_colors(classes, classes.size)
    handles = [Line2D([], [], marker="o", linestyle="", markersize=5, color=c, label=str(int(v)))
               for v, c in zip(classes, colors)]
    title = LABEL_NAMES.get(str(run.result.get("dataset", "")), "label")
    fig.legend(handles=handles, title=title, loc="outside right center", frameon=False, fontsize=8)


# --------------------------------------------------------------------------
# CLI


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return int(f) if math.isfinite(f) and f == int(f) else None


def find_runs(root: Path, seed: int, latent_dim: int) -> list[Path]:
    """Run dirs under ``root`` (recursively) with a complete ``result.json``
    for ``seed`` and ``latent_dim`` and a ``latent.npz``, sorted by path."""
    found = []
    for result_path in sorted(root.rglob(RESULT_FILE)):
        run_dir = result_path.parent
        result = _read_result(run_dir)
        if (
            result.get("status") == "complete"
            and _as_int(result.get("seed")) == seed
            and _as_int(result.get("latent_dim")) == latent_dim
            and (run_dir / "latent.npz").is_file()
        ):
            found.append(run_dir)
    return found


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="svae-bench figures",
        description="Compose the paper-style latent-space figure from finished runs.",
    )
    p.add_argument("--runs", type=Path, default=Path("runs"), help="root of the run directories (default: runs)")
    p.add_argument("--experiment", default="synthetic_figure", help="experiment name (default: synthetic_figure)")
    p.add_argument("--out", type=Path, default=None, help="output image (default: <runs>/<experiment>/figure.png)")
    p.add_argument("--seed", type=int, default=0, help="seed of the runs to show (default: 0)")
    p.add_argument("--latent-dim", type=int, default=2, help="latent degrees of freedom d (default: 2)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``svae-bench figures``: returns 0 on success, 2 on a usage / input error."""
    from .cli import parse_args

    args = parse_args(_parser(), argv)
    if isinstance(args, int):  # --help, or an argparse usage error
        return args

    runs_root: Path = args.runs
    if not runs_root.is_dir():
        print(f"error: runs directory {runs_root} does not exist", file=sys.stderr)
        return 2
    exp_dir = runs_root / args.experiment
    run_dirs = find_runs(exp_dir, args.seed, args.latent_dim) if exp_dir.is_dir() else []
    if not run_dirs:
        print(
            f"error: no complete runs with latent.npz for seed={args.seed}, "
            f"latent_dim={args.latent_dim} under {exp_dir}",
            file=sys.stderr,
        )
        return 2
    out = args.out if args.out is not None else exp_dir / "figure.png"
    try:
        n_panels = _compose_runs([load_run(d) for d in run_dirs], out, truth_from_first=True)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(f"figures: wrote {out} ({n_panels} panels)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
