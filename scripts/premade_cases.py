"""The six premade cases' manifests: wine, breast cancer and diabetes x DNN [32, 16] /
linear, every column numeric, batch 32, no shuffle, TF's default optimizers and
checkpoints (every 600 s: at the start and the end). The same cases as
scripts/tf/premade_speed.py, which times TF Estimator.

    python3 scripts/premade_cases.py WORK_DIR DATA_DIR

writes `WORK_DIR/<case>.yaml` for each case, its model_dir `WORK_DIR/<case>_model`.
"""

import csv
import json
import sys

# (data set, label column, label dtype, model kind, head params)
DATA_SETS = [
    ("wine", "class", "int64", "classifier", {"n_classes": 3}),
    ("breast_cancer", "diagnosis", "string", "classifier",
     {"n_classes": 2, "label_vocabulary": ["benign", "malignant"]}),
    ("diabetes", "progression", "float32", "regressor", {}),
]


def write_manifests(work, data):
    """Writes each case's manifest into `work`; returns [(case, manifest path)]."""
    written = []
    for name, label, dtype, kind, head in DATA_SETS:
        with open(f"{data}/{name}_training.csv") as f:
            keys = [k for k in next(csv.reader(f)) if k != label]
        columns = [{"numeric": k} for k in keys]
        for model in ("dnn", "linear"):
            params = dict(head, feature_columns=columns)
            if model == "dnn":
                params["hidden_units"] = [32, 16]
            case = f"{name}_{model}"
            manifest = {
                "model_dir": f"{case}_model",
                "model": {"plugin": "premade", "name": f"{model}_{kind}", "params": params},
                "input": {"train": {"plugin": "csv", "repeat": True, "batch_size": 32,
                                    "params": {"path": f"{data}/{name}_training.csv",
                                               "label": label, "label_dtype": dtype}}},
                "run_config": {"random_seed": 7},
            }
            path = f"{work}/{case}.yaml"
            with open(path, "w") as f:
                json.dump(manifest, f)
            written.append((case, path))
    return written


if __name__ == "__main__":
    write_manifests(sys.argv[1], sys.argv[2])
