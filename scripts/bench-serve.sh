#!/usr/bin/env bash
# Serving throughput on loopback with wrk (Debian's `wrk`), the load generator sharing the
# machine with the server:
#   1. Iris (iris_custom), one instance per request, 32 keep-alive connections;
#   2. a compute-bound DNN (256 numeric features, hidden [512, 512], 10 classes), one
#      instance per request, 256 connections, batching off, then on.
# Prints wrk's summary for each run. Usage: scripts/bench-serve.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
command -v wrk > /dev/null || { echo "install wrk (apt-get install wrk)" >&2; exit 2; }
cargo build --release --quiet -p estimator-host -p estimator-plugin-iris-custom \
    -p estimator-plugin-premade -p estimator-plugin-csv -p estimator-plugin-metrics
bin="$PWD/target/release/estimator"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2> /dev/null || true; rm -rf "$work"' EXIT

# The body wrk sends: one instance, from a file, so one Lua script serves both models.
cat > "$work/post.lua" << 'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("BODY"), "r")
wrk.body = f:read("*a")
f:close()
LUA

serve_and_load() { # name base connections body [serve flags...]
    local name="$1" base="$2" connections="$3" body="$4"
    shift 4
    local port=$((20000 + RANDOM % 20000))
    RUST_LOG=warn "$bin" serve --model_name "$name" --model_base_path "$base" \
        --rest_api_port "$port" "$@" &
    local pid=$!
    for _ in $(seq 100); do
        curl -sf "localhost:$port/v1/models/$name" > /dev/null && break
        sleep 0.1
    done
    BODY="$body" wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$work/post.lua" \
        "http://127.0.0.1:$port/v1/models/$name:predict"
    kill -TERM "$pid"
    wait "$pid"
}

echo "== Iris: iris_custom, 1 instance per request, 32 connections"
sed "s#model_dir: ../runs/iris_custom#model_dir: $work/iris#; s#\.\./data#$PWD/data#g" \
    configs/iris_custom.yaml > "$work/iris.yaml"
"$bin" train "$work/iris.yaml" --quiet
"$bin" export "$work/iris.yaml" --export-dir "$work/iris_export" --quiet > /dev/null
echo '{"instances": [{"SepalLength": 5.9, "SepalWidth": 3.0, "PetalLength": 4.2, "PetalWidth": 1.5}]}' > "$work/iris.json"
serve_and_load iris "$work/iris_export" 32 "$work/iris.json"

echo "== Compute-bound DNN [512, 512] on 256 features"
python3 - "$work" << 'PY'
import json, random, sys
work = sys.argv[1]
random.seed(0)
names = [f"f{i}" for i in range(256)]
with open(f"{work}/wide.csv", "w") as f:
    f.write(",".join(names + ["label"]) + "\n")
    for _ in range(512):
        f.write(",".join(f"{random.gauss(0, 1):.4f}" for _ in names) + f",{random.randrange(10)}\n")
columns = "\n".join(f"      - numeric: {n}" for n in names)
with open(f"{work}/wide.yaml", "w") as f:
    f.write(f"""model_dir: {work}/wide
model:
  plugin: premade
  name: dnn_classifier
  params:
    hidden_units: [512, 512]
    n_classes: 10
    feature_columns:
{columns}
input:
  train: {{ plugin: csv, params: {{ path: {work}/wide.csv, label: label }}, batch_size: 256, repeat: true }}
  eval: {{ plugin: csv, params: {{ path: {work}/wide.csv, label: label }}, batch_size: 256 }}
run_config: {{ random_seed: 1 }}
train: {{ max_steps: 2 }}
""")
with open(f"{work}/wide.json", "w") as f:
    json.dump({"instances": [{n: random.gauss(0, 1) for n in names}]}, f)
PY
"$bin" train "$work/wide.yaml" --quiet
"$bin" export "$work/wide.yaml" --export-dir "$work/wide_export" --quiet > /dev/null
echo "-- batching off"
serve_and_load wide "$work/wide_export" 256 "$work/wide.json"
echo "-- batching on (max_batch_size 64, batch_timeout_micros 1000)"
serve_and_load wide "$work/wide_export" 256 "$work/wide.json" \
    --enable_batching --max_batch_size 64 --batch_timeout_micros 1000
