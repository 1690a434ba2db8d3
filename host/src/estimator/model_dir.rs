//! model_dir as the loops use it: checked, created and locked, its latest checkpoint read,
//! the resolved configuration written beside it.

use std::path::{Path, PathBuf};

use tracing::info;

use super::Estimator;
use crate::checkpoint::{self, Checkpoint};
use crate::error::{Error, Result};
use crate::lock::ModelDirLock;

/// The manifest as resolved for the latest `train`, written into model_dir.
pub const RESOLVED_CONFIG: &str = "resolved_config.yaml";

impl Estimator {
    /// Where evaluation summaries go: `eval/`, or `eval_<name>/` for a named evaluation.
    pub fn eval_dir(&self) -> PathBuf {
        match &self.manifest.eval.name {
            Some(name) => self.model_dir().join(format!("eval_{name}")),
            None => self.model_dir().join("eval"),
        }
    }

    /// Creates and locks a model_dir that did not exist when training started, refusing
    /// if another run has written a checkpoint there in the meantime.
    pub(super) fn create_model_dir(&self, model_dir: &Path) -> Result<ModelDirLock> {
        std::fs::create_dir_all(model_dir)
            .map_err(|e| Error::io(format!("{}: cannot create", model_dir.display()), e))?;
        let lock = ModelDirLock::acquire(model_dir)?;
        if checkpoint::latest(model_dir)?.is_some() {
            return Err(Error::ModelDir(format!(
                "{}: another run started training in this model_dir meanwhile",
                model_dir.display()
            )));
        }
        Ok(lock)
    }

    pub(super) fn latest_checkpoint(&self, model_dir: &Path) -> Result<Option<Checkpoint>> {
        self.check_model_dir_is_a_folder(model_dir)?;
        checkpoint::read_latest_whole(model_dir)
    }

    /// A model_dir that exists must be a folder: a file there is the user's mistake.
    pub(super) fn check_model_dir_is_a_folder(&self, model_dir: &Path) -> Result<()> {
        match model_dir.exists() && !model_dir.is_dir() {
            true => Err(self.manifest.error(format!(
                "model_dir: {} is a file, not a folder",
                model_dir.display()
            ))),
            false => Ok(()),
        }
    }

    /// The checkpoint evaluate or predict uses: the one given, else the latest, else none
    /// (fresh initialisation, as TF).
    pub(super) fn checkpoint_for(
        &self,
        what: &str,
        given: Option<&Path>,
    ) -> Result<Option<Checkpoint>> {
        if let Some(path) = given {
            return checkpoint::read(path).map(Some);
        }
        let model_dir = self.model_dir();
        let latest = self.latest_checkpoint(&model_dir)?;
        if latest.is_none() {
            info!(
                "Could not find trained model in model_dir: {}, running initialization to {what}.",
                model_dir.display()
            );
        }
        Ok(latest)
    }

    /// Rank 0's checkpoint (or none) on every rank of a data-parallel run, read by rank 0
    /// alone: the variables, slots, global step, input position and hook states the
    /// ranks all start from. One process keeps its own.
    pub(super) fn shared_with_replicas(
        &self,
        latest: Option<Checkpoint>,
        model_dir: &std::path::Path,
    ) -> Result<Option<Checkpoint>> {
        if !self.replicas.is_distributed() {
            return Ok(latest);
        }
        let bytes = match &latest {
            Some(ckpt) if self.replicas.is_chief() => checkpoint::encode_checkpoint(ckpt)?,
            _ => Vec::new(),
        };
        let bytes = self.replicas.broadcast(bytes);
        match (latest, bytes.is_empty()) {
            (_, true) => Ok(None),
            (Some(ckpt), false) => Ok(Some(ckpt)),
            (None, false) => {
                let name = model_dir.join("(rank 0's latest checkpoint)");
                checkpoint::decode(&bytes, &name).map(Some)
            }
        }
    }

    /// Writes the manifest with every default filled in, and the seed this run uses.
    /// Replaced whole (temp file and rename) but not synced to disk: it is a record for
    /// people, not something a resumed run needs.
    pub(super) fn write_resolved_config(&self, model_dir: &Path) -> Result<()> {
        let text = self.resolved_config()?;
        let path = model_dir.join(RESOLVED_CONFIG);
        let temp = model_dir.join(format!(".tmp-{RESOLVED_CONFIG}"));
        let context = |e| Error::io(format!("{}: cannot write", path.display()), e);
        std::fs::write(&temp, text).map_err(context)?;
        std::fs::rename(&temp, &path).map_err(context)
    }
}
