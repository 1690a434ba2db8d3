//! `run_config:` — TF's RunConfig keys, with TF's defaults.

use serde::Deserialize;

/// How often checkpoints are written during training.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointEvery {
    Steps(u64),
    Secs(u64),
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Seed for initialisers, shuffling and model randomness. TF's `tf_random_seed` is accepted.
    #[serde(default, alias = "tf_random_seed")]
    pub random_seed: Option<u64>,
    #[serde(default)]
    pub save_checkpoints_steps: Option<u64>,
    #[serde(default)]
    pub save_checkpoints_secs: Option<u64>,
    /// Checkpoints kept on disk; 0 keeps all.
    #[serde(default = "default_keep_checkpoint_max")]
    pub keep_checkpoint_max: usize,
    /// Log loss and global_step/sec every this many steps; null turns it off.
    #[serde(default = "default_log_step_count_steps")]
    pub log_step_count_steps: Option<u64>,
}

fn default_keep_checkpoint_max() -> usize {
    5
}

fn default_log_step_count_steps() -> Option<u64> {
    Some(100)
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            random_seed: None,
            save_checkpoints_steps: None,
            save_checkpoints_secs: None,
            keep_checkpoint_max: default_keep_checkpoint_max(),
            log_step_count_steps: default_log_step_count_steps(),
        }
    }
}

impl RunConfig {
    /// TF's rule: steps and secs exclude each other; neither means every 600 seconds.
    pub fn checkpoint_every(&self) -> Result<CheckpointEvery, String> {
        match (self.save_checkpoints_steps, self.save_checkpoints_secs) {
            (Some(_), Some(_)) => Err(
                "run_config: save_checkpoints_steps and save_checkpoints_secs cannot be both set"
                    .into(),
            ),
            (Some(0), None) => Err("run_config: save_checkpoints_steps must be > 0".into()),
            (Some(steps), None) => Ok(CheckpointEvery::Steps(steps)),
            (None, Some(secs)) => Ok(CheckpointEvery::Secs(secs)),
            (None, None) => Ok(CheckpointEvery::Secs(600)),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        self.checkpoint_every()?;
        if self.log_step_count_steps == Some(0) {
            return Err(
                "run_config: log_step_count_steps must be > 0 (null turns logging off)".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neither_steps_nor_secs_means_every_600_seconds() {
        assert_eq!(
            RunConfig::default().checkpoint_every(),
            Ok(CheckpointEvery::Secs(600))
        );
    }

    #[test]
    fn steps_and_secs_together_are_refused() {
        let rc = RunConfig {
            save_checkpoints_steps: Some(10),
            save_checkpoints_secs: Some(10),
            ..RunConfig::default()
        };
        assert!(rc.validate().unwrap_err().contains("cannot be both set"));
    }
}
