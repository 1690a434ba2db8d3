//! TF's `FinalOpsHook`: the values of named tensors at the end of the loop.

use serde::{Deserialize, Serialize};
use tracing::info;

use super::{Hook, RunValues};
use crate::error::Result;

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// As `logging_tensor`'s `tensors`.
    pub tensors: Vec<String>,
}

pub struct FinalOpsHook {
    settings: Settings,
    values: Vec<(String, Option<f64>)>,
}

impl FinalOpsHook {
    pub fn new(settings: Settings) -> Self {
        FinalOpsHook {
            settings,
            values: Vec::new(),
        }
    }

    /// The values at the end, in the order asked; `None` for a name the last step lacked.
    pub fn final_ops_values(&self) -> &[(String, Option<f64>)] {
        &self.values
    }
}

impl Hook for FinalOpsHook {
    fn name(&self) -> &str {
        "final_ops"
    }

    fn fetches(&self) -> &[String] {
        &self.settings.tensors
    }

    fn end(&mut self, last: Option<&RunValues<'_>>) -> Result<()> {
        let Some(values) = last else {
            return Ok(());
        };
        self.values = self
            .settings
            .tensors
            .iter()
            .map(|name| {
                let v = match name.as_str() {
                    "step" => Some(values.step as f64),
                    _ => values.scalar(name),
                };
                (name.clone(), v)
            })
            .collect();
        let line: Vec<String> = self
            .values
            .iter()
            .map(|(n, v)| match v {
                Some(v) => format!("{n} = {v}"),
                None => format!("{n} = (absent)"),
            })
            .collect();
        info!("Final values: {}", line.join(", "));
        Ok(())
    }
}
