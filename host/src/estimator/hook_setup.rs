//! Which hooks each loop runs: TF's defaults for training, the manifest's `hooks:` for
//! each loop, and the hooks the model asks for in its EstimatorSpec.

use estimator_plugin_api::abi::ModeKeys;

use super::session::Session;
use super::Estimator;
use crate::config::built_in;
use crate::error::Result;
use crate::events::SummaryWriter;
use crate::hooks::{
    Hook, HookConfig, LoggingTensorHook, LoggingTensorSettings, NanTensorHook, StepCounterHook,
    StepCounterSettings, SummarySaverHook, SummarySaverSettings,
};

impl Estimator {
    /// The TensorBoard writer for `dir`: rank 0 alone writes model_dir, so in a
    /// data-parallel run the other ranks' summaries go nowhere.
    pub(super) fn summaries_in(&self, dir: &std::path::Path) -> SummaryWriter {
        match self.replicas.is_chief() {
            true => SummaryWriter::new(dir),
            false => SummaryWriter::silent(),
        }
    }

    /// The built-in training hooks: TF's defaults (nan_tensor; logging_tensor and
    /// step_counter every `log_step_count_steps`; summaries every `save_summary_steps`),
    /// each replaced by a manifest hook of the same kind, then the manifest's others, then
    /// the model's.
    pub(super) fn train_hooks(&self, session: &Session) -> Result<Vec<Box<dyn Hook>>> {
        let configured = &self.manifest.hooks.train;
        let has = |kind: &str| configured.iter().any(|c| c.kind() == kind);
        let summaries = self.summaries_in(&self.model_dir());
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
                let settings = StepCounterSettings {
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

    /// The manifest's hooks for the `eval` or `predict` loop, then the model's.
    pub(super) fn loop_hooks(
        &self,
        name: &str,
        configs: &[HookConfig],
        session: &Session,
        mode: ModeKeys,
    ) -> Result<Vec<Box<dyn Hook>>> {
        let summaries = match name {
            "eval" => self.summaries_in(&self.eval_dir()),
            _ => self.summaries_in(&self.model_dir().join(name)),
        };
        let mut hooks = self.build_hooks(&format!("hooks.{name}"), configs, &summaries)?;
        hooks.extend(self.requested_hooks(session, mode, &summaries)?);
        Ok(hooks)
    }

    /// The hooks the model asks for in `mode` (TF's training, evaluation and prediction
    /// hooks in an EstimatorSpec).
    fn requested_hooks(
        &self,
        session: &Session,
        mode: ModeKeys,
        summaries: &SummaryWriter,
    ) -> Result<Vec<Box<dyn Hook>>> {
        let refuse = |why: &dyn std::fmt::Display| {
            session.spec_error(format!("requested_hooks in mode {mode}: {why}"))
        };
        let asked = session
            .model
            .requested_hooks(mode.into())
            .into_result()
            .map_err(|e| refuse(&e))?;
        let configs: Vec<HookConfig> = asked
            .iter()
            .map(built_in::as_named_entry)
            .collect::<Result<_, _>>()
            .map_err(|e| refuse(&e))?;
        let model_dir = self.model_dir();
        let built: Vec<Option<Box<dyn Hook>>> = configs
            .iter()
            .map(|c| c.build(summaries, &model_dir).map_err(|e| refuse(&e)))
            .collect::<Result<_>>()?;
        Ok(built.into_iter().flatten().collect())
    }

    /// Builds the hooks a manifest lists under `key`, writing summaries through
    /// `summaries`; an error names the manifest and the key.
    pub(super) fn build_hooks(
        &self,
        key: &str,
        configs: &[HookConfig],
        summaries: &SummaryWriter,
    ) -> Result<Vec<Box<dyn Hook>>> {
        let model_dir = self.model_dir();
        let built: Vec<Option<Box<dyn Hook>>> = configs
            .iter()
            .map(|c| {
                c.build(summaries, &model_dir)
                    .map_err(|m| self.manifest.error(format!("{key}: {m}")))
            })
            .collect::<Result<_>>()?;
        Ok(built.into_iter().flatten().collect())
    }
}
