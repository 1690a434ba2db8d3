//! `train_spec:` and `eval_spec:`, TF's `TrainSpec` and `EvalSpec` for
//! `train-and-evaluate`.

use crate::error::Invalid;
use serde::{Deserialize, Serialize};

use crate::hooks::HookConfig;

/// `train_spec:` — TF's `TrainSpec`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    /// Train until this global step; absent means `train:`'s setting (or forever).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u64>,
    /// Hooks for this training, after `hooks.train`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "serde_yaml::with::singleton_map_recursive"
    )]
    pub hooks: Vec<HookConfig>,
}

/// `eval_spec:` — TF's `EvalSpec`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSpec {
    /// Batches per evaluation; TF's default is 100, `null` runs to the end of the input.
    #[serde(default = "default_eval_steps")]
    pub steps: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Hooks for each evaluation, after `hooks.eval`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "serde_yaml::with::singleton_map_recursive"
    )]
    pub hooks: Vec<HookConfig>,
    #[serde(default = "default_start_delay")]
    pub start_delay_secs: u64,
    #[serde(default = "default_throttle")]
    pub throttle_secs: u64,
}

fn default_eval_steps() -> Option<u64> {
    Some(100)
}
fn default_start_delay() -> u64 {
    120
}
fn default_throttle() -> u64 {
    600
}

impl Default for EvalSpec {
    fn default() -> Self {
        EvalSpec {
            steps: default_eval_steps(),
            name: None,
            hooks: Vec::new(),
            start_delay_secs: default_start_delay(),
            throttle_secs: default_throttle(),
        }
    }
}

impl EvalSpec {
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.steps == Some(0) {
            return Err("eval_spec: steps must be > 0 (null evaluates the whole input)".into());
        }
        Ok(())
    }
}
