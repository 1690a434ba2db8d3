#!/usr/bin/env bash
# The six premade cases side by side: TF Estimator 2.15 (scripts/tf/premade_speed.py)
# and ours, taken in turns on this machine (scripts/compare_premade.py), each figure the
# median of five runs. Needs TF: `pip install tensorflow-cpu==2.15.1`.
# Prints `ratio case=<name> ours=<steps/s> tf=<steps/s> x=<ours / tf> pairs=<a,b,..>` per
# case, `pairs` being each TF run's time over the next run of ours.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p estimator-host -p estimator-plugin-premade \
    -p estimator-plugin-csv -p estimator-plugin-metrics
TF_CPP_MIN_LOG_LEVEL=3 python3 scripts/compare_premade.py "$PWD/target/release/estimator" 2>/dev/null
