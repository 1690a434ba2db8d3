//! The seed's Iris example through the real binary and the real plugin dylibs.

mod common;

use common::*;
use estimator_host::checkpoint;

#[test]
fn iris_custom_trains_to_test_accuracy_of_at_least_093() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| t);
    ok(&["train", p(&manifest)]);
    let json = ok(&["evaluate", p(&manifest), "--json"]);
    let results: serde_json::Value = serde_json::from_str(json.trim()).expect("one JSON object");
    assert_eq!(results["global_step"], 1000);
    let accuracy = results["accuracy"].as_f64().expect("accuracy is a number");
    assert!(accuracy >= 0.93, "test accuracy {accuracy}");
    assert!(results["loss"].as_f64().expect("loss") < 0.5);
}

#[test]
fn premade_dnn_classifier_trains_and_reports_tf_metric_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_dnn.yaml", |t| t);
    ok(&["train", p(&manifest)]);
    let json = ok(&["evaluate", p(&manifest), "--json"]);
    let results: serde_json::Value = serde_json::from_str(json.trim()).expect("one JSON object");
    let keys: Vec<&str> = results
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["accuracy", "average_loss", "global_step", "loss"]);
    assert!(
        results["accuracy"].as_f64().expect("number") >= 0.9,
        "{results}"
    );
    // One batch of 30: the mean of batch losses equals the mean over examples (TF's EV-06).
    let (loss, average) = (
        results["loss"].as_f64().expect("loss"),
        results["average_loss"].as_f64().expect("avg"),
    );
    assert!((loss - average).abs() < 1e-6);
}

#[test]
fn resume_with_max_steps_continues_to_1000_with_retention() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| t);
    let model_dir = dir.path().join("model");
    ok(&["train", p(&manifest), "--max-steps", "500"]);
    let state = checkpoint::read_state(&model_dir)
        .expect("readable")
        .expect("state file");
    assert_eq!(state.latest.as_deref(), Some("model.ckpt-500.safetensors"));
    ok(&["train", p(&manifest), "--max-steps", "1000"]);
    let state = checkpoint::read_state(&model_dir)
        .expect("readable")
        .expect("state file");
    let listed: Vec<&str> = state.all.iter().map(|(n, _)| n.as_str()).collect();
    let expected: Vec<String> = (6..=10).map(|k| checkpoint::file_name(k * 100)).collect();
    assert_eq!(listed, expected, "keep_checkpoint_max 5 across both runs");
    let mut on_disk = files(&model_dir);
    on_disk.retain(|f| checkpoint::step_of(f).is_some());
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(on_disk, expected_sorted, "older checkpoints are deleted");
    let latest = checkpoint::read(&model_dir.join(checkpoint::file_name(1000))).expect("valid");
    assert_eq!(latest.global_step, 1000);
    // Already there: a third call does nothing.
    ok(&["train", p(&manifest), "--max-steps", "1000"]);
    assert_eq!(
        checkpoint::read_state(&model_dir)
            .expect("ok")
            .expect("state")
            .all
            .len(),
        5
    );
}

#[test]
fn steps_adds_to_the_restored_global_step() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| t);
    ok(&["train", p(&manifest), "--steps", "30"]);
    ok(&["train", p(&manifest), "--steps", "20"]);
    let latest = checkpoint::latest(&dir.path().join("model"))
        .expect("ok")
        .expect("a checkpoint");
    assert_eq!(checkpoint::read(&latest).expect("valid").global_step, 50);
}

#[test]
fn same_manifest_and_seed_give_identical_checkpoints() {
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let dir = tempfile::tempdir().expect("temp dir");
            let manifest = config_in(dir.path(), "iris_custom.yaml", |t| t);
            ok(&["train", p(&manifest), "--max-steps", "200"]);
            let path = dir.path().join("model").join(checkpoint::file_name(200));
            let bytes = std::fs::read(&path).expect("checkpoint written");
            let ckpt = checkpoint::read(&path).expect("valid");
            (dir, bytes, ckpt)
        })
        .collect();
    assert!(
        runs[0]
            .2
            .tensors
            .keys()
            .any(|k| k == "training/Adagrad/dense/kernel/accumulator"),
        "slots are saved"
    );
    // Whole files, header included: tensors, slots, metadata and their order.
    assert!(
        runs[0].1 == runs[1].1,
        "the two runs' model.ckpt-200.safetensors differ"
    );
    let a = &runs[0].2;
    // A different seed gives different weights.
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| {
        t.replace("random_seed: 42", "random_seed: 7")
    });
    ok(&["train", p(&manifest), "--max-steps", "200"]);
    let c = checkpoint::read(&dir.path().join("model").join(checkpoint::file_name(200)))
        .expect("valid");
    assert_ne!(a.tensors["dense/kernel"].1, c.tensors["dense/kernel"].1);
}

#[test]
fn predict_writes_one_json_object_per_example() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| t);
    ok(&["train", p(&manifest), "--max-steps", "300"]);
    let out = dir.path().join("predictions.jsonl");
    ok(&["predict", p(&manifest), "--output", p(&out)]);
    let text = std::fs::read_to_string(&out).expect("written");
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(rows.len(), 30, "one per test example");
    for row in &rows {
        let probabilities: Vec<f64> = row["probabilities"]
            .as_array()
            .expect("list")
            .iter()
            .map(|v| v.as_f64().expect("number"))
            .collect();
        assert_eq!(probabilities.len(), 3);
        assert!((probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-5);
        let class = row["class_ids"][0].as_u64().expect("class id") as usize;
        let best = (0..3)
            .max_by(|&i, &j| probabilities[i].total_cmp(&probabilities[j]))
            .expect("three");
        assert_eq!(class, best);
        assert_eq!(row["logits"].as_array().expect("list").len(), 3);
    }
}

#[test]
fn predict_reads_another_file_with_input() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| t);
    let unlabeled = dir.path().join("two.csv");
    std::fs::write(
        &unlabeled,
        "SepalLength,SepalWidth,PetalLength,PetalWidth\n5.1,3.3,1.7,0.5\n5.9,3.0,4.2,1.5\n",
    )
    .expect("write");
    let out = ok(&["predict", p(&manifest), "--input", p(&unlabeled)]);
    assert_eq!(out.lines().count(), 2);
}

#[test]
fn training_interrupted_and_resumed_ends_with_the_same_bytes() {
    let run = |stops: &[&str]| {
        let dir = tempfile::tempdir().expect("temp dir");
        let manifest = config_in(dir.path(), "iris_custom.yaml", |t| t);
        for stop in stops {
            ok(&["train", p(&manifest), "--max-steps", stop]);
        }
        let bytes = std::fs::read(dir.path().join("model").join(checkpoint::file_name(300)))
            .expect("checkpoint 300");
        (dir, bytes)
    };
    let (_a, straight) = run(&["300"]);
    // Stops inside a pass of the shuffled, repeated input (120 rows, batches of 100).
    let (_b, resumed) = run(&["7", "130", "300"]);
    assert!(
        straight == resumed,
        "model.ckpt-300 differs between a straight run and one stopped at 7 and 130"
    );
}

#[test]
fn every_optimizer_trains_iris_and_checkpoints_its_slots() {
    let cases = [
        (
            "{name: sgd, learning_rate: 0.01, momentum: 0.9, nesterov: true}",
            "training/SGD/dense/kernel/momentum",
        ),
        (
            "{name: momentum, learning_rate: 0.01}",
            "training/SGD/dense/kernel/momentum",
        ),
        (
            "{name: rmsprop, learning_rate: 0.01, centered: true, momentum: 0.5}",
            "training/RMSprop/dense/kernel/mg",
        ),
        (
            "{name: ftrl, learning_rate: 0.1, l2_regularization_strength: 0.001}",
            "training/Ftrl/dense/kernel/linear",
        ),
        (
            "{name: adam, learning_rate: 0.01}",
            "training/Adam/dense/kernel/v",
        ),
    ];
    for (optimizer, slot) in cases {
        let dir = tempfile::tempdir().expect("temp dir");
        let manifest = config_in(dir.path(), "iris_custom.yaml", |t| t);
        let set = format!("optimizer={optimizer}");
        ok(&["train", p(&manifest), "--max-steps", "300", "--set", &set]);
        let ckpt = checkpoint::read(&dir.path().join("model").join(checkpoint::file_name(300)))
            .expect("checkpoint");
        assert!(ckpt.tensors.contains_key(slot), "{optimizer}: no {slot}");
        let out = ok(&["evaluate", p(&manifest), "--json", "--set", &set]);
        let metrics: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        let accuracy = metrics["accuracy"].as_f64().expect("accuracy");
        assert!(
            accuracy >= 0.9,
            "{optimizer}: accuracy {accuracy} after 300 steps"
        );
        // Slots are restored: resuming to 310 ends where a run that went straight to 310
        // ends, which it would not if the slots restarted from their initial values.
        ok(&["train", p(&manifest), "--max-steps", "310", "--set", &set]);
        let straight_dir = tempfile::tempdir().expect("temp dir");
        let straight = config_in(straight_dir.path(), "iris_custom.yaml", |t| t);
        ok(&["train", p(&straight), "--max-steps", "310", "--set", &set]);
        let at_310 = |dir: &std::path::Path| {
            checkpoint::read(&dir.join("model").join(checkpoint::file_name(310)))
                .expect("checkpoint 310")
                .tensors
        };
        assert!(
            at_310(dir.path()) == at_310(straight_dir.path()),
            "{optimizer}: resuming at 300 changed the run"
        );
    }
}

#[test]
fn a_learning_rate_schedule_follows_the_global_step_across_restarts() {
    let schedule = "optimizer={name: sgd, learning_rate: {exponential_decay: {initial_learning_rate: 0.1, decay_steps: 100, decay_rate: 0.5}}}";
    let run = |stops: &[&str]| {
        let dir = tempfile::tempdir().expect("temp dir");
        let manifest = config_in(dir.path(), "iris_custom.yaml", |t| {
            t.replace(
                "log_step_count_steps: 100",
                "log_step_count_steps: 100\n  save_summary_steps: 50",
            )
        });
        for stop in stops {
            ok(&[
                "train",
                p(&manifest),
                "--max-steps",
                stop,
                "--set",
                schedule,
            ]);
        }
        let bytes = std::fs::read(dir.path().join("model").join(checkpoint::file_name(300)))
            .expect("checkpoint 300");
        (dir, bytes)
    };
    let (straight_dir, straight) = run(&["300"]);
    let (_resumed_dir, resumed) = run(&["130", "300"]);
    assert!(straight == resumed, "a resumed run is on the same curve");
    // The rate in TensorBoard is the schedule's at the step of each update.
    let scalars =
        estimator_host::events::read_scalars(&straight_dir.path().join("model")).expect("events");
    let rates: Vec<(i64, f64)> = scalars["learning_rate"].iter().take(3).copied().collect();
    let expected = [(1, 0.1), (51, 0.1 * 0.5f64.sqrt()), (101, 0.05)];
    assert_eq!(rates.len(), expected.len(), "{rates:?}");
    for ((step, rate), (want_step, want)) in rates.iter().zip(expected) {
        assert_eq!(*step, want_step);
        assert!((rate - want).abs() < 1e-6, "step {step}: {rate} vs {want}");
    }
}

#[test]
fn metrics_from_the_plugin_agree_with_each_other_on_iris() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| {
        t.replace(
            "  accuracy: { plugin: metrics, kind: accuracy, predictions: class_ids }",
            "  accuracy: { plugin: metrics, kind: accuracy, predictions: class_ids }\n  top_1: { plugin: metrics, kind: recall_at_k, predictions: probabilities, params: { k: 1 } }\n  top_3: { plugin: metrics, kind: recall_at_k, predictions: probabilities, params: { k: 3 } }\n  top_1_precision: { plugin: metrics, kind: precision_at_k, predictions: probabilities, params: { k: 1 } }",
        )
    });
    ok(&["train", p(&manifest), "--max-steps", "300"]);
    let out = ok(&["evaluate", p(&manifest), "--json"]);
    let m: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let accuracy = m["accuracy"].as_f64().expect("accuracy");
    // The top class is the predicted class: recall@1 and precision@1 are the accuracy.
    assert_eq!(m["top_1"].as_f64(), Some(accuracy), "{m}");
    assert_eq!(m["top_1_precision"].as_f64(), Some(accuracy), "{m}");
    assert_eq!(
        m["top_3"].as_f64(),
        Some(1.0),
        "three classes: always in the top 3"
    );
}

#[test]
fn checkpoint_flag_evaluates_and_predicts_an_older_checkpoint() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| t);
    ok(&["train", p(&manifest), "--max-steps", "300"]);
    let model = dir.path().join("model");
    let older = model.join(checkpoint::file_name(100));
    let metrics = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["evaluate", p(&manifest), "--json"];
        args.extend_from_slice(extra);
        serde_json::from_str(&ok(&args)).expect("JSON")
    };
    let latest = metrics(&[]);
    let at_100 = metrics(&["--checkpoint", p(&older)]);
    assert_eq!(latest["global_step"].as_i64(), Some(300));
    assert_eq!(at_100["global_step"].as_i64(), Some(100));
    assert_ne!(
        latest["loss"], at_100["loss"],
        "another checkpoint, another loss"
    );
    // predict --checkpoint gives that checkpoint's logits: the same as its own model_dir
    // would, and not the latest's.
    let predict = |extra: &[&str]| {
        let mut args = vec!["predict", p(&manifest)];
        args.extend_from_slice(extra);
        ok(&args)
    };
    let older_predictions = predict(&["--checkpoint", p(&older)]);
    assert_ne!(older_predictions, predict(&[]));
    let copy = tempfile::tempdir().expect("temp dir");
    let only_100 = config_in(copy.path(), "iris_custom.yaml", |t| t);
    ok(&["train", p(&only_100), "--max-steps", "100"]);
    assert_eq!(older_predictions, ok(&["predict", p(&only_100)]));
}

#[test]
fn a_changed_training_input_starts_over_instead_of_resuming_its_position() {
    // Stopped at step 7 of a pass over 120 rows in batches of 100, the input is 40 rows
    // into its second pass. Resumed with another batch size, it must start over: its
    // step 8 then equals step 1 of a fresh run with that batch size from the same
    // variables. Plain SGD keeps no slots, so the variables are the whole state.
    let sgd = |t: String| {
        t.replace(
            "optimizer: { name: adagrad, learning_rate: 0.1 }",
            "optimizer: { name: sgd, learning_rate: 0.1 }",
        )
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_custom.yaml", sgd);
    ok(&["train", p(&manifest), "--max-steps", "7"]);
    let logs = common::ok_logs(&[
        "train",
        p(&manifest),
        "--max-steps",
        "8",
        "--set",
        "input.train.batch_size=50",
    ]);
    assert!(
        logs.contains("input.train differs from the one")
            && logs.contains("it starts from the beginning"),
        "{logs}"
    );
    // The same first batch from the same variables: warm-start a fresh model_dir from
    // step 7 and take one step with batch size 50.
    let fresh = tempfile::tempdir().expect("temp dir");
    let from = dir.path().join("model").join(checkpoint::file_name(7));
    let warm = config_in(fresh.path(), "iris_custom.yaml", |t| {
        format!(
            "{}warm_start_from: {{ ckpt_to_initialize_from: {}, vars_to_warm_start: '.*' }}\n",
            sgd(t).replace("batch_size: 100\n  eval", "batch_size: 50\n  eval"),
            from.display()
        )
    });
    ok(&["train", p(&warm), "--max-steps", "1"]);
    let resumed =
        checkpoint::read(&dir.path().join("model").join(checkpoint::file_name(8))).expect("step 8");
    let started = checkpoint::read(&fresh.path().join("model").join(checkpoint::file_name(1)))
        .expect("step 1");
    for name in ["dense/kernel", "dense_1/kernel", "dense_2/bias"] {
        assert_eq!(resumed.tensors[name], started.tensors[name], "{name}");
    }
}
