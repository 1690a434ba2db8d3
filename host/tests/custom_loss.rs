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

/// The plugin's `tracing::debug!` in `new` reaches the host's log, with the plugin's
/// target, only when `RUST_LOG` asks for that target's debug events.
#[test]
fn a_plugins_log_events_reach_the_host_filtered_by_rust_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_regularized.yaml", |t| t);
    let run = |filter: &str| {
        common::ensure_plugins_built();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_estimator"))
            .args(["train", p(&manifest), "--max-steps", "1"])
            .env("RUST_LOG", filter)
            .output()
            .expect("estimator runs");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let line = "estimator_plugin_regularized: declared the logits layer l2=0.01 inputs=4";
    let asked = run("warn,estimator_plugin_regularized=debug");
    let shown: Vec<&str> = asked.lines().filter(|l| l.contains(line)).collect();
    assert_eq!(shown.len(), 1, "{asked}");
    assert!(shown[0].contains("DEBUG"), "{asked}");
    let not_asked = run("info");
    assert!(
        !not_asked.contains("declared the logits layer"),
        "{not_asked}"
    );
    assert!(
        not_asked.contains("INFO"),
        "the host's own logs still show: {not_asked}"
    );
}
