//! An exported version loaded to predict with: its own copy of the plugin library, the
//! model's variables, and a pool of model instances so that requests run side by side.
//!
//! Loading checks everything before the version can serve: the library's SHA-256, its
//! ABI, the variables against the model's declarations, and a prediction of the
//! warm-up examples. abi_stable never unloads a library, so each version loaded costs its
//! library's memory until the process exits.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use abi_stable::std_types::{ROption, RSlice};
use estimator_plugin_api::abi::{
    ErrorKind, EstimatorSpec, FactoryContext, ModeKeys, ModelFnBox, NamedView, StepContext, Tensor,
};

use super::examples::columns_from_instances;
use super::instances::{input_index, InputIndex};
use super::layout::{ExportMeta, PLUGIN_DIR, VARIABLES_FILE, WARMUP_FILE};
use crate::checkpoint;
use crate::config::params_json;
use crate::error::{Error, Result};
use crate::plugins::{PluginLibrary, PluginRegistry};
use crate::spec_check;
use crate::variables::VariableStore;

pub struct Servable {
    pub dir: PathBuf,
    pub meta: ExportMeta,
    /// The inputs' positions by name, for reading requests.
    pub input_index: InputIndex,
    lib: Arc<PluginLibrary>,
    params: String,
    vars: VariableStore,
    /// Model instances not in use; a call takes one, or makes one when all are busy.
    idle: Mutex<Vec<ModelFnBox>>,
    /// How long predicting the warm-up examples takes, warm.
    pub warmup_time: std::time::Duration,
}

impl Servable {
    /// Loads the version in `dir` and predicts its warm-up examples.
    pub fn load(dir: &Path, registry: &mut PluginRegistry) -> Result<Self> {
        let meta = ExportMeta::read(dir)?;
        let library = Path::new(PLUGIN_DIR).join(&meta.model.plugin);
        let library = library.to_string_lossy();
        let lib = registry.load_pinned(&library, dir, Some(&meta.model.sha256))?;
        let params = params_json(&meta.model.params);
        let mut servable = Servable {
            dir: dir.to_path_buf(),
            lib,
            params,
            vars: VariableStore::default(),
            idle: Mutex::new(Vec::new()),
            warmup_time: std::time::Duration::ZERO,
            input_index: input_index(&meta.inputs),
            meta,
        };
        let model = servable.new_instance()?;
        let specs = model
            .variables()
            .into_result()
            .map_err(|e| servable.call_error("variables", e))?;
        servable.vars = VariableStore::initialise(&specs, 0)
            .map_err(|m| Error::Plugin(format!("plugin `{}`: {m}", servable.lib.name)))?;
        let mut weights = checkpoint::read(&dir.join(VARIABLES_FILE))?;
        for i in 0..servable.vars.len() {
            let var = servable.vars.get_mut(i);
            var.data = weights.take(&var.name, &var.shape.clone())?;
        }
        servable.release(model);
        servable.warmup_time = servable.warm_up()?;
        Ok(servable)
    }

    /// The version's number: its directory's name.
    pub fn version(&self) -> Option<u64> {
        self.dir.file_name()?.to_str()?.parse().ok()
    }

    /// Runs model_fn in PREDICT on `columns`, one per input in the export's order of
    /// inputs (`rows` examples); the spec is checked as a PREDICT spec is in
    /// `estimator predict`.
    pub fn predict(&self, columns: &[Tensor], rows: usize) -> Result<EstimatorSpec> {
        let views: Vec<NamedView<'_>> = self
            .meta
            .inputs
            .keys()
            .zip(columns)
            .map(|(name, column)| NamedView {
                name: name.as_str().into(),
                tensor: column.view(),
            })
            .collect();
        self.predict_views(&views, rows)
    }

    /// [`Servable::predict`] on borrowed columns.
    pub fn predict_views(&self, views: &[NamedView<'_>], rows: usize) -> Result<EstimatorSpec> {
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut model = match pooled {
            Some(model) => model,
            None => self.new_instance()?,
        };
        let variables = self.vars.views();
        let ctx = StepContext {
            global_step: self.meta.global_step,
            seed: 0,
        };
        let called = model
            .model_fn(
                RSlice::from_slice(views),
                ROption::RNone,
                ModeKeys::Predict.into(),
                RSlice::from_slice(&variables),
                ctx,
            )
            .into_result();
        // An instance that panicked may hold broken state: it is dropped, not pooled.
        let panicked = matches!(&called, Err(e) if e.kind() == ErrorKind::Panic);
        if panicked {
            tracing::warn!(
                "plugin `{}` panicked in model_fn: that model instance is dropped, not reused",
                self.lib.name
            );
        } else {
            self.release(model);
        }
        let spec = called.map_err(|e| self.call_error("model_fn in mode infer", e))?;
        spec_check::check(&spec, ModeKeys::Predict, &self.vars, &[], rows).map_err(|m| {
            Error::Spec {
                plugin: self.lib.name.clone(),
                message: m.to_string(),
            }
        })?;
        Ok(spec)
    }

    fn new_instance(&self) -> Result<ModelFnBox> {
        let base = self.dir.to_string_lossy();
        let ctx = FactoryContext {
            base_dir: base.as_ref().into(),
            seed: 0,
        };
        self.lib
            .create_model(self.meta.model.name.as_deref(), &self.params, ctx)
            .map_err(|e| Error::ModelDir(format!("{}: model: {e}", self.dir.display())))
    }

    fn release(&self, model: ModelFnBox) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(model);
    }

    /// Predicts the export's warm-up examples, which every version must answer before it
    /// serves; returns how long a prediction of them takes once the model is warm (the
    /// second of two).
    fn warm_up(&self) -> Result<std::time::Duration> {
        let path = self.dir.join(WARMUP_FILE);
        let bad = |m: String| Error::ModelDir(format!("{}: {m}", path.display()));
        let text = std::fs::read_to_string(&path).map_err(|e| bad(format!("cannot read: {e}")))?;
        let instances: Vec<serde_json::Value> =
            serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let columns =
            columns_from_instances(&self.meta.inputs, &instances).map_err(|m| bad(m.0))?;
        self.predict(&columns, instances.len())?;
        let started = std::time::Instant::now();
        self.predict(&columns, instances.len())?;
        Ok(started.elapsed())
    }

    fn call_error(&self, call: &str, source: estimator_plugin_api::abi::PluginError) -> Error {
        Error::PluginCall {
            plugin: self.lib.name.clone(),
            call: call.to_owned(),
            source,
        }
    }
}
