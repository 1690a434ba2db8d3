//! TF's `train_and_evaluate` in local mode: one training run whose checkpoint listener
//! evaluates each new checkpoint, at most once every `throttle_secs`, and the final one.
//!
//! As TF: the first save (step 0, or the step a resumed run starts from) is not
//! evaluated; the first later save always is; `start_delay_secs` only matters to a
//! separate evaluator process and is accepted but unused here.
//!
//! In a data-parallel run, rank 0 saves, so rank 0 evaluates, alone, as TF's evaluator
//! task: the other ranks wait for it at the next step.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use tracing::info;

use super::exporters::Exporters;
use super::{Estimator, StopAt, TrainOutcome};
use crate::error::Result;
use crate::events::SummaryWriter;
use crate::hooks::{CheckpointSaverHook, CheckpointSaverListener, Hook};
use crate::plugins::PluginRegistry;

/// What `train_and_evaluate` did: the training, and the last evaluation's metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainAndEvaluateOutcome {
    pub train: TrainOutcome,
    pub metrics: BTreeMap<String, f64>,
}

/// Evaluates checkpoints as training saves them.
pub struct EvalListener {
    evaluator: Estimator,
    exporters: Exporters,
    throttle_secs: u64,
    seen_first_save: bool,
    last_eval: Option<Instant>,
    last: Option<(i64, PathBuf)>,
    pub evaluated_steps: Vec<i64>,
    pub metrics: Option<BTreeMap<String, f64>>,
}

impl EvalListener {
    /// `evaluator` is an Estimator over the same model_dir with the eval spec applied.
    pub fn new(evaluator: Estimator, throttle_secs: u64, exporters: Exporters) -> Self {
        EvalListener {
            evaluator,
            exporters,
            throttle_secs,
            seen_first_save: false,
            last_eval: None,
            last: None,
            evaluated_steps: Vec::new(),
            metrics: None,
        }
    }

    fn evaluate(&mut self, global_step: i64, path: &Path) -> Result<()> {
        let metrics = self.evaluator.evaluate(Some(path))?;
        self.exporters
            .after_evaluation(&mut self.evaluator, global_step, path, &metrics)?;
        self.metrics = Some(metrics);
        self.evaluated_steps.push(global_step);
        self.last_eval = Some(Instant::now());
        Ok(())
    }
}

impl CheckpointSaverListener for EvalListener {
    fn after_save(&mut self, global_step: i64, path: &Path) -> Result<bool> {
        self.last = Some((global_step, path.to_path_buf()));
        if !self.seen_first_save {
            self.seen_first_save = true;
            return Ok(false);
        }
        let due = self
            .last_eval
            .is_none_or(|t| t.elapsed().as_secs() >= self.throttle_secs);
        match due {
            true => self.evaluate(global_step, path)?,
            false => info!(
                "Skip the current checkpoint eval due to throttle secs ({} secs).",
                self.throttle_secs
            ),
        }
        Ok(false)
    }

    fn end(&mut self, global_step: i64) -> Result<()> {
        let Some((step, path)) = self.last.clone() else {
            return Ok(());
        };
        if step == global_step && self.evaluated_steps.last() != Some(&step) {
            self.evaluate(step, &path)?;
        }
        if self.evaluated_steps.last() == Some(&step) {
            self.exporters.at_end(&mut self.evaluator, &path)?;
        }
        Ok(())
    }
}

impl Estimator {
    /// TF's `train_and_evaluate` (local mode): trains as `train_spec` says, evaluating each
    /// new checkpoint as `eval_spec` says (see the module's docs). Returns the
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
        let every = CheckpointSaverHook::schedule_of(&self.manifest).ok_or_else(|| {
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
        let exporters = Exporters::new(eval_spec.exporters.clone(), &self.model_dir());
        let mut listener = EvalListener::new(
            Estimator::new(eval_manifest, registry),
            eval_spec.throttle_secs,
            exporters,
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
            // Rank 0 evaluates for all.
            (None, _) if !self.replicas.is_chief() => BTreeMap::new(),
            (None, true) => BTreeMap::new(),
            (None, false) => {
                return Err(self.manifest.error(
                    "there was no new checkpoint after the training, so nothing to evaluate",
                ))
            }
        };
        Ok(TrainAndEvaluateOutcome { train, metrics })
    }
}
