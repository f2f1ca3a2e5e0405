"""Time and memory of a VGAE epoch on a generated graph of Pubmed's size (Table 4's largest data set).

Pubmed (19,717 nodes, 500 features, 44,324 edges) cannot be downloaded on the project's machines;
this exercises the same code on a planted-partition graph with Pubmed's node, feature and edge counts
and about its feature density (`dataset=synthetic_graph`). Each model runs in its own process so that
the peak resident memory (``ru_maxrss``) is its own; Python-level allocations are traced with
tracemalloc (torch's tensors are not: they come from its own allocator, hence ru_maxrss).

    python scripts/bench_vgae.py                      # both models, 5 timed epochs each, 1 thread
    python scripts/bench_vgae.py --epochs 3 --threads 2 --out results/table4/bench_vgae

A dense all-pairs reconstruction would hold N^2 = 388.8 M logits (1.56 GB in float32) and as much
again for its gradient; the task evaluates it in row blocks of ``vgae.chunk_elements`` entries
(default 2^24: 851 rows of 19,717), so the blocks, not N^2, bound the memory.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

PUBMED = {"n_nodes": 19717, "n_features": 500, "n_edges": 44324}


def one(model_name: str, epochs: int, threads: int, chunk_elements: int, dtype: str) -> dict:
    import torch

    from svae_bench.data.graph import link_data, synthetic_graph
    from svae_bench.models.vgae import VGAE
    from svae_bench.tasks.vgae import DTYPES, VgaeObjective, evaluate_links

    torch.set_num_threads(threads)
    tracemalloc.start()
    t0 = time.perf_counter()
    graph = synthetic_graph(**PUBMED, n_communities=3, p_within=0.8, feature_density=0.1, seed=0)
    data = link_data(graph, 0, 0.05, 0.1, dtype=DTYPES[dtype])
    prep_seconds = time.perf_counter() - t0
    torch.manual_seed(0)
    latent = {"nvgae": "gaussian", "svgae": "vmf"}[model_name]
    model = VGAE(data.n_features, [32], latent, 16, chunk_elements=chunk_elements).to(DTYPES[dtype])
    objective = VgaeObjective(data, 1.0, data.pos_weight, data.norm, float(data.n_nodes), "last")
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times, val_times = [], []
    for epoch in range(1, epochs + 2):  # the first epoch warms up and is not timed
        t = time.perf_counter()
        value, _ = objective.train_terms(model, None, epoch)
        optimizer.zero_grad()
        (-value).backward()
        optimizer.step()
        step = time.perf_counter() - t
        t = time.perf_counter()
        auc, ap = evaluate_links(model, data, "val")
        val = time.perf_counter() - t
        if epoch > 1:
            times.append(step)
            val_times.append(val)
    _, traced_peak = tracemalloc.get_traced_memory()
    return {
        "model": model_name,
        "dtype": dtype,
        "threads": threads,
        "nodes": data.n_nodes,
        "features": data.n_features,
        "edges": data.info["n_edges"],
        "feature_nonzeros": int(graph.features.nnz),
        "chunk_elements": chunk_elements,
        "rows_per_block": max(1, min(data.n_nodes, chunk_elements // data.n_nodes)),
        "prepare_seconds": round(prep_seconds, 2),
        "epoch_seconds_median": round(statistics.median(times), 3),
        "epoch_seconds_all": [round(t, 3) for t in times],
        "validation_seconds_median": round(statistics.median(val_times), 4),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_before_training_mib": round(rss_before / 1024, 1),
        "python_traced_peak_mib": round(traced_peak / 2**20, 1),
        "final_val_auc": round(auc, 4),
        "final_val_ap": round(ap, 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per model (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--chunk-elements", type=int, default=1 << 24, help="vgae.chunk_elements (default 2^24)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--models", default="nvgae,svgae")
    parser.add_argument("--out", type=Path, default=None, help="write OUT.json and OUT.txt")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.epochs, args.threads, args.chunk_elements, args.dtype)))
        return 0
    import torch

    rows = []
    for model in args.models.split(","):
        cmd = [sys.executable, __file__, "--one", model, "--epochs", str(args.epochs), "--threads", str(args.threads)]
        cmd += ["--chunk-elements", str(args.chunk_elements), "--dtype", args.dtype]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    n = rows[0]["nodes"]
    lines = [
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {args.threads} thread(s), "
        f"{args.dtype}, CPU; generated graph of Pubmed's size: {n} nodes, {rows[0]['features']} features, "
        f"{rows[0]['edges']} edges ({rows[0]['feature_nonzeros']} feature non-zeros)",
        f"all-pairs reconstruction in blocks of {rows[0]['rows_per_block']} rows x {n} "
        f"({args.chunk_elements} entries); a dense N x N float32 matrix would be {n * n * 4 / 2**30:.2f} GiB",
        "",
        "model   epoch (s, median)   validation (s)   peak RSS (MiB)   RSS before training (MiB)   "
        "traced Python peak (MiB)",
    ]
    for r in rows:
        lines.append(
            f"{r['model']:<7} {r['epoch_seconds_median']:>17.3f} {r['validation_seconds_median']:>16.4f} "
            f"{r['peak_rss_mib']:>16.1f} {r['rss_before_training_mib']:>27.1f} {r['python_traced_peak_mib']:>26.1f}"
        )
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(
            json.dumps({"args": vars(args) | {"out": str(args.out)}, "rows": rows}, indent=1) + "\n"
        )
        args.out.with_suffix(".txt").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
