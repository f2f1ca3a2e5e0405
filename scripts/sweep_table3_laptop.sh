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
# Pinned at 56b13a9 (every family draws z1 from q(z1|x); N+N also prunes). Records kept from
# earlier pins because those trained the same thing: N+N at z1 = 5 and 10 from 71d5e4d (sampling;
# pruning keeps every coordinate there) and N+N at z1 = 50 from 0607248. What the older pins made
# and was not kept is an ablation under results/ (table3_laptop_alpha01, _nn_z1mean, _s_z1mean);
# results/README.md, "table3", says why each pin changed.
#
# On a CPU with AVX2 the sweep asks PyTorch for its AVX2 kernels (unless ATEN_CPU_CAPABILITY is
# set): on an AVX512 machine PyTorch 2.14's float32 softplus, half of an M2 step, is 4x slower
# with the AVX512 ones (docs/table3.md, "Speed of M2"; the sweep ran so from 2026-12-07 06:29).
COMMIT=56b13a9
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-/work/sweeps}
DATA=${SVAE_BENCH_DATA:-$(cd "$REPO/.." && pwd)/shared/data}
NAME=table3_laptop
# shellcheck source=scripts/sweep_common.sh
source "$REPO/scripts/sweep_common.sh"
cd "$CODE"
if grep -qw avx2 /proc/cpuinfo 2>/dev/null; then export ATEN_CPU_CAPABILITY=${ATEN_CPU_CAPABILITY:-avx2}; fi
# z1 outermost: the cells of one z1 share their M1s (one per family's M1 latent and seed); S+N first
for z1 in 10 5 50; do
    nice -n 19 "$VENV/bin/svae-bench" run -m experiment=table3 budget=laptop latent_dim=$z1 \
        family=S+N,S+S,N+N \
        hydra/launcher=joblib hydra.launcher.n_jobs="${N_JOBS:-2}" \
        trainer.num_threads=1 trainer.progress=false \
        dataset.data_root="$DATA" runs_root="$RUNS"
done
