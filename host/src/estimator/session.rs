//! Assembling a run from the manifest: the model with its variables (restored, or
//! warm-started), the inputs, the metrics and the optimizers; and calling model_fn with
//! its spec checked.

use std::sync::Arc;

use abi_stable::std_types::{ROption, RSlice, RString};
use estimator_plugin_api::abi::{
    EstimatorSpec, FactoryContext, ModeKeys, ModelFnBox, NamedView, StepContext,
};
use rand_chacha::ChaCha8Rng;
use tracing::info;

use super::Estimator;
use crate::checkpoint::{Checkpoint, Provenance, SavedTensor, TrainingState};
use crate::config::{built_in, params_json, Sha256Pin};
use crate::error::{Error, Invalid, Result};
use crate::eval_metrics::PluginMetric;
use crate::input::{BatchRef, Opener, Pipeline, PipelineConfig, PipelinePosition};
use crate::optimizer::{DeclaredPart, Optimizers, Slot};
use crate::plugins::PluginLibrary;
use crate::seed;
use crate::spec_check;
use crate::variables::VariableStore;
use crate::warm_start::{self, Target};

/// A model with its variables, ready to run model_fn.
pub(super) struct Session {
    pub lib: Arc<PluginLibrary>,
    pub model: ModelFnBox,
    pub vars: VariableStore,
    pub global_step: i64,
    /// The buffer model_fn's list of variable views is rebuilt in each step.
    views: Vec<NamedView<'static>>,
}

impl Session {
    /// Runs model_fn on `batch` in `mode` and checks the spec it returns against the mode
    /// (TRAIN: one gradient per variable of `trainable`).
    pub fn run_model_fn(
        &mut self,
        batch: &BatchRef<'_>,
        mode: ModeKeys,
        run_seed: u64,
        trainable: &[usize],
    ) -> Result<EstimatorSpec> {
        let variables = self.vars.views_into(std::mem::take(&mut self.views));
        let ctx = StepContext {
            global_step: self.global_step,
            seed: seed::step_seed(run_seed, self.global_step),
        };
        let labels: ROption<_> = batch.labels.into();
        let spec = self
            .model
            .model_fn(
                RSlice::from_slice(&batch.features),
                labels,
                mode.into(),
                RSlice::from_slice(&variables),
                ctx,
            )
            .into_result();
        self.views = crate::views::recycle(variables);
        let spec = spec.map_err(|e| Error::PluginCall {
            plugin: self.lib.name.clone(),
            call: format!("model_fn in mode {mode}"),
            source: e,
        })?;
        spec_check::check(&spec, mode, &self.vars, trainable, batch.len)
            .map_err(|message| self.spec_error(message))?;
        Ok(spec)
    }

    /// Tells the model which predictions TRAIN steps read (the hooks' fetches), so it may
    /// skip the rest.
    pub fn set_train_fetches(&mut self, fetches: &[String]) -> Result<()> {
        let names: Vec<RString> = fetches.iter().map(|f| RString::from(f.as_str())).collect();
        self.model
            .set_train_fetches(RSlice::from_slice(&names))
            .into_result()
            .map_err(|e| Error::PluginCall {
                plugin: self.lib.name.clone(),
                call: "set_train_fetches".into(),
                source: e,
            })
    }

    /// Hands a TRAIN spec back to the model once applied, for its buffers.
    pub fn recycle(&mut self, spec: EstimatorSpec) {
        self.model.recycle_spec(spec);
    }

    /// An error about what the model returned, naming its plugin and model_fn.
    pub fn spec_error(&self, message: impl std::fmt::Display) -> Error {
        Error::Spec {
            plugin: self.lib.name.clone(),
            message: message.to_string(),
        }
    }
}

impl Estimator {
    /// Creates the model and its variables, restored from `restore` when given.
    pub(super) fn open_session(&mut self, restore: Option<&mut Checkpoint>) -> Result<Session> {
        let entry = self.manifest.model.clone();
        let lib = self.load_plugin("model", &entry.plugin, entry.sha256.as_ref())?;
        let (base, seed) = self.factory_context();
        let ctx = FactoryContext {
            base_dir: base.as_str().into(),
            seed,
        };
        let model = lib
            .create_model(entry.name.as_deref(), &params_json(&entry.params), ctx)
            .map_err(|e| self.manifest.error(format!("model: {e}")))?;
        let specs = model
            .variables()
            .into_result()
            .map_err(|e| Error::PluginCall {
                plugin: lib.name.clone(),
                call: "variables".into(),
                source: e,
            })?;
        let mut vars = VariableStore::initialise(&specs, self.seed)
            .map_err(|m| Error::Plugin(format!("plugin `{}`: {m}", lib.name)))?;
        let mut global_step = 0;
        if let Some(ckpt) = restore {
            info!("Restoring parameters from {}", ckpt.path.display());
            for i in 0..vars.len() {
                let var = vars.get_mut(i);
                var.data = ckpt.take(&var.name, &var.shape.clone())?;
            }
            global_step = ckpt.global_step;
        }
        Ok(Session {
            lib,
            model,
            vars,
            global_step,
            views: Vec::new(),
        })
    }

    /// Loads the plugin of the manifest entry `key`, checking its pin if it has one.
    fn load_plugin(
        &mut self,
        key: &str,
        plugin: &str,
        pin: Option<&Sha256Pin>,
    ) -> Result<Arc<PluginLibrary>> {
        let base_dir = self.manifest.base_dir.clone();
        match pin {
            None => self
                .registry
                .load(plugin, &base_dir)
                .map_err(|e| self.manifest.error(format!("{key}.plugin: {e}"))),
            Some(pin) => self
                .registry
                .load_pinned(plugin, &base_dir, Some(pin.as_str()))
                .map_err(|e| self.manifest.error(format!("{key}.sha256: {e}"))),
        }
    }

    /// What every plugin factory receives: the manifest's folder and the run's seed.
    fn factory_context(&self) -> (String, u64) {
        (
            self.manifest.base_dir.to_string_lossy().into_owned(),
            self.seed,
        )
    }

    /// The input pipeline of `input.<key>`, read in `mode`.
    pub(super) fn pipeline(&mut self, key: &str, mode: ModeKeys) -> Result<Pipeline> {
        let (config, opener, rng) = self.pipeline_parts(key, mode)?;
        Ok(Pipeline::new(config, opener, rng))
    }

    /// What a pipeline of `input.<key>` is built from, for building it on another thread.
    pub(super) fn pipeline_parts(
        &mut self,
        key: &str,
        mode: ModeKeys,
    ) -> Result<(PipelineConfig, Opener, ChaCha8Rng)> {
        let entry = self.manifest.input(key)?.clone();
        let lib = self.load_plugin(
            &format!("input.{key}"),
            &entry.plugin,
            entry.sha256.as_ref(),
        )?;
        let (base, seed) = self.factory_context();
        let params = params_json(&entry.params);
        let file = self.manifest.file.display().to_string();
        let label = format!("input.{key}");
        let opener_label = label.clone();
        let plugin = lib.name.clone();
        let opener = Box::new(move || {
            let ctx = FactoryContext {
                base_dir: base.as_str().into(),
                seed,
            };
            lib.open_input(entry.name.as_deref(), &params, ctx, mode)
                .map_err(|e| Error::Manifest(format!("{file}: {opener_label}: {e}")))
        });
        let config = PipelineConfig {
            label,
            plugin,
            batch_size: entry.batch_size.get(),
            shuffle: entry.shuffle.map(|s| s.get()),
            repeat: entry.repeat,
            drop_remainder: entry.drop_remainder,
            cache: entry.cache,
        };
        let rng = seed::rng(self.seed, &format!("shuffle/{key}"));
        Ok((config, opener, rng))
    }

    /// The manifest's `metrics:`, each created by its plugin.
    pub(super) fn plugin_metrics(&mut self) -> Result<Vec<PluginMetric>> {
        let entries = self.manifest.metrics.clone();
        let (base, seed) = self.factory_context();
        let mut out = Vec::with_capacity(entries.len());
        for (name, entry) in entries {
            let lib = self.load_plugin(
                &format!("metrics.{name}"),
                &entry.plugin,
                entry.sha256.as_ref(),
            )?;
            let ctx = FactoryContext {
                base_dir: base.as_str().into(),
                seed,
            };
            let metric = lib
                .create_metric(&entry.kind, &params_json(&entry.params), ctx)
                .map_err(|e| self.manifest.error(format!("metrics.{name}: {e}")))?;
            out.push(PluginMetric {
                name,
                plugin: entry.plugin,
                predictions: entry.predictions,
                metric,
            });
        }
        Ok(out)
    }

    /// The run's optimizers: the model's parts with TF's defaults, overridden by the
    /// manifest's `optimizer:`.
    pub(super) fn optimizers(&self, session: &Session) -> Result<Optimizers> {
        let refuse = |why: String| session.spec_error(format!("optimizer_parts: {why}"));
        let asked = session
            .model
            .optimizer_parts()
            .into_result()
            .map_err(|e| refuse(e.to_string()))?;
        let declared: Vec<DeclaredPart> = asked
            .iter()
            .map(|part| {
                Ok(DeclaredPart {
                    name: part.name.to_string(),
                    variables: part.variables.to_string(),
                    optimizer: built_in::as_tagged_entry(&part.optimizer)?,
                })
            })
            .collect::<Result<_, Invalid>>()
            .map_err(|e| refuse(e.to_string()))?;
        Optimizers::resolve(&self.manifest.optimizer, declared, &session.vars)
            .map_err(|m| self.manifest.error(m))
    }

    /// Applies `warm_start_from`, if set, to a model that has no checkpoint: its variables
    /// and the optimizers' `slots`. In a data-parallel run rank 0 alone reads it (it may be
    /// on rank 0's disk only) and hands the values to the others.
    pub(super) fn warm_start<'s>(
        &self,
        session: &mut Session,
        slots: impl Iterator<Item = &'s mut Slot>,
    ) -> Result<()> {
        let Some(from) = &self.manifest.warm_start_from else {
            return Ok(());
        };
        let mut targets: Vec<Target<'_>> = session
            .vars
            .iter_mut()
            .map(|v| Target {
                name: &v.name,
                shape: &v.shape,
                data: &mut v.data,
                trainable: v.trainable,
            })
            .chain(slots.map(|s| Target {
                name: &s.name,
                shape: &s.shape,
                data: &mut s.data,
                trainable: false,
            }))
            .collect();
        let read = match self.replicas.is_chief() {
            true => warm_start::apply(
                from,
                &self.manifest.file,
                &self.manifest.base_dir,
                &mut targets,
                &mut session.global_step,
            )
            .map(drop),
            false => Ok(()),
        };
        self.replicas.agree(read)?;
        if self.replicas.is_distributed() {
            // Bit for bit through u64: a step is never negative, and `as` keeps the bits.
            session.global_step = self.replicas.broadcast_u64(session.global_step as u64) as i64;
            for target in &mut targets {
                self.replicas.broadcast_f32(target.data);
            }
        }
        Ok(())
    }

    /// Creates the model, its optimizers, the metrics and the training input, and reads the
    /// input's first batch: what `train` checks before it runs a step.
    pub(super) fn check_training_setup(&mut self, ckpt: Option<&mut Checkpoint>) -> Result<()> {
        let session = self.open_session(ckpt)?;
        self.plugin_metrics()?;
        self.optimizers(&session)?;
        self.pipeline("train", ModeKeys::Train)?.next_batch()?;
        Ok(())
    }

    /// What identifies an input's data and order: its entry in the manifest.
    pub(super) fn input_fingerprint(&self, key: &str) -> Result<String> {
        let e = self.manifest.input(key)?;
        let text = format!(
            "{}|{:?}|{}|{:?}|{}|{}|{}|{}",
            e.plugin,
            e.name,
            params_json(&e.params),
            e.shuffle,
            e.repeat,
            e.batch_size,
            e.drop_remainder,
            e.cache
        );
        Ok(crate::fingerprint::sha256_hex(text.as_bytes()))
    }

    /// What a checkpoint of this training run holds now.
    pub(super) fn training_state<'a>(
        &'a self,
        session: &'a Session,
        optimizer: &'a Optimizers,
        input_position: &'a PipelinePosition,
        input_fingerprint: &'a str,
        hook_states: serde_json::Map<String, serde_json::Value>,
    ) -> TrainingState<'a> {
        let variables = session.vars.iter().map(|v| SavedTensor {
            name: &v.name,
            shape: &v.shape,
            data: &v.data,
        });
        let slots = optimizer.slots().map(|s| SavedTensor {
            name: &s.name,
            shape: &s.shape,
            data: &s.data,
        });
        TrainingState {
            global_step: session.global_step,
            tensors: variables.chain(slots).collect(),
            provenance: Provenance {
                plugin: &session.lib.name,
                package: &session.lib.package,
                version: &session.lib.version,
                manifest_sha256: &self.manifest.sha256,
            },
            input_position,
            input_fingerprint,
            hook_states,
            optimizer_iterations: optimizer.iterations(),
        }
    }
}
