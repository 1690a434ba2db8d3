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
    /// TF's exporters: each evaluation (or the last) may export the model to
    /// `model_dir/export/<name>/<version>/`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "serde_yaml::with::singleton_map_recursive"
    )]
    pub exporters: Vec<ExporterConfig>,
}

/// An exporter, by TF's class: `latest`, `best` or `final`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ExporterConfig {
    /// TF's `LatestExporter`: exports after every evaluation.
    Latest(LatestExporter),
    /// TF's `BestExporter`: exports when an evaluation is the best so far.
    Best(BestExporter),
    /// TF's `FinalExporter`: exports once, after the final evaluation.
    Final(FinalExporter),
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LatestExporter {
    #[serde(default = "default_latest_name")]
    pub name: String,
    /// The newest exports kept; `null` keeps all.
    #[serde(default = "default_exports_to_keep")]
    pub exports_to_keep: Option<usize>,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BestExporter {
    #[serde(default = "default_best_name")]
    pub name: String,
    /// The metric compared (TF's default `compare_fn`: `loss`, smaller is better).
    #[serde(default = "default_best_metric")]
    pub metric: String,
    #[serde(default)]
    pub higher_is_better: bool,
    #[serde(default = "default_exports_to_keep")]
    pub exports_to_keep: Option<usize>,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FinalExporter {
    #[serde(default = "default_final_name")]
    pub name: String,
}

impl ExporterConfig {
    pub fn name(&self) -> &str {
        match self {
            ExporterConfig::Latest(e) => &e.name,
            ExporterConfig::Best(e) => &e.name,
            ExporterConfig::Final(e) => &e.name,
        }
    }

    pub fn exports_to_keep(&self) -> Option<usize> {
        match self {
            ExporterConfig::Latest(e) => e.exports_to_keep,
            ExporterConfig::Best(e) => e.exports_to_keep,
            ExporterConfig::Final(_) => None,
        }
    }
}

fn default_latest_name() -> String {
    "latest".into()
}
fn default_best_name() -> String {
    "best_exporter".into()
}
fn default_final_name() -> String {
    "final".into()
}
fn default_best_metric() -> String {
    "loss".into()
}
fn default_exports_to_keep() -> Option<usize> {
    Some(5)
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
            exporters: Vec::new(),
        }
    }
}

impl EvalSpec {
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.steps == Some(0) {
            return Err("eval_spec: steps must be > 0 (null evaluates the whole input)".into());
        }
        let mut names = std::collections::HashSet::new();
        for exporter in &self.exporters {
            let name = exporter.name();
            let plain = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
                && name != "."
                && name != "..";
            if !plain {
                return Err(Invalid(format!(
                    "eval_spec.exporters: name `{name}` must be a plain folder name (letters, digits, `_`, `-`, `.`)"
                )));
            }
            if !names.insert(name) {
                return Err(Invalid(format!(
                    "eval_spec.exporters: two exporters are named `{name}`"
                )));
            }
            if exporter.exports_to_keep() == Some(0) {
                return Err(Invalid(format!(
                    "eval_spec.exporters: `{name}`: exports_to_keep must be > 0 (null keeps all)"
                )));
            }
        }
        Ok(())
    }
}
