//! `estimator new-plugin`: each kind of crate it writes builds on its own, passes its own
//! test, and trains with its manifest through the real binary.

mod common;

use std::path::Path;
use std::process::Command;

use common::{ensure_plugins_built, repo_root};

/// Runs cargo `args` in `dir`, sharing one target folder across these tests' crates.
fn cargo(dir: &Path, args: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(dir)
        .args(args)
        .env("CARGO_TARGET_DIR", repo_root().join("target/new-plugin"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `estimator args` with the new plugins on ESTIMATOR_PLUGIN_PATH, in `dir`.
fn estimator(dir: &Path, args: &[&str]) -> String {
    ensure_plugins_built();
    let out = Command::new(env!("CARGO_BIN_EXE_estimator"))
        .current_dir(dir)
        .args(args)
        .env("RUST_LOG", "warn")
        .env(
            "ESTIMATOR_PLUGIN_PATH",
            repo_root().join("target/new-plugin/debug"),
        )
        .output()
        .expect("estimator runs");
    assert!(
        out.status.success(),
        "estimator {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn each_kind_of_new_plugin_builds_tests_and_trains_with_no_edits() {
    let root = tempfile::tempdir().expect("temp dir");
    for kind in ["model", "metric", "input"] {
        let dir = root.path().join(format!("my_{kind}"));
        let said = estimator(
            root.path(),
            &["new-plugin", dir.to_str().expect("utf-8"), "--kind", kind],
        );
        assert!(
            said.contains(&format!("wrote plugin `my_{kind}`")),
            "{said}"
        );
        cargo(&dir, &["test", "--quiet"]);
        cargo(&dir, &["build", "--quiet"]);
        estimator(&dir, &["train", "manifest.yaml"]);
        let metrics: serde_json::Value =
            serde_json::from_str(&estimator(&dir, &["evaluate", "manifest.yaml", "--json"]))
                .expect("JSON");
        let accuracy = metrics["accuracy"].as_f64().expect("accuracy");
        assert!(accuracy >= 0.95, "{kind}: {metrics}");
        assert_eq!(metrics["global_step"].as_i64(), Some(500), "{kind}");
        if kind == "metric" {
            // The new metric is the error rate: what accuracy is not.
            let error_rate = metrics["error_rate"].as_f64().expect("error_rate");
            assert!((error_rate + accuracy - 1.0).abs() < 1e-9, "{metrics}");
        }
    }
    // A folder that already holds files is refused, and left as it was.
    let taken = root.path().join("my_model");
    let out = Command::new(env!("CARGO_BIN_EXE_estimator"))
        .args(["new-plugin", taken.to_str().expect("utf-8")])
        .output()
        .expect("estimator runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the folder is not empty"));
}
