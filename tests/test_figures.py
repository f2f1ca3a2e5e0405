"""Tests for svae_bench.figures: projection, PNG writing, panel composition, CLI."""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import numpy as np
import pytest

from svae_bench import plots as figures
from svae_bench.commands.figures import main
from svae_bench.report.figures import (
    DPI,
    PANEL_SIZE,
    SINGLE_SIZE,
    compose_panel,
    hammer_projection,
    load_run,
    panel_title,
    save_latent_png,
    sort_runs,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
R2 = math.sqrt(2.0)


def _png_shape(path: Path) -> tuple[int, int]:
    """(height, width) of a PNG, checked via its signature and matplotlib's reader."""
    import matplotlib.image as mpimg

    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    return img.shape[0], img.shape[1]


def _sphere_points(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, 3))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ---------------------------------------------------------------- projection


@pytest.mark.parametrize(
    "point, expected",
    [
        ((1.0, 0.0, 0.0), (0.0, 0.0)),
        ((0.0, 0.0, 1.0), (0.0, R2)),
        ((0.0, 0.0, -1.0), (0.0, -R2)),
        # lon = +90 deg on the equator: x = 2 sqrt2 sin(pi/4) / sqrt(1 + cos(pi/4))
        ((0.0, 1.0, 0.0), (2.0 / math.sqrt(1.0 + math.sqrt(0.5)), 0.0)),
        ((0.0, -1.0, 0.0), (-2.0 / math.sqrt(1.0 + math.sqrt(0.5)), 0.0)),
    ],
)
def test_hammer_known_points(point, expected):
    out = hammer_projection(np.array([point]))
    assert out.shape == (1, 2)
    np.testing.assert_allclose(out[0], expected, atol=1e-12)


def test_hammer_antimeridian_is_on_the_boundary():
    out = hammer_projection(np.array([[-1.0, 0.0, 0.0], [-1.0, 1e-12, 0.0], [-1.0, -1e-12, 0.0]]))
    np.testing.assert_allclose(np.abs(out[:, 0]), 2.0 * R2, atol=1e-9)
    np.testing.assert_allclose(out[:, 1], 0.0, atol=1e-12)
    # the two sides of the antimeridian go to the two ends of the ellipse
    assert out[1, 0] > 0 > out[2, 0]
    np.testing.assert_allclose(out[:, 0] ** 2 / 8 + out[:, 1] ** 2 / 2, 1.0, atol=1e-9)


def test_hammer_normalises_and_handles_degenerate_rows():
    pts = np.array([[3.0, 0.0, 0.0], [0.0, 0.0, 1e-200], [0.0, 0.0, 1e300], [0.0, 0.0, 0.0], [np.nan, 1.0, 0.0]])
    out = hammer_projection(pts)
    np.testing.assert_allclose(out[0], (0.0, 0.0), atol=1e-12)
    np.testing.assert_allclose(out[1], (0.0, R2), atol=1e-12)
    np.testing.assert_allclose(out[2], (0.0, R2), atol=1e-12)
    assert np.isnan(out[3]).all() and np.isnan(out[4]).all()
    with pytest.raises(ValueError):
        hammer_projection(np.zeros((4, 2)))


def test_hammer_random_points_inside_ellipse():
    rng = np.random.default_rng(0)
    pts = _sphere_points(rng, 20000) * rng.uniform(0.1, 10.0, size=(20000, 1))
    out = hammer_projection(pts)
    assert np.isfinite(out).all()
    assert np.all(out[:, 0] ** 2 / 8 + out[:, 1] ** 2 / 2 <= 1.0 + 1e-12)
    # sign structure: x follows the sign of y (longitude), y the sign of z (latitude)
    assert np.all(np.sign(out[:, 1]) == np.sign(pts[:, 2]))
    assert np.all(np.sign(out[:, 0]) == np.sign(pts[:, 1]))


def test_hammer_is_equal_area():
    # Equal-area: uniform points on S^2 fill equal-area regions of the ellipse
    # equally often. The ellipse has area 2 sqrt2 * sqrt2 * pi = 4 pi = |S^2|,
    # so the fraction of points with |x| < 1 equals that region's area / 4pi.
    rng = np.random.default_rng(1)
    out = hammer_projection(_sphere_points(rng, 200000))
    frac = np.mean(np.abs(out[:, 0]) < 1.0)
    # area of {|x| < 1} inside x^2/8 + y^2/2 <= 1, by the strip formula
    a, b = 2.0 * R2, R2
    area = 2.0 * a * b * (math.asin(1.0 / a) + (1.0 / a) * math.sqrt(1.0 - 1.0 / a**2))
    assert abs(frac - area / (4.0 * math.pi)) < 0.005


# ------------------------------------------------------------ single panel


@pytest.mark.parametrize(
    "geometry, dim",
    [("euclidean", 2), ("euclidean", 1), ("euclidean", 5), ("sphere", 3), ("sphere", 4)],
)
def test_save_latent_png(tmp_path, geometry, dim):
    rng = np.random.default_rng(2)
    z = rng.standard_normal((300, dim))
    if geometry == "sphere":
        z /= np.linalg.norm(z, axis=1, keepdims=True)
    labels = rng.integers(0, 12, size=300)  # > 10 classes wrap around tab10
    path = tmp_path / "sub" / "latent.png"
    returned = save_latent_png(path, z, labels, geometry, "test")
    assert Path(returned) == path
    h, w = _png_shape(path)
    assert (w, h) == (round(SINGLE_SIZE[0] * DPI), round(SINGLE_SIZE[1] * DPI))
    # atomic write leaves no temp file behind
    assert sorted(p.name for p in path.parent.iterdir()) == ["latent.png"]


def test_save_latent_png_failure_leaves_target_untouched(tmp_path):
    z = np.zeros((5, 2))
    labels = np.zeros(5, dtype=int)
    target = tmp_path / "fig.png"
    save_latent_png(target, z, labels, "euclidean", "ok")
    before = target.read_bytes()
    with pytest.raises(ValueError):
        save_latent_png(target, z, labels, "hyperbolic", "bad geometry")
    with pytest.raises(ValueError):
        save_latent_png(tmp_path / "fig.notaformat", z, labels, "euclidean", "bad suffix")
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png"]


def test_plot_latent_titles_and_sphere_axes():
    from matplotlib.figure import Figure

    rng = np.random.default_rng(3)
    fig = Figure()
    ax_e, ax_s, ax_f = fig.subplots(1, 3)
    labels = np.arange(50) % 3
    figures.plot_latent(ax_e, rng.standard_normal((50, 4)), labels, "euclidean", "E")
    assert ax_e.get_title().startswith("E") and "first 2 of 4" in ax_e.get_title()
    assert ax_e.axison
    figures.plot_latent(ax_s, _sphere_points(rng, 50), labels, "sphere", "S")
    assert ax_s.get_title() == "S" and not ax_s.axison
    assert len(ax_s.lines) >= 5  # boundary plus grid lines
    # the scattered points are the Hammer projection
    offsets = np.asarray(ax_s.collections[0].get_offsets())
    assert np.all(offsets[:, 0] ** 2 / 8 + offsets[:, 1] ** 2 / 2 <= 1.0 + 1e-12)
    figures.plot_latent(ax_f, _sphere_points(rng, 50)[:, :2], labels, "sphere", "F")
    assert ax_f.get_title() != "F" and "first 2" in ax_f.get_title()
    with pytest.raises(ValueError):
        figures.plot_latent(ax_e, np.zeros((3, 2)), np.zeros(2, dtype=int), "euclidean", "x")


# ------------------------------------------------------- run dirs / panels


def _write_run(
    root: Path,
    model: str,
    beta: float,
    *,
    seed: int = 0,
    latent_dim: int = 2,
    status: str = "complete",
    n: int = 120,
    with_truth: bool = True,
    with_latent: bool = True,
) -> Path:
    rng = np.random.default_rng(zlib.crc32(f"{model}|{beta}|{seed}|{latent_dim}".encode()))
    run = root / "synthetic_figure" / "synthetic" / model / f"d={latent_dim}" / f"beta={beta:g}" / f"seed={seed}"
    run.mkdir(parents=True)
    labels = np.arange(n) % 3
    truth = _sphere_points(rng, n)
    spherical = model in ("svae", "psvae")
    if spherical:
        z = _sphere_points(rng, n) if latent_dim == 2 else rng.standard_normal((n, latent_dim + 1))
    else:
        z = rng.standard_normal((n, latent_dim))
    arrays = dict(
        z=z.astype(np.float32),
        labels=labels.astype(np.int64),
        geometry=np.array("sphere" if spherical else "euclidean"),
        model=np.array(model),
        beta=np.array(float(beta)),
    )
    if with_truth:
        arrays["truth"] = truth
    if with_latent:
        np.savez(run / "latent.npz", **arrays)
    result = dict(
        model=model,
        dataset="synthetic",
        latent_dim=latent_dim,
        beta=beta,
        seed=seed,
        experiment="synthetic_figure",
        status=status,
    )
    (run / "result.json").write_text(json.dumps(result))
    return run


@pytest.fixture
def runs_root(tmp_path) -> Path:
    root = tmp_path / "runs"
    _write_run(root, "svae", 1.0)
    _write_run(root, "nvae", 10.0)
    _write_run(root, "ae", 0.0, with_truth=False)
    _write_run(root, "nvae", 0.1)
    return root


def _panels(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("result.json"))


def test_load_run_and_order(runs_root):
    runs = [load_run(d) for d in _panels(runs_root)]
    ordered = sort_runs(runs)
    assert [r.title for r in ordered] == ["AE", "N-VAE, β = 0.1", "N-VAE, β = 10", "S-VAE"]
    assert ordered[0].truth is None and ordered[1].truth is not None
    assert ordered[3].geometry == "sphere" and ordered[3].z.shape == (120, 3)
    assert ordered[1].result["status"] == "complete"


def test_panel_titles():
    assert panel_title("ae", 0.0) == "AE"
    assert panel_title("nvae", 1.0) == "N-VAE, β = 1"
    assert panel_title("svae", 1.0) == "S-VAE"
    assert panel_title("psvae", 1.0) == "PS-VAE"
    assert panel_title("svae", 0.5) == "S-VAE, β = 0.5"


def test_compose_panel_width_grows_with_panels(runs_root, tmp_path):
    dirs = _panels(runs_root)
    by_model = {load_run(d).model: d for d in dirs}
    panel_px = round(PANEL_SIZE[0] * DPI)

    two = compose_panel([by_model["ae"], by_model["svae"]], tmp_path / "two.png")
    h2, w2 = _png_shape(two)
    all_ = compose_panel(dirs, tmp_path / "all.png")
    h5, w5 = _png_shape(all_)
    no_truth = compose_panel(dirs, tmp_path / "nt.png", truth_from_first=False)
    _, w4 = _png_shape(no_truth)
    only_ae = compose_panel([by_model["ae"]], tmp_path / "ae.png")  # no truth anywhere
    _, w1 = _png_shape(only_ae)

    assert h2 == h5 == round(PANEL_SIZE[1] * DPI)
    assert (w1, w2, w4, w5) == (panel_px, 3 * panel_px, 4 * panel_px, 5 * panel_px)
    assert w1 < w2 < w4 < w5
    with pytest.raises(ValueError):
        compose_panel([], tmp_path / "empty.png")
    assert not (tmp_path / "empty.png").exists()


def test_main_writes_default_figure(runs_root, capsys):
    # runs that must be ignored: other seed, other latent_dim, unfinished, no latent.npz
    _write_run(runs_root, "psvae", 1.0, seed=1)
    _write_run(runs_root, "psvae", 2.0, latent_dim=5)
    _write_run(runs_root, "psvae", 3.0, status="running")
    _write_run(runs_root, "psvae", 4.0, with_latent=False)
    assert main(["--runs", str(runs_root)]) == 0
    out = runs_root / "synthetic_figure" / "figure.png"
    captured = capsys.readouterr()
    assert captured.out.strip() == f"figures: wrote {out} (5 panels)"
    assert captured.err == ""
    _, w = _png_shape(out)
    assert w == 5 * round(PANEL_SIZE[0] * DPI)

    # a second seed-1 run set: the psvae seed=1 run alone (+ its truth panel)
    custom = runs_root.parent / "custom.png"
    assert main(["--runs", str(runs_root), "--seed", "1", "--out", str(custom)]) == 0
    assert capsys.readouterr().out.strip() == f"figures: wrote {custom} (2 panels)"
    assert _png_shape(custom)[1] == 2 * round(PANEL_SIZE[0] * DPI)


def test_main_missing_runs_dir(tmp_path, capsys):
    before = sorted(tmp_path.rglob("*"))
    assert main(["--runs", str(tmp_path / "nope")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "nope" in lines[0]
    assert sorted(tmp_path.rglob("*")) == before


def test_main_no_matching_runs(runs_root, capsys):
    before = sorted(runs_root.rglob("*"))
    assert main(["--runs", str(runs_root), "--seed", "7"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")
    assert "seed=7" in err[0] and str(runs_root / "synthetic_figure") in err[0]
    assert main(["--runs", str(runs_root), "--experiment", "other"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(runs_root / "other") in err[0]
    assert sorted(runs_root.rglob("*")) == before


def test_main_help_returns_zero(capsys):
    assert main(["--help"]) == 0
    assert "svae-bench figures" in capsys.readouterr().out
