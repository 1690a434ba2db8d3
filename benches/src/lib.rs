//! Shared set-up for the benchmarks: the Iris data as one batch, and the plugin dylibs.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds the plugin dylibs in release mode (`cargo bench` builds only their rlibs) and
/// returns the folder they are in.
pub fn plugin_dir() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(repo_root())
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "estimator-plugin-iris-custom",
            "-p",
            "estimator-plugin-csv",
            "-p",
            "estimator-plugin-metrics",
            "-p",
            "estimator-plugin-faulty",
        ])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the plugins failed");
    repo_root().join("target").join("release")
}

/// The first `n` Iris training rows as feature columns and labels.
pub struct IrisBatch {
    pub names: Vec<String>,
    pub columns: Vec<Vec<f32>>,
    pub labels: Vec<i64>,
    pub shape: [usize; 1],
}

pub fn iris_batch(n: usize) -> IrisBatch {
    let mut reader =
        csv::Reader::from_path(repo_root().join("data/iris_training.csv")).expect("iris data");
    let header = reader.headers().expect("header").clone();
    let names: Vec<String> = header.iter().take(4).map(str::to_owned).collect();
    let mut columns = vec![Vec::new(); 4];
    let mut labels = Vec::new();
    for record in reader.records().take(n) {
        let record = record.expect("valid row");
        for (i, column) in columns.iter_mut().enumerate() {
            column.push(record[i].parse().expect("number"));
        }
        labels.push(record[4].parse().expect("label"));
    }
    IrisBatch {
        names,
        columns,
        labels,
        shape: [n],
    }
}

/// A premade model's `feature_columns` param: one numeric column per name, as JSON.
pub fn numeric_feature_columns(names: &[String]) -> String {
    let columns: Vec<String> = names
        .iter()
        .map(|n| format!(r#"{{"numeric": "{n}"}}"#))
        .collect();
    format!("[{}]", columns.join(", "))
}

/// One f32 feature view per `(name, column)`, each of shape `shape`.
pub fn f32_features<'a>(
    names: &'a [String],
    columns: &'a [Vec<f32>],
    shape: &'a [usize],
) -> Vec<estimator_plugin_api::abi::NamedView<'a>> {
    names
        .iter()
        .zip(columns)
        .map(|(name, column)| estimator_plugin_api::abi::NamedView {
            name: name.as_str().into(),
            tensor: estimator_plugin_api::abi::TensorView::f32(shape, column),
        })
        .collect()
}

/// A TRAIN model_fn's inputs at `global_step`, with the per-step seed the benches use.
pub fn train_inputs<'a>(
    features: &'a [estimator_plugin_api::abi::NamedView<'a>],
    labels: estimator_plugin_api::abi::TensorView<'a>,
    variables: &'a [estimator_plugin_api::abi::NamedView<'a>],
    specs: &'a [estimator_plugin_api::abi::VarSpec],
    global_step: i64,
) -> estimator_plugin_api::sdk::ModelInputs<'a> {
    estimator_plugin_api::sdk::ModelInputs {
        features,
        labels: Some(labels),
        mode: estimator_plugin_api::abi::ModeKeys::Train,
        variables,
        specs,
        ctx: estimator_plugin_api::abi::StepContext {
            global_step,
            seed: 1,
        },
        // What the host passes when no hook reads a prediction.
        train_fetches: Some(&[]),
    }
}
