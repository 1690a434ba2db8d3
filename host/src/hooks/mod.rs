//! Hooks: code that runs around every step of a loop, as TF's `SessionRunHook`.
//!
//! The loop calls, in order: [`Hook::begin`] once; [`Hook::after_create_session`] once the
//! variables exist (initialised, restored or warm-started); [`Hook::before_run`] and
//! [`Hook::after_run`] around every step; [`Hook::end`] once at the end, however the loop
//! ends short of an error. A hook stops the loop with [`HookContext::request_stop`]; the
//! loop finishes the step, saves, and calls `end`.
//!
//! The built-in hooks are configured in the manifest's `hooks:` (see `docs/manifest.md`);
//! a library user passes their own as `Box<dyn Hook>`.

mod checkpoint_saver;
mod early_stopping;
mod final_ops;
mod logging_tensor;
mod nan_tensor;
mod profiler;
mod step_counter;
mod stop_at_step;
mod summary_saver;

use crate::error::Invalid;
use std::path::Path;
use std::time::Duration;

use estimator_plugin_api::abi::{ModeKeys, NamedTensor};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::events::SummaryWriter;

pub(crate) use checkpoint_saver::CheckpointSaverHook;
pub use checkpoint_saver::CheckpointSaverListener;
pub use early_stopping::{EarlyStoppingHook, Rule as EarlyStoppingRule};
pub use final_ops::FinalOpsHook;
pub use logging_tensor::{LoggingTensorHook, LoggingTensorSettings};
pub use nan_tensor::NanTensorHook;
pub use profiler::ProfilerHook;
pub use step_counter::{Settings as StepCounterSettings, StepCounterHook};
pub use stop_at_step::StopAtStepHook;
pub use summary_saver::{Settings as SummarySaverSettings, SummarySaverHook};

/// What a loop tells its hooks about itself.
#[derive(Clone, Debug)]
pub struct RunInfo {
    pub mode: ModeKeys,
    /// The global step the loop starts at.
    pub start_step: i64,
    /// Where it will stop if nothing stops it sooner: the last global step in TRAIN, the
    /// number of batches in EVAL; `None` when only the input's end will tell.
    pub last_step: Option<i64>,
    /// The model's plugin, which an error about the model's output names.
    pub model_plugin: String,
}

/// What a step produced, for `after_run`.
#[derive(Debug)]
pub struct RunValues<'a> {
    /// The global step the batch ran at (TF's logged `step`).
    pub step: i64,
    /// The global step after the step (TRAIN counts it; EVAL and PREDICT do not).
    pub global_step: i64,
    /// The step's loss (TRAIN and EVAL).
    pub loss: Option<f32>,
    /// The step's predictions, by name.
    pub predictions: &'a [NamedTensor],
    /// The examples in the step's batch.
    pub batch_len: usize,
    /// The optimizer's learning rate for the step (TRAIN).
    pub learning_rate: Option<f32>,
    /// Where the step's time went; present when a hook asks for it (the profiler).
    pub timings: Option<StepTimings>,
}

impl RunValues<'_> {
    /// A scalar by name: `loss`, `global_step`, or the mean of a numeric prediction.
    pub fn scalar(&self, name: &str) -> Option<f64> {
        match name {
            "loss" => self.loss.map(f64::from),
            "global_step" => Some(self.global_step as f64),
            _ => {
                let t = &self
                    .predictions
                    .iter()
                    .find(|p| p.name.as_str() == name)?
                    .tensor;
                let values: Vec<f64> = match &t.data {
                    estimator_plugin_api::abi::TensorBuf::F32(v) => {
                        v.iter().map(|&x| f64::from(x)).collect()
                    }
                    estimator_plugin_api::abi::TensorBuf::I64(v) => {
                        v.iter().map(|&x| x as f64).collect()
                    }
                    estimator_plugin_api::abi::TensorBuf::Str(_) => return None,
                };
                (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
            }
        }
    }
}

/// The time one step spent in each part of the loop.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepTimings {
    pub input: Duration,
    pub model_fn: Duration,
    pub optimizer: Duration,
    /// `before_run` and `after_run` of every hook, for the previous step.
    pub hooks: Duration,
}

/// What a hook can do to the loop.
#[derive(Debug, Default)]
pub struct HookContext {
    stop: bool,
}

impl HookContext {
    /// Ends the loop after the current step.
    pub fn request_stop(&mut self) {
        self.stop = true;
    }

    pub fn stop_requested(&self) -> bool {
        self.stop
    }
}

/// TF's `SessionRunHook`. Every method has a do-nothing default.
pub trait Hook: Send {
    /// The hook's name in logs and in checkpoints (its saved state is keyed by it).
    fn name(&self) -> &str;

    fn begin(&mut self, _run: &RunInfo) -> Result<()> {
        Ok(())
    }

    /// The variables exist; `global_step` is where the loop starts.
    fn after_create_session(&mut self, _global_step: i64, _ctx: &mut HookContext) -> Result<()> {
        Ok(())
    }

    /// Before a step that will run at `global_step`.
    fn before_run(&mut self, _global_step: i64) -> Result<()> {
        Ok(())
    }

    fn after_run(&mut self, _values: &RunValues<'_>, _ctx: &mut HookContext) -> Result<()> {
        Ok(())
    }

    /// At the end, with the last step's values if any step ran.
    fn end(&mut self, _last: Option<&RunValues<'_>>) -> Result<()> {
        Ok(())
    }

    /// Whether `after_run` needs [`RunValues::timings`].
    fn wants_timings(&self) -> bool {
        false
    }

    /// State to keep in checkpoints, so a resumed run continues as if never stopped.
    fn state(&self) -> Option<serde_json::Value> {
        None
    }

    fn restore(&mut self, _state: &serde_json::Value) -> Result<()> {
        Ok(())
    }
}

/// A built-in hook as the manifest's `hooks:` lists it, by TF's name.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum HookConfig {
    LoggingTensor(LoggingTensorSettings),
    StopAtStep(stop_at_step::Settings),
    StepCounter(step_counter::Settings),
    NanTensor(nan_tensor::Settings),
    FinalOps(final_ops::Settings),
    Profiler(profiler::Settings),
    SummarySaver(summary_saver::Settings),
    StopIfHigher(early_stopping::Settings),
    StopIfLower(early_stopping::Settings),
    StopIfNoDecrease(early_stopping::Settings),
    StopIfNoIncrease(early_stopping::Settings),
    CheckpointSaver(CheckpointSaverSettings),
}

/// `checkpoint_saver` in `hooks.train`: when the loop writes checkpoints, instead of
/// run_config's frequency; [`CheckpointSaverHook`] does the saving.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSaverSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save_steps: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save_secs: Option<u64>,
}

impl CheckpointSaverSettings {
    pub fn every(&self) -> Result<crate::config::CheckpointEvery, Invalid> {
        use crate::config::CheckpointEvery;
        match (self.save_steps, self.save_secs) {
            (Some(n), None) if n > 0 => Ok(CheckpointEvery::Steps(n)),
            (None, Some(s)) if s > 0 => Ok(CheckpointEvery::Secs(s)),
            _ => Err(
                "checkpoint_saver: exactly one of save_steps and save_secs must be set, > 0".into(),
            ),
        }
    }
}

impl HookConfig {
    /// The hook, writing any summaries through `summaries`; `model_dir` anchors the
    /// early-stopping hooks' eval folder. `checkpoint_saver` builds none here: it sets the
    /// schedule of the loop's [`CheckpointSaverHook`] ([`CheckpointSaverHook::schedule_of`]),
    /// and is only checked.
    pub fn build(
        &self,
        summaries: &SummaryWriter,
        model_dir: &Path,
    ) -> Result<Option<Box<dyn Hook>>, Invalid> {
        use early_stopping::Rule;
        let stop = |rule, s: &early_stopping::Settings| -> Result<Box<dyn Hook>, Invalid> {
            Ok(Box::new(EarlyStoppingHook::new(
                rule,
                s.clone(),
                model_dir,
            )?))
        };
        Ok(Some(match self {
            HookConfig::CheckpointSaver(s) => {
                s.every()?;
                return Ok(None);
            }
            HookConfig::StopIfHigher(s) => stop(Rule::Higher, s)?,
            HookConfig::StopIfLower(s) => stop(Rule::Lower, s)?,
            HookConfig::StopIfNoDecrease(s) => stop(Rule::NoDecrease, s)?,
            HookConfig::StopIfNoIncrease(s) => stop(Rule::NoIncrease, s)?,
            HookConfig::LoggingTensor(s) => Box::new(LoggingTensorHook::new(s.clone())?),
            HookConfig::StopAtStep(s) => Box::new(StopAtStepHook::new(s)?),
            HookConfig::StepCounter(s) => {
                Box::new(StepCounterHook::new(s)?.writing_to(summaries.clone()))
            }
            HookConfig::SummarySaver(s) => Box::new(SummarySaverHook::new(s, summaries.clone())?),
            HookConfig::NanTensor(s) => Box::new(NanTensorHook::new(s.fail_on_nan_loss)),
            HookConfig::FinalOps(s) => Box::new(FinalOpsHook::new(s.clone())),
            HookConfig::Profiler(s) => Box::new(ProfilerHook::new(s)?),
        }))
    }

    /// Whether this replaces the default hook of the same kind (TF's defaults are
    /// `nan_tensor`, and `logging_tensor` + `step_counter` from `log_step_count_steps`).
    pub fn kind(&self) -> &'static str {
        match self {
            HookConfig::LoggingTensor(_) => "logging_tensor",
            HookConfig::StopAtStep(_) => "stop_at_step",
            HookConfig::StepCounter(_) => "step_counter",
            HookConfig::NanTensor(_) => "nan_tensor",
            HookConfig::FinalOps(_) => "final_ops",
            HookConfig::Profiler(_) => "profiler",
            HookConfig::SummarySaver(_) => "summary_saver",
            HookConfig::StopIfHigher(_) => "stop_if_higher",
            HookConfig::StopIfLower(_) => "stop_if_lower",
            HookConfig::StopIfNoDecrease(_) => "stop_if_no_decrease",
            HookConfig::StopIfNoIncrease(_) => "stop_if_no_increase",
            HookConfig::CheckpointSaver(_) => "checkpoint_saver",
        }
    }
}

/// `hooks:` in the manifest: the built-in hooks for each loop.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HooksSection {
    // `- logging_tensor: {...}` is a one-key map in YAML, not serde_yaml's `!tag` form.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "serde_yaml::with::singleton_map_recursive"
    )]
    pub train: Vec<HookConfig>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "serde_yaml::with::singleton_map_recursive"
    )]
    pub eval: Vec<HookConfig>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "serde_yaml::with::singleton_map_recursive"
    )]
    pub predict: Vec<HookConfig>,
}

impl HooksSection {
    pub fn is_empty(&self) -> bool {
        self.train.is_empty() && self.eval.is_empty() && self.predict.is_empty()
    }
}

/// Every period a hook can fire on: every N steps, every N seconds, or only at the end.
#[derive(Debug)]
pub(crate) struct Timer {
    every_steps: Option<u64>,
    every_secs: Option<f64>,
    last: Option<(i64, std::time::Instant)>,
}

impl Timer {
    pub(crate) fn new(every_steps: Option<u64>, every_secs: Option<f64>) -> Self {
        Timer {
            every_steps,
            every_secs,
            last: None,
        }
    }

    /// Whether to fire at `step`: on the first step, then when enough steps or seconds
    /// have passed since the last firing (TF's `SecondOrStepTimer`).
    pub(crate) fn should_fire(&self, step: i64) -> bool {
        let Some((last_step, last_time)) = self.last else {
            return self.every_steps.is_some() || self.every_secs.is_some();
        };
        if let Some(n) = self.every_steps {
            return step >= last_step + n as i64;
        }
        if let Some(s) = self.every_secs {
            return last_time.elapsed().as_secs_f64() >= s;
        }
        false
    }

    /// Records a firing at `step`; returns the steps and seconds since the previous one.
    pub(crate) fn fired(&mut self, step: i64) -> Option<(i64, f64)> {
        let now = std::time::Instant::now();
        let since = self
            .last
            .map(|(s, t)| (step - s, now.duration_since(t).as_secs_f64()));
        self.last = Some((step, now));
        since
    }
}

/// Exactly one of `every_n_steps` / `every_n_secs` (or, where allowed, `at_end`).
pub(crate) fn one_period(
    name: &str,
    steps: Option<u64>,
    secs: Option<f64>,
    at_end: bool,
) -> Result<(), Invalid> {
    let given = usize::from(steps.is_some()) + usize::from(secs.is_some());
    if given > 1 || (given == 0 && !at_end) {
        return Err(Invalid(format!(
            "{name}: exactly one of every_n_iter/every_n_steps or every_n_secs must be set{}",
            if at_end { " (or at_end)" } else { "" }
        )));
    }
    if steps == Some(0) || secs.is_some_and(|s| s.is_nan() || s <= 0.0) {
        return Err(Invalid(format!("{name}: the period must be > 0")));
    }
    Ok(())
}

/// The hooks of one loop: built-ins it owns and the caller's, which it borrows so the
/// caller can read them afterwards (a `FinalOpsHook`'s values, say).
pub struct HookSet<'a> {
    owned: Vec<Box<dyn Hook>>,
    borrowed: Vec<&'a mut dyn Hook>,
    ctx: HookContext,
}

impl<'a> HookSet<'a> {
    pub fn new(owned: Vec<Box<dyn Hook>>, borrowed: Vec<&'a mut dyn Hook>) -> Self {
        HookSet {
            owned,
            borrowed,
            ctx: HookContext::default(),
        }
    }

    fn each(
        &mut self,
        mut f: impl FnMut(&mut dyn Hook, &mut HookContext) -> Result<()>,
    ) -> Result<()> {
        for hook in self.owned.iter_mut() {
            f(hook.as_mut(), &mut self.ctx)?;
        }
        for hook in self.borrowed.iter_mut() {
            f(&mut **hook, &mut self.ctx)?;
        }
        Ok(())
    }

    pub fn begin(&mut self, run: &RunInfo) -> Result<()> {
        self.each(|h, _| h.begin(run))
    }

    pub fn after_create_session(&mut self, global_step: i64) -> Result<()> {
        self.each(|h, ctx| h.after_create_session(global_step, ctx))
    }

    pub fn before_run(&mut self, global_step: i64) -> Result<()> {
        self.each(|h, _| h.before_run(global_step))
    }

    pub fn after_run(&mut self, values: &RunValues<'_>) -> Result<()> {
        self.each(|h, ctx| h.after_run(values, ctx))
    }

    pub fn end(&mut self, last: Option<&RunValues<'_>>) -> Result<()> {
        self.each(|h, _| h.end(last))
    }

    pub fn stop_requested(&self) -> bool {
        self.ctx.stop_requested()
    }

    pub fn wants_timings(&self) -> bool {
        self.owned.iter().any(|h| h.wants_timings())
            || self.borrowed.iter().any(|h| h.wants_timings())
    }

    /// Every hook's saved state, keyed by name (`name#2` for a second hook of a name).
    pub fn states(&mut self) -> serde_json::Map<String, serde_json::Value> {
        let mut out = serde_json::Map::new();
        let _ = self.each(|h, _| {
            if let Some(state) = h.state() {
                out.insert(unique_key(&out, h.name()), state);
            }
            Ok(())
        });
        out
    }

    /// Gives each hook the state saved under its key, if any.
    pub fn restore(&mut self, states: &serde_json::Map<String, serde_json::Value>) -> Result<()> {
        let mut seen = serde_json::Map::new();
        self.each(|h, _| {
            let key = unique_key(&seen, h.name());
            seen.insert(key.clone(), serde_json::Value::Null);
            match states.get(&key) {
                Some(state) => h.restore(state),
                None => Ok(()),
            }
        })
    }
}

fn unique_key(taken: &serde_json::Map<String, serde_json::Value>, name: &str) -> String {
    let mut key = name.to_owned();
    let mut n = 1;
    while taken.contains_key(&key) {
        n += 1;
        key = format!("{name}#{n}");
    }
    key
}
