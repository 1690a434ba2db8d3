"""TF Estimator 2.15's training speed on the six premade cases, for the ratio against
`scripts/bench-premade.sh`: wine, breast cancer and diabetes x DNN [32, 16] / linear, every
column numeric, batch 32, no shuffle, 2,000 steps, TF's default optimizers. Times
`train()` alone (graph building and session start included, as TF users pay them), five
times per case from a fresh model_dir, and reports the median run, as the script for ours
does. Prints `tf case=<name> steps_per_sec=<x>` per case.

    pip install tensorflow-cpu==2.15.1 && python3 scripts/tf/premade_speed.py
"""

import csv
import statistics
import tempfile
import time

import tensorflow as tf

fc = tf.feature_column
CASES = [
    ("wine", "class", int, {"n_classes": 3}),
    ("breast_cancer", "diagnosis", str, {"n_classes": 2, "label_vocabulary": ["benign", "malignant"]}),
    ("diabetes", "progression", float, None),
]


def input_fn(path, label, kind):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    keys = [k for k in rows[0] if k != label]
    features = {k: [float(r[k]) for r in rows] for k in keys}
    labels = [kind(r[label]) for r in rows]

    def make():
        return tf.data.Dataset.from_tensor_slices((features, labels)).repeat().batch(32)

    return keys, make


def cases():
    """Each case's name and a function that trains it once from a fresh model_dir and
    returns the seconds `train()` took."""
    out = []
    for data, label, kind, head in CASES:
        keys, train = input_fn(f"data/{data}_training.csv", label, kind)
        columns = [fc.numeric_column(k) for k in keys]
        for model in ("dnn", "linear"):
            out.append((f"{data}_{model}", lambda m=model, h=head, c=columns, t=train: run(m, h, c, t)))
    return out


def run(model, head, columns, train):
    with tempfile.TemporaryDirectory() as model_dir:
        config = tf.estimator.RunConfig(model_dir=model_dir, tf_random_seed=7)
        if head is None:
            est = (tf.estimator.DNNRegressor(hidden_units=[32, 16], feature_columns=columns, config=config)
                   if model == "dnn" else
                   tf.estimator.LinearRegressor(feature_columns=columns, config=config))
        else:
            est = (tf.estimator.DNNClassifier(hidden_units=[32, 16], feature_columns=columns, config=config, **head)
                   if model == "dnn" else
                   tf.estimator.LinearClassifier(feature_columns=columns, config=config, **head))
        start = time.perf_counter()
        est.train(train, steps=2000)
        return time.perf_counter() - start


if __name__ == "__main__":
    for case, train_once in cases():
        seconds = [train_once() for _ in range(5)]
        print(f"tf case={case} steps_per_sec={2000 / statistics.median(seconds):.0f}", flush=True)
