#!/usr/bin/env bash
# Keep a sweep's unfinished runs (their state.pt, metrics and config) across machines that are
# fresh every session: copy them into a folder of the working tree that is neither committed nor
# ignored (an uncommitted change that a new checkout may carry over), so that the next session's
# sweep continues them after their last epoch instead of from scratch. Never commit this folder:
# results/ takes complete records only (scripts/collect_sweep.sh).
#
#   scripts/stash_partial.sh "$WORK/mnist_paper/runs" sweep_state/mnist_paper/runs    # save
#   scripts/stash_partial.sh --restore sweep_state/mnist_paper/runs "$WORK/mnist_paper/runs"
#
# (WORK: the sweep's work directory outside the checkout, the sweep scripts' WORKDIR argument.)
#
# state.pt travels as state.partial (*.pt is ignored by git). Restoring skips a run whose
# destination already has a state.pt or a complete record.
set -euo pipefail
restore=0
if [ "${1:-}" = "--restore" ]; then restore=1; shift; fi
SRC=$1
DST=$2
[ -d "$SRC" ] || { echo "stash_partial: $SRC is not a directory"; exit 0; }
n=0
if [ $restore = 0 ]; then
    while IFS= read -r state; do
        dir=$(dirname "$state")
        [ -f "$dir/result.json" ] && grep -q '"complete"' "$dir/status.json" 2>/dev/null && continue
        rel=${dir#"$SRC"/}
        mkdir -p "$DST/$rel"
        cp "$state" "$DST/$rel/state.partial.tmp" && mv "$DST/$rel/state.partial.tmp" "$DST/$rel/state.partial"
        for f in config.yaml metrics.csv; do [ -f "$dir/$f" ] && cp "$dir/$f" "$DST/$rel/$f"; done
        n=$((n + 1))
    done < <(find "$SRC" -name state.pt | sort)
    echo "stashed $n unfinished run(s) in $DST"
else
    while IFS= read -r state; do
        dir=$(dirname "$state")
        rel=${dir#"$SRC"/}
        out="$DST/$rel"
        { [ -f "$out/state.pt" ] || [ -f "$out/result.json" ]; } && continue
        mkdir -p "$out"
        for f in config.yaml metrics.csv; do [ -f "$dir/$f" ] && cp "$dir/$f" "$out/$f"; done
        cp "$state" "$out/state.pt"
        n=$((n + 1))
    done < <(find "$SRC" -name state.partial | sort)
    echo "restored $n unfinished run(s) into $DST"
fi
