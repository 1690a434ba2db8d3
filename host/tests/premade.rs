//! The premade estimators through the real binary, each on a data set it suits, reaching
//! the quality `docs/manifest.md` records.

mod common;

use common::{config_in, ok, p};
use estimator_host::checkpoint;

#[test]
fn dnn_regressor_beats_the_mean_on_diabetes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "diabetes_dnn_regressor.yaml", |t| t);
    ok(&["train", p(&manifest)]);
    let out = ok(&["evaluate", p(&manifest), "--json"]);
    let m: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let rmse = m["rmse"].as_f64().expect("rmse");
    // Predicting the training mean gives 70.5 on the test set.
    assert!(rmse < 60.0, "test RMSE {rmse}");
    // The metrics plugin's RMSE and the head's average loss describe the same errors.
    let average_loss = m["average_loss"].as_f64().expect("average_loss");
    assert!(
        (rmse - average_loss.sqrt()).abs() < 1e-2,
        "{rmse} vs sqrt({average_loss})"
    );
    // TF's regression head reports the means of the labels and of the predictions.
    let test = labels("diabetes_test.csv", "progression");
    let label_mean = test.iter().sum::<f64>() / test.len() as f64;
    let reported = m["label/mean"].as_f64().expect("label/mean");
    assert!(
        (reported - label_mean).abs() < 1e-3,
        "{reported} vs {label_mean}"
    );
    let predictions: Vec<f64> = ok(&["predict", p(&manifest)])
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("JSON");
            let one = v["predictions"].as_array().expect("predictions");
            assert_eq!(one.len(), 1, "{line}");
            one[0].as_f64().expect("number")
        })
        .collect();
    assert_eq!(predictions.len(), test.len());
    let prediction_mean = predictions.iter().sum::<f64>() / predictions.len() as f64;
    let reported = m["prediction/mean"].as_f64().expect("prediction/mean");
    assert!(
        (reported - prediction_mean).abs() < 1e-3,
        "{reported} vs {prediction_mean}"
    );
}

/// The label column's values in a repository CSV.
fn labels(file: &str, column: &str) -> Vec<f64> {
    let text = std::fs::read_to_string(common::repo_root().join("data").join(file)).expect("data");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let at = header
        .iter()
        .position(|h| *h == column)
        .expect("label column");
    lines
        .map(|l| l.split(',').nth(at).expect("cell").parse().expect("number"))
        .collect()
}

#[test]
fn baseline_regressor_learns_the_training_mean() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "diabetes_baseline_regressor.yaml", |t| t);
    ok(&["train", p(&manifest)]);
    let bias: Vec<f64> = serde_json::from_str(&ok(&[
        "checkpoints",
        p(&dir.path().join("model")),
        "--value",
        "baseline/bias",
    ]))
    .expect("JSON");
    let train = labels("diabetes_training.csv", "progression");
    let mean = train.iter().sum::<f64>() / train.len() as f64;
    assert!(
        (bias[0] - mean).abs() < 1.0,
        "bias {} vs training mean {mean}",
        bias[0]
    );
    let m: serde_json::Value =
        serde_json::from_str(&ok(&["evaluate", p(&manifest), "--json"])).expect("JSON");
    let rmse = m["rmse"].as_f64().expect("rmse");
    // What predicting the training mean gives on the test set.
    let test = labels("diabetes_test.csv", "progression");
    let mean_rmse =
        (test.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / test.len() as f64).sqrt();
    assert!((rmse - mean_rmse).abs() < 0.5, "{rmse} vs {mean_rmse}");
}

#[test]
fn evaluation_over_uneven_batches_reports_tfs_loss_and_average_loss() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "diabetes_baseline_regressor.yaml", |t| t);
    ok(&["train", p(&manifest), "--max-steps", "200", "--quiet"]);
    let bias: Vec<f32> = serde_json::from_str(&ok(&[
        "checkpoints",
        p(&dir.path().join("model")),
        "--value",
        "baseline/bias",
    ]))
    .expect("JSON");
    // 89 test rows in batches of 40: 40, 40 and 9. Every prediction is the bias.
    let m: serde_json::Value = serde_json::from_str(&ok(&[
        "evaluate",
        p(&manifest),
        "--json",
        "--quiet",
        "--set",
        "input.eval.batch_size=40",
    ]))
    .expect("JSON");
    let test = labels("diabetes_test.csv", "progression");
    assert_eq!(test.len(), 89);
    let b = f64::from(bias[0]);
    let errors: Vec<f64> = test.iter().map(|y| (y - b).powi(2)).collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    // TF's `loss` is the mean of the three batches' losses; `average_loss` and the metrics
    // plugin's RMSE weigh every example once.
    let batch_losses: Vec<f64> = errors.chunks(40).map(mean).collect();
    let loss = mean(&batch_losses);
    let average_loss = mean(&errors);
    assert!(
        (loss - average_loss).abs() > 1.0,
        "the test separates the two: {loss} vs {average_loss}"
    );
    let close = |key: &str, expected: f64| {
        let got = m[key].as_f64().unwrap_or_else(|| panic!("{key} in {m}"));
        assert!(
            (got - expected).abs() <= 1e-5 * expected.abs(),
            "{key}: {got} vs {expected}"
        );
    };
    close("loss", loss);
    close("average_loss", average_loss);
    close("rmse", average_loss.sqrt());
    close("label/mean", mean(&test));
    close("prediction/mean", b);
    assert_eq!(m["global_step"].as_f64(), Some(200.0));
}

#[test]
fn baseline_classifier_learns_the_class_frequencies() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| {
        let start = t.find("model:\n").expect("model");
        let end = t.find("optimizer:").expect("optimizer");
        format!(
            "{}model: {{ plugin: premade, name: baseline_classifier, params: {{ n_classes: 3 }} }}\n{}",
            &t[..start],
            &t[end..]
        )
    });
    ok(&["train", p(&manifest), "--max-steps", "2000"]);
    let out = ok(&["predict", p(&manifest)]);
    let first: serde_json::Value =
        serde_json::from_str(out.lines().next().expect("line")).expect("JSON");
    let probabilities: Vec<f64> =
        serde_json::from_value(first["probabilities"].clone()).expect("list");
    let train = labels("iris_training.csv", "Species");
    for (class, p) in probabilities.iter().enumerate() {
        let frequency =
            train.iter().filter(|&&y| y as usize == class).count() as f64 / train.len() as f64;
        assert!(
            (p - frequency).abs() < 0.02,
            "class {class}: {p} vs {frequency}"
        );
    }
}

#[test]
fn dnn_classifier_separates_the_wines() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "wine_dnn_classifier.yaml", |t| t);
    ok(&["train", p(&manifest)]);
    let m: serde_json::Value =
        serde_json::from_str(&ok(&["evaluate", p(&manifest), "--json"])).expect("JSON");
    let accuracy = m["accuracy"].as_f64().expect("accuracy");
    // 0.944 (34 of 36) when this was written; always predicting the most frequent training
    // class scores 0.47.
    assert!(accuracy >= 0.9, "test accuracy {accuracy}");
}

/// A repository CSV's column as text.
fn column(file: &str, name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(common::repo_root().join("data").join(file)).expect("data");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let at = header.iter().position(|h| *h == name).expect("column");
    lines
        .map(|l| l.split(',').nth(at).expect("cell").to_owned())
        .collect()
}

#[test]
fn binary_dnn_classifier_reads_string_labels_and_reports_tf_binary_metrics() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "breast_cancer_dnn_classifier.yaml", |t| t);
    ok(&["train", p(&manifest)]);
    let m: serde_json::Value =
        serde_json::from_str(&ok(&["evaluate", p(&manifest), "--json"])).expect("JSON");
    let keys: Vec<&str> = m
        .as_object()
        .expect("map")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "accuracy",
            "accuracy_baseline",
            "auc",
            "auc_precision_recall",
            "average_loss",
            "global_step",
            "label/mean",
            "loss",
            "precision",
            "prediction/mean",
            "recall"
        ],
        "TF's keys for a binary classifier"
    );
    let get = |k: &str| m[k].as_f64().expect("number");
    // 0.974 (111 of 114) when this was written; always answering `benign` scores 0.588.
    assert!(get("accuracy") >= 0.95, "test accuracy {}", get("accuracy"));

    // Every metric again, by hand, from the predictions and the test labels.
    let labels: Vec<f64> = column("breast_cancer_test.csv", "diagnosis")
        .iter()
        .map(|l| f64::from(l == "malignant"))
        .collect();
    let out = ok(&["predict", p(&manifest)]);
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(rows.len(), labels.len());
    let score = |r: &serde_json::Value| r["logistic"][0].as_f64().expect("logistic");
    let class = |r: &serde_json::Value| r["class_ids"][0].as_f64().expect("class id");
    for r in &rows {
        let name = r["classes"][0].as_str().expect("class name");
        assert_eq!(
            name == "malignant",
            class(r) == 1.0,
            "classes follow the vocabulary"
        );
        assert_eq!(r["all_classes"], serde_json::json!(["benign", "malignant"]));
    }
    let n = labels.len() as f64;
    let pairs: Vec<(f64, &serde_json::Value)> = labels.iter().copied().zip(&rows).collect();
    let count =
        |f: &dyn Fn(f64, f64) -> bool| pairs.iter().filter(|(l, r)| f(*l, class(r))).count() as f64;
    let tp = count(&|l, c| l == 1.0 && c == 1.0);
    let close = |k: &str, expected: f64| {
        assert!(
            (get(k) - expected).abs() < 1e-6,
            "{k}: {} vs {expected}",
            get(k)
        );
    };
    close("accuracy", count(&|l, c| l == c) / n);
    close("precision", tp / count(&|_, c| c == 1.0));
    close("recall", tp / count(&|l, _| l == 1.0));
    let label_mean = labels.iter().sum::<f64>() / n;
    close("label/mean", label_mean);
    close("accuracy_baseline", label_mean.max(1.0 - label_mean));
    close("prediction/mean", rows.iter().map(score).sum::<f64>() / n);
    // The exact ROC AUC, by counting ordered pairs; TF's 200 thresholds approximate it.
    let (mut ordered, mut total) = (0.0, 0.0);
    for (_, rp) in pairs.iter().filter(|(l, _)| *l == 1.0) {
        for (_, rn) in pairs.iter().filter(|(l, _)| *l == 0.0) {
            total += 1.0;
            ordered += match score(rp).partial_cmp(&score(rn)) {
                Some(std::cmp::Ordering::Greater) => 1.0,
                Some(std::cmp::Ordering::Equal) => 0.5,
                _ => 0.0,
            };
        }
    }
    let exact = ordered / total;
    assert!(
        (get("auc") - exact).abs() < 0.01,
        "auc {} vs exact {exact}",
        get("auc")
    );
}

#[test]
fn weights_scale_the_loss_but_not_the_metrics_as_tf() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "breast_cancer_dnn_classifier.yaml", |t| t);
    ok(&["train", p(&manifest), "--max-steps", "100"]);
    let evaluate = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["evaluate", p(&manifest), "--json"];
        args.extend_from_slice(extra);
        serde_json::from_str(&ok(&args)).expect("JSON")
    };
    let plain = evaluate(&[]);
    // The test CSV with a weight column of 2 for every example.
    let text = std::fs::read_to_string(common::repo_root().join("data/breast_cancer_test.csv"))
        .expect("data");
    let weighted: String = text
        .lines()
        .enumerate()
        .map(|(i, l)| format!("{l},{}\n", if i == 0 { "w" } else { "2.0" }))
        .collect();
    let csv = dir.path().join("weighted.csv");
    std::fs::write(&csv, weighted).expect("write");
    let path = format!("input.eval.params.path={}", csv.display());
    let twice = evaluate(&["--set", &path, "--set", "model.params.weight_column=w"]);
    let get = |m: &serde_json::Value, k: &str| m[k].as_f64().expect("number");
    for k in [
        "accuracy",
        "auc",
        "average_loss",
        "precision",
        "recall",
        "label/mean",
    ] {
        assert!(
            (get(&plain, k) - get(&twice, k)).abs() < 1e-6,
            "{k} unchanged"
        );
    }
    // sum_over_batch_size divides by the number of examples, not the sum of weights.
    let loss = get(&twice, "loss");
    assert!((loss - 2.0 * get(&plain, "loss")).abs() < 1e-4, "{loss}");
    // `sum`: one batch of 114, so the loss is 114 × the mean loss.
    let summed = evaluate(&["--set", "model.params.loss_reduction=sum"]);
    let expected = 114.0 * get(&plain, "average_loss");
    assert!(
        (get(&summed, "loss") - expected).abs() < 1e-2 * expected,
        "{}",
        get(&summed, "loss")
    );
}

/// Trains `config` with its `optimizer:` line removed for `steps` steps; returns the
/// checkpoint's variable listing and the logged learning rates.
fn train_with_the_models_default_optimizer(config: &str, steps: &str) -> (String, Vec<f64>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), config, |t| {
        t.lines()
            .filter(|l| !l.starts_with("optimizer:"))
            .map(|l| format!("{l}\n"))
            .collect()
    });
    ok(&["train", p(&manifest), "--max-steps", steps]);
    let model = dir.path().join("model");
    let listing = ok(&["checkpoints", p(&model), "--variables"]);
    let scalars = estimator_host::events::read_scalars(&model).expect("events");
    let rates = scalars["learning_rate"].iter().map(|&(_, v)| v).collect();
    (listing, rates)
}

#[test]
fn each_premade_model_defaults_to_tfs_optimizer() {
    // DNN: Adagrad with learning rate 0.001.
    let (listing, rates) = train_with_the_models_default_optimizer("wine_dnn_classifier.yaml", "5");
    assert!(
        listing.contains("training/Adagrad/dnn/logits/kernel/accumulator"),
        "{listing}"
    );
    assert!(rates.iter().all(|&r| (r - 0.001).abs() < 1e-9), "{rates:?}");
    // Baseline: Ftrl with learning rate 0.3.
    let (listing, rates) =
        train_with_the_models_default_optimizer("diabetes_baseline_regressor.yaml", "5");
    assert!(
        listing.contains("training/Ftrl/baseline/bias/linear"),
        "{listing}"
    );
    assert!(rates.iter().all(|&r| (r - 0.3).abs() < 1e-7), "{rates:?}");
}

/// Trains `config` as written and returns its evaluation and checkpoint listing.
fn train_and_evaluate(config: &str) -> (serde_json::Value, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), config, |t| t);
    ok(&["train", p(&manifest), "--quiet"]);
    let m =
        serde_json::from_str(&ok(&["evaluate", p(&manifest), "--json", "--quiet"])).expect("JSON");
    let listing = ok(&["checkpoints", p(&dir.path().join("model")), "--variables"]);
    (m, listing)
}

#[test]
fn linear_classifier_separates_the_tumours_with_tfs_default_ftrl() {
    let (m, listing) = train_and_evaluate("breast_cancer_linear_classifier.yaml");
    // 0.974 (AUC 0.997) when this was written.
    assert!(m["accuracy"].as_f64() >= Some(0.95), "{m}");
    assert!(
        listing.contains("linear/linear_model/worst_radius/weights  [1, 1]"),
        "{listing}"
    );
    assert!(listing.contains("training/Ftrl/linear/linear_model/bias_weights/accumulator"));
}

#[test]
fn binary_baseline_classifier_scores_the_majority_class() {
    let (m, _) = train_and_evaluate("breast_cancer_baseline_classifier.yaml");
    let get = |k: &str| m[k].as_f64().expect("number");
    assert_eq!(get("accuracy"), get("accuracy_baseline"), "{m}");
    assert_eq!(get("auc"), 0.5, "one score for every example");
    // It learns the training frequency of `malignant`, 165 of 455.
    assert!((get("prediction/mean") - 165.0 / 455.0).abs() < 0.01, "{m}");
}

#[test]
fn linear_regressor_uses_buckets_vocabularies_and_crosses_natively() {
    let (m, listing) = train_and_evaluate("diabetes_linear_regressor.yaml");
    // 56.0 when this was written; the training mean scores 70.5.
    let rmse = m["rmse"].as_f64().expect("rmse");
    assert!(rmse < 60.0, "{m}");
    for weights in [
        "linear/linear_model/age_bucketized/weights  [5, 1]",
        "linear/linear_model/sex/weights  [2, 1]",
        "linear/linear_model/age_bucketized_X_sex/weights  [20, 1]",
    ] {
        assert!(listing.contains(weights), "{weights} in {listing}");
    }
}

#[test]
fn wide_and_deep_models_give_each_part_its_optimizer() {
    let (m, listing) = train_and_evaluate("diabetes_dnn_linear_combined_regressor.yaml");
    // 53.9 when this was written.
    let rmse = m["rmse"].as_f64().expect("rmse");
    assert!(rmse < 58.0, "{m}");
    assert!(
        listing.contains("training/Adam/dnn/logits/kernel/m"),
        "{listing}"
    );
    assert!(listing.contains("training/Ftrl/linear/linear_model/sex/weights/linear"));
    assert!(!listing.contains("training/Adam/linear/") && !listing.contains("training/Ftrl/dnn/"));

    let (m, listing) = train_and_evaluate("breast_cancer_dnn_linear_combined_classifier.yaml");
    // 0.965 (AUC 0.997) when this was written.
    assert!(m["accuracy"].as_f64() >= Some(0.95), "{m}");
    // The linear part keeps TF's default, Ftrl; the manifest set only the DNN's.
    assert!(listing
        .contains("training/Ftrl/linear/linear_model/worst_radius_bucketized/weights/accumulator"));
}

#[test]
fn dropout_and_batch_norm_train_repeatably_and_update_the_moving_averages() {
    let run = || {
        let dir = tempfile::tempdir().expect("temp dir");
        let manifest = config_in(dir.path(), "wine_dnn_classifier.yaml", |t| {
            t.replace(
                "    n_classes: 3\n",
                "    n_classes: 3\n    dropout: 0.2\n    batch_norm: true\n",
            )
        });
        ok(&["train", p(&manifest), "--quiet"]);
        // On the training data, inference with the moving averages must agree with what
        // training learned: a broken inference path would not fit the data it saw.
        let train_data = common::repo_root().join("data/wine_training.csv");
        let set = format!("input.eval.params.path={}", train_data.display());
        let m: serde_json::Value = serde_json::from_str(&ok(&[
            "evaluate",
            p(&manifest),
            "--json",
            "--quiet",
            "--set",
            &set,
        ]))
        .expect("JSON");
        let model = dir.path().join("model");
        let value = |name: &str| -> Vec<f64> {
            serde_json::from_str(&ok(&["checkpoints", p(&model), "--value", name])).expect("JSON")
        };
        let mean = value("dnn/hiddenlayer_0/batchnorm_0/moving_mean");
        let variance = value("dnn/hiddenlayer_1/batchnorm_1/moving_variance");
        let listing = ok(&["checkpoints", p(&model), "--variables"]);
        let bytes = std::fs::read(model.join("model.ckpt-1000.safetensors")).expect("checkpoint");
        (m, mean, variance, listing, bytes, dir)
    };
    let (m, mean, variance, listing, bytes, _dir) = run();
    assert!(
        m["accuracy"].as_f64() >= Some(0.99),
        "training accuracy: {m}"
    );
    // The host assigned the model's updates: the averages left their initial 0 and 1.
    assert_eq!(mean.len(), 16);
    assert!(mean.iter().any(|&v| v.abs() > 1e-3), "{mean:?}");
    assert!(
        variance.iter().any(|&v| (v - 1.0).abs() > 1e-3),
        "{variance:?}"
    );
    // Moving averages are not trained: no optimizer slots; gamma and beta are.
    assert!(!listing.contains("moving_mean/accumulator") && !listing.contains("moving_mean/m "));
    assert!(
        listing.contains("training/Adam/dnn/hiddenlayer_0/batchnorm_0/gamma/m"),
        "{listing}"
    );
    // Dropout masks come from the run's seed: a second run writes the same bytes.
    let (_, _, _, _, again, _dir2) = run();
    assert!(bytes == again, "the same seed gives the same checkpoint");
}

#[test]
fn a_dnn_with_dropout_batch_norm_and_adam_resumes_exactly() {
    // Dropout draws from the step's seed, batch norm keeps moving averages (updates), and
    // Adam counts steps and keeps two slots: stopping and resuming must change none of them.
    let run = |stops: &[&str]| {
        let dir = tempfile::tempdir().expect("temp dir");
        let manifest = config_in(dir.path(), "wine_dnn_classifier.yaml", |t| t);
        for stop in stops {
            ok(&[
                "train",
                p(&manifest),
                "--max-steps",
                stop,
                "--quiet",
                "--set",
                "model.params.dropout=0.3",
                "--set",
                "model.params.batch_norm=true",
                "--set",
                "optimizer={name: adam, learning_rate: 0.01}",
            ]);
        }
        let model = dir.path().join("model");
        let listing = ok(&["checkpoints", p(&model), "--variables"]);
        let bytes = std::fs::read(model.join(checkpoint::file_name(300))).expect("checkpoint 300");
        (bytes, listing)
    };
    let (straight, listing) = run(&["300"]);
    for name in [
        "dnn/hiddenlayer_0/batchnorm_0/moving_mean",
        "training/Adam/dnn/logits/kernel/m",
    ] {
        assert!(listing.contains(name), "{name} in {listing}");
    }
    // Stops inside passes of the shuffled, repeated input (142 rows, batches of 32).
    let (resumed, _) = run(&["5", "77", "300"]);
    assert!(
        straight == resumed,
        "model.ckpt-300 differs between a straight run and one stopped at 5 and 77"
    );
}

#[test]
fn linear_and_wide_and_deep_models_default_to_tfs_ftrl_rates() {
    // Four examples with x = 0 and label 1: every model predicts 0 at the start, so the
    // bias's first gradient is the mean squared error's 2 · (0 - 1) summed over the batch
    // of 4 divided by 4 per example: -2. One Ftrl step from w = 0 and accumulator 0.1
    // moves the bias to lr · 2 / sqrt(0.1 + 4).
    let one_step_bias = |model: &str, params: &str| -> f64 {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("ones.csv");
        std::fs::write(&data, "x,y\n0,1\n0,1\n0,1\n0,1\n").expect("write data");
        let input = format!(
            "{{ plugin: csv, params: {{ path: {}, label: y, label_dtype: float32 }}, batch_size: 4 }}",
            data.display()
        );
        let manifest = dir.path().join("manifest.yaml");
        std::fs::write(
            &manifest,
            format!(
                "model_dir: model\nmodel: {{ plugin: premade, name: {model}, params: {params} }}\n\
                 input: {{ train: {input}, eval: {input} }}\ntrain: {{ max_steps: 1 }}\n"
            ),
        )
        .expect("write manifest");
        ok(&["train", p(&manifest), "--quiet"]);
        let bias: Vec<f64> = serde_json::from_str(&ok(&[
            "checkpoints",
            p(&dir.path().join("model")),
            "--value",
            "linear/linear_model/bias_weights",
        ]))
        .expect("JSON");
        bias[0]
    };
    let after_one_step = |lr: f64| lr * 2.0 / 4.1f64.sqrt();
    let linear = one_step_bias("linear_regressor", "{ feature_columns: [{ numeric: x }] }");
    assert!(
        (linear - after_one_step(0.2)).abs() < 1e-6,
        "linear_regressor: Ftrl 0.2, {linear}"
    );
    // Wide & deep: min(0.005, 1 / sqrt(1 linear column)) = 0.005.
    let wide = one_step_bias(
        "dnn_linear_combined_regressor",
        "{ linear_feature_columns: [{ numeric: x }], dnn_feature_columns: [{ numeric: x }], dnn_hidden_units: [2] }",
    );
    assert!(
        (wide - after_one_step(0.005)).abs() < 1e-7,
        "dnn_linear_combined_regressor: Ftrl 0.005, {wide}"
    );
}
