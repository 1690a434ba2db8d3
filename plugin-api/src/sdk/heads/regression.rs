//! TF's `RegressionHead`: the logits are the predictions; the loss is the squared error,
//! by default averaged over the batch and the label dimensions (`sum_over_batch_size`).

use ndarray::ArrayView2;

use crate::abi::{EstimatorSpec, MetricPartial, ModeKeys, NamedTensor, PluginError};
use crate::sdk::layers::Params;
use crate::sdk::tape::{Tape, Var};
use crate::sdk::{f32_matrix, tensor_from_array2, ModelInputs};

use super::{weight_at, weighting, LossArgs};

pub struct RegressionHead {
    pub label_dimension: usize,
    pub args: LossArgs,
}

impl RegressionHead {
    /// Predictions (`predictions`, `[batch, label_dimension]`; in TRAIN only when a hook
    /// fetches them); the loss in TRAIN and EVAL; TF's eval metrics `average_loss`,
    /// `label/mean` and `prediction/mean` in EVAL; the gradients in TRAIN.
    pub fn spec(
        &self,
        tape: &mut Tape,
        params: &Params,
        logits: Var,
        inputs: &ModelInputs<'_>,
    ) -> Result<EstimatorSpec, PluginError> {
        let batch = tape.value(logits).nrows();
        let mut spec = EstimatorSpec::new(inputs.mode);
        if inputs.mode == ModeKeys::Predict {
            add_predictions(&mut spec, tape.value(logits));
            return Ok(spec);
        }
        let labels = f32_matrix("labels", inputs.labels()?)?;
        if labels.dim() != (batch, self.label_dimension) {
            return Err(PluginError::bad_data(format!(
                "labels have shape {:?}; label_dimension {} needs [{batch}, {}]",
                labels.shape(),
                self.label_dimension,
                self.label_dimension
            )));
        }
        let weights = self.args.weights(inputs)?;
        let loss = tape.squared_error(
            logits,
            labels.to_owned(),
            weighting(&self.args, weights.as_deref()),
        )?;
        spec.loss = Some(tape.scalar(loss)).into();
        if inputs.mode == ModeKeys::Train {
            if inputs.wants_prediction("predictions") {
                add_predictions(&mut spec, tape.value(logits));
            }
            spec.gradients = params.gradients(tape.backward(loss));
            return Ok(spec);
        }
        let predictions = tape.value(logits);
        // Each example's weight counts once per label dimension, as TF broadcasts it.
        let dim = self.label_dimension;
        let (mut loss_sum, mut label_sum, mut prediction_sum, mut weight_sum) =
            (0.0, 0.0, 0.0, 0.0);
        let rows = tape
            .element_losses(loss)
            .chunks(dim)
            .zip(labels.rows())
            .zip(predictions.rows());
        for (row, ((losses, label), prediction)) in rows.enumerate() {
            let w = weight_at(weights.as_deref(), row);
            loss_sum += w * losses.iter().map(|&l| f64::from(l)).sum::<f64>();
            label_sum += w * label.iter().map(|&v| f64::from(v)).sum::<f64>();
            prediction_sum += w * prediction.iter().map(|&v| f64::from(v)).sum::<f64>();
            weight_sum += w * dim as f64;
        }
        spec.eval_metric_ops = vec![
            MetricPartial::new("average_loss", loss_sum, weight_sum),
            MetricPartial::new("label/mean", label_sum, weight_sum),
            MetricPartial::new("prediction/mean", prediction_sum, weight_sum),
        ]
        .into();
        add_predictions(&mut spec, predictions);
        Ok(spec)
    }
}

/// TF's regression prediction: `predictions`, the logits.
fn add_predictions(spec: &mut EstimatorSpec, logits: ArrayView2<'_, f32>) {
    let predictions = tensor_from_array2(logits.to_owned());
    spec.predictions
        .push(NamedTensor::new("predictions", predictions));
}
