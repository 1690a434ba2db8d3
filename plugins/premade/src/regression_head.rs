//! TF's `RegressionHead`: the logits are the predictions; the loss is the mean squared
//! error over the batch and the label dimensions (`sum_over_batch_size`).

use estimator_plugin_api::abi::{EstimatorSpec, MetricPartial, ModeKeys, NamedTensor, PluginError};
use estimator_plugin_api::sdk::layers::Params;
use estimator_plugin_api::sdk::tape::{Tape, Var};
use estimator_plugin_api::sdk::{f32_matrix, tensor_from_array2, ModelInputs};

pub struct RegressionHead {
    pub label_dimension: usize,
}

impl RegressionHead {
    /// Predictions (`predictions`, `[batch, label_dimension]`) in every mode; the loss in
    /// TRAIN and EVAL; TF's eval metrics `average_loss`, `label/mean` and
    /// `prediction/mean` in EVAL; the gradients in TRAIN.
    pub fn spec(
        &self,
        tape: &mut Tape,
        params: &Params,
        logits: Var,
        inputs: &ModelInputs<'_>,
    ) -> Result<EstimatorSpec, PluginError> {
        let predictions = tape.value(logits).to_owned();
        let batch = predictions.nrows();
        let mut spec = EstimatorSpec::new(inputs.mode);
        if inputs.mode == ModeKeys::Predict {
            spec.predictions.push(NamedTensor::new(
                "predictions",
                tensor_from_array2(predictions),
            ));
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
        let loss = tape.mean_squared_error(logits, labels.to_owned())?;
        let mean_loss = tape.scalar(loss);
        spec.loss = Some(mean_loss).into();
        if inputs.mode == ModeKeys::Train {
            spec.gradients = params.gradients(tape.backward(loss));
            return Ok(spec);
        }
        let values = (batch * self.label_dimension) as f64;
        spec.eval_metric_ops = vec![
            MetricPartial {
                name: "average_loss".into(),
                total: f64::from(mean_loss) * values,
                count: values,
            },
            MetricPartial {
                name: "label/mean".into(),
                total: labels.iter().map(|&v| f64::from(v)).sum(),
                count: values,
            },
            MetricPartial {
                name: "prediction/mean".into(),
                total: predictions.iter().map(|&v| f64::from(v)).sum(),
                count: values,
            },
        ]
        .into();
        spec.predictions.push(NamedTensor::new(
            "predictions",
            tensor_from_array2(predictions),
        ));
        Ok(spec)
    }
}
