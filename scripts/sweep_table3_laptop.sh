#!/usr/bin/env bash
# Issue 14: the laptop-budget Table 3 sweep (3 families x z1 in {5, 10, 50} x z2 in {5, 10, 50}
# x 3 seeds = 81 cells, and the 18 M1 runs they share), from a fixed commit so that later commits
# cannot change code the sweep has not loaded yet. Resumable: run it again and complete runs are
# skipped, unfinished ones continue after their last epoch.
#
#   setsid scripts/sweep_table3_laptop.sh [WORKDIR] >> WORKDIR/table3_laptop/sweep.log 2>&1 &
#
# WORKDIR (default /work/sweeps) gets a clone of the repository at $COMMIT, its own venv and the
# runs root WORKDIR/table3_laptop/runs (scripts/sweep_common.sh, which also seeds it with the
# committed and the stashed runs; an M1 needs its checkpoint too, so committed M1 records do not
# spare their training). N_JOBS (default 2) jobs at a time, one thread each, under nice -n 19;
# scripts/collect_sweep.sh copies finished records back for committing.
set -euo pipefail
# 71d5e4d: N+N draws z1 (conf/family/N+N.yaml). The S+S and S+N runs made at 24dcfe5 (the mean for
# every family) are kept: for those families the two commits train the same thing.
# 0607248: N+N also prunes M1's switched-off coordinates; it changes nothing at z1 = 5 and 10 (every
# coordinate kept), so the N+N runs made there at 71d5e4d are kept as well.
# 56b13a9: S+S and S+N draw z1 too (with the mean both lost accuracy at z1 = 50 while M2's bound
# grew); their runs made with the mean are the ablation results/table3_laptop_s_z1mean. N+N trains
# the same thing as at 0607248, so its runs are kept.
COMMIT=56b13a9
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-/work/sweeps}
DATA=${SVAE_BENCH_DATA:-$(cd "$REPO/.." && pwd)/shared/data}
NAME=table3_laptop
# shellcheck source=scripts/sweep_common.sh
source "$REPO/scripts/sweep_common.sh"
cd "$CODE"
# z1 outermost: the cells of one z1 share their M1s (one per family's M1 latent and seed); S+N first
for z1 in 10 5 50; do
    nice -n 19 "$VENV/bin/svae-bench" run -m experiment=table3 budget=laptop latent_dim=$z1 \
        family=S+N,S+S,N+N \
        hydra/launcher=joblib hydra.launcher.n_jobs="${N_JOBS:-2}" \
        trainer.num_threads=1 trainer.progress=false \
        dataset.data_root="$DATA" runs_root="$RUNS"
done
