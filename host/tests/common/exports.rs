//! Exported versions for the serving tests: trained, exported, and served as the binary
//! does it.

use std::path::{Path, PathBuf};

use super::http::Serving;
use super::{config_in, ok, p};

/// One Iris example as TF Serving's row format writes it.
pub const IRIS_ROW: &str =
    r#"{"SepalLength": 5.9, "SepalWidth": 3.0, "PetalLength": 4.2, "PetalWidth": 1.5}"#;

/// `{"instances": [IRIS_ROW]}`.
pub fn one_iris_instance() -> String {
    format!(r#"{{"instances": [{IRIS_ROW}]}}"#)
}

/// Trains `config` for `steps` in `dir` and exports it under `base`; returns the manifest
/// and the version directory.
pub fn exported(dir: &Path, config: &str, steps: &str, base: &Path) -> (PathBuf, PathBuf) {
    let manifest = config_in(dir, config, |t| t);
    ok(&["train", p(&manifest), "--max-steps", steps, "--quiet"]);
    let out = ok(&["export", p(&manifest), "--export-dir", p(base), "--quiet"]);
    (
        manifest,
        PathBuf::from(out.lines().last().expect("path").trim()),
    )
}

/// A version directory's name: its number.
pub fn version_of(dir: &Path) -> String {
    dir.file_name()
        .and_then(|n| n.to_str())
        .expect("name")
        .to_owned()
}

/// The version directory one number above `dir`'s, beside it.
pub fn next_version(dir: &Path) -> PathBuf {
    let number: u64 = version_of(dir).parse().expect("a number");
    dir.with_file_name((number + 1).to_string())
}

/// `estimator serve` of the versions under `base` as model `iris`, with `extra` flags.
pub fn serve_iris(base: &Path, extra: &[&str]) -> Serving {
    let mut args = vec!["--model_name", "iris", "--model_base_path", p(base)];
    args.extend_from_slice(extra);
    Serving::start(&args, "iris")
}

/// Copies a version directory's files into `to`, which must not exist.
pub fn copy_version(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("plugin")).expect("mkdir");
    for entry in walk(from) {
        let rel = entry.strip_prefix(from).expect("inside");
        std::fs::copy(&entry, to.join(rel)).expect("copy");
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// An export of the faulty plugin's `staged` model with `params` (YAML), trained to step
/// `steps` in `dir`; returns the base path. With `sleep_from_step` at `steps`, every
/// prediction of the export sleeps.
pub fn staged_export(dir: &Path, params: &str, steps: &str) -> PathBuf {
    let manifest = super::staged_manifest(dir, params);
    let base = dir.join("export");
    ok(&["train", p(&manifest), "--max-steps", steps, "--quiet"]);
    ok(&["export", p(&manifest), "--export-dir", p(&base), "--quiet"]);
    base
}

/// The status of `version` (a version directory) of `model`, if the server lists it.
pub fn version_status(port: u16, model: &str, version: &Path) -> Option<serde_json::Value> {
    let (_, status) = super::http::get(port, &format!("/v1/models/{model}"));
    let number = version_of(version);
    status["model_version_status"]
        .as_array()?
        .iter()
        .find(|s| s["version"] == serde_json::json!(number))
        .cloned()
}
