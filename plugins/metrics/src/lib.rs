//! Standard streaming metrics, as `tf.compat.v1.metrics`: each keeps partial sums that
//! `update` grows batch by batch and `merge` combines across workers.

mod accuracy;
mod mean;

pub use accuracy::Accuracy;
pub use mean::Mean;

use estimator_plugin_api::abi::{PluginError, TensorData, TensorView};

/// The values of a numeric tensor as f64, whatever its dtype.
fn values(name: &str, view: &TensorView<'_>) -> Result<Vec<f64>, PluginError> {
    match view.data {
        TensorData::F32(d) => Ok(d.iter().map(|&v| f64::from(v)).collect()),
        TensorData::I64(d) => Ok(d.iter().map(|&v| v as f64).collect()),
        TensorData::Str(_) => Err(PluginError::bad_data(format!(
            "{name} must be numeric, got strings"
        ))),
    }
}

/// Per-example weights (1 when absent), checked to have one value per example.
fn weights(view: Option<&TensorView<'_>>, examples: usize) -> Result<Vec<f64>, PluginError> {
    match view {
        None => Ok(vec![1.0; examples]),
        Some(w) => {
            let w = values("weights", w)?;
            if w.len() != examples {
                return Err(PluginError::bad_data(format!(
                    "{} weights for {examples} examples",
                    w.len()
                )));
            }
            Ok(w)
        }
    }
}

/// A `[total, count]` state as both metrics keep it.
fn merge_state(total: &mut f64, count: &mut f64, other: &[f64]) -> Result<(), PluginError> {
    match other {
        [t, c] => {
            *total += t;
            *count += c;
            Ok(())
        }
        _ => Err(PluginError::bad_data(format!(
            "state must be [total, count], got {} values",
            other.len()
        ))),
    }
}

estimator_plugin_api::export_plugin! {
    models: [],
    metrics: ["accuracy" => Accuracy, "mean" => Mean],
    inputs: [],
}
