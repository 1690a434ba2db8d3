//! TF's `StepCounterHook`: logs `global_step/sec` every N steps or seconds.

use crate::error::Invalid;
use serde::{Deserialize, Serialize};
use tracing::info;

use super::{one_period, Hook, HookContext, RunValues, Timer};
use crate::error::Result;
use crate::events::SummaryWriter;

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_n_steps: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_n_secs: Option<f64>,
}

pub struct StepCounterHook {
    timer: Timer,
    /// The last rate measured.
    pub last_rate: Option<f64>,
    summaries: Option<SummaryWriter>,
}

impl StepCounterHook {
    pub fn new(s: &Settings) -> Result<Self, Invalid> {
        one_period("step_counter", s.every_n_steps, s.every_n_secs, false)?;
        Ok(StepCounterHook {
            timer: Timer::new(s.every_n_steps, s.every_n_secs),
            last_rate: None,
            summaries: None,
        })
    }

    /// Also writes `global_step/sec` to TensorBoard, as TF's does.
    pub fn writing_to(mut self, summaries: SummaryWriter) -> Self {
        self.summaries = Some(summaries);
        self
    }
}

impl Hook for StepCounterHook {
    fn name(&self) -> &str {
        "step_counter"
    }

    fn after_run(&mut self, values: &RunValues<'_>, _ctx: &mut HookContext) -> Result<()> {
        if self.timer.should_fire(values.step) {
            if let Some((steps, secs)) = self.timer.fired(values.step) {
                let rate = steps as f64 / secs.max(1e-9);
                self.last_rate = Some(rate);
                info!("global_step/sec: {rate:.1}");
                if let Some(w) = &self.summaries {
                    w.scalars(values.global_step, &[("global_step/sec", rate as f32)])?;
                }
            }
        }
        Ok(())
    }
}
