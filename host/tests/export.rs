//! `estimator export` and `predict --export-dir` through the real binary and plugins: a
//! self-contained version directory that predicts as the model_dir does, wherever it
//! is moved, with TF's signatures.

mod common;

use std::path::{Path, PathBuf};

use common::{config_in, fails, files, ok, p};

/// Trains `config` for `steps` in `dir`; returns the manifest.
fn trained(dir: &Path, config: &str, steps: &str) -> PathBuf {
    let manifest = config_in(dir, config, |t| t);
    ok(&["train", p(&manifest), "--max-steps", steps, "--quiet"]);
    manifest
}

/// Exports `manifest` under `base`; returns the version directory it printed last.
fn export(manifest: &Path, base: &Path) -> PathBuf {
    let out = ok(&["export", p(manifest), "--export-dir", p(base), "--quiet"]);
    PathBuf::from(out.lines().last().expect("a path").trim())
}

#[test]
fn an_export_moved_elsewhere_predicts_as_the_model_dir_does() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = trained(dir.path(), "iris_custom.yaml", "200");
    let base = dir.path().join("export");
    let version = export(&manifest, &base);
    assert_eq!(version.parent(), Some(base.as_path()));
    let name = version.file_name().and_then(|n| n.to_str()).expect("name");
    assert!(
        name.len() == 10 && name.parse::<u64>().is_ok(),
        "Unix seconds: {name}"
    );
    assert_eq!(
        files(&version),
        [
            "export.yaml",
            "plugin",
            "variables.safetensors",
            "warmup.json"
        ]
    );
    assert_eq!(
        files(&version.join("plugin")),
        ["libestimator_plugin_iris_custom.so"]
    );
    // The model's variables only: no optimizer slots.
    let variables = ok(&[
        "checkpoints",
        p(dir.path()),
        "--variables",
        "--checkpoint",
        p(&version.join("variables.safetensors")),
    ]);
    assert!(
        variables.contains("dense/kernel") && !variables.contains("Adagrad"),
        "{variables}"
    );
    let moved = tempfile::tempdir().expect("temp dir");
    let elsewhere = moved.path().join("v");
    std::fs::rename(&version, &elsewhere).expect("move");
    let from_export = ok(&[
        "predict",
        p(&manifest),
        "--export-dir",
        p(&elsewhere),
        "--quiet",
    ]);
    let from_model_dir = ok(&["predict", p(&manifest), "--quiet"]);
    assert_eq!(from_export.lines().count(), 30);
    assert_eq!(from_export, from_model_dir);
}

#[test]
fn a_premade_classifier_exports_tfs_signatures() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = trained(dir.path(), "breast_cancer_dnn_classifier.yaml", "20");
    let version = export(&manifest, &dir.path().join("export"));
    let meta: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(version.join("export.yaml")).expect("read"))
            .expect("yaml");
    let signatures = meta["signatures"].as_mapping().expect("signatures");
    let names: Vec<&str> = signatures.keys().filter_map(|k| k.as_str()).collect();
    assert_eq!(
        names,
        ["classification", "predict", "regression", "serving_default"]
    );
    let default = &meta["signatures"]["serving_default"];
    assert_eq!(default["method"].as_str(), Some("classify"));
    assert_eq!(
        default["outputs"]["scores"]["prediction"].as_str(),
        Some("probabilities")
    );
    assert_eq!(
        default["outputs"]["classes"]["dtype"].as_str(),
        Some("string")
    );
    assert_eq!(
        meta["signatures"]["regression"]["outputs"]["outputs"]["prediction"].as_str(),
        Some("logistic")
    );
    assert_eq!(meta["global_step"].as_i64(), Some(20));
}

#[test]
fn an_export_whose_second_is_taken_waits_for_a_free_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = trained(dir.path(), "iris_custom.yaml", "10");
    let base = dir.path().join("export");
    // This second and the next are taken (as by two exports a moment ago): the export
    // must wait, as TF's does, until a second of its own.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    for taken in [now, now + 1] {
        std::fs::create_dir_all(base.join(taken.to_string())).expect("mkdir");
    }
    let version: u64 = export(&manifest, &base)
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .expect("a numbered version");
    assert!(version > now + 1, "{version} is a second already taken");
    let again = export(&manifest, &base);
    assert_ne!(
        again.file_name(),
        Some(std::ffi::OsStr::new(&version.to_string()))
    );
    let mut versions: Vec<String> = std::fs::read_dir(&base)
        .expect("base")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    versions.sort();
    assert_eq!(versions.len(), 4, "no temp directory left: {versions:?}");
}

#[test]
fn nothing_to_export_or_a_tampered_library_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| t);
    let base = dir.path().join("export");
    let line = fails(&["export", p(&manifest), "--export-dir", p(&base)]);
    assert!(
        line.starts_with("error: Couldn't find trained model at "),
        "{line}"
    );
    assert!(!base.exists() || files(&base).is_empty(), "nothing written");
    ok(&["train", p(&manifest), "--max-steps", "10", "--quiet"]);
    let version = export(&manifest, &base);
    let library = version.join("plugin/libestimator_plugin_iris_custom.so");
    let mut bytes = std::fs::read(&library).expect("library");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&library, bytes).expect("tamper");
    let line = fails(&["predict", p(&manifest), "--export-dir", p(&version)]);
    assert!(
        line.contains("libestimator_plugin_iris_custom.so has sha256"),
        "{line}"
    );
    assert!(line.contains("not the pinned"), "{line}");
}

#[test]
fn an_exports_variables_carry_checksums_and_a_flipped_bit_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = trained(dir.path(), "iris_custom.yaml", "10");
    let version = export(&manifest, &dir.path().join("export"));
    let variables = version.join("variables.safetensors");
    let mut bytes = std::fs::read(&variables).expect("variables");
    *bytes.last_mut().expect("data") ^= 0x10;
    std::fs::write(&variables, bytes).expect("damage");
    let line = fails(&["predict", p(&manifest), "--export-dir", p(&version)]);
    assert!(
        line.starts_with(&format!("error: {}: tensor `", variables.display()))
            && line.ends_with("` fails its crc32c check: the file is damaged"),
        "{line}"
    );
}
