"""Learning curves: the validation ELBO and KL of every run of an experiment, per epoch.

One column per latent dimension d, two rows (validation ELBO, validation KL, in
nats), one line per run coloured by model; the paper's published test ELBO and
KL for that d (``reference.csv``, Table 1) are dashed lines in the model's
colour. Runs still in progress are drawn too (their ``metrics.csv`` grows after
every epoch), so a sweep can be watched while it runs.

Reads, per run directory: ``metrics.csv`` (written by the training loop) and
the run's identity from ``result.json``, else from ``config.yaml``. Both are read
bounded (:data:`MAX_METRICS_BYTES`, :data:`MAX_CONFIG_BYTES`; never a FIFO), YAML
without aliases (a "billion laughs" config is refused, not expanded), and only the
three columns drawn are kept. A run that cannot be read is left out with its reason
(:func:`find_curves`); non-finite values (and beyond :data:`MAX_VALUE`) are gaps in its lines.
"""

from __future__ import annotations

import csv
import io
import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..plots import DPI, plot_text, save_figure_atomic
from ..records import CONFIG_FILE, METRICS_FILE, read_result, shown
from ..records.atomic import MAX_RECORD_BYTES, UnreadableFile, find_named, read_small_file
from ..records.record import INT_RANGES, MAX_NAME, unprintable
from .comparison import load_reference

#: line colours of the models (matplotlib's default cycle: N-VAE blue, S-VAE red, ...)
COLORS = {"nvae": "tab:blue", "svae": "tab:red", "psvae": "tab:green", "ae": "tab:gray"}
NAMES = {"ae": "AE", "nvae": "N-VAE", "svae": "S-VAE", "psvae": "PS-VAE"}
#: the largest metrics.csv read: about 180 bytes an epoch, so some 90 000 epochs
MAX_METRICS_BYTES = MAX_RECORD_BYTES
#: the largest config.yaml read (a resolved config takes 1-3 kB)
MAX_CONFIG_BYTES = 256 << 10
#: the most latent dimensions (panel columns) one figure shows
MAX_PANELS = 16
#: the largest epoch number a metrics.csv row may have
MAX_EPOCH = 10**9
#: values of larger magnitude (nats) are drawn as gaps, like NaN: axis limits of 1e308 break matplotlib
MAX_VALUE = 1e15


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


class CurveError(ValueError):
    """A run whose curve cannot be drawn; the message is the reason."""


def _load_yaml(text: str) -> Any:
    """``yaml.safe_load`` without aliases: a YAML alias (``*a``) is refused, so nothing is expanded."""
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(None, None, "found an alias (not allowed here)", mark)
            return super().compose_node(parent, index)

    return yaml.load(text, Loader=NoAliasLoader)  # noqa: S506  (a SafeLoader)


def _config_identity(run_dir: Path) -> dict:
    import yaml

    try:
        text = read_small_file(run_dir / CONFIG_FILE, MAX_CONFIG_BYTES).decode("utf-8")
        cfg = _load_yaml(text)
        return {"model": cfg["model"]["name"], "latent_dim": cfg["latent_dim"], "seed": cfg["seed"]}
    except FileNotFoundError:
        raise CurveError("no result.json or config.yaml names its model, latent_dim and seed") from None
    except (OSError, UnreadableFile, UnicodeDecodeError) as exc:
        raise CurveError(f"{CONFIG_FILE}: {exc}") from None
    except RecursionError:
        raise CurveError(f"{CONFIG_FILE}: nested too deeply") from None
    except yaml.YAMLError as exc:
        raise CurveError(f"{CONFIG_FILE}: not YAML we read ({' '.join(str(exc).split())[:200]})") from None
    except (KeyError, TypeError, IndexError):
        raise CurveError(f"{CONFIG_FILE} has no model.name, latent_dim and seed") from None


def _identity(run_dir: Path) -> tuple[dict, bool]:
    """(model, latent_dim, seed) of a run from its record, else its config.yaml, checked (CurveError)."""
    record = read_result(run_dir)
    if record is not None and {"model", "latent_dim", "seed"} <= record.keys():
        info, complete = record, record.get("status") == "complete"
    else:
        info, complete = _config_identity(run_dir), False
    model = info["model"]
    if not isinstance(model, str) or not 0 < len(model) <= MAX_NAME or any(unprintable(c) for c in model):
        raise CurveError(f"model is not a name of at most {MAX_NAME} printable characters: {shown(model)}")
    for key in ("latent_dim", "seed"):
        lo, hi = INT_RANGES[key]
        value = info[key]
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise CurveError(f"{key} is not an integer from {lo} to {hi}: {shown(value)}")
    return {"model": model, "latent_dim": info["latent_dim"], "seed": info["seed"]}, complete


def _read_metrics(run_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(epoch, val_elbo, val_kl) of metrics.csv; non-finite values become NaN (CurveError if unreadable)."""
    path = run_dir / METRICS_FILE
    try:
        text = read_small_file(path, MAX_METRICS_BYTES).decode("utf-8")
    except (OSError, UnreadableFile, UnicodeDecodeError) as exc:
        raise CurveError(f"{METRICS_FILE}: {exc}") from None
    epoch, elbo, kl = array("q"), array("d"), array("d")
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader, [])
        try:
            columns = [header.index(name) for name in ("epoch", "val_elbo", "val_kl")]
        except ValueError:
            raise CurveError(f"{METRICS_FILE} has no epoch, val_elbo and val_kl columns") from None
        for line, row in enumerate(reader, start=2):
            try:
                e, v_elbo, v_kl = (row[i] for i in columns)
                number = int(e)
                if not 0 <= number <= MAX_EPOCH:
                    raise ValueError
                epoch.append(number)
                elbo.append(float(v_elbo))
                kl.append(float(v_kl))
            except (IndexError, ValueError):
                raise CurveError(f"{METRICS_FILE} line {line}: not an epoch with val_elbo and val_kl") from None
    except csv.Error as exc:  # a field over csv's 128 kB limit, a NUL byte
        raise CurveError(f"{METRICS_FILE}: {exc}") from None
    if not epoch:
        raise CurveError(f"{METRICS_FILE} has no epochs")
    values = [np.frombuffer(a, dtype=np.float64).copy() for a in (elbo, kl)]
    for v in values:
        with np.errstate(invalid="ignore"):
            v[~(np.abs(v) <= MAX_VALUE)] = np.nan  # NaN, infinite or absurd: a gap in the line, not an axis limit
    return np.frombuffer(epoch, dtype=np.int64).copy(), values[0], values[1]


def read_curve(run_dir: Path) -> Curve:
    """The run's validation curve; CurveError (the reason) when it has no readable metrics.csv or identity."""
    info, complete = _identity(run_dir)
    epoch, elbo, kl = _read_metrics(run_dir)
    return Curve(run_dir, info["model"], info["latent_dim"], info["seed"], complete, epoch, elbo, kl)


def find_curves(root: Path, skipped: list[tuple[Path, str]] | None = None) -> list[Curve]:
    """Every run under ``root`` (at any depth) with a readable metrics.csv, sorted by (d, model, seed);
    the (run directory, reason) of each one left out is added to ``skipped``."""
    curves = []
    for path in sorted(find_named(root, (METRICS_FILE,))):
        try:
            curves.append(read_curve(path.parent))
        except CurveError as exc:
            if skipped is not None:
                skipped.append((path.parent, str(exc)))
    return sorted(curves, key=lambda c: (c.latent_dim, c.model, c.seed))


def _reference(dataset_metric: str) -> dict[tuple[str, int], float]:
    """(model, d) -> the paper's Table 1 value of ``dataset_metric`` (ELBO or KL)."""
    ref = load_reference()
    rows = ref[(ref["table"] == "table1") & (ref["metric"] == dataset_metric)]
    return {(str(r.model), int(r.d)): float(r.mean) for r in rows.itertuples(index=False) if str(r.d).isdigit()}


def _lower_limit(values: Sequence[np.ndarray], paper: Sequence[float]) -> float:
    """A y-axis floor that shows the converged part: the 10th percentile after the first tenth
    (finite values only; inf when there are none)."""
    tails = [v[len(v) // 10 :] for v in values if v.size]
    pooled = np.concatenate(tails) if tails else np.array([])
    pooled = pooled[np.isfinite(pooled)]
    floor = float(np.percentile(pooled, 10)) if pooled.size else math.inf
    return min([floor, *paper]) - 2.0


def plot_curves(curves: Sequence[Curve], out: Path, title: str) -> Path:
    """Write the learning-curve figure of ``curves`` to ``out`` (PNG, atomically)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not curves:
        raise ValueError("no runs with a metrics.csv")
    dims = sorted({c.latent_dim for c in curves})
    if len(dims) > MAX_PANELS:
        raise ValueError(f"the runs have {len(dims)} latent dimensions; one figure shows at most {MAX_PANELS}")
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
        tops = [float(np.nanmax(c.elbo)) for c in here if np.isfinite(c.elbo).any()]
        if tops or paper_elbo:  # else nothing to scale to: matplotlib's default limits
            ax_e.set_ylim(_lower_limit([c.elbo for c in here], paper_elbo), max([*tops, *paper_elbo]) + 1.0)
        ax_e.set_title(f"d = {d}")
        ax_k.set_xlabel("epoch")
        if j == 0:
            ax_e.set_ylabel("validation ELBO (nats)")
            ax_k.set_ylabel("validation KL (nats)")
        for ax in (ax_e, ax_k):
            ax.grid(alpha=0.3)
    from matplotlib.lines import Line2D

    models = sorted({c.model for c in curves}, key=lambda m: list(COLORS).index(m) if m in COLORS else 99)
    handles = [Line2D([], [], color=COLORS.get(m, "black"), label=plot_text(NAMES.get(m, m))) for m in models]
    handles += [
        Line2D([], [], color="black", ls="--", label="paper (test, Table 1)"),
        Line2D([], [], color="black", ls=":", label="run not finished"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    fig.suptitle(plot_text(title, 200))
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    return save_figure_atomic(fig, out)
