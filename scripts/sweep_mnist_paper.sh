#!/usr/bin/env bash
# Issue 11: the paper-budget Table 1 sweep at d = 2, 10, 40 with 3 seeds (18 runs), from a fixed
# commit so that later commits cannot change code the sweep has not loaded yet. Resumable: run
# it again and complete runs are skipped, unfinished ones continue after their last epoch.
#
#   setsid scripts/sweep_mnist_paper.sh [WORKDIR] >> WORKDIR/mnist_paper/sweep.log 2>&1 &
#
# WORKDIR (default /work/sweeps) gets a clone of the repository at $COMMIT, its own venv and the
# runs root WORKDIR/mnist_paper/runs (scripts/sweep_common.sh, which also seeds it with the
# committed and the stashed runs). Two jobs at a time, one thread each, under nice -n 19;
# scripts/collect_sweep.sh copies newly finished records back for committing.
set -euo pipefail
# N_JOBS=1 runs one at a time: on a busy machine one run then finishes within a session.
# d = 10 (6 runs) and the d = 2 S-VAEs of seeds 0 and 1 ran at 8c18654; the rest from 20134f6,
# which flushes subnormal floats (trainer.flush_denormal: the same training to values below
# 1.2e-38, and up to ~45% faster epochs from trained weights). Each record names its commit.
COMMIT=20134f6
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-/work/sweeps}
DATA=${SVAE_BENCH_DATA:-$(cd "$REPO/.." && pwd)/shared/data}
NAME=mnist_paper
# shellcheck source=scripts/sweep_common.sh
source "$REPO/scripts/sweep_common.sh"
cd "$CODE"
table1_sweep paper 10 2 40  # d = 10 first
