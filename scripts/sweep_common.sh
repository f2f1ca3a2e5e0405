# Sourced by the scripts/sweep_*.sh scripts: what every pinned, resumable result sweep does before
# it launches. Expects NAME (the sweep's folder under results/ and sweep_state/), COMMIT (the commit
# the sweep's code is cloned at), REPO and WORK; sets RUNS (the runs root), CODE and VENV (the
# clone and its venv, one pair per commit so that two sweeps pinned differently never share one),
# and defines table1_sweep (the Table 1 sweeps' launch, below; it also needs DATA).
#
# Machines here are fresh each session: the runs root is first seeded with the complete records
# committed under results/$NAME/runs (their runs are skipped) and with the unfinished runs an
# earlier session stashed under sweep_state/$NAME/runs (scripts/stash_partial.sh; they continue
# after their last epoch).
RUNS="$WORK/$NAME/runs"
CODE="$WORK/code-$COMMIT"
VENV="$WORK/venv-$COMMIT"
mkdir -p "$RUNS"
if [ -d "$REPO/results/$NAME/runs" ]; then
    cp -rn "$REPO/results/$NAME/runs/." "$RUNS/"
fi
if [ -d "$REPO/sweep_state/$NAME/runs" ]; then
    "$REPO/scripts/stash_partial.sh" --restore "$REPO/sweep_state/$NAME/runs" "$RUNS"
fi
if [ ! -d "$CODE" ]; then
    git clone -q "$REPO" "$CODE"
    git -C "$CODE" checkout -q "$COMMIT"
fi
if [ ! -x "$VENV/bin/svae-bench" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q torch==2.14.1 torchvision==0.29.1
    "$VENV/bin/pip" install -q -e "$CODE[test]"
fi

# table1_sweep BUDGET D...: the Table 1 sweep at one budget, both models, 3 seeds, one multirun per
# d in the order given (the experiment's own sweep puts model outermost), N_JOBS (default 2) jobs
# at a time with one thread each, under nice -n 19, with the pinned clone's venv. The words of
# TABLE1_EXTRA (default none) are added to every run's overrides (e.g. an ablation's epoch cap).
table1_sweep() {
    local budget=$1 d
    shift
    for d in "$@"; do
        # shellcheck disable=SC2086
        nice -n 19 "$VENV/bin/svae-bench" run -m experiment=table1 budget="$budget" \
            latent_dim="$d" 'seed=range(3)' model=svae,nvae \
            hydra/launcher=joblib hydra.launcher.n_jobs="${N_JOBS:-2}" \
            trainer.num_threads=1 trainer.progress=false \
            dataset.data_root="$DATA" runs_root="$RUNS" ${TABLE1_EXTRA:-}
    done
}
