//! Standard streaming metrics, as `tf.compat.v1.metrics`: each keeps partial sums that
//! `update` grows batch by batch and `merge` combines across workers.

mod accuracy;
mod auc;
mod confusion;
mod mean;
mod regression;
mod top_k;

pub use accuracy::Accuracy;
pub use auc::Auc;
pub use confusion::{
    FalseNegatives, FalsePositives, Precision, Recall, TrueNegatives, TruePositives,
};
pub use mean::Mean;
pub use regression::{MeanAbsoluteError, MeanSquaredError, RootMeanSquaredError};
pub use top_k::{PrecisionAtK, RecallAtK};

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

/// The positive class's score per example: the predictions themselves when there is one
/// per example, or the second column of `[batch, 2]` (a binary head's probabilities).
fn positive_scores(view: &TensorView<'_>, examples: usize) -> Result<Vec<f64>, PluginError> {
    let scores = values("predictions", view)?;
    if scores.len() == examples {
        return Ok(scores);
    }
    if scores.len() == 2 * examples && view.shape.get(1) == Some(&2) {
        return Ok(scores.chunks_exact(2).map(|row| row[1]).collect());
    }
    Err(PluginError::bad_data(format!(
        "predictions must be one score per example or [batch, 2] probabilities for {examples} labels, got shape {:?}",
        view.shape.as_slice()
    )))
}

/// Labels and predictions as f64, one prediction per label; `context` starts the message
/// when the counts differ.
fn paired(
    context: &str,
    labels: &TensorView<'_>,
    predictions: &TensorView<'_>,
) -> Result<(Vec<f64>, Vec<f64>), PluginError> {
    let labels = values("labels", labels)?;
    let predictions = values("predictions", predictions)?;
    if labels.len() != predictions.len() {
        return Err(PluginError::bad_data(format!(
            "{context}{} labels but {} predictions",
            labels.len(),
            predictions.len()
        )));
    }
    Ok((labels, predictions))
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
    metrics: [
        "accuracy" => Accuracy,
        "mean" => Mean,
        "precision" => Precision,
        "recall" => Recall,
        "true_positives" => TruePositives,
        "false_positives" => FalsePositives,
        "true_negatives" => TrueNegatives,
        "false_negatives" => FalseNegatives,
        "auc" => Auc,
        "mean_squared_error" => MeanSquaredError,
        "root_mean_squared_error" => RootMeanSquaredError,
        "mean_absolute_error" => MeanAbsoluteError,
        "precision_at_k" => PrecisionAtK,
        "recall_at_k" => RecallAtK,
    ],
    inputs: [],
}

#[cfg(test)]
pub(crate) mod tests {
    use estimator_plugin_api::abi::FactoryContext;

    pub fn ctx() -> FactoryContext<'static> {
        FactoryContext {
            base_dir: ".".into(),
            seed: 0,
        }
    }
}
