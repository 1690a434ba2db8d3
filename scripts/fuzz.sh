#!/usr/bin/env bash
# Runs each cargo-fuzz target for SECONDS (default 60), starting from fuzz/seeds, and
# prints how many inputs each ran and anything it found. Not part of CI: it needs the
# nightly toolchain and `cargo install cargo-fuzz`. Findings land in fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-60}
mkdir -p logs
for target in manifest csv checkpoint checkpoint_state events tf_bundle; do
    mkdir -p "corpus/$target"
    log="logs/$target.log"
    status=0
    cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1 || status=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    if [ "$status" -eq 0 ]; then
        echo "$target: $runs inputs in ${seconds}s, nothing found"
    else
        echo "$target: FOUND a failure after $runs inputs; see fuzz/$log and fuzz/artifacts/$target"
    fi
done
