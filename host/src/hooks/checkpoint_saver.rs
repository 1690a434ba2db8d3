//! TF's `CheckpointSaverHook`: saves a checkpoint when training starts, on its schedule and
//! at the end, and tells [`CheckpointSaverListener`]s of each save. Configured in one place,
//! [`CheckpointSaverHook::schedule_of`]: a `checkpoint_saver` entry in `hooks.train` or
//! `train_spec.hooks`, else run_config's frequency.
//!
//! Unlike the other hooks it sees the whole training state, so the loop calls it directly
//! after each step rather than through the [`super::Hook`] trait. The writing runs on a
//! background thread so the step loop does not wait for the disk; at most one write is in
//! flight. When there are listeners, a save waits for its write so that `after_save` sees
//! the checkpoint on disk. The last save, which the run waits for anyway, is written on
//! the loop's own thread.

use std::path::Path;
use std::time::Instant;

use tracing::info;

use super::HookConfig;
use crate::checkpoint::{
    system_clock, BackgroundWriter, Committer, RetentionPolicy, SaveSchedule, TrainingState,
};
use crate::config::CheckpointEvery;
use crate::config::Manifest;
use crate::error::Result;

/// TF's `CheckpointSaverListener`: told before and after each checkpoint is written.
pub trait CheckpointSaverListener {
    fn begin(&mut self) -> Result<()> {
        Ok(())
    }

    fn before_save(&mut self, _global_step: i64) -> Result<()> {
        Ok(())
    }

    /// The checkpoint for `global_step` is on disk at `path`. Returning `true` asks
    /// training to stop, as TF's listeners may.
    fn after_save(&mut self, _global_step: i64, _path: &Path) -> Result<bool> {
        Ok(false)
    }

    /// Training ended at `global_step`, after its last save.
    fn end(&mut self, _global_step: i64) -> Result<()> {
        Ok(())
    }
}

pub struct CheckpointSaverHook<'l> {
    schedule: SaveSchedule,
    writer: BackgroundWriter,
    listeners: Vec<&'l mut dyn CheckpointSaverListener>,
}

impl<'l> CheckpointSaverHook<'l> {
    /// When training writes checkpoints: the last `checkpoint_saver` hook listed (in
    /// `hooks.train`, then `train_spec.hooks`), else run_config's; `None` for never.
    pub fn schedule_of(manifest: &Manifest) -> Option<CheckpointEvery> {
        let spec_hooks = manifest.train_spec.iter().flat_map(|t| &t.hooks);
        let configured = manifest.hooks.train.iter().chain(spec_hooks);
        let schedules: Vec<CheckpointEvery> = configured
            .filter_map(|c| match c {
                HookConfig::CheckpointSaver(s) => s.every().ok(),
                _ => None,
            })
            .collect();
        schedules
            .last()
            .copied()
            .or(manifest.run_config.checkpoint_every)
    }

    /// The saver for a run starting at `start_step` in `model_dir` (locked by the caller),
    /// or `None` when the manifest turns checkpoints off.
    pub fn begin(
        manifest: &Manifest,
        model_dir: &Path,
        start_step: i64,
        mut listeners: Vec<&'l mut dyn CheckpointSaverListener>,
    ) -> Result<Option<Self>> {
        let Some(every) = Self::schedule_of(manifest) else {
            return Ok(None);
        };
        let rc = &manifest.run_config;
        let policy = RetentionPolicy {
            keep_max: rc.keep_checkpoint_max,
            keep_every_secs: rc.keep_checkpoint_every_n_hours * 3600.0,
        };
        let committer = Committer::new(model_dir, policy, system_clock())?;
        for l in listeners.iter_mut() {
            l.begin()?;
        }
        Ok(Some(CheckpointSaverHook {
            schedule: SaveSchedule::new(every, start_step, Instant::now()),
            writer: BackgroundWriter::new(committer),
            listeners,
        }))
    }

    /// Whether the schedule calls for a save at `global_step`.
    pub fn is_due(&self, global_step: i64) -> bool {
        self.schedule.is_due(global_step, Instant::now())
    }

    /// Saves `state` now; returns whether a listener asked training to stop. The error of
    /// the previous write, if any, comes back here.
    pub fn save(&mut self, state: &TrainingState<'_>, model_dir: &Path) -> Result<bool> {
        let (step, bytes) = self.encode(state, model_dir)?;
        self.writer.start(step, bytes)?;
        self.schedule.saved(step, Instant::now());
        if self.listeners.is_empty() {
            return Ok(false);
        }
        match self.writer.wait()? {
            Some(path) => self.after_save(step, &path),
            None => Ok(false),
        }
    }

    /// Tells the listeners, then encodes `state`.
    fn encode(&mut self, state: &TrainingState<'_>, model_dir: &Path) -> Result<(i64, Vec<u8>)> {
        let step = state.global_step;
        for l in self.listeners.iter_mut() {
            l.before_save(step)?;
        }
        let bytes = state.encode()?;
        info!(
            "Saving checkpoints for {step} into {}.",
            model_dir.join(crate::checkpoint::file_name(step)).display()
        );
        Ok((step, bytes))
    }

    /// Tells the listeners that `step` is saved at `path`; whether one asked to stop.
    fn after_save(&mut self, step: i64, path: &Path) -> Result<bool> {
        let mut stop = false;
        for l in self.listeners.iter_mut() {
            stop |= l.after_save(step, path)?;
        }
        Ok(stop)
    }

    /// Training ended at `global_step`: saves it unless that step is saved already (with
    /// `state`, made only then), waits for the last write, and tells the listeners.
    pub fn end<'s>(
        mut self,
        global_step: i64,
        model_dir: &Path,
        state: impl FnOnce() -> Result<TrainingState<'s>>,
    ) -> Result<()> {
        if self.schedule.needs_final_save(global_step) {
            // The run waits for its last save: written on this thread rather than on one
            // it would start and then wait for.
            let (step, bytes) = self.encode(&state()?, model_dir)?;
            let path = self.writer.write_now(step, &bytes)?;
            self.after_save(step, &path)?;
        }
        self.writer.wait()?;
        for l in self.listeners.iter_mut() {
            l.end(global_step)?;
        }
        Ok(())
    }
}
