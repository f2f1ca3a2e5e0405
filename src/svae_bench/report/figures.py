"""Latent-space figures in the style of Davidson et al. (2018), Figure 2.

The paper's synthetic experiment embeds a mixture on S^2 with an AE, N-VAEs
with several KL weights beta and an S-VAE, and shows the true data next to the
learned posterior means.  This module draws those panels:

* :func:`compose_panel` writes the paper-style row of panels from run
  directories (the panels themselves are drawn by :mod:`svae_bench.plots`);
* :func:`find_runs` and :func:`load_run` read the runs' records and latent.npz;
* the command is :mod:`svae_bench.commands.figures`.

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

latent.npz is read bounded (:data:`MAX_LATENT_BYTES` for the file and for its arrays
together, read from their headers before any is loaded; a small zip directory), so an
archive that decompresses to gigabytes is refused, not loaded.

Only the non-interactive Agg canvas is used (``matplotlib.figure.Figure`` plus
``FigureCanvasAgg``); pyplot and its global state are never touched.
"""

from __future__ import annotations

import io
import math
import os
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..plots import (
    DPI,
    GEOMETRIES,
    PANEL_SIZE,
    SINGLE_SIZE,
    hammer_projection,
    label_colors,
    plot_latent,
    save_figure_atomic,
    save_latent_png,
)
from ..records import RESULT_FILE, read_result
from ..records.atomic import UnreadableFile, find_named, read_small_file
from .markup import MODEL_NAMES, model_rank

__all__ = [
    "DPI",
    "PANEL_SIZE",
    "SINGLE_SIZE",
    "RunLatent",
    "compose_panel",
    "compose_runs",
    "find_runs",
    "hammer_projection",
    "load_run",
    "panel_title",
    "save_latent_png",
    "sort_runs",
]


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


#: the largest latent.npz read, and the largest its arrays may be together once loaded (the MNIST
#: test set's posterior means at d = 40 take 3.3 MB)
MAX_LATENT_BYTES = 64 << 20
#: the largest zip directory of a latent.npz (each array is one entry of about 100 bytes)
MAX_NPZ_DIRECTORY = 64 << 10
#: the arrays of latent.npz that are read (others are left alone)
LATENT_ARRAYS = ("z", "labels", "geometry", "model", "beta", "truth")


def _scalar_str(value: np.ndarray) -> str:
    return str(np.asarray(value).reshape(()).item())


def _npz_header(member: Any) -> tuple[tuple[int, ...], np.dtype]:
    from numpy.lib import format as npy

    version = npy.read_magic(member)
    readers = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}
    if version not in readers:
        raise ValueError(f".npy format version {version} is not read")
    shape, _, dtype = readers[version](member)
    return shape, dtype


def read_npz(path: Path, names: Sequence[str] = LATENT_ARRAYS, max_bytes: int = MAX_LATENT_BYTES) -> dict:
    """The arrays ``names`` (those present) of the .npz archive ``path``, never pickles: the file and
    the arrays together (their sizes from the .npy headers, before any is loaded) at most
    ``max_bytes``. ValueError naming the file for anything else (FileNotFoundError passes through)."""
    from numpy.lib import format as npy

    try:
        raw = read_small_file(path, max_bytes)
    except UnreadableFile as exc:
        raise ValueError(f"{path}: {exc}") from None
    end = raw.rfind(b"PK\x05\x06", max(0, len(raw) - 22 - 0xFFFF))  # the zip's end-of-directory record
    if end < 0 or len(raw) < end + 22:
        raise ValueError(f"{path}: not an npz archive")
    if int.from_bytes(raw[end + 12 : end + 16], "little") > MAX_NPZ_DIRECTORY:
        raise ValueError(f"{path}: the npz archive's directory is larger than {MAX_NPZ_DIRECTORY} bytes")
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            members = {i.filename[: -len(".npy")]: i for i in archive.infolist() if i.filename.endswith(".npy")}
            wanted = [name for name in names if name in members]
            total = 0
            for name in wanted:
                with archive.open(members[name]) as member:
                    shape, dtype = _npz_header(member)
                if dtype.hasobject:
                    raise ValueError(f"array {name} holds Python objects")
                total += math.prod(shape) * dtype.itemsize
                if total > max_bytes:
                    raise ValueError(f"its arrays take more than {max_bytes} bytes")
            arrays = {}
            for name in wanted:
                with archive.open(members[name]) as member:
                    arrays[name] = npy.read_array(member, allow_pickle=False)
            return arrays
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError, OSError) as exc:
        message = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ValueError(f"{path}: unreadable npz archive ({message})") from None


def _read_result(run_dir: Path) -> dict[str, Any]:
    return read_result(run_dir) or {}  # safe on FIFOs, directories, huge numbers, deep nesting


def load_run(run_dir: str | os.PathLike[str]) -> RunLatent:
    """Read ``<run_dir>/latent.npz`` (and ``result.json`` if present).

    ``model`` and ``beta`` fall back to ``result.json`` when the npz lacks
    them; ``geometry`` is required.
    """
    run_dir = Path(run_dir)
    result = _read_result(run_dir)
    data = read_npz(run_dir / "latent.npz")
    if "z" not in data or "labels" not in data or "geometry" not in data:
        raise ValueError(f"{run_dir / 'latent.npz'}: needs arrays z, labels and geometry")
    for name in ("z", "truth", "beta"):
        if name in data and data[name].dtype.kind not in "biuf":
            raise ValueError(f"{run_dir / 'latent.npz'}: {name} is not real numbers (dtype {data[name].dtype})")
    z = np.asarray(data["z"], dtype=np.float64)
    labels = np.asarray(data["labels"]).reshape(-1)
    geometry = _scalar_str(data["geometry"])
    model = _scalar_str(data["model"]) if "model" in data else str(result.get("model", ""))
    if "beta" in data:
        beta = float(np.asarray(data["beta"]).reshape(()))
    else:
        try:
            beta = float(result.get("beta", math.nan))
        except (TypeError, ValueError, OverflowError):
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
    """ "AE", "N-VAE, β = 0.1", "S-VAE", "PS-VAE" (β shown for S-/PS-VAE only if != 1)."""
    key = model.lower()
    name = MODEL_NAMES.get(key, model)
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
        return (*model_rank(run.model), beta, str(run.run_dir))

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
    compose_runs([load_run(d) for d in run_dirs], Path(out), truth_from_first)
    return Path(out)


def compose_runs(runs: Sequence[RunLatent], out: Path, truth_from_first: bool) -> int:
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
    save_figure_atomic(fig, out)
    return n


#: legend title per dataset (what a label is); other datasets: "label"
LABEL_NAMES = {"mnist": "digit", "synthetic": "component"}


def _add_label_legend(fig: Any, run: RunLatent) -> None:
    """One legend entry per label (at most 10, the palette's size), right of the panels."""
    from matplotlib.lines import Line2D

    classes = np.unique(np.asarray(run.labels).reshape(-1))
    if not 1 < classes.size <= 10:
        return
    colors = label_colors(classes, classes.size)
    handles = [
        Line2D([], [], marker="o", linestyle="", markersize=5, color=c, label=str(int(v)))
        for v, c in zip(classes, colors)
    ]
    title = LABEL_NAMES.get(str(run.result.get("dataset", "")), "label")
    fig.legend(handles=handles, title=title, loc="outside right center", frameon=False, fontsize=8)


# --------------------------------------------------------------------------
# CLI


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a 401-digit integer
        return None
    return int(f) if math.isfinite(f) and f == int(f) else None


def find_runs(root: Path, seed: int, latent_dim: int) -> list[Path]:
    """Run dirs under ``root`` (recursively) with a complete ``result.json``
    for ``seed`` and ``latent_dim`` and a ``latent.npz``, sorted by path."""
    found = []
    for result_path in sorted(find_named(root, (RESULT_FILE,))):
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
