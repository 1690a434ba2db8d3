//! TF's `LoggingTensorHook`: logs named values every N steps, every N seconds, or at the end.

use crate::error::Invalid;
use serde::{Deserialize, Serialize};
use tracing::info;

use super::{one_period, Hook, HookContext, RunValues, Timer};
use crate::error::Result;

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingTensorSettings {
    /// `loss`, `step` (the step the batch ran at), `global_step`, or a prediction's name
    /// (its mean over the batch).
    pub tensors: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_n_iter: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_n_secs: Option<f64>,
    #[serde(default)]
    pub at_end: bool,
}

pub struct LoggingTensorHook {
    settings: LoggingTensorSettings,
    timer: Timer,
}

impl LoggingTensorHook {
    pub fn new(settings: LoggingTensorSettings) -> Result<Self, Invalid> {
        one_period(
            "logging_tensor",
            settings.every_n_iter,
            settings.every_n_secs,
            settings.at_end,
        )?;
        if settings.tensors.is_empty() {
            return Err("logging_tensor: tensors must name at least one value".into());
        }
        let timer = Timer::new(settings.every_n_iter, settings.every_n_secs);
        Ok(LoggingTensorHook { settings, timer })
    }

    fn line(&self, values: &RunValues<'_>) -> String {
        self.settings
            .tensors
            .iter()
            .map(|name| {
                let value = match name.as_str() {
                    "step" => Some(values.step as f64),
                    _ => values.scalar(name),
                };
                match value {
                    Some(v) => format!("{name} = {}", format_number(v)),
                    None => format!("{name} = (absent)"),
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Integers without a fraction, reals as f32 prints them (as TF prints numpy floats).
fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{}", v as f32)
    }
}

impl Hook for LoggingTensorHook {
    fn name(&self) -> &str {
        "logging_tensor"
    }

    fn fetches(&self) -> &[String] {
        &self.settings.tensors
    }

    fn after_run(&mut self, values: &RunValues<'_>, _ctx: &mut HookContext) -> Result<()> {
        if self.timer.should_fire(values.step) {
            let since = self.timer.fired(values.step);
            match since {
                Some((_, secs)) => info!("{} ({secs:.3} sec)", self.line(values)),
                None => info!("{}", self.line(values)),
            }
        }
        Ok(())
    }

    fn end(&mut self, last: Option<&RunValues<'_>>) -> Result<()> {
        if let (true, Some(values)) = (self.settings.at_end, last) {
            info!("{}", self.line(values));
        }
        Ok(())
    }
}
