#!/usr/bin/env bash
# Whole-process training figures, `estimator train` from start to exit:
#   1. the compute-bound DNN (256 numeric features, hidden [512, 512], 10 classes, batch
#      256) on a generated 20,000-row CSV, 1 and 2 threads: steps/s and peak RSS;
#   2. Iris with iris_custom, batch 100, 20,000 steps: steps/s.
# Checkpoints are written as TF's default does (every 600 s: at the start and the end).
# Prints one parseable line per run:
#   train case=<name> threads=<n> steps=<n> seconds=<s> steps_per_sec=<x> peak_rss_mb=<m>
# Usage: scripts/bench-train.sh [STEPS_FOR_THE_DNN]
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${1:-500}"
cargo build --release --quiet -p estimator-host -p estimator-plugin-iris-custom \
    -p estimator-plugin-premade -p estimator-plugin-csv -p estimator-plugin-metrics
bin="$PWD/target/release/estimator"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 - "$work" << 'PY'
import random, sys
work = sys.argv[1]
rng = random.Random(7)
names = [f"x{i:03}" for i in range(256)]
with open(f"{work}/wide.csv", "w") as f:
    f.write(",".join(names) + ",label\n")
    for _ in range(20000):
        f.write(",".join(f"{rng.gauss(0, 1):.5f}" for _ in names) + f",{rng.randrange(10)}\n")
columns = ", ".join("{numeric: %s}" % n for n in names)
with open(f"{work}/dnn.yaml", "w") as f:
    f.write(f"""model_dir: dnn_model
model:
  plugin: premade
  name: dnn_classifier
  params: {{hidden_units: [512, 512], n_classes: 10, feature_columns: [{columns}]}}
input:
  train:
    plugin: csv
    params: {{path: wide.csv, label: label, label_dtype: int64}}
    shuffle: 1000
    repeat: true
    batch_size: 256
run_config:
  random_seed: 7
  save_summary_steps: 0
""")
PY

run() { # case manifest threads steps
    local case="$1" manifest="$2" threads="$3" steps="$4"
    rm -rf "$work"/*_model
    local start end rss
    start=$(date +%s.%N)
    rss=$( { /usr/bin/time -f "%M" "$bin" train "$manifest" --max-steps "$steps" --quiet \
        --set "run_config.session_config.intra_op_parallelism_threads=$threads" \
        --set run_config.save_checkpoints_steps=null --set run_config.save_checkpoints_secs=600 \
        ; } 2>&1 | tail -1)
    end=$(date +%s.%N)
    python3 -c "s=$end-$start; print(f'train case=$case threads=$threads steps=$steps seconds={s:.3f} steps_per_sec={$steps/s:.1f} peak_rss_mb={$rss/1024:.1f}')"
}

run compute_bound_dnn "$work/dnn.yaml" 1 "$steps"
run compute_bound_dnn "$work/dnn.yaml" 2 "$steps"

sed -e 's#^model_dir: .*#model_dir: '"$work"'/iris_model#' \
    -e 's#\.\./data/#'"$PWD"'/data/#g' configs/iris_custom.yaml > "$work/iris.yaml"
run iris_custom "$work/iris.yaml" 1 20000
