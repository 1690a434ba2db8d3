//! TF's `NanTensorHook`: a NaN or infinite loss fails the run, or stops it cleanly.
//!
//! The loop never applies a step whose loss is not finite, whatever the hooks say, so a
//! stopped run's last checkpoint holds the last finite state.

use serde::{Deserialize, Serialize};
use tracing::warn;

use super::{Hook, HookContext, RunInfo, RunValues};
use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Fail with an error (true, TF's default) or stop cleanly (false).
    #[serde(default = "yes")]
    pub fail_on_nan_loss: bool,
}

fn yes() -> bool {
    true
}

pub struct NanTensorHook {
    fail: bool,
    /// The model's plugin, whose output the failure is about.
    model_plugin: String,
}

impl NanTensorHook {
    pub fn new(fail_on_nan_loss: bool) -> Self {
        NanTensorHook {
            fail: fail_on_nan_loss,
            model_plugin: String::new(),
        }
    }
}

impl Hook for NanTensorHook {
    fn name(&self) -> &str {
        "nan_tensor"
    }

    fn begin(&mut self, run: &RunInfo) -> Result<()> {
        self.model_plugin = run.model_plugin.clone();
        Ok(())
    }

    fn after_run(&mut self, values: &RunValues<'_>, ctx: &mut HookContext) -> Result<()> {
        let Some(loss) = values.loss.filter(|l| !l.is_finite()) else {
            return Ok(());
        };
        let message = format!("loss is {loss} at global step {}", values.step);
        if self.fail {
            return Err(Error::Spec {
                plugin: self.model_plugin.clone(),
                message: format!("{message}; it must be finite (nan_tensor: fail_on_nan_loss)"),
            });
        }
        warn!("{message}; stopping training (nan_tensor: fail_on_nan_loss is false)");
        ctx.request_stop();
        Ok(())
    }
}
