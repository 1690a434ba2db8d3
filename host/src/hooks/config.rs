//! The built-in hooks as the manifest's `hooks:` lists them, each built from its settings.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::early_stopping;
use super::final_ops;
use super::nan_tensor;
use super::profiler;
use super::step_counter;
use super::stop_at_step;
use super::summary_saver;
use super::{
    EarlyStoppingHook, FinalOpsHook, Hook, LoggingTensorHook, LoggingTensorSettings, NanTensorHook,
    ProfilerHook, StepCounterHook, StopAtStepHook, SummarySaverHook,
};
use crate::error::Invalid;
use crate::events::SummaryWriter;

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
/// run_config's frequency; `CheckpointSaverHook` does the saving.
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
    /// schedule of the loop's `CheckpointSaverHook` (`CheckpointSaverHook::schedule_of`),
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
