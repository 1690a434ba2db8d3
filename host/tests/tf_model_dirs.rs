//! Model_dirs written by TF Estimator 2.15 (`data/tf_model_dirs/`), read as they are:
//! `evaluate` and `predict` on TF's own checkpoints give what TF's evaluate and predict
//! gave, to float32 precision.

mod common;

use std::path::{Path, PathBuf};

use common::{ok, p};
use estimator_host::checkpoint;
use serde_json::Value;

/// A copy of the case's folder in a temp dir, its manifest's data paths made absolute.
fn case(dir: &Path, name: &str) -> PathBuf {
    let from = common::repo_root().join("data/tf_model_dirs").join(name);
    let to = dir.join(name);
    copy_dir(&from, &to);
    let manifest = to.join("manifest.yaml");
    let data = common::repo_root().join("data");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    std::fs::write(
        &manifest,
        text.replace("\"../../", &format!("\"{}/", data.display())),
    )
    .expect("write");
    manifest
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        match entry.file_type().expect("type").is_dir() {
            true => copy_dir(&entry.path(), &target),
            false => {
                std::fs::copy(entry.path(), &target).expect("copy");
            }
        }
    }
}

/// Whether two numbers agree to float32 precision: 1e-5 relative, or 1e-6 absolute
/// near zero.
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-5 * a.abs().max(b.abs()) || (a - b).abs() <= 1e-6
}

/// Every number in `ours` agrees with `tf`'s, and everything else is equal.
fn agree(ours: &Value, tf: &Value) -> bool {
    match (ours, tf) {
        (Value::Number(a), Value::Number(b)) => close(
            a.as_f64().unwrap_or(f64::NAN),
            b.as_f64().unwrap_or(f64::NAN),
        ),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| agree(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| agree(v, w)))
        }
        (a, b) => a == b,
    }
}

fn check(name: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = case(dir.path(), name);
    let folder = manifest.parent().expect("folder");
    let ours: Value =
        serde_json::from_str(&ok(&["evaluate", p(&manifest), "--json", "--quiet"])).expect("JSON");
    let tf: Value = serde_json::from_str(
        &std::fs::read_to_string(folder.join("tf_eval.json")).expect("tf_eval"),
    )
    .expect("JSON");
    assert!(agree(&ours, &tf), "{name}: evaluate gave {ours}, TF {tf}");
    let predicted = ok(&["predict", p(&manifest), "--quiet"]);
    let tf_predicted =
        std::fs::read_to_string(folder.join("tf_predictions.jsonl")).expect("tf_predictions");
    assert_eq!(
        predicted.lines().count(),
        tf_predicted.lines().count(),
        "{name}"
    );
    for (i, (a, b)) in predicted.lines().zip(tf_predicted.lines()).enumerate() {
        let (a, b): (Value, Value) = (
            serde_json::from_str(a).expect("JSON"),
            serde_json::from_str(b).expect("JSON"),
        );
        assert!(agree(&a, &b), "{name} example {i}: ours {a}, TF {b}");
    }
}

#[test]
fn a_tf_dnn_classifiers_model_dir_evaluates_and_predicts_as_tf_did() {
    check("iris_dnn_classifier");
}

#[test]
fn a_tf_linear_classifier_with_string_labels_evaluates_and_predicts_as_tf_did() {
    check("breast_cancer_linear_classifier");
}

#[test]
fn a_tf_wide_and_deep_regressor_evaluates_and_predicts_as_tf_did() {
    check("diabetes_dnn_linear_combined_regressor");
}

#[test]
fn estimator_checkpoints_lists_and_reads_tfs_checkpoints() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = case(dir.path(), "iris_dnn_classifier");
    let model_dir = manifest.parent().expect("folder").join("model_dir");
    let listed = ok(&["checkpoints", p(&model_dir)]);
    let names: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        names,
        [
            "model.ckpt-0",
            "model.ckpt-100",
            "model.ckpt-200",
            "model.ckpt-300"
        ],
        "{listed}"
    );
    assert!(
        listed
            .lines()
            .last()
            .is_some_and(|l| l.ends_with("(latest)")),
        "{listed}"
    );
    let variables = ok(&["checkpoints", p(&model_dir), "--variables"]);
    assert!(
        variables.starts_with("global_step  []  300\n"),
        "{variables}"
    );
    assert!(
        variables.contains("dnn/hiddenlayer_0/kernel  [4, 10]\n"),
        "{variables}"
    );
    let bias: Vec<f64> = serde_json::from_str(&ok(&[
        "checkpoints",
        p(&model_dir),
        "--value",
        "dnn/logits/bias",
        "--checkpoint",
        p(&model_dir.join("model.ckpt-100")),
    ]))
    .expect("JSON");
    assert_eq!(bias.len(), 3);
    assert!(
        bias.iter().any(|b| *b != 0.0),
        "trained by step 100: {bias:?}"
    );
}

#[test]
fn a_new_model_warm_started_from_a_tf_model_dir_predicts_as_tf_did() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = case(dir.path(), "iris_dnn_classifier");
    let folder = manifest.parent().expect("folder");
    // A fresh model_dir, warm-started from TF's: no checkpoint of its own.
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    let warm = text.replacen(
        "\"model_dir\": \"model_dir\"",
        "\"model_dir\": \"fresh\", \"warm_start_from\": \"model_dir\"",
        1,
    );
    assert_ne!(warm, text, "the manifest names its model_dir as expected");
    let warm_manifest = folder.join("warm.yaml");
    std::fs::write(&warm_manifest, warm).expect("write");
    let predicted = ok(&["predict", p(&warm_manifest), "--quiet"]);
    let tf_predicted =
        std::fs::read_to_string(folder.join("tf_predictions.jsonl")).expect("tf_predictions");
    for (i, (a, b)) in predicted.lines().zip(tf_predicted.lines()).enumerate() {
        let (a, b): (Value, Value) = (
            serde_json::from_str(a).expect("JSON"),
            serde_json::from_str(b).expect("JSON"),
        );
        assert!(agree(&a, &b), "example {i}: ours {a}, TF {b}");
    }
    assert_eq!(predicted.lines().count(), 30);
}

#[test]
fn a_tf_model_dir_that_does_not_fit_the_manifest_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = case(dir.path(), "iris_dnn_classifier");
    let model_dir = manifest.parent().expect("folder").join("model_dir");
    let before = common::files(&model_dir);
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    let wider = text.replacen("10,\n    10", "20,\n    20", 1);
    assert_ne!(
        wider, text,
        "the manifest lists its hidden units as expected"
    );
    std::fs::write(&manifest, wider).expect("write");
    for command in ["evaluate", "predict", "train"] {
        let line = common::fails(&[command, p(&manifest)]);
        assert!(
            line.contains("model.ckpt-300")
                && line.contains("dnn/hiddenlayer_0/kernel")
                && line.contains("[4, 10]")
                && line.contains("[4, 20]"),
            "{command}: {line}"
        );
        assert_eq!(common::files(&model_dir), before, "{command} wrote nothing");
    }
}

/// Every number in a (nested) JSON array, in order.
fn numbers(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(items) => items.iter().flat_map(numbers).collect(),
        other => other.as_f64().into_iter().collect(),
    }
}

#[test]
fn training_resumes_from_tfs_step_with_tfs_optimizer_slots() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = case(dir.path(), "iris_dnn_classifier");
    let model_dir = manifest.parent().expect("folder").join("model_dir");
    let slot = "training/Adagrad/dnn/hiddenlayer_0/kernel/accumulator";
    let value = |checkpoint: &str| {
        let text = ok(&[
            "checkpoints",
            p(&model_dir),
            "--value",
            slot,
            "--checkpoint",
            p(&model_dir.join(checkpoint)),
        ]);
        numbers(&serde_json::from_str(&text).expect("JSON"))
    };
    let tf_300 = value("model.ckpt-300");
    ok(&["train", p(&manifest), "--max-steps", "310", "--quiet"]);
    // Adagrad's accumulators only grow: restored from TF's, not started over from 0.1.
    let ours_310 = value("model.ckpt-310.safetensors");
    assert_eq!(tf_300.len(), ours_310.len());
    assert!(
        tf_300.iter().any(|&a| a > 0.2),
        "TF accumulated: {tf_300:?}"
    );
    assert!(
        tf_300.iter().zip(&ours_310).all(|(t, o)| o >= t),
        "{tf_300:?} -> {ours_310:?}"
    );
    // Our checkpoints are written beside TF's, and the state file lists both in order.
    let state = std::fs::read_to_string(model_dir.join("checkpoint")).expect("state");
    let listed: Vec<&str> = state
        .lines()
        .filter_map(|l| l.strip_prefix("all_model_checkpoint_paths: "))
        .collect();
    let tf_at = listed
        .iter()
        .position(|n| *n == "\"model.ckpt-300\"")
        .expect("TF's listed");
    let ours_at = listed
        .iter()
        .position(|n| *n == "\"model.ckpt-310.safetensors\"")
        .expect("ours listed");
    assert!(tf_at < ours_at, "{state}");
    assert!(
        state.starts_with("model_checkpoint_path: \"model.ckpt-310.safetensors\""),
        "{state}"
    );
    assert!(
        model_dir.join("model.ckpt-300.index").is_file(),
        "TF's files are left alone"
    );
}

/// Whether our checkpoint `ours` holds what TF's `tf` does, to `tolerance` relative (or
/// 1e-6 absolute near zero): every variable and slot TF saved, and the same update
/// counters. TF's optimizer hyperparameters (`training/Adam/learning_rate`, ...) are the
/// manifest's business and not compared.
fn assert_same_state(ours: &Path, tf: &Path, tolerance: f32) {
    let ours = checkpoint::read(ours).expect("ours");
    let tf = checkpoint::read(tf).expect("TF's");
    assert_eq!(ours.global_step, tf.global_step);
    let hyperparameter = |name: &str, shape: &[usize]| {
        shape.is_empty() && name.starts_with("training/") && name.matches('/').count() == 2
    };
    let mut compared = 0;
    for (name, (shape, want)) in &tf.tensors {
        if hyperparameter(name, shape) {
            continue;
        }
        let (our_shape, got) = ours.tensors.get(name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(our_shape, shape, "{name}");
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!(
                common::within(*a, *b, tolerance),
                "{name}[{i}]: ours {a}, TF {b}"
            );
        }
        compared += 1;
    }
    assert_eq!(compared, ours.tensors.len(), "ours has tensors TF lacks");
    let counters = |c: &checkpoint::Checkpoint| -> std::collections::BTreeMap<String, i64> {
        serde_json::from_str(&c.metadata["optimizer.iterations"]).expect("counters")
    };
    for (name, count) in counters(&tf) {
        assert_eq!(counters(&ours).get(&name), Some(&count), "{name}");
    }
}

const CASES: [&str; 4] = [
    "iris_dnn_classifier",
    "iris_dnn_classifier_adam",
    "breast_cancer_linear_classifier",
    "diabetes_dnn_linear_combined_regressor",
];

/// TF's own `train(steps=50)` on each model_dir (`continued/`, made by
/// `scripts/tf/continue_fixtures.py`) restarts the input and continues variables, slots
/// and counters from step 300; ours must end where TF's did.
#[test]
fn fifty_more_steps_from_tfs_checkpoint_end_where_tfs_own_fifty_did() {
    for name in CASES {
        let dir = tempfile::tempdir().expect("temp dir");
        let manifest = case(dir.path(), name);
        let folder = manifest.parent().expect("folder");
        ok(&["train", p(&manifest), "--max-steps", "350", "--quiet"]);
        assert_same_state(
            &folder.join("model_dir/model.ckpt-350.safetensors"),
            &folder.join("continued/model.ckpt-350"),
            1e-4,
        );
    }
}

/// From TF's step-0 checkpoint (its initial weights and slots), 300 steps here end at
/// TF's step-300 checkpoint: the whole trajectory, not only its last stretch.
#[test]
fn three_hundred_steps_from_tfs_initial_checkpoint_end_at_tfs_step_300() {
    for name in CASES {
        let dir = tempfile::tempdir().expect("temp dir");
        let manifest = case(dir.path(), name);
        let model_dir = manifest.parent().expect("folder").join("model_dir");
        std::fs::write(
            model_dir.join("checkpoint"),
            "model_checkpoint_path: \"model.ckpt-0\"\nall_model_checkpoint_paths: \"model.ckpt-0\"\n",
        )
        .expect("state");
        ok(&["train", p(&manifest), "--max-steps", "300", "--quiet"]);
        assert_same_state(
            &model_dir.join("model.ckpt-300.safetensors"),
            &model_dir.join("model.ckpt-300"),
            1e-4,
        );
    }
}
