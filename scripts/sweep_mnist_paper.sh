#!/usr/bin/env bash
# Issue 11: the paper-budget Table 1 sweep at d = 2, 10, 40 with 3 seeds (18 runs), from a fixed
# commit so that later commits cannot change code the sweep has not loaded yet. Resumable: run
# it again and complete runs are skipped, unfinished ones continue after their last epoch.
#
#   setsid scripts/sweep_mnist_paper.sh [WORKDIR] >> WORKDIR/mnist_paper/sweep.log 2>&1 &
#
# WORKDIR (default /work/sweeps) gets a clone of the repository at $COMMIT, its own venv and the
# runs root WORKDIR/mnist_paper/runs. Two jobs at a time, one thread each, under nice -n 19.
# Machines here are fresh each session, so the runs root is first seeded with the complete
# records already committed under results/mnist_paper/runs (those runs are then skipped);
# scripts/collect_sweep.sh copies newly finished records back for committing.
set -euo pipefail
# N_JOBS=1 runs one at a time: on a busy machine one run then finishes within a session.
COMMIT=8c18654
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-/work/sweeps}
DATA=${SVAE_BENCH_DATA:-$(cd "$REPO/.." && pwd)/shared/data}
mkdir -p "$WORK/mnist_paper/runs"
if [ -d "$REPO/results/mnist_paper/runs" ]; then
    cp -rn "$REPO/results/mnist_paper/runs/." "$WORK/mnist_paper/runs/"
fi
# unfinished runs an earlier session stashed (scripts/stash_partial.sh) continue where they stopped
if [ -d "$REPO/sweep_state/mnist_paper/runs" ]; then
    "$REPO/scripts/stash_partial.sh" --restore "$REPO/sweep_state/mnist_paper/runs" "$WORK/mnist_paper/runs"
fi
if [ ! -d "$WORK/code" ]; then
    git clone -q "$REPO" "$WORK/code"
    git -C "$WORK/code" checkout -q "$COMMIT"
fi
if [ ! -x "$WORK/venv/bin/svae-bench" ]; then
    python3 -m venv "$WORK/venv"
    "$WORK/venv/bin/pip" install -q torch==2.14.1 torchvision==0.29.1
    "$WORK/venv/bin/pip" install -q -e "$WORK/code[test]"
fi
cd "$WORK/code"
# One multirun per d (the experiment's own sweep puts model outermost): d = 10 first.
for d in 10 2 40; do
    nice -n 19 "$WORK/venv/bin/svae-bench" run -m experiment=table1 budget=paper \
        latent_dim=$d 'seed=range(3)' model=svae,nvae \
        hydra/launcher=joblib hydra.launcher.n_jobs="${N_JOBS:-2}" \
        trainer.num_threads=1 trainer.progress=false \
        dataset.data_root="$DATA" runs_root="$WORK/mnist_paper/runs"
done
