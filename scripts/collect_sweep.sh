#!/usr/bin/env bash
# Copy the complete records of a sweep's runs root into the repository (records only: result.json,
# config.yaml, metrics.csv, run.log; never checkpoints), so that they can be committed as they
# finish and a later session's sweep skips them.
#
#   scripts/collect_sweep.sh "$WORK/mnist_paper/runs" results/mnist_paper/runs
#
# (WORK: the sweep's work directory outside the checkout, the sweep scripts' WORKDIR argument.)
set -euo pipefail
SRC=$1
DST=$2
n=0
while IFS= read -r status; do
    dir=$(dirname "$status")
    grep -q '"complete"' "$status" || continue
    [ -f "$dir/result.json" ] || continue
    rel=${dir#"$SRC"/}
    mkdir -p "$DST/$rel"
    for f in result.json config.yaml metrics.csv run.log; do
        [ -f "$dir/$f" ] && cp "$dir/$f" "$DST/$rel/$f"
    done
    n=$((n + 1))
done < <(find "$SRC" -name status.json | sort)
echo "$n complete run(s) in $DST"
