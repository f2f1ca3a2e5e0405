#!/usr/bin/env bash
# Issue 14: the laptop-budget Table 3 sweep (3 families x z1 in {5, 10, 50} x z2 in {5, 10, 50}
# x 3 seeds = 81 cells, and the 18 M1 runs they share), from a fixed commit so that later commits
# cannot change code the sweep has not loaded yet. Resumable: run it again and complete runs are
# skipped, unfinished ones continue after their last epoch.
#
#   setsid scripts/sweep_table3_laptop.sh [WORKDIR] >> WORKDIR/table3_laptop/sweep.log 2>&1 &
#
# WORKDIR (default /work/sweeps) gets a clone of the repository at $COMMIT, its own venv and the
# runs root WORKDIR/table3_laptop/runs; N_JOBS (default 2) jobs at a time, one thread each, under
# nice -n 19. Machines here are fresh each session: the runs root is first seeded with the
# complete records committed under results/table3_laptop/runs (skipped; an M1 needs its
# checkpoint too, so committed M1 records do not spare their training) and with the unfinished
# runs an earlier session stashed (scripts/stash_partial.sh); scripts/collect_sweep.sh copies
# finished records back for committing.
set -euo pipefail
COMMIT=361880e
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-/work/sweeps}
DATA=${SVAE_BENCH_DATA:-$(cd "$REPO/.." && pwd)/shared/data}
RUNS="$WORK/table3_laptop/runs"
mkdir -p "$RUNS"
if [ -d "$REPO/results/table3_laptop/runs" ]; then
    cp -rn "$REPO/results/table3_laptop/runs/." "$RUNS/"
fi
if [ -d "$REPO/sweep_state/table3_laptop/runs" ]; then
    "$REPO/scripts/stash_partial.sh" --restore "$REPO/sweep_state/table3_laptop/runs" "$RUNS"
fi
if [ ! -d "$WORK/code3" ]; then
    git clone -q "$REPO" "$WORK/code3"
    git -C "$WORK/code3" checkout -q "$COMMIT"
fi
if [ ! -x "$WORK/venv3/bin/svae-bench" ]; then
    python3 -m venv "$WORK/venv3"
    "$WORK/venv3/bin/pip" install -q torch==2.14.1 torchvision==0.29.1
    "$WORK/venv3/bin/pip" install -q -e "$WORK/code3[test,parallel]"
fi
cd "$WORK/code3"
# z1 outermost: the cells of one z1 share their M1s (one per family's M1 latent and seed)
for z1 in 10 5 50; do
    nice -n 19 "$WORK/venv3/bin/svae-bench" run -m experiment=table3 budget=laptop latent_dim=$z1 \
        hydra/launcher=joblib hydra.launcher.n_jobs="${N_JOBS:-2}" \
        trainer.num_threads=1 trainer.progress=false \
        dataset.data_root="$DATA" runs_root="$RUNS"
done
