//! What the loops' unit tests share: the Iris example, its model linked into the test
//! binary (no dylib, no nested build) and its data read by an input defined here, writing
//! into a temporary model_dir.

use std::path::{Path, PathBuf};

use abi_stable::std_types::ROption;
use estimator_plugin_api::abi::{
    Chunk, FactoryContext, ModeKeys, NamedTensor, PluginError, Tensor,
};
use estimator_plugin_api::sdk::Input;
use serde::Deserialize;

use super::Estimator;
use crate::config::Manifest;
use crate::plugins::PluginRegistry;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IrisRowsParams {
    path: PathBuf,
}

/// An Iris CSV (four numeric features, then the class id `Species`) in one chunk.
pub struct IrisRows {
    batch: Option<Chunk>,
}

impl Input for IrisRows {
    type Params = IrisRowsParams;

    fn open(
        params: IrisRowsParams,
        _: &FactoryContext<'_>,
        _: ModeKeys,
    ) -> Result<Self, PluginError> {
        let text = std::fs::read_to_string(&params.path)
            .map_err(|e| PluginError::bad_data(format!("{}: {e}", params.path.display())))?;
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
        let mut columns: Vec<Vec<f32>> = vec![Vec::new(); header.len() - 1];
        let mut labels = Vec::new();
        for line in lines {
            let cells: Vec<&str> = line.split(',').collect();
            for (column, cell) in columns.iter_mut().zip(&cells) {
                column.push(cell.parse().map_err(|_| PluginError::bad_data(line))?);
            }
            labels.push(
                cells[header.len() - 1]
                    .parse()
                    .map_err(|_| PluginError::bad_data(line))?,
            );
        }
        let rows = labels.len();
        let features = header
            .iter()
            .zip(columns)
            .map(|(name, values)| NamedTensor::new(*name, Tensor::f32(vec![rows], values)))
            .collect();
        let labels = Tensor::i64(vec![rows], labels);
        Ok(IrisRows {
            batch: Some(Chunk {
                features,
                labels: ROption::RSome(labels),
            }),
        })
    }

    fn next_chunk(&mut self) -> Result<Option<Chunk>, PluginError> {
        Ok(self.batch.take())
    }
}

estimator_plugin_api::define_plugin_module! {
    fn test_inputs();
    models: [],
    metrics: [],
    inputs: ["iris_rows" => IrisRows],
}

/// A registry that knows only the plugins linked into this test binary: the Iris model
/// and the input above.
pub fn linked_plugins() -> PluginRegistry {
    let mut registry = PluginRegistry::with_search_dirs(Vec::new());
    registry
        .link_static("iris_custom", estimator_plugin_iris_custom::plugin_module())
        .expect("this host's ABI");
    registry
        .link_static("test_inputs", test_inputs())
        .expect("this host's ABI");
    registry
}

/// `configs/iris_custom.yaml` with its model_dir in `dir`, its inputs read by the input
/// above, no metric plugin, and `edit` applied to the text.
pub fn iris_manifest(dir: &Path, edit: impl FnOnce(String) -> String) -> Manifest {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(repo.join("configs/iris_custom.yaml")).expect("config");
    let data = repo.join("data");
    let text = text
        .replace("model_dir: ../runs/iris_custom", "model_dir: model")
        .replace("plugin: csv", "plugin: test_inputs")
        .replace(
            "params: { path: ../data/iris_training.csv, label: Species }",
            &format!(
                "params: {{ path: {} }}",
                data.join("iris_training.csv").display()
            ),
        )
        .replace(
            "params: { path: ../data/iris_test.csv, label: Species }",
            &format!(
                "params: {{ path: {} }}",
                data.join("iris_test.csv").display()
            ),
        )
        .replace(
            "metrics:\n  accuracy: { plugin: metrics, kind: accuracy, predictions: class_ids }\n",
            "",
        );
    let path = dir.join("manifest.yaml");
    std::fs::write(&path, edit(text)).expect("write manifest");
    Manifest::load(&path).expect("a valid manifest")
}

/// An Estimator over the Iris example in `dir`.
pub fn iris_estimator(dir: &Path, edit: impl FnOnce(String) -> String) -> Estimator {
    Estimator::new(iris_manifest(dir, edit), linked_plugins())
}
