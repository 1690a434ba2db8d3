//! TF's `SummarySaverHook`: writes training scalars (loss, learning rate) to the
//! TensorBoard event file in model_dir, after the first step and then every N steps or
//! seconds, at the global step after the step (as TF does).

use crate::error::Invalid;
use serde::{Deserialize, Serialize};

use super::{one_period, Hook, HookContext, RunValues, Timer};
use crate::error::Result;
use crate::events::SummaryWriter;

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save_steps: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save_secs: Option<f64>,
    /// More scalars to write: predictions by name (their mean over the batch), as a
    /// plugin asks for values it wants to see in TensorBoard.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tensors: Vec<String>,
}

pub struct SummarySaverHook {
    timer: Timer,
    writer: SummaryWriter,
    tensors: Vec<String>,
}

impl SummarySaverHook {
    pub fn new(s: &Settings, writer: SummaryWriter) -> Result<Self, Invalid> {
        one_period("summary_saver", s.save_steps, s.save_secs, false)?;
        Ok(SummarySaverHook {
            timer: Timer::new(s.save_steps, s.save_secs),
            writer,
            tensors: s.tensors.clone(),
        })
    }
}

impl Hook for SummarySaverHook {
    fn name(&self) -> &str {
        "summary_saver"
    }

    fn fetches(&self) -> &[String] {
        &self.tensors
    }

    fn after_run(&mut self, values: &RunValues<'_>, _ctx: &mut HookContext) -> Result<()> {
        // A step with a non-finite loss was not applied: there is nothing to record.
        let applied = values.loss.is_none_or(f32::is_finite);
        if !applied || !self.timer.should_fire(values.global_step) {
            return Ok(());
        }
        self.timer.fired(values.global_step);
        let mut scalars = Vec::with_capacity(2 + self.tensors.len());
        if let Some(loss) = values.loss {
            scalars.push(("loss", loss));
        }
        if let Some(lr) = values.learning_rate {
            scalars.push(("learning_rate", lr));
        }
        for name in &self.tensors {
            if let Some(v) = values.scalar(name) {
                scalars.push((name.as_str(), v as f32));
            }
        }
        self.writer.scalars(values.global_step, &scalars)
    }
}
