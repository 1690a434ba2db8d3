//! TF's `MultiClassHead`: softmax cross-entropy over `n_classes > 2` logits.

use estimator_plugin_api::abi::{
    EstimatorSpec, MetricPartial, ModeKeys, NamedTensor, PluginError, Tensor, TensorBuf,
};
use estimator_plugin_api::sdk::layers::Params;
use estimator_plugin_api::sdk::tape::{Tape, Var};
use estimator_plugin_api::sdk::{
    argmax_rows, i64_column, softmax_rows, tensor_from_array2, ModelInputs,
};

pub struct MultiClassHead {
    pub n_classes: usize,
}

impl MultiClassHead {
    /// Builds the spec from the logits: TF's predictions in every mode, the mean loss
    /// (`sum_over_batch_size`) in TRAIN and EVAL, `accuracy` and `average_loss` in EVAL,
    /// and the gradients in TRAIN.
    pub fn spec(
        &self,
        tape: &mut Tape,
        params: &Params,
        logits: Var,
        inputs: &ModelInputs<'_>,
    ) -> Result<EstimatorSpec, PluginError> {
        let logit_values = tape.value(logits);
        let batch = logit_values.nrows();
        let class_ids = argmax_rows(logit_values);
        let probabilities = softmax_rows(logit_values);
        let mut spec = EstimatorSpec::new(inputs.mode);
        let all_ids: Vec<i64> = (0..self.n_classes as i64)
            .cycle()
            .take(batch * self.n_classes)
            .collect();
        let classes = class_ids.iter().map(|id| id.to_string().into()).collect();
        let all_classes = all_ids.iter().map(|id| id.to_string().into()).collect();
        spec.predictions = vec![
            NamedTensor::new("logits", tensor_from_array2(logit_values.to_owned())),
            NamedTensor::new("probabilities", tensor_from_array2(probabilities)),
            NamedTensor::new("class_ids", Tensor::i64(vec![batch, 1], class_ids.clone())),
            NamedTensor::new(
                "classes",
                Tensor {
                    shape: vec![batch, 1].into(),
                    data: TensorBuf::Str(classes),
                },
            ),
            NamedTensor::new(
                "all_class_ids",
                Tensor::i64(vec![batch, self.n_classes], all_ids),
            ),
            NamedTensor::new(
                "all_classes",
                Tensor {
                    shape: vec![batch, self.n_classes].into(),
                    data: TensorBuf::Str(all_classes),
                },
            ),
        ]
        .into();
        if inputs.mode == ModeKeys::Predict {
            return Ok(spec);
        }

        let labels = i64_column("labels", inputs.labels()?)?;
        let loss = tape.sparse_softmax_cross_entropy(logits, labels)?;
        let mean_loss = tape.scalar(loss);
        spec.loss = Some(mean_loss).into();
        match inputs.mode {
            ModeKeys::Train => spec.gradients = params.gradients(tape.backward(loss)),
            _ => {
                let correct = labels
                    .iter()
                    .zip(&class_ids)
                    .filter(|(l, p)| l == p)
                    .count();
                spec.eval_metric_ops = vec![
                    MetricPartial {
                        name: "accuracy".into(),
                        total: correct as f64,
                        count: batch as f64,
                    },
                    MetricPartial {
                        name: "average_loss".into(),
                        total: f64::from(mean_loss) * batch as f64,
                        count: batch as f64,
                    },
                ]
                .into();
            }
        }
        Ok(spec)
    }
}
