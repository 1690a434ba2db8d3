#!/usr/bin/env bash
# The six premade cases, `estimator train` from start to exit: wine, breast cancer and
# diabetes x DNN [32, 16] / linear, every column numeric, batch 32, no shuffle, 2,000
# steps, TF's default optimizers and checkpoints (every 600 s: at the start and the end).
# The same cases as scripts/tf/premade_speed.py, which times TF Estimator.
# Prints `ours case=<name> steps_per_sec=<x>` per case.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p estimator-host -p estimator-plugin-premade \
    -p estimator-plugin-csv -p estimator-plugin-metrics
bin="$PWD/target/release/estimator"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 - "$work" "$PWD/data" << 'PY'
import csv, json, sys
work, data = sys.argv[1], sys.argv[2]
cases = [("wine", "class", "int64", "classifier", {"n_classes": 3}),
         ("breast_cancer", "diagnosis", "string", "classifier",
          {"n_classes": 2, "label_vocabulary": ["benign", "malignant"]}),
         ("diabetes", "progression", "float32", "regressor", {})]
for name, label, dtype, kind, head in cases:
    with open(f"{data}/{name}_training.csv") as f:
        keys = [k for k in next(csv.reader(f)) if k != label]
    columns = [{"numeric": k} for k in keys]
    for model in ("dnn", "linear"):
        params = dict(head, feature_columns=columns)
        if model == "dnn":
            params["hidden_units"] = [32, 16]
        manifest = {
            "model_dir": f"{name}_{model}_model",
            "model": {"plugin": "premade", "name": f"{model}_{kind}", "params": params},
            "input": {"train": {"plugin": "csv", "repeat": True, "batch_size": 32,
                                "params": {"path": f"{data}/{name}_training.csv",
                                           "label": label, "label_dtype": dtype}}},
            "run_config": {"random_seed": 7},
        }
        with open(f"{work}/{name}_{model}.yaml", "w") as f:
            json.dump(manifest, f)
PY

for manifest in "$work"/*.yaml; do
    case="$(basename "$manifest" .yaml)"
    start=$(date +%s.%N)
    "$bin" train "$manifest" --max-steps 2000 --quiet
    end=$(date +%s.%N)
    python3 -c "print(f'ours case=$case steps_per_sec={2000 / ($end - $start):.0f}')"
done
