"""Makes the TF side of `host/tests/tf_model_dirs.rs`'s continuation tests, with TF 2.15.

For each model_dir in `data/tf_model_dirs/`, TF's estimator (the same model as the case's
`manifest.yaml`) calls `train(steps=50)` on a copy of the model_dir, as a TF user would
to keep training: the input_fn starts over from the first row, the variables, slots and
optimizer counters continue from step 300. TF's checkpoint at step 350 is kept in the
case's `continued/` folder.

It also writes the `iris_dnn_classifier_adam` case: the Iris DNN trained by Adam for 300
steps (checkpoints every 100, no shuffle, batch 32, `tf_random_seed` 7), whose
`training/Adam/iter` is the step count Adam's bias correction uses, and its continuation.

Run from the repository root:  pip install tensorflow-cpu==2.15.1 && python3 scripts/tf/continue_fixtures.py
"""

import csv
import glob
import json
import os
import shutil
import tempfile

import tensorflow as tf

ROOT = "data/tf_model_dirs"
fc = tf.feature_column


def read_csv(path, label, label_type):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    features = {k: [float(r[k]) for r in rows] for k in rows[0] if k != label}
    labels = [label_type(r[label]) for r in rows]
    return features, labels


def input_fn(path, label, label_type, ints=()):
    features, labels = read_csv(path, label, label_type)
    for key in ints:
        features[key] = [int(v) for v in features[key]]

    def make():
        data = tf.data.Dataset.from_tensor_slices((dict(features), labels))
        return data.repeat().batch(32)

    return make


def config(model_dir, save_steps=100):
    return tf.estimator.RunConfig(
        model_dir=model_dir, tf_random_seed=7, save_checkpoints_steps=save_steps
    )


IRIS = ["SepalLength", "SepalWidth", "PetalLength", "PetalWidth"]
BREAST = None  # read from the CSV header


def iris(model_dir, optimizer="Adagrad"):
    est = tf.estimator.DNNClassifier(
        hidden_units=[10, 10],
        n_classes=3,
        feature_columns=[fc.numeric_column(k) for k in IRIS],
        optimizer=optimizer,
        config=config(model_dir),
    )
    return est, input_fn("data/iris_training.csv", "Species", int)


def breast_cancer(model_dir):
    with open("data/breast_cancer_training.csv") as f:
        keys = [k for k in next(csv.reader(f)) if k != "diagnosis"]
    est = tf.estimator.LinearClassifier(
        n_classes=2,
        label_vocabulary=["benign", "malignant"],
        feature_columns=[fc.numeric_column(k) for k in keys],
        config=config(model_dir),
    )
    return est, input_fn("data/breast_cancer_training.csv", "diagnosis", str)


def diabetes(model_dir):
    age = fc.bucketized_column(fc.numeric_column("age"), [30, 40, 50, 60])
    sex = fc.categorical_column_with_vocabulary_list("sex", [1, 2])
    numeric = ["bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    est = tf.estimator.DNNLinearCombinedRegressor(
        dnn_hidden_units=[16, 8],
        dnn_feature_columns=[fc.numeric_column(k) for k in numeric]
        + [fc.embedding_column(sex, 2)],
        linear_feature_columns=[age, sex, fc.crossed_column([age, "sex"], 20)],
        config=config(model_dir),
    )
    return est, input_fn("data/diabetes_training.csv", "progression", float, ints=["sex"])


def keep(model_dir, step, into):
    os.makedirs(into, exist_ok=True)
    for f in glob.glob(os.path.join(model_dir, f"model.ckpt-{step}.*")):
        if not f.endswith(".meta"):
            shutil.copy(f, into)


def continue_50(case, build):
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = os.path.join(tmp, "model_dir")
        shutil.copytree(os.path.join(ROOT, case, "model_dir"), model_dir)
        est, train = build(model_dir)
        est.train(train, steps=50)
        keep(model_dir, 350, os.path.join(ROOT, case, "continued"))


def adam_case():
    case = os.path.join(ROOT, "iris_dnn_classifier_adam")
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = os.path.join(tmp, "model_dir")
        est, train = iris(model_dir, optimizer="Adam")
        est.train(train, max_steps=300)
        shutil.rmtree(os.path.join(case, "model_dir"), ignore_errors=True)
        for step in (0, 100, 200, 300):
            keep(model_dir, step, os.path.join(case, "model_dir"))
        with open(os.path.join(case, "model_dir", "checkpoint"), "w") as f:
            f.write('model_checkpoint_path: "model.ckpt-300"\n')
            for step in (0, 100, 200, 300):
                f.write(f'all_model_checkpoint_paths: "model.ckpt-{step}"\n')
    continue_50("iris_dnn_classifier_adam", lambda d: iris(d, optimizer="Adam"))


if __name__ == "__main__":
    continue_50("iris_dnn_classifier", iris)
    continue_50("breast_cancer_linear_classifier", breast_cancer)
    continue_50("diabetes_dnn_linear_combined_regressor", diabetes)
    adam_case()
    print(json.dumps(sorted(glob.glob(os.path.join(ROOT, "*", "continued", "*")))))
