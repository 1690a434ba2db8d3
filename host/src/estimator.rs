//! The Estimator: `train`, `evaluate` and `predict` over a model plugin, as TF's
//! `tf.estimator.Estimator`.
//!
//! `train` reads like TF's: find the latest checkpoint and its global step; stop at once if
//! `max_steps` is already reached; create the model and its variables (initialised from the
//! seed, or restored); then run batches through model_fn, let the optimizer apply the
//! gradients, log, and save checkpoints on schedule and at the end. As in TF's runtime, the
//! loops run with subnormal floats flushed to zero (see [`crate::denormals`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use abi_stable::std_types::{ROption, RSlice};
use estimator_plugin_api::abi::{
    EstimatorSpec, FactoryContext, ModeKeys, ModelFnBox, StepContext, TensorBuf,
};
use tracing::info;

use crate::checkpoint::{self, Checkpoint, RetentionPolicy, SavedTensor, Saver};
use crate::checkpoint_saver::{CheckpointSaver, CheckpointSaverListener};
use crate::data::{BatchRef, Pipeline, PipelineConfig, PipelinePosition};
use crate::denormals::FlushDenormals;
use crate::error::{Error, Result};
use crate::eval_metrics::{EvalMetrics, PluginMetric};
use crate::events::SummaryWriter;
use crate::hooks::{
    Hook, HookConfig, HookSet, LoggingTensorHook, LoggingTensorSettings, NanTensorHook, RunInfo,
    RunValues, StepCounterHook, StepTimings, SummarySaverHook, SummarySaverSettings,
};
use crate::lock::ModelDirLock;
use crate::manifest::{params_json, Manifest, Sha256Pin};
use crate::optimizer::{DeclaredPart, Optimizers, Slot};
use crate::plugins::{PluginLibrary, PluginRegistry};
use crate::run_config::CheckpointEvery;
use crate::seed;
use crate::spec_check;
use crate::train_and_evaluate::{EvalListener, TrainAndEvaluateOutcome};
use crate::variables::VariableStore;
use crate::warm_start::{self, Target};

/// The manifest as resolved for the latest `train`, written into model_dir.
pub const RESOLVED_CONFIG: &str = "resolved_config.yaml";

/// Checkpoint metadata: where the training input stopped, and which input that was.
const INPUT_POSITION: &str = "input.train.position";
const INPUT_FINGERPRINT: &str = "input.train.fingerprint";
/// Checkpoint metadata: the training hooks' states, by hook name.
const HOOK_STATES: &str = "hooks.train";

/// When `train` stops, besides the end of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopAt {
    /// Run this many more steps than the latest checkpoint has (TF's `steps`).
    Steps(u64),
    /// Run until the global step reaches this value (TF's `max_steps`).
    MaxSteps(u64),
}

/// What `train` did.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOutcome {
    pub global_step: i64,
    /// The loss of the last step run, if any ran.
    pub final_loss: Option<f32>,
    /// Stopped by a stop request (a signal) before its end; a checkpoint was saved.
    pub interrupted: bool,
}

/// A model with its variables, ready to run model_fn.
struct Session {
    lib: Arc<PluginLibrary>,
    model: ModelFnBox,
    vars: VariableStore,
    global_step: i64,
}

/// TF's `Estimator`: trains, evaluates and predicts with the model a manifest names.
///
/// From Rust, with a hook of your own (the CLI does the same without the hook):
///
/// ```no_run
/// use estimator_host::estimator::StopAt;
/// use estimator_host::hooks::{Hook, HookContext, RunValues};
/// use estimator_host::plugins::PluginRegistry;
/// use estimator_host::{Estimator, Manifest, Result};
///
/// /// Stops training once the loss falls below a threshold.
/// struct LossBelow(f32);
///
/// impl Hook for LossBelow {
///     fn name(&self) -> &str {
///         "loss_below"
///     }
///
///     fn after_run(&mut self, values: &RunValues<'_>, ctx: &mut HookContext) -> Result<()> {
///         if values.loss.is_some_and(|loss| loss < self.0) {
///             ctx.request_stop();
///         }
///         Ok(())
///     }
/// }
///
/// fn main() -> Result<()> {
///     let manifest = Manifest::load("configs/iris_custom.yaml".as_ref())?;
///     let mut estimator = Estimator::new(manifest, PluginRegistry::from_env());
///     let mut early = LossBelow(0.1);
///     let outcome = estimator.train_with_hooks(Some(StopAt::MaxSteps(1000)), vec![&mut early])?;
///     let metrics = estimator.evaluate(None)?;
///     println!("global step {}: accuracy {}", outcome.global_step, metrics["accuracy"]);
///     Ok(())
/// }
/// ```
pub struct Estimator {
    manifest: Manifest,
    registry: PluginRegistry,
    seed: u64,
    stop: Arc<AtomicBool>,
}

impl Estimator {
    pub fn new(manifest: Manifest, registry: PluginRegistry) -> Self {
        let seed = manifest.run_config.random_seed.unwrap_or_else(|| {
            let s = seed::fresh();
            info!("run_config.random_seed is not set; using {s} for this run");
            s
        });
        Estimator {
            manifest,
            registry,
            seed,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn model_dir(&self) -> PathBuf {
        self.manifest.model_dir()
    }

    /// Trains until `stop` (or the manifest's `train:` section, or the end of the input,
    /// or a hook's or [`Estimator::stop_flag`]'s stop request).
    pub fn train(&mut self, stop: Option<StopAt>) -> Result<TrainOutcome> {
        self.train_with_hooks(stop, Vec::new())
    }

    /// [`Estimator::train`] with the caller's hooks running after the built-in ones.
    pub fn train_with_hooks(
        &mut self,
        stop: Option<StopAt>,
        user_hooks: Vec<&mut dyn Hook>,
    ) -> Result<TrainOutcome> {
        self.train_with(stop, user_hooks, Vec::new())
    }

    /// [`Estimator::train_with_hooks`] with listeners told of every checkpoint saved (TF's
    /// `saving_listeners`); they need checkpoints to be on.
    pub fn train_with(
        &mut self,
        stop: Option<StopAt>,
        user_hooks: Vec<&mut dyn Hook>,
        listeners: Vec<&mut dyn CheckpointSaverListener>,
    ) -> Result<TrainOutcome> {
        if !listeners.is_empty() && self.checkpoint_every().is_none() {
            return Err(self.manifest.error(
                "checkpoint listeners need checkpoints: set run_config.save_checkpoints_steps or save_checkpoints_secs",
            ));
        }
        let mut listeners = Some(listeners);
        let model_dir = self.model_dir();
        self.check_model_dir_is_a_folder(&model_dir)?;
        // Locked before reading, so the checkpoint we resume from stays the latest.
        let mut lock = ModelDirLock::acquire_existing(&model_dir)?;
        let mut restored = self.latest_checkpoint(&model_dir)?;
        let start_step = restored.as_ref().map_or(0, |c| c.global_step);
        let last_step = self.last_step(stop, start_step);
        if last_step.is_some_and(|last| start_step >= last) {
            // Build what a run would use all the same, so a misspelt param or a broken
            // input is refused now rather than when training is next extended.
            self.check_training_setup(restored.as_mut())?;
            info!(
                "Skipping training since max_steps has already saved (global step {start_step})."
            );
            return Ok(TrainOutcome {
                global_step: start_step,
                final_loss: None,
                interrupted: false,
            });
        }

        let _flush = FlushDenormals::new();
        let mut session = self.open_session(restored.as_mut())?;
        // Created only to refuse bad metric entries now, not after hours of training.
        self.plugin_metrics()?;
        let mut optimizer = self.optimizers(&session)?;
        let mut pipeline = self.pipeline("train", ModeKeys::Train)?;
        let mut hooks = HookSet::new(self.train_hooks(&session)?, user_hooks);
        hooks.begin(&RunInfo {
            mode: ModeKeys::Train,
            start_step,
            last_step,
        })?;
        match restored.as_mut() {
            Some(ckpt) => {
                for slot in optimizer.slots_mut() {
                    slot.data = ckpt.take(&slot.name, &slot.shape)?;
                }
                self.resume_input(&mut pipeline, ckpt)?;
                hooks.restore(&saved_hook_states(ckpt)?)?;
            }
            None => self.warm_start(&mut session, optimizer.slots_mut())?,
        }
        hooks.after_create_session(session.global_step)?;
        // The first checkpoint holds the starting step, so the input from before its batch.
        let start_position = pipeline.position();
        let trainable = optimizer.trainable().to_vec();
        let mut saver: Option<CheckpointSaver<'_>> = None;
        let mut listener_stop = false;
        let mut clock = StepClock::new(hooks.wants_timings());
        let (mut steps_run, mut interrupted) = (0u64, false);
        let mut last_spec: Option<(i64, usize, EstimatorSpec)> = None;

        loop {
            let done = last_step.is_some_and(|last| session.global_step >= last);
            if done || hooks.stop_requested() || listener_stop {
                break;
            }
            if self.stop.load(Ordering::Relaxed) {
                interrupted = true;
                break;
            }
            clock.start();
            hooks.before_run(session.global_step)?;
            clock.lap(Part::Hooks);
            let Some(batch) = pipeline.next_batch()? else {
                break;
            };
            clock.lap(Part::Input);
            let spec = run_model_fn(&mut session, &batch, ModeKeys::Train, self.seed)?;
            spec_check::check(&spec, ModeKeys::Train, &session.vars, &trainable, batch.len)
                .map_err(|message| Error::Spec {
                    plugin: session.lib.name.clone(),
                    message,
                })?;
            let batch_len = batch.len;
            clock.lap(Part::ModelFn);
            // A step whose loss is not finite is never applied: the nan_tensor hook then
            // fails the run or stops it, and the last checkpoint stays finite.
            let step = session.global_step;
            let finite = spec.loss.into_option().is_some_and(f32::is_finite);
            // model_dir is touched only once a step has been validated and is finite, so a
            // bad model or input leaves it as it was.
            if finite && steps_run == 0 && saver.is_none() {
                if lock.is_none() {
                    lock = Some(self.create_model_dir(&model_dir)?);
                }
                self.write_resolved_config(&model_dir)?;
                let listeners = listeners.take().unwrap_or_default();
                saver = self.checkpoint_saver(&model_dir, start_step, listeners)?;
                if let Some(s) = saver.as_mut() {
                    let states = hooks.states();
                    listener_stop |= self.save(s, &session, &optimizer, &start_position, states)?;
                }
                // Setting up model_dir is not part of the step the profiler reports.
                clock.start();
            }
            if finite {
                optimizer.apply(&mut session.vars, &spec.gradients, step);
                session.vars.assign(&spec.updates);
                session.global_step += 1;
                steps_run += 1;
            }
            clock.lap(Part::Optimizer);
            let values = RunValues {
                step,
                global_step: session.global_step,
                loss: spec.loss.into_option(),
                predictions: &spec.predictions,
                batch_len,
                learning_rate: optimizer.learning_rate_at(step),
                timings: clock.take(),
            };
            hooks
                .after_run(&values)
                .map_err(|e| self.hook_error(&session, e))?;
            clock.lap(Part::Hooks);
            if !finite {
                if !hooks.stop_requested() {
                    return Err(self.hook_error(
                        &session,
                        Error::Usage(format!("loss is not finite at global step {step}")),
                    ));
                }
                break;
            }
            last_spec = Some((step, batch_len, spec));
            if let Some(s) = saver.as_mut().filter(|s| s.is_due(session.global_step)) {
                let states = hooks.states();
                listener_stop |=
                    self.save(s, &session, &optimizer, &pipeline.position(), states)?;
            }
        }

        if steps_run == 0 && !interrupted && !hooks.stop_requested() && !listener_stop {
            return Err(self
                .manifest
                .error("input.train produced no examples: training made no steps"));
        }
        let final_loss = last_spec
            .as_ref()
            .and_then(|(_, _, s)| s.loss.into_option());
        let last_values = last_spec.as_ref().map(|(step, batch_len, spec)| RunValues {
            step: *step,
            global_step: session.global_step,
            loss: spec.loss.into_option(),
            predictions: &spec.predictions,
            batch_len: *batch_len,
            learning_rate: optimizer.learning_rate_at(*step),
            timings: None,
        });
        hooks.end(last_values.as_ref())?;
        if let Some(mut s) = saver {
            if s.last_saved_step() != session.global_step {
                let states = hooks.states();
                self.save(&mut s, &session, &optimizer, &pipeline.position(), states)?;
            }
            s.finish(session.global_step)?;
        }
        info!(
            "Loss for final step: {}.",
            final_loss.map_or("None".to_owned(), |l| l.to_string())
        );
        drop(lock);
        Ok(TrainOutcome {
            global_step: session.global_step,
            final_loss,
            interrupted,
        })
    }

    /// The built-in training hooks: TF's defaults (nan_tensor; logging_tensor and
    /// step_counter every `log_step_count_steps`), each replaced by a manifest hook of the
    /// same kind, then the manifest's others.
    fn train_hooks(&self, session: &Session) -> Result<Vec<Box<dyn Hook>>> {
        let configured = &self.manifest.hooks.train;
        let has = |kind: &str| configured.iter().any(|c| c.kind() == kind);
        let summaries = SummaryWriter::new(&self.model_dir());
        let mut hooks: Vec<Box<dyn Hook>> = Vec::new();
        // First, so that a NaN fails or stops the run before anything records it.
        if !has("nan_tensor") {
            hooks.push(Box::new(NanTensorHook::new(true)));
        }
        let every = self.manifest.run_config.save_summary_steps;
        if every > 0 && !has("summary_saver") {
            let settings = SummarySaverSettings {
                save_steps: Some(every),
                save_secs: None,
                tensors: Vec::new(),
            };
            let hook = SummarySaverHook::new(&settings, summaries.clone())
                .map_err(|m| self.manifest.error(m))?;
            hooks.push(Box::new(hook));
        }
        if let Some(n) = self.manifest.run_config.log_step_count_steps {
            if !has("logging_tensor") {
                let settings = LoggingTensorSettings {
                    tensors: vec!["loss".into(), "step".into()],
                    every_n_iter: Some(n),
                    every_n_secs: None,
                    at_end: false,
                };
                let hook = LoggingTensorHook::new(settings).map_err(|m| self.manifest.error(m))?;
                hooks.push(Box::new(hook));
            }
            if !has("step_counter") {
                let settings = crate::hooks::StepCounterSettings {
                    every_n_steps: Some(n),
                    every_n_secs: None,
                };
                let hook = StepCounterHook::new(&settings).map_err(|m| self.manifest.error(m))?;
                hooks.push(Box::new(hook.writing_to(summaries.clone())));
            }
        }
        hooks.extend(self.build_hooks("hooks.train", configured, &summaries)?);
        hooks.extend(self.requested_hooks(session, ModeKeys::Train, &summaries)?);
        Ok(hooks)
    }

    /// The hooks the model asks for in `mode` (TF's training, evaluation and prediction
    /// hooks in an EstimatorSpec), after the manifest's.
    fn requested_hooks(
        &self,
        session: &Session,
        mode: ModeKeys,
        summaries: &SummaryWriter,
    ) -> Result<Vec<Box<dyn Hook>>> {
        let refuse = |why: String| Error::Spec {
            plugin: session.lib.name.clone(),
            message: format!("requested_hooks in mode {mode}: {why}"),
        };
        let json = session
            .model
            .requested_hooks(mode)
            .into_result()
            .map_err(|e| refuse(e.to_string()))?;
        if json.is_empty() {
            return Ok(Vec::new());
        }
        let configs: Vec<HookConfig> =
            serde_json::from_str(&json).map_err(|e| refuse(e.to_string()))?;
        let model_dir = self.model_dir();
        configs
            .iter()
            .map(|c| c.build(summaries, &model_dir).map_err(&refuse))
            .collect()
    }

    /// The manifest's hooks for the `eval` or `predict` loop.
    fn loop_hooks(
        &self,
        name: &str,
        configs: &[HookConfig],
        session: &Session,
        mode: ModeKeys,
    ) -> Result<Vec<Box<dyn Hook>>> {
        let summaries = match name {
            "eval" => SummaryWriter::new(&self.eval_dir()),
            _ => SummaryWriter::new(&self.model_dir().join(name)),
        };
        let mut hooks = self.build_hooks(&format!("hooks.{name}"), configs, &summaries)?;
        hooks.extend(self.requested_hooks(session, mode, &summaries)?);
        Ok(hooks)
    }

    /// Builds the hooks a manifest lists under `key`, writing summaries through
    /// `summaries`; an error names the manifest and the key.
    fn build_hooks(
        &self,
        key: &str,
        configs: &[HookConfig],
        summaries: &SummaryWriter,
    ) -> Result<Vec<Box<dyn Hook>>> {
        let model_dir = self.model_dir();
        configs
            .iter()
            .map(|c| {
                c.build(summaries, &model_dir)
                    .map_err(|m| self.manifest.error(format!("{key}: {m}")))
            })
            .collect()
    }

    /// A hook's error about the model's output, naming the model's plugin and model_fn.
    fn hook_error(&self, session: &Session, e: Error) -> Error {
        match e {
            Error::Usage(message) => Error::Spec {
                plugin: session.lib.name.clone(),
                message,
            },
            other => other,
        }
    }

    /// Applies `warm_start_from`, if set, to a model that has no checkpoint.
    /// The run's optimizers: the model's parts with TF's defaults, overridden by the
    /// manifest's `optimizer:`.
    fn optimizers(&self, session: &Session) -> Result<Optimizers> {
        let refuse = |why: String| Error::Spec {
            plugin: session.lib.name.clone(),
            message: format!("optimizer_parts: {why}"),
        };
        let json = session
            .model
            .optimizer_parts()
            .into_result()
            .map_err(|e| refuse(e.to_string()))?;
        let declared: Vec<DeclaredPart> = match json.is_empty() {
            true => Vec::new(),
            false => serde_json::from_str(&json).map_err(|e| refuse(e.to_string()))?,
        };
        Optimizers::resolve(&self.manifest.optimizer, declared, &session.vars)
            .map_err(|m| self.manifest.error(m))
    }

    fn warm_start<'s>(
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
        warm_start::apply(
            from,
            &self.manifest.base_dir,
            &mut targets,
            &mut session.global_step,
        )
        .map_err(|e| match e {
            Error::Usage(m) => self.manifest.error(m),
            other => other,
        })?;
        Ok(())
    }

    /// TF's `train_and_evaluate` (local mode): trains as `train_spec` says, evaluating each
    /// new checkpoint as `eval_spec` says (see [`crate::train_and_evaluate`]). Returns the
    /// training's outcome and the last evaluation's metrics.
    pub fn train_and_evaluate(&mut self) -> Result<TrainAndEvaluateOutcome> {
        self.train_and_evaluate_with_hooks(Vec::new())
    }

    /// [`Estimator::train_and_evaluate`] with the caller's training hooks.
    pub fn train_and_evaluate_with_hooks(
        &mut self,
        user_hooks: Vec<&mut dyn Hook>,
    ) -> Result<TrainAndEvaluateOutcome> {
        let train_spec = self.manifest.train_spec.clone().unwrap_or_default();
        let eval_spec = self.manifest.eval_spec.clone().unwrap_or_default();
        let every = self.checkpoint_every().ok_or_else(|| {
            self.manifest.error("train-and-evaluate evaluates checkpoints: set run_config.save_checkpoints_steps or save_checkpoints_secs")
        })?;
        let mut eval_manifest = self.manifest.clone();
        eval_manifest.eval.steps = eval_spec.steps;
        eval_manifest.eval.name = eval_spec.name.clone();
        eval_manifest
            .hooks
            .eval
            .extend(eval_spec.hooks.iter().cloned());
        eval_manifest.run_config.random_seed = Some(self.seed);
        let registry = PluginRegistry::with_search_dirs(self.registry.search_dirs().to_vec());
        let mut listener = EvalListener::new(
            Estimator::new(eval_manifest, registry),
            eval_spec.throttle_secs,
        );
        let summaries = SummaryWriter::new(&self.model_dir());
        let mut spec_hooks = self.build_hooks("train_spec.hooks", &train_spec.hooks, &summaries)?;
        info!("Start train and evaluate loop. The evaluate will happen after every checkpoint. Checkpoint frequency is determined based on RunConfig arguments: {every:?}");
        let mut hooks: Vec<&mut dyn Hook> = spec_hooks
            .iter_mut()
            .map(|h| &mut **h as &mut dyn Hook)
            .collect();
        hooks.extend(user_hooks.into_iter().map(|h| h as &mut dyn Hook));
        let stop = train_spec.max_steps.map(StopAt::MaxSteps);
        let train = self.train_with(stop, hooks, vec![&mut listener])?;
        let metrics = match (listener.metrics.take(), train.interrupted) {
            (Some(m), _) => m,
            (None, true) => BTreeMap::new(),
            (None, false) => {
                return Err(self.manifest.error(
                    "there was no new checkpoint after the training, so nothing to evaluate",
                ))
            }
        };
        Ok(TrainAndEvaluateOutcome { train, metrics })
    }

    /// When training writes checkpoints: a `checkpoint_saver` hook's schedule (in
    /// `hooks.train` or `train_spec.hooks`), else run_config's; `None` for never.
    fn checkpoint_every(&self) -> Option<CheckpointEvery> {
        let spec_hooks = self.manifest.train_spec.iter().flat_map(|t| &t.hooks);
        let configured = self.manifest.hooks.train.iter().chain(spec_hooks);
        // The last one listed wins, as later settings do.
        let schedules: Vec<CheckpointEvery> = configured
            .filter_map(|c| match c {
                HookConfig::CheckpointSaver(s) => s.every().ok(),
                _ => None,
            })
            .collect();
        schedules
            .last()
            .copied()
            .or(self.manifest.run_config.checkpoint_every)
    }

    /// The global step to stop at: the CLI's, else the manifest's `train:`, else none.
    fn last_step(&self, stop: Option<StopAt>, start_step: i64) -> Option<i64> {
        let train = &self.manifest.train;
        let stop = stop.or(match (train.steps, train.max_steps) {
            (Some(n), _) => Some(StopAt::Steps(n)),
            (_, Some(m)) => Some(StopAt::MaxSteps(m)),
            _ => None,
        });
        stop.map(|s| match s {
            StopAt::Steps(n) => start_step.saturating_add(n as i64),
            StopAt::MaxSteps(m) => m as i64,
        })
    }

    /// A flag that, once set, makes `train` stop after the current step, save a
    /// checkpoint and return with `interrupted`. The CLI sets it on SIGINT and SIGTERM.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// The checkpoint writer for this run, or `None` when run_config turns checkpoints off.
    fn checkpoint_saver<'l>(
        &self,
        model_dir: &Path,
        start_step: i64,
        listeners: Vec<&'l mut dyn CheckpointSaverListener>,
    ) -> Result<Option<CheckpointSaver<'l>>> {
        let rc = &self.manifest.run_config;
        let Some(every) = self.checkpoint_every() else {
            return Ok(None);
        };
        let policy = RetentionPolicy {
            keep_max: rc.keep_checkpoint_max,
            keep_every_secs: rc.keep_checkpoint_every_n_hours * 3600.0,
        };
        let saver = Saver::new(model_dir, policy, checkpoint::system_clock())?;
        Ok(Some(CheckpointSaver::new(
            saver, every, start_step, listeners,
        )?))
    }

    /// Writes the manifest with every default filled in, and the seed this run uses.
    /// Replaced whole (temp file and rename) but not synced to disk: it is a record for
    /// people, not something a resumed run needs.
    fn write_resolved_config(&self, model_dir: &Path) -> Result<()> {
        let text = self.resolved_config()?;
        let path = model_dir.join(RESOLVED_CONFIG);
        let temp = model_dir.join(format!(".tmp-{RESOLVED_CONFIG}"));
        let context = |e| Error::io(format!("{}: cannot write", path.display()), e);
        std::fs::write(&temp, text).map_err(context)?;
        std::fs::rename(&temp, &path).map_err(context)
    }

    /// The manifest as this run sees it: defaults filled in, the seed fixed, as YAML.
    pub fn resolved_config(&self) -> Result<String> {
        let mut manifest = self.manifest.clone();
        manifest.run_config.random_seed = Some(self.seed);
        manifest.to_yaml()
    }

    /// Evaluates the latest checkpoint (or `checkpoint`) on `input.eval`; returns TF's dict.
    pub fn evaluate(&mut self, checkpoint: Option<&Path>) -> Result<BTreeMap<String, f64>> {
        self.evaluate_with_hooks(checkpoint, Vec::new())
    }

    /// [`Estimator::evaluate`] with the caller's hooks after the manifest's `hooks.eval`.
    /// In EVAL, [`RunValues::step`] counts batches from 0.
    pub fn evaluate_with_hooks(
        &mut self,
        checkpoint: Option<&Path>,
        user_hooks: Vec<&mut dyn Hook>,
    ) -> Result<BTreeMap<String, f64>> {
        let mut ckpt = self.checkpoint_for("evaluate", checkpoint)?;
        let _flush = FlushDenormals::new();
        let mut session = self.open_session(ckpt.as_mut())?;
        if ckpt.is_none() {
            self.warm_start(&mut session, std::iter::empty())?;
        }
        let mut metrics = EvalMetrics::new(self.plugin_metrics()?);
        let mut pipeline = self.pipeline("eval", ModeKeys::Eval)?;
        let mut hooks = HookSet::new(
            self.loop_hooks("eval", &self.manifest.hooks.eval, &session, ModeKeys::Eval)?,
            user_hooks,
        );
        let global_step = session.global_step;
        hooks.begin(&RunInfo {
            mode: ModeKeys::Eval,
            start_step: global_step,
            last_step: self.manifest.eval.steps.map(|n| n as i64),
        })?;
        hooks.after_create_session(global_step)?;
        let started = Instant::now();
        info!("Starting evaluation at global step {global_step}");
        let mut last: Option<(usize, EstimatorSpec)> = None;
        let mut step = 0;
        while self.manifest.eval.steps.is_none_or(|n| step < n) && !hooks.stop_requested() {
            hooks.before_run(global_step)?;
            let Some(batch) = pipeline.next_batch()? else {
                break;
            };
            let spec = run_model_fn(&mut session, &batch, ModeKeys::Eval, self.seed)?;
            spec_check::check(&spec, ModeKeys::Eval, &session.vars, &[], batch.len).map_err(
                |message| Error::Spec {
                    plugin: session.lib.name.clone(),
                    message,
                },
            )?;
            metrics.update(&spec, batch.labels.as_ref())?;
            hooks.after_run(&loop_values(step as i64, global_step, batch.len, &spec))?;
            last = Some((batch.len, spec));
            step += 1;
        }
        let last_values = last
            .as_ref()
            .map(|(len, spec)| loop_values(step as i64 - 1, global_step, *len, spec));
        hooks.end(last_values.as_ref())?;
        if metrics.batches() == 0 {
            return Err(self.manifest.error("input.eval produced no examples"));
        }
        let results = metrics.results(session.global_step, &session.model, &session.lib.name)?;
        info!("Inference Time : {:.5}s", started.elapsed().as_secs_f64());
        let line: Vec<String> = results
            .iter()
            .map(|(k, v)| format!("{k} = {}", format_value(k, *v)))
            .collect();
        info!(
            "Saving dict for global step {}: {}",
            session.global_step,
            line.join(", ")
        );
        let scalars: Vec<(&str, f32)> = results
            .iter()
            .filter(|(k, _)| k.as_str() != "global_step")
            .map(|(k, v)| (k.as_str(), *v as f32))
            .collect();
        SummaryWriter::new(&self.eval_dir()).scalars(session.global_step, &scalars)?;
        Ok(results)
    }

    /// Where evaluation summaries go: `eval/`, or `eval_<name>/` for a named evaluation.
    pub fn eval_dir(&self) -> PathBuf {
        match &self.manifest.eval.name {
            Some(name) => self.model_dir().join(format!("eval_{name}")),
            None => self.model_dir().join("eval"),
        }
    }

    /// Runs PREDICT over `input.predict` (or `input.eval` without labels), handing each
    /// example's predictions to `sink` as a JSON object. Returns the number of examples.
    pub fn predict(
        &mut self,
        checkpoint: Option<&Path>,
        sink: impl FnMut(serde_json::Map<String, serde_json::Value>) -> Result<()>,
    ) -> Result<usize> {
        self.predict_with_hooks(checkpoint, Vec::new(), sink)
    }

    /// [`Estimator::predict`] with the caller's hooks after the manifest's
    /// `hooks.predict`. In PREDICT, [`RunValues::step`] counts batches from 0.
    pub fn predict_with_hooks(
        &mut self,
        checkpoint: Option<&Path>,
        user_hooks: Vec<&mut dyn Hook>,
        mut sink: impl FnMut(serde_json::Map<String, serde_json::Value>) -> Result<()>,
    ) -> Result<usize> {
        let mut ckpt = self.checkpoint_for("predict", checkpoint)?;
        let _flush = FlushDenormals::new();
        let mut session = self.open_session(ckpt.as_mut())?;
        if ckpt.is_none() {
            self.warm_start(&mut session, std::iter::empty())?;
        }
        let mut pipeline = self.pipeline("predict", ModeKeys::Predict)?;
        let mut hooks = HookSet::new(
            self.loop_hooks(
                "predict",
                &self.manifest.hooks.predict,
                &session,
                ModeKeys::Predict,
            )?,
            user_hooks,
        );
        let global_step = session.global_step;
        hooks.begin(&RunInfo {
            mode: ModeKeys::Predict,
            start_step: global_step,
            last_step: None,
        })?;
        hooks.after_create_session(global_step)?;
        let (mut examples, mut step) = (0, 0i64);
        let mut last: Option<(usize, EstimatorSpec)> = None;
        while !hooks.stop_requested() {
            hooks.before_run(global_step)?;
            let Some(mut batch) = pipeline.next_batch()? else {
                break;
            };
            batch.labels = None;
            let spec = run_model_fn(&mut session, &batch, ModeKeys::Predict, self.seed)?;
            spec_check::check(&spec, ModeKeys::Predict, &session.vars, &[], batch.len).map_err(
                |message| Error::Spec {
                    plugin: session.lib.name.clone(),
                    message,
                },
            )?;
            for row in 0..batch.len {
                sink(example_json(&spec, row))?;
            }
            examples += batch.len;
            hooks.after_run(&loop_values(step, global_step, batch.len, &spec))?;
            last = Some((batch.len, spec));
            step += 1;
        }
        let last_values = last
            .as_ref()
            .map(|(len, spec)| loop_values(step - 1, global_step, *len, spec));
        hooks.end(last_values.as_ref())?;
        Ok(examples)
    }

    /// Creates and locks a model_dir that did not exist when training started, refusing
    /// if another run has written a checkpoint there in the meantime.
    fn create_model_dir(&self, model_dir: &Path) -> Result<ModelDirLock> {
        std::fs::create_dir_all(model_dir)
            .map_err(|e| Error::io(format!("{}: cannot create", model_dir.display()), e))?;
        let lock = ModelDirLock::acquire(model_dir)?;
        if checkpoint::latest(model_dir)?.is_some() {
            return Err(Error::Usage(format!(
                "{}: another run started training in this model_dir meanwhile",
                model_dir.display()
            )));
        }
        Ok(lock)
    }

    fn latest_checkpoint(&self, model_dir: &Path) -> Result<Option<Checkpoint>> {
        self.check_model_dir_is_a_folder(model_dir)?;
        checkpoint::read_latest_whole(model_dir)
    }

    /// A model_dir that exists must be a folder: a file there is the user's mistake.
    fn check_model_dir_is_a_folder(&self, model_dir: &Path) -> Result<()> {
        match model_dir.exists() && !model_dir.is_dir() {
            true => Err(self.manifest.error(format!(
                "model_dir: {} is a file, not a folder",
                model_dir.display()
            ))),
            false => Ok(()),
        }
    }

    /// Creates the model, its optimizers, the metrics and the training input, and reads the
    /// input's first batch: what `train` checks before it runs a step.
    fn check_training_setup(&mut self, ckpt: Option<&mut Checkpoint>) -> Result<()> {
        let session = self.open_session(ckpt)?;
        self.plugin_metrics()?;
        self.optimizers(&session)?;
        self.pipeline("train", ModeKeys::Train)?.next_batch()?;
        Ok(())
    }

    /// The checkpoint evaluate or predict uses: the one given, else the latest, else none
    /// (fresh initialisation, as TF).
    fn checkpoint_for(&self, what: &str, given: Option<&Path>) -> Result<Option<Checkpoint>> {
        if let Some(path) = given {
            return checkpoint::read(path).map(Some);
        }
        let model_dir = self.model_dir();
        let latest = self.latest_checkpoint(&model_dir)?;
        if latest.is_none() {
            info!(
                "Could not find trained model in model_dir: {}, running initialization to {what}.",
                model_dir.display()
            );
        }
        Ok(latest)
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

    fn factory_context(&self) -> (String, u64) {
        (
            self.manifest.base_dir.to_string_lossy().into_owned(),
            self.seed,
        )
    }

    fn open_session(&mut self, restore: Option<&mut Checkpoint>) -> Result<Session> {
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
        })
    }

    fn pipeline(&mut self, key: &str, mode: ModeKeys) -> Result<Pipeline> {
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
        Ok(Pipeline::new(
            config,
            opener,
            seed::rng(self.seed, &format!("shuffle/{key}")),
        ))
    }

    fn plugin_metrics(&mut self) -> Result<Vec<PluginMetric>> {
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

    /// Moves the training input to where `ckpt` left it, when the checkpoint has a
    /// position for the same input; otherwise the input starts over, as in TF.
    fn resume_input(&self, pipeline: &mut Pipeline, ckpt: &Checkpoint) -> Result<()> {
        let fingerprint = self.input_fingerprint("train")?;
        let saved = ckpt.metadata.get(INPUT_POSITION);
        match (saved, ckpt.metadata.get(INPUT_FINGERPRINT)) {
            (Some(position), Some(saved)) if *saved == fingerprint => {
                let position: PipelinePosition =
                    serde_json::from_str(position).map_err(|e| Error::Checkpoint {
                        path: ckpt.path.clone(),
                        message: format!("{INPUT_POSITION}: {e}"),
                    })?;
                pipeline.seek(&position)
            }
            (Some(_), Some(_)) => {
                info!("input.train differs from the one {} was trained with: it starts from the beginning", ckpt.path.display());
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// What identifies an input's data and order: its entry in the manifest.
    fn input_fingerprint(&self, key: &str) -> Result<String> {
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
        Ok(seed::sha256_hex(text.as_bytes()))
    }

    fn save(
        &self,
        saver: &mut CheckpointSaver<'_>,
        session: &Session,
        optimizer: &Optimizers,
        input: &PipelinePosition,
        hook_states: serde_json::Map<String, serde_json::Value>,
    ) -> Result<bool> {
        let mut tensors: Vec<SavedTensor<'_>> = session
            .vars
            .iter()
            .map(|v| SavedTensor {
                name: &v.name,
                shape: &v.shape,
                data: &v.data,
            })
            .collect();
        tensors.extend(optimizer.slots().map(|s| SavedTensor {
            name: &s.name,
            shape: &s.shape,
            data: &s.data,
        }));
        let metadata = BTreeMap::from([
            ("format".to_owned(), "estimator-checkpoint/1".to_owned()),
            ("plugin".to_owned(), session.lib.name.clone()),
            ("plugin_package".to_owned(), session.lib.package.clone()),
            ("plugin_version".to_owned(), session.lib.version.clone()),
            ("manifest_sha256".to_owned(), self.manifest.sha256.clone()),
            (
                INPUT_POSITION.to_owned(),
                serde_json::to_string(input).unwrap_or_default(),
            ),
            (
                INPUT_FINGERPRINT.to_owned(),
                self.input_fingerprint("train")?,
            ),
            (
                HOOK_STATES.to_owned(),
                serde_json::Value::Object(hook_states).to_string(),
            ),
        ]);
        let bytes = checkpoint::encode(&tensors, session.global_step, &metadata)?;
        info!(
            "Saving checkpoints for {} into {}.",
            session.global_step,
            self.model_dir()
                .join(checkpoint::file_name(session.global_step))
                .display()
        );
        saver.save(session.global_step, bytes)
    }
}

/// What an EVAL or PREDICT step shows its hooks.
fn loop_values(
    step: i64,
    global_step: i64,
    batch_len: usize,
    spec: &EstimatorSpec,
) -> RunValues<'_> {
    RunValues {
        step,
        global_step,
        loss: spec.loss.into_option(),
        predictions: &spec.predictions,
        batch_len,
        learning_rate: None,
        timings: None,
    }
}

/// The parts of a step the profiler reports.
#[derive(Clone, Copy)]
enum Part {
    Input,
    ModelFn,
    Optimizer,
    Hooks,
}

/// Times the parts of each step, only when a hook asks for it.
struct StepClock {
    on: bool,
    last: Instant,
    current: StepTimings,
}

impl StepClock {
    fn new(on: bool) -> Self {
        StepClock {
            on,
            last: Instant::now(),
            current: StepTimings::default(),
        }
    }

    fn start(&mut self) {
        if self.on {
            self.last = Instant::now();
        }
    }

    /// Adds the time since the last lap to `part`.
    fn lap(&mut self, part: Part) {
        if !self.on {
            return;
        }
        let now = Instant::now();
        let spent = now - self.last;
        self.last = now;
        let slot = match part {
            Part::Input => &mut self.current.input,
            Part::ModelFn => &mut self.current.model_fn,
            Part::Optimizer => &mut self.current.optimizer,
            Part::Hooks => &mut self.current.hooks,
        };
        *slot += spent;
    }

    /// This step's timings so far, starting the next step's.
    fn take(&mut self) -> Option<StepTimings> {
        self.on.then(|| std::mem::take(&mut self.current))
    }
}

/// The hooks' states a checkpoint holds; none for checkpoints written before hooks had any.
fn saved_hook_states(ckpt: &Checkpoint) -> Result<serde_json::Map<String, serde_json::Value>> {
    match ckpt.metadata.get(HOOK_STATES) {
        None => Ok(serde_json::Map::new()),
        Some(text) => serde_json::from_str(text).map_err(|e| Error::Checkpoint {
            path: ckpt.path.clone(),
            message: format!("{HOOK_STATES}: {e}"),
        }),
    }
}

fn run_model_fn(
    session: &mut Session,
    batch: &BatchRef<'_>,
    mode: ModeKeys,
    run_seed: u64,
) -> Result<EstimatorSpec> {
    let variables = session.vars.views();
    let ctx = StepContext {
        global_step: session.global_step,
        seed: seed::step_seed(run_seed, session.global_step),
    };
    let labels: ROption<_> = batch.labels.into();
    session
        .model
        .model_fn(
            RSlice::from_slice(&batch.features),
            labels,
            mode,
            RSlice::from_slice(&variables),
            ctx,
        )
        .into_result()
        .map_err(|e| Error::PluginCall {
            plugin: session.lib.name.clone(),
            call: format!("model_fn in mode {mode}"),
            source: e,
        })
}

fn format_value(key: &str, v: f64) -> String {
    if key == "global_step" {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// One example's predictions: each tensor's row `row`, as a scalar for `[batch]` tensors and
/// as a (nested) list otherwise.
fn example_json(spec: &EstimatorSpec, row: usize) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::Value;
    let mut out = serde_json::Map::new();
    for p in spec.predictions.iter() {
        let t = &p.tensor;
        let row_shape = &t.shape[1..];
        let width: usize = row_shape.iter().product();
        let range = row * width..(row + 1) * width;
        let values: Vec<Value> = match &t.data {
            TensorBuf::F32(v) => v[range].iter().map(|&x| f32_json(x)).collect(),
            TensorBuf::I64(v) => v[range].iter().map(|&x| Value::from(x)).collect(),
            TensorBuf::Str(v) => v[range].iter().map(|s| Value::from(s.as_str())).collect(),
        };
        out.insert(p.name.to_string(), nest(values, row_shape));
    }
    out
}

fn nest(values: Vec<serde_json::Value>, shape: &[usize]) -> serde_json::Value {
    match shape {
        [] => values.into_iter().next().unwrap_or(serde_json::Value::Null),
        [_] => serde_json::Value::Array(values),
        [_, rest @ ..] => {
            let inner: usize = rest.iter().product();
            let chunks: Vec<serde_json::Value> = values
                .chunks(inner.max(1))
                .map(|c| nest(c.to_vec(), rest))
                .collect();
            serde_json::Value::Array(chunks)
        }
    }
}

/// An f32 as JSON with its shortest decimal form (`0.1`, not `0.10000000149011612`).
fn f32_json(x: f32) -> serde_json::Value {
    x.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(serde_json::Value::Null, serde_json::Value::Number)
}
