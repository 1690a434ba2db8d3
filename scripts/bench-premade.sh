#!/usr/bin/env bash
# The six premade cases (scripts/premade_cases.py), `estimator train` from start to exit,
# 2,000 steps. The same cases as scripts/tf/premade_speed.py, which times TF Estimator.
# Prints `ours case=<name> steps_per_sec=<x>` per case.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p estimator-host -p estimator-plugin-premade \
    -p estimator-plugin-csv -p estimator-plugin-metrics
bin="$PWD/target/release/estimator"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 scripts/premade_cases.py "$work" "$PWD/data"

# Each case runs five times from a fresh model_dir; the median run is reported (a run
# is 20-40 ms, so one is at the mercy of the machine's noise).
for manifest in "$work"/*.yaml; do
    case="$(basename "$manifest" .yaml)"
    python3 - "$bin" "$manifest" "$case" << 'PY'
import shutil, statistics, subprocess, sys, time, os
bin, manifest, case = sys.argv[1:]
model_dir = os.path.join(os.path.dirname(manifest), case + "_model")
seconds = []
for _ in range(5):
    shutil.rmtree(model_dir, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run([bin, "train", manifest, "--max-steps", "2000", "--quiet"], check=True)
    seconds.append(time.perf_counter() - start)
print(f"ours case={case} steps_per_sec={2000 / statistics.median(seconds):.0f}")
PY
done
