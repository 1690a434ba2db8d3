//! When checkpoints are written during training, as TF's `CheckpointSaverHook`: at the
//! first step, then every `save_checkpoints_steps` or `save_checkpoints_secs`, and at the
//! end. The writing (file, fsync, state file, retention) runs on a background thread so
//! the step loop does not wait for the disk; at most one write is in flight, and the next
//! save, or the end, waits for it.

use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Instant;

use crate::checkpoint::Saver;
use crate::error::{Error, Result};
use crate::run_config::CheckpointEvery;

type Write = JoinHandle<(Saver, Result<PathBuf>)>;

pub struct CheckpointSaver {
    every: CheckpointEvery,
    /// The global step and time of the last save started.
    last: (i64, Instant),
    /// The saver, when no write is in flight; the write holds it otherwise.
    idle: Option<Saver>,
    in_flight: Option<Write>,
}

impl CheckpointSaver {
    pub fn new(saver: Saver, every: CheckpointEvery, start_step: i64) -> Self {
        CheckpointSaver {
            every,
            last: (start_step, Instant::now()),
            idle: Some(saver),
            in_flight: None,
        }
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
    /// write has finished. An error of the previous write is returned here.
    pub fn save(&mut self, global_step: i64, bytes: Vec<u8>) -> Result<()> {
        let mut saver = self.wait()?;
        self.last = (global_step, Instant::now());
        let write = std::thread::Builder::new()
            .name("checkpoint-writer".into())
            .spawn(move || {
                let result = saver.save(global_step, &bytes);
                (saver, result)
            })
            .map_err(|e| Error::io("cannot start the checkpoint writer", e))?;
        self.in_flight = Some(write);
        Ok(())
    }

    /// Waits for the write in flight, if any; returns the idle saver.
    fn wait(&mut self) -> Result<Saver> {
        if let Some(write) = self.in_flight.take() {
            let (saver, result) = write
                .join()
                .map_err(|_| Error::Usage("the checkpoint writer panicked".into()))?;
            self.idle = Some(saver);
            result?;
        }
        self.idle
            .take()
            .ok_or_else(|| Error::Usage("a failed checkpoint write lost the saver".into()))
    }

    /// Waits for the last write and reports its error, if any.
    pub fn finish(mut self) -> Result<()> {
        self.wait().map(drop)
    }
}

/// A run that ends with an error still completes the write in flight: the last
/// checkpoint it started stays the latest.
impl Drop for CheckpointSaver {
    fn drop(&mut self) {
        if self.in_flight.is_some() {
            if let Err(e) = self.wait() {
                tracing::error!("the last checkpoint could not be written: {e}");
            }
        }
    }
}
