//! When checkpoints are written during training, as TF's `CheckpointSaverHook`: at the
//! first step, then every `save_checkpoints_steps` or `save_checkpoints_secs`, and at the
//! end. The writing (file, fsync, state file, retention) runs on a background thread so
//! the step loop does not wait for the disk; at most one write is in flight, and the next
//! save, or the end, waits for it. Listeners (TF's `CheckpointSaverListener`) hear of
//! each save; when there are any, a save waits for its write so that `after_save` sees
//! the checkpoint on disk.

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::checkpoint::Saver;
use crate::error::{Error, Result};
use crate::run_config::CheckpointEvery;

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

type Write = JoinHandle<(Saver, Result<PathBuf>)>;

pub struct CheckpointSaver<'a> {
    every: CheckpointEvery,
    /// The global step and time of the last save started.
    last: (i64, Instant),
    /// The saver, when no write is in flight; the write holds it otherwise.
    idle: Option<Saver>,
    in_flight: Option<Write>,
    listeners: Vec<&'a mut dyn CheckpointSaverListener>,
}

impl<'a> CheckpointSaver<'a> {
    pub fn new(
        saver: Saver,
        every: CheckpointEvery,
        start_step: i64,
        mut listeners: Vec<&'a mut dyn CheckpointSaverListener>,
    ) -> Result<Self> {
        for l in listeners.iter_mut() {
            l.begin()?;
        }
        Ok(CheckpointSaver {
            every,
            last: (start_step, Instant::now()),
            idle: Some(saver),
            in_flight: None,
            listeners,
        })
    }

    /// Whether a save is due now that training has reached `global_step`.
    pub fn is_due(&self, global_step: i64) -> bool {
        match self.every {
            CheckpointEvery::Steps(n) => global_step >= self.last.0.saturating_add(n as i64),
            CheckpointEvery::Secs(s) => self.last.1.elapsed().as_secs() >= s,
        }
    }

    pub fn last_saved_step(&self) -> i64 {
        self.last.0
    }

    /// Starts writing `bytes` as the checkpoint for `global_step`, once the previous
    /// write has finished. An error of the previous write is returned here. Returns
    /// whether a listener asked training to stop.
    pub fn save(&mut self, global_step: i64, bytes: Vec<u8>) -> Result<bool> {
        for l in self.listeners.iter_mut() {
            l.before_save(global_step)?;
        }
        let mut saver = self.wait()?.0;
        self.last = (global_step, Instant::now());
        let write = std::thread::Builder::new()
            .name("checkpoint-writer".into())
            .spawn(move || {
                let result = saver.save(global_step, &bytes);
                (saver, result)
            })
            .map_err(|e| Error::io("cannot start the checkpoint writer", e))?;
        self.in_flight = Some(write);
        if self.listeners.is_empty() {
            return Ok(false);
        }
        let (saver, path) = self.wait()?;
        self.idle = Some(saver);
        let mut stop = false;
        if let Some(path) = path {
            for l in self.listeners.iter_mut() {
                stop |= l.after_save(global_step, &path)?;
            }
        }
        Ok(stop)
    }

    /// Waits for the write in flight, if any; returns the idle saver and the path the
    /// write produced.
    fn wait(&mut self) -> Result<(Saver, Option<PathBuf>)> {
        let mut written = None;
        if let Some(write) = self.in_flight.take() {
            let (saver, result) = write
                .join()
                .map_err(|_| Error::Usage("the checkpoint writer panicked".into()))?;
            self.idle = Some(saver);
            written = Some(result?);
        }
        let saver = self
            .idle
            .take()
            .ok_or_else(|| Error::Usage("a failed checkpoint write lost the saver".into()))?;
        Ok((saver, written))
    }

    /// Waits for the last write, reports its error if any, and tells the listeners that
    /// training ended at `global_step`.
    pub fn finish(mut self, global_step: i64) -> Result<()> {
        let (saver, _) = self.wait()?;
        self.idle = Some(saver);
        for l in self.listeners.iter_mut() {
            l.end(global_step)?;
        }
        Ok(())
    }
}

/// A run that ends with an error still completes the write in flight: the last
/// checkpoint it started stays the latest.
impl Drop for CheckpointSaver<'_> {
    fn drop(&mut self) {
        if self.in_flight.is_some() {
            if let Err(e) = self.wait() {
                tracing::error!("the last checkpoint could not be written: {e}");
            }
        }
    }
}
