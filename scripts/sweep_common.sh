# Sourced by the scripts/sweep_*.sh scripts: what every pinned, resumable result sweep does before
# it launches. Expects NAME (the sweep's folder under results/ and sweep_state/), COMMIT (the commit
# the sweep's code is cloned at), REPO and WORK; sets RUNS (the runs root), CODE and VENV (the
# clone and its venv, one pair per commit so that two sweeps pinned differently never share one).
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
