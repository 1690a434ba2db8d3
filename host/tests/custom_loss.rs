//! A model whose loss is built from the SDK's tape ops (plugins/regularized): it trains
//! through the real binary, and its L2 penalty shrinks the weights against the same model
//! without it.

mod common;

use common::{config_in, ok, p};

/// Trains `configs/iris_regularized.yaml` with `l2`; returns the kernel's squared norm and
/// the test accuracy.
fn train_with_l2(l2: &str) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_regularized.yaml", |t| {
        t.replace("l2: 0.01", &format!("l2: {l2}"))
    });
    ok(&["train", p(&manifest), "--quiet"]);
    let kernel: Vec<Vec<f64>> = serde_json::from_str(&ok(&[
        "checkpoints",
        p(&dir.path().join("model")),
        "--value",
        "dense/kernel",
    ]))
    .expect("JSON");
    let norm = kernel.iter().flatten().map(|w| w * w).sum();
    let metrics: serde_json::Value =
        serde_json::from_str(&ok(&["evaluate", p(&manifest), "--json", "--quiet"])).expect("JSON");
    (norm, metrics["accuracy"].as_f64().expect("accuracy"))
}

#[test]
fn an_l2_penalty_built_from_ops_shrinks_the_weights() {
    let (free, free_accuracy) = train_with_l2("0");
    let (penalized, penalized_accuracy) = train_with_l2("0.05");
    assert!(
        penalized < 0.7 * free,
        "squared kernel norm {penalized} with the penalty, {free} without"
    );
    // Both learn Iris; the penalty costs little accuracy.
    assert!(free_accuracy >= 0.9, "{free_accuracy}");
    assert!(penalized_accuracy >= 0.8, "{penalized_accuracy}");
}
