#!/usr/bin/env bash
# Issue 31: the paper-budget Table 1 at d = 2, 5, 10, 20, 40, both models, 3 seeds (30 runs), every
# record with both log-likelihood estimators (ll and ll_tf_example), then the epoch-cap ablation:
# d = 10 with a 1000-epoch cap (same patience and warm-up), both models, 3 seeds (6 runs). From a
# fixed commit so that later commits cannot change code the sweep has not loaded yet. Resumable:
# run it again and complete runs are skipped, unfinished ones continue after their last epoch.
#
#   setsid scripts/sweep_mnist_paper.sh [WORKDIR] >> WORKDIR/mnist_paper.log 2>&1 < /dev/null &
#
# Two copies with N_JOBS=1, started a minute or two apart, keep both cores busy to the end (a run
# locked by one is skipped by the other). WORKDIR (default /work/sweeps) gets a clone of the
# repository at $COMMIT, its own venv and the runs roots WORKDIR/mnist_paper_rerun/runs and
# WORKDIR/mnist_paper_cap1000/runs (scripts/sweep_common.sh, which also seeds them with the
# committed and the stashed runs); scripts/collect_sweep.sh copies finished records back.
#
# The d = 2, 10, 40 records committed under results/mnist_paper/runs (8c18654 and 20134f6) have no
# checkpoint left, so those cells are trained again, same protocol; the new records collect under
# results/mnist_paper_rerun/runs and replace results/mnist_paper/runs when all 30 are in.
#
# On a CPU with AVX2 PyTorch is asked for its AVX2 kernels (unless ATEN_CPU_CAPABILITY is set): on
# this AVX512 machine its float32 softplus is ~4x slower with the AVX512 ones and an MNIST VAE
# epoch takes ~1/3 less time with AVX2 (scripts/bench_m2.py, M1 epoch 7.7 s -> 5.1 s). Each
# record names the kernels (versions.torch-cpu-kernels).
set -euo pipefail
COMMIT=91e117e
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-/work/sweeps}
DATA=${SVAE_BENCH_DATA:-$(cd "$REPO/.." && pwd)/shared/data}
if grep -qw avx2 /proc/cpuinfo 2>/dev/null; then export ATEN_CPU_CAPABILITY=${ATEN_CPU_CAPABILITY:-avx2}; fi

NAME=mnist_paper_rerun
# shellcheck source=scripts/sweep_common.sh
source "$REPO/scripts/sweep_common.sh"
(cd "$CODE" && table1_sweep paper 5 20 10 2 40)  # the two never run at this budget first

NAME=mnist_paper_cap1000
# shellcheck source=scripts/sweep_common.sh
source "$REPO/scripts/sweep_common.sh"
cd "$CODE"
TABLE1_EXTRA="trainer.max_epochs=1000 experiment_name=table1_paper_cap1000" table1_sweep paper 10
