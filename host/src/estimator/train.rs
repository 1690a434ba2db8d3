//! `train`, as TF's `Estimator.train`: find the latest checkpoint and its global step; stop
//! at once if `max_steps` is reached; create the model and its variables (restored, or
//! warm-started), the optimizers, the input and the hooks; then for each batch run
//! model_fn, check its spec, apply the gradients, run the hooks and save on schedule; save
//! at the end.

use std::sync::atomic::Ordering;

use estimator_plugin_api::abi::{EstimatorSpec, ModeKeys};
use tracing::info;

use super::step_clock::{Part, StepClock};
use super::{Estimator, StopAt, TrainOutcome};
use crate::checkpoint::{saved_hook_states, saved_input, saved_iterations, Checkpoint, SavedInput};
use crate::denormals::FlushDenormals;
use crate::error::Result;
use crate::hooks::{
    CheckpointSaverHook, CheckpointSaverListener, Hook, HookSet, RunInfo, RunValues, StepTimings,
};
use crate::input::{PipelinePosition, Prefetched};
use crate::lock::ModelDirLock;
use crate::optimizer::Optimizers;
use crate::replica::average_over_ranks;

impl Estimator {
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
        if !listeners.is_empty() && CheckpointSaverHook::schedule_of(&self.manifest).is_none() {
            return Err(self.manifest.error(
                "checkpoint listeners need checkpoints: set run_config.save_checkpoints_steps or save_checkpoints_secs",
            ));
        }
        // Find the latest checkpoint and its global step; locked before reading, so the
        // checkpoint we resume from stays the latest.
        // In a data-parallel run, rank 0 alone locks and reads model_dir, and hands the
        // checkpoint to the others.
        let model_dir = self.model_dir();
        let chief = self.replicas.is_chief();
        self.check_model_dir_is_a_folder(&model_dir)?;
        let read = match chief {
            true => ModelDirLock::acquire_existing(&model_dir)
                .and_then(|lock| Ok((lock, self.latest_checkpoint(&model_dir)?))),
            false => Ok((None, None)),
        };
        let (mut lock, latest) = self.replicas.agree(read)?;
        let mut restored = self.shared_with_replicas(latest, &model_dir)?;
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

        // The input runs ahead on its own thread from here (TF's prefetch): its first
        // batches are read while the model is created.
        let _flush = FlushDenormals::new();
        let (input_config, opener, shuffle_rng) = self.pipeline_parts("train", ModeKeys::Train)?;
        let fingerprint = self.input_fingerprint("train")?;
        let seek = match restored.as_ref() {
            Some(ckpt) => input_resumes_at(ckpt, &fingerprint)?,
            None => None,
        };
        let share = (self.replicas.rank(), self.replicas.size());
        let mut pipeline = Prefetched::start(input_config, opener, shuffle_rng, seek, share)?;
        // Create the model, its variables, the optimizers and the hooks.
        let mut session = self.open_session(restored.as_mut())?;
        // Created only to refuse bad metric entries now, not after hours of training.
        self.plugin_metrics()?;
        let mut optimizer = self.optimizers(&session)?;
        let mut hooks = HookSet::new(self.train_hooks(&session)?, user_hooks);
        session.set_train_fetches(&hooks.fetches())?;
        hooks.begin(&RunInfo {
            mode: ModeKeys::Train,
            start_step,
            last_step,
            model_plugin: session.lib.name.clone(),
        })?;
        match restored.as_mut() {
            Some(ckpt) => self.resume(ckpt, &mut optimizer, &mut hooks)?,
            None => self.warm_start(&mut session, optimizer.slots_mut())?,
        }
        hooks.after_create_session(session.global_step)?;
        // The first checkpoint holds the starting step, so the input from before its batch.
        let start_position = pipeline.position().clone();
        let trainable = optimizer.trainable().to_vec();
        let mut listeners = Some(listeners);
        let mut saver: Option<CheckpointSaverHook<'_>> = None;
        let mut listener_stop = false;
        let mut clock = StepClock::new(hooks.wants_timings());
        let (mut steps_run, mut interrupted) = (0u64, false);
        let mut last: Option<(i64, usize, EstimatorSpec)> = None;
        let mut fused = Vec::new();
        // A failure of the last step's hooks or save, which the ranks agree on with the
        // next step's stop.
        let mut failed: Result<()> = Ok(());

        loop {
            // Stop at max_steps, when a hook or a listener asks, or on a signal; fail when
            // the last step failed: on every rank when any rank would.
            let done = last_step.is_some_and(|last| session.global_step >= last);
            let ((), [stop, signalled]) = self.replicas.agree_with(
                std::mem::replace(&mut failed, Ok(())),
                [
                    done || hooks.stop_requested() || listener_stop,
                    self.stop.load(Ordering::Relaxed),
                ],
            )?;
            if stop {
                break;
            }
            if signalled {
                info!(
                    "Stopped by a signal at step {}: saving it",
                    session.global_step
                );
                interrupted = true;
                break;
            }
            // Get a batch.
            clock.start();
            hooks.before_run(session.global_step)?;
            clock.lap(Part::Hooks);
            let Some(batch) = pipeline.next_batch()? else {
                break;
            };
            clock.lap(Part::Input);
            // Run model_fn on this rank's rows (all of them on one process) and check its
            // spec; with several ranks, average the result over them.
            if batch.len == 0 {
                // Every rank sees the same batch, so every rank stops here.
                return Err(self.manifest.error(format!(
                    "input.train: a batch of {} rows cannot be shared by {} ranks: make batch_size at least the number of ranks, or set drop_remainder",
                    batch.global_len,
                    self.replicas.size()
                )));
            }
            // A rank's model_fn can fail on its rows alone: the ranks agree before they
            // exchange gradients.
            let mut spec = self.replicas.agree(session.run_model_fn(
                &batch,
                ModeKeys::Train,
                self.seed,
                &trainable,
            ))?;
            average_over_ranks(
                &mut spec,
                batch.len,
                batch.global_len,
                &self.replicas,
                &mut fused,
            );
            let (step, batch_len) = (session.global_step, batch.global_len);
            let used = crate::views::recycle(batch.features);
            pipeline.give_back(used);
            clock.lap(Part::ModelFn);
            let lr = optimizer.learning_rate_at(step);
            if !spec.loss.into_option().is_some_and(f32::is_finite) {
                // A step whose loss is not finite is never applied and never saved, so
                // the last checkpoint stays finite. The nan_tensor hook fails the run or
                // asks it to stop; without one, the run fails.
                let values = step_values(
                    &spec,
                    step,
                    session.global_step,
                    batch_len,
                    lr,
                    clock.take(),
                );
                hooks.after_run(&values)?;
                if hooks.stop_requested() {
                    break;
                }
                return Err(session.spec_error(format!("loss is not finite at global step {step}")));
            }
            // model_dir is touched only once a step has been validated and is finite, so
            // a bad model or input leaves it as it was; by rank 0 alone.
            // A failure here is rank 0's alone: the ranks agree on it at the next step.
            if chief && steps_run == 0 && saver.is_none() {
                failed = (|| {
                    if lock.is_none() {
                        lock = Some(self.create_model_dir(&model_dir)?);
                    }
                    self.write_resolved_config(&model_dir)?;
                    let listeners = listeners.take().unwrap_or_default();
                    saver = CheckpointSaverHook::begin(
                        &self.manifest,
                        &model_dir,
                        start_step,
                        listeners,
                    )?;
                    if let Some(s) = saver.as_mut() {
                        let state = self.training_state(
                            &session,
                            &optimizer,
                            &start_position,
                            &fingerprint,
                            hooks.states(),
                        );
                        listener_stop |= s.save(&state, &model_dir)?;
                    }
                    Ok(())
                })();
                // Setting up model_dir is not part of the step the profiler reports.
                clock.start();
            }
            // Apply the gradients, and the updates of non-trainable variables.
            optimizer.apply(&mut session.vars, &spec.gradients, step);
            session.vars.assign(&spec.updates);
            session.global_step += 1;
            steps_run += 1;
            clock.lap(Part::Optimizer);
            // Run the hooks.
            let values = step_values(
                &spec,
                step,
                session.global_step,
                batch_len,
                lr,
                clock.take(),
            );
            failed = failed.and_then(|()| hooks.after_run(&values));
            clock.lap(Part::Hooks);
            // The step before's spec goes back to the model, whose next step reuses it.
            if let Some((_, _, used)) = last.replace((step, batch_len, spec)) {
                session.recycle(used);
            }
            // Save on schedule (rank 0).
            if let Some(s) = saver.as_mut().filter(|s| s.is_due(session.global_step)) {
                let state = self.training_state(
                    &session,
                    &optimizer,
                    pipeline.position(),
                    &fingerprint,
                    hooks.states(),
                );
                failed = failed.and_then(|()| {
                    listener_stop |= s.save(&state, &model_dir)?;
                    Ok(())
                });
            }
        }

        if steps_run == 0 && !interrupted && !hooks.stop_requested() && !listener_stop {
            return Err(self
                .manifest
                .error("input.train produced no examples: training made no steps"));
        }
        // The input thread winds down while the hooks end and the last save is written.
        pipeline.stop();
        // The hooks' end, then the last save.
        let final_loss = last.as_ref().and_then(|(_, _, s)| s.loss.into_option());
        let last_values = last.as_ref().map(|(step, batch_len, spec)| {
            let lr = optimizer.learning_rate_at(*step);
            step_values(spec, *step, session.global_step, *batch_len, lr, None)
        });
        let ended = hooks.end(last_values.as_ref()).and_then(|()| match saver {
            Some(s) => {
                let position = pipeline.position();
                s.end(session.global_step, &model_dir, || {
                    Ok(self.training_state(
                        &session,
                        &optimizer,
                        position,
                        &fingerprint,
                        hooks.states(),
                    ))
                })
            }
            None => Ok(()),
        });
        // Rank 0's last save can fail on rank 0 alone: every rank ends with it.
        self.replicas.agree(ended)?;
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

    /// Continues from `ckpt`: the optimizers' slots and update counters and the hooks'
    /// states.
    fn resume(
        &self,
        ckpt: &mut Checkpoint,
        optimizer: &mut Optimizers,
        hooks: &mut HookSet<'_>,
    ) -> Result<()> {
        for slot in optimizer.slots_mut() {
            slot.data = ckpt.take(&slot.name, &slot.shape)?;
        }
        optimizer.restore_iterations(ckpt.global_step, &saved_iterations(ckpt)?);
        hooks.restore(&saved_hook_states(ckpt)?)
    }

    /// The global step to stop at: the caller's, else the manifest's `train:`, else none.
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
}

/// Where the input, whose fingerprint is `fingerprint`, goes on from after `ckpt`: none
/// when the input changed since, and it starts over as in TF.
fn input_resumes_at(ckpt: &Checkpoint, fingerprint: &str) -> Result<Option<PipelinePosition>> {
    let position = match saved_input(ckpt, fingerprint)? {
        SavedInput::Resume(position) => Some(position),
        SavedInput::Changed => {
            info!(
                "input.train differs from the one {} was trained with: it starts from the beginning",
                ckpt.path.display()
            );
            None
        }
        SavedInput::Unknown => None,
    };
    Ok(position)
}

/// What a TRAIN step shows its hooks: the step it ran at and the global step after it.
fn step_values(
    spec: &EstimatorSpec,
    step: i64,
    global_step: i64,
    batch_len: usize,
    learning_rate: Option<f32>,
    timings: Option<StepTimings>,
) -> RunValues<'_> {
    RunValues {
        step,
        global_step,
        loss: spec.loss.into_option(),
        predictions: &spec.predictions,
        batch_len,
        learning_rate,
        timings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint;
    use crate::estimator::test_support::iris_estimator;
    use crate::hooks::HookContext;

    fn tensors_at(dir: &std::path::Path, step: i64) -> Vec<(String, Vec<u32>)> {
        let ckpt = checkpoint::read(&dir.join("model").join(checkpoint::file_name(step)))
            .expect("checkpoint");
        let mut out: Vec<(String, Vec<u32>)> = ckpt
            .tensors
            .into_iter()
            .map(|(name, (_, data))| (name, data.iter().map(|v| v.to_bits()).collect()))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn training_stopped_and_resumed_ends_where_a_straight_run_ends() {
        let straight = tempfile::tempdir().expect("temp dir");
        let outcome = iris_estimator(straight.path(), |t| t)
            .train(Some(StopAt::MaxSteps(50)))
            .expect("trains");
        assert_eq!(outcome.global_step, 50);
        assert!(outcome.final_loss.is_some_and(f32::is_finite));
        let resumed = tempfile::tempdir().expect("temp dir");
        for stop in [7, 23, 50] {
            let outcome = iris_estimator(resumed.path(), |t| t)
                .train(Some(StopAt::MaxSteps(stop)))
                .expect("trains");
            assert_eq!(outcome.global_step, stop as i64);
        }
        assert_eq!(
            tensors_at(straight.path(), 50),
            tensors_at(resumed.path(), 50)
        );
        // At max_steps already: nothing runs, nothing is written.
        let again = iris_estimator(resumed.path(), |t| t)
            .train(Some(StopAt::MaxSteps(50)))
            .expect("skips");
        assert_eq!((again.global_step, again.final_loss), (50, None));
    }

    /// Counts the steps it sees and asks to stop at a global step.
    struct StopAtGlobalStep {
        at: i64,
        seen: Vec<(i64, i64)>,
    }

    impl Hook for StopAtGlobalStep {
        fn name(&self) -> &str {
            "stop_at_global_step"
        }

        fn after_run(&mut self, values: &RunValues<'_>, ctx: &mut HookContext) -> Result<()> {
            self.seen.push((values.step, values.global_step));
            if values.global_step >= self.at {
                ctx.request_stop();
            }
            Ok(())
        }
    }

    #[test]
    fn a_hook_sees_each_step_and_its_stop_request_ends_training_with_a_save() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut hook = StopAtGlobalStep {
            at: 7,
            seen: Vec::new(),
        };
        let outcome = iris_estimator(dir.path(), |t| t)
            .train_with_hooks(Some(StopAt::MaxSteps(1000)), vec![&mut hook])
            .expect("trains");
        assert_eq!(outcome.global_step, 7);
        let expected: Vec<(i64, i64)> = (0..7).map(|s| (s, s + 1)).collect();
        assert_eq!(hook.seen, expected, "(step run at, global step after)");
        let latest = checkpoint::latest(&dir.path().join("model"))
            .expect("state")
            .expect("a checkpoint");
        assert!(
            latest.ends_with(checkpoint::file_name(7)),
            "{}",
            latest.display()
        );
    }
}
