//! One writer per model_dir: an exclusive advisory lock (`flock`) on the directory itself.
//!
//! Locking the directory rather than a file in it leaves nothing behind, and the kernel
//! drops the lock when the process ends however it ends, so a crashed run never leaves the
//! model_dir stuck. Readers (`evaluate`, `predict`) take no lock: evaluating while training
//! is normal, and checkpoints are only ever replaced atomically.

use std::fs::{File, TryLockError};
use std::path::Path;

use crate::error::{Error, Result};

/// Held while a run may write to its model_dir; released on drop.
#[derive(Debug)]
pub struct ModelDirLock {
    _dir: File,
}

impl ModelDirLock {
    /// Locks `model_dir`, which must exist. Fails at once if another process holds it.
    pub fn acquire(model_dir: &Path) -> Result<Self> {
        let dir = File::open(model_dir)
            .map_err(|e| Error::io(format!("{}: cannot open", model_dir.display()), e))?;
        match dir.try_lock() {
            Ok(()) => Ok(ModelDirLock { _dir: dir }),
            Err(TryLockError::WouldBlock) => Err(Error::ModelDir(format!(
                "{}: model_dir is in use by another training process; wait for it to end or use another model_dir",
                model_dir.display()
            ))),
            Err(TryLockError::Error(e)) => Err(Error::io(
                format!("{}: cannot lock", model_dir.display()),
                e,
            )),
        }
    }

    /// Locks `model_dir` if it exists; `None` if it does not exist yet.
    pub fn acquire_existing(model_dir: &Path) -> Result<Option<Self>> {
        match model_dir.is_dir() {
            true => Self::acquire(model_dir).map(Some),
            false => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = ModelDirLock::acquire(dir.path()).expect("free");
        let err = ModelDirLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(err.contains("in use by another training process"), "{err}");
        drop(first);
        ModelDirLock::acquire(dir.path()).expect("free again");
    }

    #[test]
    fn a_missing_model_dir_is_not_locked_or_created() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("model");
        assert!(ModelDirLock::acquire_existing(&missing)
            .expect("no error")
            .is_none());
        assert!(!missing.exists());
    }
}
