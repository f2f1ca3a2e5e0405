"""Latent-space plots: one panel of an R^d scatter or the Hammer projection of S^2, written atomically.

* :func:`hammer_projection` maps points of S^2 to the plane (Hammer-Aitoff,
  an equal-area projection whose image is the ellipse x^2/8 + y^2/2 <= 1);
* :func:`plot_latent` draws one latent space on a matplotlib ``Axes``;
* :func:`save_latent_png` writes a one-panel figure (a run's ``latent.png``);
* :func:`image_format` says in which format a figure file is written (ValueError for an
  unknown suffix, before anything is drawn) and :func:`plot_text` makes names from run
  records safe as matplotlib text (never parsed as mathtext, one line, short).

A leaf module (numpy and matplotlib only) shared by the tasks, which plot each
d = 2 run, and by :mod:`svae_bench.report.figures`, which composes panels.
Only the non-interactive Agg canvas is used (``matplotlib.figure.Figure`` plus
``FigureCanvasAgg``); pyplot and its global state are never touched.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .records.record import printable

__all__ = [
    "DPI",
    "GEOMETRIES",
    "PANEL_SIZE",
    "SINGLE_SIZE",
    "hammer_projection",
    "image_format",
    "label_colors",
    "plot_latent",
    "plot_text",
    "save_figure_atomic",
    "save_latent_png",
]

#: Resolution of every written figure (dots per inch).
DPI = 150
#: (width, height) in inches of one panel of :func:`compose_panel`.
PANEL_SIZE = (3.2, 3.2)
#: (width, height) in inches of the figure of :func:`save_latent_png`.
SINGLE_SIZE = (4.0, 4.0)

GEOMETRIES = ("euclidean", "sphere")
#: the longest name drawn in a figure (longer ones are cut, "... (N characters)" added)
MAX_PLOT_TEXT = 80
_SQRT2 = math.sqrt(2.0)
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
        xyz = np.stack([np.cos(lats) * np.cos(lon), np.cos(lats) * np.sin(lon), np.sin(lats)], axis=1)
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


def plot_text(text: object, limit: int = MAX_PLOT_TEXT) -> str:
    """A name from a run record or the command line as matplotlib text: on one line (control
    characters escaped), at most ``limit`` characters, and with ``$`` escaped so that mathtext
    never parses it (``$\\foo$`` would stop the drawing)."""
    return printable(text, limit).replace("$", r"\$")


def image_format(path: str | os.PathLike[str]) -> str:
    """The format a figure written to ``path`` gets, from its suffix (none: png); ValueError
    naming the supported ones for any other suffix. pgf is left out: it needs a LaTeX installation."""
    from matplotlib.backend_bases import FigureCanvasBase

    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    supported = sorted(set(FigureCanvasBase.get_supported_filetypes()) - {"pgf"})
    if fmt not in supported:
        raise ValueError(f"cannot write {path}: unknown image format {fmt!r} (one of {', '.join(supported)})")
    return fmt


def label_colors(labels: np.ndarray | None, n: int) -> np.ndarray:
    import matplotlib

    palette = np.asarray(matplotlib.colormaps["tab10"].colors, dtype=np.float64)
    if labels is None:
        return np.repeat(palette[:1], n, axis=0)
    lab = np.asarray(labels).reshape(-1)
    if lab.shape[0] != n:
        raise ValueError(f"labels has {lab.shape[0]} entries but z has {n} rows")
    if n and not np.issubdtype(lab.dtype, np.integer):
        # floats must hold integers; strings, complex numbers, dates... are no labels (not a TypeError)
        if lab.dtype.kind != "f" or not (np.isfinite(lab).all() and np.all(lab == np.round(lab))):
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
    equal aspect. ``title`` is drawn as plain text (:func:`plot_text`).
    """
    if geometry not in GEOMETRIES:
        raise ValueError(f"geometry must be one of {GEOMETRIES}, got {geometry!r}")
    title = plot_text(title)  # the model's name comes from latent.npz
    arr = np.asarray(z, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ValueError(f"z must have shape (N, D) with D >= 1, got {np.shape(z)}")
    n, dim = arr.shape
    colors = label_colors(labels, n)

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


def save_figure_atomic(fig: Any, path: Path) -> Path:
    """Write ``fig`` to ``path`` via a temp file in the same directory (the format from the suffix,
    see :func:`image_format`; ValueError before anything is written for an unknown one)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    fmt = image_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
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
    return save_figure_atomic(fig, Path(path))


# --------------------------------------------------------------------------
# Run directories
