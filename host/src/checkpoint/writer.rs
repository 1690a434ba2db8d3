//! Writing checkpoints off the step loop: a background thread commits each one, at most one
//! write is in flight, and the next write, the end of training or an error waits for it.

use std::path::PathBuf;
use std::thread::JoinHandle;

use super::commit::Committer;
use crate::error::{Error, Result};

type Write = JoinHandle<(Committer, Result<PathBuf>)>;

/// A [`Committer`] driven from a background thread.
pub struct BackgroundWriter {
    /// The committer, when no write is in flight; the write holds it otherwise.
    idle: Option<Committer>,
    in_flight: Option<Write>,
}

impl BackgroundWriter {
    pub fn new(committer: Committer) -> Self {
        BackgroundWriter {
            idle: Some(committer),
            in_flight: None,
        }
    }

    /// Starts committing `bytes` as the checkpoint for `global_step`, once the previous
    /// write has finished; an error of the previous write is returned here.
    pub fn start(&mut self, global_step: i64, bytes: Vec<u8>) -> Result<()> {
        let mut committer = self.take_idle()?;
        let write = std::thread::Builder::new()
            .name("checkpoint-writer".into())
            .spawn(move || {
                let result = committer.save(global_step, &bytes);
                (committer, result)
            })
            .map_err(|e| Error::io("cannot start the checkpoint writer", e))?;
        self.in_flight = Some(write);
        Ok(())
    }

    /// Commits `bytes` as the checkpoint for `global_step` on this thread, once the write
    /// in flight has finished: for a caller that would only wait for a background write
    /// (the last save), which spares it a thread's start and its own wake-up.
    pub fn write_now(&mut self, global_step: i64, bytes: &[u8]) -> Result<PathBuf> {
        let mut committer = self.take_idle()?;
        let result = committer.save(global_step, bytes);
        self.idle = Some(committer);
        result
    }

    /// Waits for the write in flight, if any; returns the path it committed.
    pub fn wait(&mut self) -> Result<Option<PathBuf>> {
        let Some(write) = self.in_flight.take() else {
            return Ok(None);
        };
        let (committer, result) = write
            .join()
            .map_err(|_| Error::Internal("the checkpoint writer thread panicked".into()))?;
        self.idle = Some(committer);
        result.map(Some)
    }

    fn take_idle(&mut self) -> Result<Committer> {
        self.wait()?;
        self.idle.take().ok_or_else(|| {
            Error::Internal("the checkpoint writer was used after a failed write".into())
        })
    }
}

/// A run that ends with an error still completes the write in flight: the last
/// checkpoint it started stays the latest.
impl Drop for BackgroundWriter {
    fn drop(&mut self) {
        if let Err(e) = self.wait() {
            tracing::error!("the last checkpoint could not be written: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{read_state, system_clock, RetentionPolicy};

    /// A writer into `dir` that keeps the last five checkpoints.
    fn writer_in(dir: &std::path::Path) -> BackgroundWriter {
        let policy = RetentionPolicy {
            keep_max: 5,
            keep_every_secs: 1e9,
        };
        BackgroundWriter::new(Committer::new(dir, policy, system_clock()).expect("committer"))
    }

    #[test]
    fn writes_commit_in_order_and_a_drop_finishes_the_last() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut writer = writer_in(dir.path());
        writer.start(1, b"one".to_vec()).expect("starts");
        writer
            .start(2, b"two".to_vec())
            .expect("waits for 1, starts 2");
        let path = writer.wait().expect("written").expect("a path");
        assert!(path.ends_with("model.ckpt-2.safetensors"));
        assert_eq!(writer.wait().expect("nothing in flight"), None);
        writer.start(3, b"three".to_vec()).expect("starts");
        drop(writer);
        let state = read_state(dir.path()).expect("state").expect("written");
        assert_eq!(state.latest.as_deref(), Some("model.ckpt-3.safetensors"));
        assert_eq!(state.all.len(), 3);
    }

    #[test]
    fn a_write_on_the_callers_thread_follows_the_one_in_flight() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut writer = writer_in(dir.path());
        writer.start(1, b"one".to_vec()).expect("starts");
        let path = writer.write_now(2, b"two").expect("waits for 1, writes 2");
        assert!(path.ends_with("model.ckpt-2.safetensors"));
        assert_eq!(std::fs::read(&path).expect("written"), b"two");
        let state = read_state(dir.path()).expect("state").expect("written");
        assert_eq!(state.latest.as_deref(), Some("model.ckpt-2.safetensors"));
        assert_eq!(state.all.len(), 2);
        assert_eq!(writer.wait().expect("nothing in flight"), None);
    }
}
