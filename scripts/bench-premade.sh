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
