//! `export`: one self-contained version of the trained model, as TF's
//! `export_saved_model` (see [`crate::export`] for the layout).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use estimator_plugin_api::abi::{EstimatorSpec, ModeKeys};
use tracing::info;

use super::session::Session;
use super::Estimator;
use crate::checkpoint::{self, SavedTensor};
use crate::error::{Error, Result};
use crate::export::{
    instances_from_features, resolve, write_version, ExportMeta, ExportedModel, TensorInfo,
    PLUGIN_DIR, VARIABLES_FILE,
};
use crate::fingerprint::sha256_hex;
use crate::input::BatchRef;

/// How many of the input's examples an export keeps to warm a server up with.
const WARMUP_EXAMPLES: usize = 3;

impl Estimator {
    /// Exports the latest checkpoint (or `checkpoint`) as a new version under `base`;
    /// returns its directory. The serving inputs and signatures come from one PREDICT
    /// batch of the manifest's predict input, as TF's come from a serving input receiver.
    pub fn export(&mut self, base: &Path, checkpoint: Option<&Path>) -> Result<PathBuf> {
        let model_dir = self.model_dir();
        let mut ckpt = self.checkpoint_for("export", checkpoint)?.ok_or_else(|| {
            Error::Usage(format!(
                "Couldn't find trained model at {}.",
                model_dir.display()
            ))
        })?;
        let mut session = self.open_session(Some(&mut ckpt))?;
        let mut pipeline = self.pipeline("predict", ModeKeys::Predict)?;
        let mut batch = pipeline.next_batch()?.ok_or_else(|| {
            self.manifest
                .error("the predict input produced no examples to export with")
        })?;
        batch.labels = None;
        let spec = session.run_model_fn(&batch, ModeKeys::Predict, self.seed, &[])?;
        let library = std::fs::read(&session.lib.path)
            .map_err(|e| Error::io(format!("{}: cannot read", session.lib.path.display()), e))?;
        let meta = self.export_meta(&session, &batch, &spec, sha256_hex(&library))?;
        let warmup = instances_from_features(&batch.features, batch.len.min(WARMUP_EXAMPLES));
        let dir = write_version(base, |dir| {
            write_files(dir, &meta, &library, &warmup, &session)
        })?;
        info!(
            "Exported global step {} to {}",
            meta.global_step,
            dir.display()
        );
        Ok(dir)
    }

    /// `export.yaml` for the model of `session`, whose PREDICT `spec` on `batch` shows
    /// the serving inputs and outputs; `sha256` is its library's.
    fn export_meta(
        &self,
        session: &Session,
        batch: &BatchRef<'_>,
        spec: &EstimatorSpec,
        sha256: String,
    ) -> Result<ExportMeta> {
        let inputs = batch
            .features
            .iter()
            .map(|f| {
                let info = TensorInfo::of_batch(f.tensor.dtype(), &f.tensor.shape);
                (f.name.to_string(), info)
            })
            .collect();
        let predictions: BTreeMap<String, TensorInfo> = spec
            .predictions
            .iter()
            .map(|p| {
                let info = TensorInfo::of_batch(p.tensor.dtype(), &p.tensor.shape);
                (p.name.to_string(), info)
            })
            .collect();
        let declared =
            session
                .model
                .export_outputs()
                .into_result()
                .map_err(|e| Error::PluginCall {
                    plugin: session.lib.name.clone(),
                    call: "export_outputs".into(),
                    source: e,
                })?;
        let signatures = resolve(&declared, &predictions).map_err(|m| session.spec_error(m))?;
        let library_name = session
            .lib
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| {
                Error::Plugin(format!(
                    "plugin `{}` has no library file to export",
                    session.lib.name
                ))
            })?;
        let entry = &self.manifest.model;
        Ok(ExportMeta {
            format: crate::export::FORMAT,
            global_step: session.global_step,
            model: ExportedModel {
                plugin: library_name,
                sha256,
                name: entry.name.clone(),
                params: entry.params.clone(),
            },
            inputs,
            signatures,
        })
    }
}

/// Writes a version's files into `dir`, each durably.
fn write_files(
    dir: &Path,
    meta: &ExportMeta,
    library: &[u8],
    warmup: &[serde_json::Value],
    session: &Session,
) -> Result<()> {
    let yaml = serde_yaml::to_string(meta)
        .map_err(|e| Error::Internal(format!("cannot write export.yaml: {e}")))?;
    let warmup = serde_json::to_vec_pretty(warmup)
        .map_err(|e| Error::Internal(format!("cannot write warmup.json: {e}")))?;
    let tensors: Vec<SavedTensor<'_>> = session
        .vars
        .iter()
        .map(|v| SavedTensor {
            name: &v.name,
            shape: &v.shape,
            data: &v.data,
        })
        .collect();
    let variables = checkpoint::encode(&tensors, session.global_step, &BTreeMap::new())?;
    let plugin_dir = dir.join(PLUGIN_DIR);
    std::fs::create_dir(&plugin_dir)
        .map_err(|e| Error::io(format!("{}: cannot create", plugin_dir.display()), e))?;
    let files: [(PathBuf, &[u8]); 4] = [
        (dir.join(crate::export::EXPORT_FILE), yaml.as_bytes()),
        (dir.join(VARIABLES_FILE), &variables),
        (dir.join(crate::export::WARMUP_FILE), &warmup),
        (plugin_dir.join(&meta.model.plugin), library),
    ];
    for (path, bytes) in files {
        checkpoint::write_atomic(&path, bytes)?;
    }
    Ok(())
}
