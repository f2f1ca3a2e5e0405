#!/usr/bin/env bash
# Issue 11: the medium-budget Table 1 sweep (budget=medium: 200 epochs, warm-up 40, patience 20)
# at d = 10, 2, 40 with 3 seeds (18 runs), from a fixed commit so that later commits cannot change
# code the sweep has not loaded yet. d = 10 first: its runs check the budget against the paper
# budget's LL. Resumable: run it again and complete runs are skipped, unfinished ones continue
# after their last epoch.
#
#   setsid scripts/sweep_mnist_medium.sh [WORKDIR] >> WORKDIR/mnist_medium/sweep.log 2>&1 &
#
# WORKDIR (default /work/sweeps) gets a clone of the repository at $COMMIT, its own venv and the
# runs root WORKDIR/mnist_medium/runs (scripts/sweep_common.sh, which also seeds it with the
# committed and the stashed runs). N_JOBS (default 2) jobs at a time, one thread each, under
# nice -n 19; scripts/collect_sweep.sh copies finished records back for committing.
set -euo pipefail
COMMIT=ddeb4cd
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-/work/sweeps}
DATA=${SVAE_BENCH_DATA:-$(cd "$REPO/.." && pwd)/shared/data}
NAME=mnist_medium
# shellcheck source=scripts/sweep_common.sh
source "$REPO/scripts/sweep_common.sh"
cd "$CODE"
# shellcheck disable=SC2086 # DIMS is a list of d
table1_sweep medium ${DIMS:-10 2 40}  # d = 10 first: its runs check the budget
