"""The link-prediction task (Table 4): Kipf's all-pairs loss without an N x N matrix against a dense
reference, AUC/AP against a hand-computed case, the two models' latent spaces, a tiny end-to-end run
on a generated graph through the CLI and into the tables, resume after an interruption, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from helpers_kill import kill_at_epoch
from svae_bench.commands import tables as tables_cmd
from svae_bench.data.graph import link_data, synthetic_graph
from svae_bench.launch.preflight import check_run_overrides
from svae_bench.models.vgae import VGAE, AllPairsSoftplus, weighted_bce
from svae_bench.tasks.harness import run_one
from svae_bench.tasks.vgae import link_metrics
from svae_bench.training.hooks import step_hook

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
#: a 120-node generated graph, a few full-batch epochs: well under a second of training
TINY = [
    "dataset=synthetic_graph",
    "dataset.n_nodes=120",
    "dataset.n_features=24",
    "dataset.n_edges=400",
    "model.hidden_dims=[16]",
    "latent_dim=4",
    "vgae.epochs=20",
    "trainer.progress=false",
    "trainer.num_threads=1",
]


@pytest.fixture
def hydra_compose():
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="svae_bench.conf", version_base="1.3"):
        yield lambda *overrides: compose(config_name="config", overrides=list(overrides))
    GlobalHydra.instance().clear()


# --------------------------------------------------------------------------- the loss and the metrics


def dense_weighted_bce(z, scale, positives, pos_weight, norm):
    n = z.shape[0]
    target = torch.zeros(n, n, dtype=z.dtype)
    target[positives[:, 0], positives[:, 1]] = 1
    logits = scale * z @ z.T
    loss = F.binary_cross_entropy_with_logits(logits, target, pos_weight=torch.tensor(pos_weight, dtype=z.dtype))
    return norm * loss


@pytest.mark.parametrize("chunk_elements", [1, 17, 64, 10_000])
def test_all_pairs_loss_equals_the_dense_reference_value_and_gradient(chunk_elements: int) -> None:
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(8, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    scale = torch.tensor(1.7, dtype=torch.float64, requires_grad=True)
    pairs = torch.tensor([[0, 1], [1, 0], [2, 5], [5, 2], *[[i, i] for i in range(8)]])
    ours = weighted_bce(z, scale, pairs, 3.5, 0.6, chunk_elements)
    ref = dense_weighted_bce(z, scale, pairs, 3.5, 0.6)
    g_ours = torch.autograd.grad(ours, (z, scale))
    g_ref = torch.autograd.grad(ref, (z, scale))
    assert torch.allclose(ours, ref, rtol=1e-12)
    assert all(torch.allclose(a, b, rtol=1e-10, atol=1e-12) for a, b in zip(g_ours, g_ref))
    assert torch.autograd.gradcheck(lambda z, s: AllPairsSoftplus.apply(z, s, chunk_elements), (z, scale))


def test_auc_and_ap_against_a_hand_computed_case() -> None:
    # ranked: 0.9 (edge), 0.5 (non-edge), 0.4 (edge), 0.1 (non-edge)
    # AUC: 3 of the 4 (edge, non-edge) pairs are ordered right; AP: 1/2 * 1 + 1/2 * 2/3
    auc, ap = link_metrics(torch.tensor([0.9, 0.4]), torch.tensor([0.5, 0.1]))
    assert auc == pytest.approx(0.75) and ap == pytest.approx(5 / 6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_latent_spaces_and_dtypes(dtype: torch.dtype) -> None:
    data = link_data(synthetic_graph(60, 10, 150, 3, 0.8, 0.2, 0), 0, 0.05, 0.1, dtype=dtype)
    for latent, ambient in (("gaussian", 5), ("vmf", 6)):
        torch.manual_seed(0)
        model = VGAE(data.n_features, [8], latent, 5).to(dtype=dtype)
        assert model.ambient_dim == ambient  # latent_dim d: R^d, or S^d in R^(d+1)
        recon, kl = model.terms(data.features, data.adjacency, data.positives, data.pos_weight, data.norm)
        assert recon.dtype == dtype and kl.shape == (60,) and bool(torch.isfinite(recon)) and bool((kl >= 0).all())
        q = model.posterior(data.features, data.adjacency)
        if latent == "vmf":
            assert torch.allclose(q.rsample().norm(dim=-1), torch.ones(60, dtype=dtype), atol=1e-5)
            assert [n for n, p in model.named_parameters() if p.dim() == 0] == ["decoder_scale"]  # learnt s
        else:
            assert float(model.scale()) == 1.0 and "decoder_scale" not in dict(model.named_parameters())


# --------------------------------------------------------------------------- runs


def record(run_dir: Path) -> dict:
    return json.loads((run_dir / "result.json").read_text())


@pytest.fixture(scope="module")
def cli_sweep(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("vgae")
    out = subprocess.run(
        [sys.executable, "-m", "svae_bench", "run", "-m", "experiment=table4", "n_seeds=2", *TINY],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return root


def test_cli_runs_write_records(cli_sweep: Path) -> None:
    for model, ambient in (("nvgae", 4), ("svgae", 5)):
        run = cli_sweep / f"runs/table4/synthetic_graph/{model}/d=4/beta=1/seed=0"
        rec = record(run)
        assert rec["task"] == "vgae" and rec["model"] == model and rec["ambient_dim"] == ambient
        assert rec["latent_dim"] == 4 and rec["split_seed"] == 0 and rec["epochs"] == 20 and rec["best_epoch"] == 20
        assert set(rec["metrics"]) == {"auc", "ap", "val_auc", "val_ap"}
        assert all(0.5 < v <= 1 for v in rec["metrics"].values())  # communities make links predictable
        graph = rec["graph"]
        assert (graph["n_nodes"], graph["n_edges"], graph["n_test_edges"], graph["n_val_edges"]) == (120, 400, 40, 20)
        header = (run / "metrics.csv").read_text().splitlines()[0]
        assert header == "epoch,train_objective,train_recon,train_kl,val_auc,val_ap,scale,seconds"
        assert not (run / "state.pt").exists() and (run / "checkpoint.pt").exists()


def test_cli_runs_make_table4(cli_sweep: Path, capsys) -> None:
    out = cli_sweep / "tables"
    assert tables_cmd.main(["--runs", str(cli_sweep / "runs"), "--out", str(out)]) == 0
    md = (out / "table4.md").read_text()
    assert "### Table 4: synthetic\\_graph (experiment table4)" in md
    assert "| data set | N-VGAE AUC | N-VGAE AP | S-VGAE AUC | S-VGAE AP |" in md
    assert "| synthetic\\_graph |" in md and "n = 2" in md  # Markdown-escaped, as every name
    assert not (out / "table4_vs_paper.md").exists()  # the paper has no generated graph


def test_resume_after_interruption_ends_with_the_same_numbers(hydra_compose, tmp_path: Path) -> None:
    cfg = hydra_compose("model=svgae", *TINY)

    def interrupt(step, objective):
        if step == 4:
            raise KeyboardInterrupt  # like a kill after epoch 3's state was saved
        return objective

    with step_hook(interrupt), pytest.raises(KeyboardInterrupt):
        run_one(cfg, tmp_path / "a")
    assert (tmp_path / "a" / "state.pt").exists() and not (tmp_path / "a" / "result.json").exists()
    resumed = run_one(cfg, tmp_path / "a")
    straight = run_one(cfg, tmp_path / "b")
    assert resumed["resumed_from_epoch"] == 3 and straight["resumed_from_epoch"] == 0
    assert resumed["metrics"] == straight["metrics"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["latent_dim=0"], "latent_dim=0 must be an integer >= 1"),
        (["dataset=mnist"], "dataset.name='mnist' is not a graph; allowed: cora, citeseer, pubmed, synthetic_graph"),
        (["dataset=cora", "dataset.data_root={tmp}"], "ind.cora.x is missing; run `svae-bench data planetoid"),
        (["dataset=reddit"], "dataset=reddit is unknown"),
        (["vgae.select=best"], "vgae.select='best' must be one of last, val"),
        (["vgae.pos_weight=-1"], "vgae.pos_weight=-1 must be auto (Kipf's) or a number > 0"),
        (["dataset.test_fraction=0.6"], "dataset.test_fraction=0.6 must be a number > 0 and <= 0.5"),
        (["model.hidden_dims=[]"], "model.hidden_dims=[] must be a list of positive integers"),
        (["model.scale_init=0"], "model.scale_init=0 must be a number > 0"),
    ],
)
def test_bad_values_are_one_line_before_anything_is_written(tmp_path: Path, overrides, message) -> None:
    args = ["model=svgae", *TINY[:1], *(o.format(tmp=tmp_path) for o in overrides), f"runs_root={tmp_path}"]
    problem = check_run_overrides(args)
    assert problem is not None and message in problem and "\n" not in problem
    assert not list(tmp_path.rglob("*.json"))


@pytest.mark.skipif(not (SHARED / "planetoid" / "ind.cora.x").is_file(), reason="../shared/data not present")
def test_corrupt_file_is_exit_2_naming_it(tmp_path: Path) -> None:
    import shutil

    (tmp_path / "planetoid").mkdir()
    for f in (SHARED / "planetoid").glob("ind.cora.*"):
        shutil.copy(f, tmp_path / "planetoid" / f.name)
    (tmp_path / "planetoid" / "ind.cora.graph").write_bytes(b"\x80\x02garbage")
    out = subprocess.run(
        [sys.executable, "-m", "svae_bench", "run", "model=nvgae", "dataset=cora", f"dataset.data_root={tmp_path}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2 and len(lines) == 1 and "ind.cora.graph is corrupt" in lines[0], out.stderr[-2000:]
    assert not list(tmp_path.rglob("result.json"))


def test_a_node_without_features_or_edges_gets_a_direction() -> None:
    """Citeseer has 15 isolated nodes without features: the GCN maps them to 0, which has no direction."""
    from svae_bench.models.vgae import unit_rows

    x = torch.tensor([[3.0, 4.0], [0.0, 0.0]], requires_grad=True)
    out = unit_rows(x)
    assert torch.allclose(out, torch.tensor([[0.6, 0.8], [1.0, 0.0]]))
    out.sum().backward()
    assert bool(torch.isfinite(x.grad).all())


@pytest.mark.slow
def test_kill_9_then_rerun_ends_with_the_same_numbers(tmp_path: Path) -> None:
    """A real SIGKILL of `svae-bench run` between epochs; the same command resumes it."""

    args = [sys.executable, "-m", "svae_bench", "run", "model=svgae", *TINY[:-3], "vgae.epochs=200", *TINY[-2:]]
    run_dir = tmp_path / "a" / "runs/default/synthetic_graph/svgae/d=4/beta=1/seed=0"
    (tmp_path / "a").mkdir()
    kill_at_epoch(args, tmp_path / "a", run_dir, 5, poll=0.01)
    assert not (run_dir / "result.json").exists()
    for where in ("a", "b"):
        (tmp_path / where).mkdir(exist_ok=True)
        out = subprocess.run(args, cwd=tmp_path / where, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
    resumed = record(run_dir)
    assert resumed["resumed_from_epoch"] >= 5
    assert (
        resumed["metrics"] == record(tmp_path / "b" / "runs/default/synthetic_graph/svgae/d=4/beta=1/seed=0")["metrics"]
    )
