//! TF's `StopAtStepHook`: stop after `num_steps` more steps, or at `last_step`.

use crate::error::Invalid;
use serde::{Deserialize, Serialize};

use super::{Hook, HookContext, RunValues};
use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_steps: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_step: Option<u64>,
}

pub struct StopAtStepHook {
    num_steps: Option<u64>,
    /// Fixed when the session starts (from `num_steps`) or given.
    last_step: Option<i64>,
}

impl StopAtStepHook {
    pub fn new(s: &Settings) -> Result<Self, Invalid> {
        match (s.num_steps, s.last_step) {
            (Some(_), Some(_)) | (None, None) => {
                Err("stop_at_step: exactly one of num_steps and last_step must be set".into())
            }
            _ => Ok(StopAtStepHook {
                num_steps: s.num_steps,
                last_step: s.last_step.map(|l| l as i64),
            }),
        }
    }
}

impl Hook for StopAtStepHook {
    fn name(&self) -> &str {
        "stop_at_step"
    }

    fn after_create_session(&mut self, global_step: i64, ctx: &mut HookContext) -> Result<()> {
        if self.last_step.is_none() {
            self.last_step = self.num_steps.map(|n| global_step.saturating_add(n as i64));
        }
        if self.last_step.is_some_and(|last| global_step >= last) {
            ctx.request_stop();
        }
        Ok(())
    }

    fn after_run(&mut self, values: &RunValues<'_>, ctx: &mut HookContext) -> Result<()> {
        if self
            .last_step
            .is_some_and(|last| values.global_step >= last)
        {
            ctx.request_stop();
        }
        Ok(())
    }

    /// The step `num_steps` fixed: a resumed run stops where the interrupted one would
    /// have. Only for the same `num_steps`; a given `last_step` needs no state.
    fn state(&self) -> Option<serde_json::Value> {
        let (num_steps, last_step) = (self.num_steps?, self.last_step?);
        Some(serde_json::json!({ "num_steps": num_steps, "last_step": last_step }))
    }

    fn restore(&mut self, state: &serde_json::Value) -> Result<()> {
        if self.num_steps.is_none() || state["num_steps"].as_u64() != self.num_steps {
            return Ok(());
        }
        let last = state["last_step"]
            .as_i64()
            .ok_or_else(|| Error::Data(format!("stop_at_step: unreadable saved state {state}")))?;
        self.last_step = Some(last);
        Ok(())
    }
}
