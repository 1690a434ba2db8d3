//! TF's `MultiClassHead`: softmax cross-entropy over `n_classes > 2` logits.

use crate::abi::{EstimatorSpec, MetricPartial, ModeKeys, PluginError};
use crate::sdk::layers::Params;
use crate::sdk::tape::{Tape, Var};
use crate::sdk::ModelInputs;

use super::class_names::ClassNames;
use super::{
    add_class_predictions, add_class_predictions_with, weight_at, weighting, LossArgs,
    CLASS_PREDICTIONS,
};

pub struct MultiClassHead {
    pub classes: ClassNames,
    pub args: LossArgs,
}

impl MultiClassHead {
    /// Builds the spec from the logits: TF's predictions (in TRAIN, only when a hook
    /// fetches one), the reduced loss in TRAIN and EVAL, `accuracy` and `average_loss` in
    /// EVAL, and the gradients in TRAIN.
    pub fn spec(
        &self,
        tape: &mut Tape,
        params: &Params,
        logits: Var,
        inputs: &ModelInputs<'_>,
    ) -> Result<EstimatorSpec, PluginError> {
        let mut spec = EstimatorSpec::new(inputs.mode);
        if inputs.mode == ModeKeys::Predict {
            let class_ids = add_class_predictions(&mut spec, tape.value(logits));
            spec.predictions
                .extend(self.classes.predictions(&class_ids));
            return Ok(spec);
        }
        let labels = self.classes.ids(inputs.labels()?)?;
        let weights = self.args.weights(inputs)?;
        let loss = tape.weighted_softmax_cross_entropy(
            logits,
            &labels,
            weighting(&self.args, weights.as_deref()),
        )?;
        spec.loss = Some(tape.scalar(loss)).into();
        if inputs.mode == ModeKeys::Train {
            if inputs.wants_any_prediction(&CLASS_PREDICTIONS) {
                add_predictions(&mut spec, tape, logits, loss);
            }
            spec.gradients = params.gradients(tape.backward(loss));
            return Ok(spec);
        }
        let class_ids = add_predictions(&mut spec, tape, logits, loss);
        spec.predictions
            .extend(self.classes.predictions(&class_ids));
        let (mut correct, mut loss_sum, mut weight_sum) = (0.0, 0.0, 0.0);
        for (row, element_loss) in tape.element_losses(loss).iter().enumerate() {
            let w = weight_at(weights.as_deref(), row);
            if labels[row] == class_ids[row] {
                correct += w;
            }
            loss_sum += w * f64::from(*element_loss);
            weight_sum += w;
        }
        spec.eval_metric_ops = vec![
            MetricPartial::new("accuracy", correct, weight_sum),
            MetricPartial::new("average_loss", loss_sum, weight_sum),
        ]
        .into();
        Ok(spec)
    }
}

/// [`add_class_predictions`] with the softmax the loss computed. Returns the class ids.
fn add_predictions(spec: &mut EstimatorSpec, tape: &Tape, logits: Var, loss: Var) -> Vec<i64> {
    match tape.loss_softmax(loss) {
        Some(p) => add_class_predictions_with(spec, tape.value(logits), p.to_owned()),
        None => add_class_predictions(spec, tape.value(logits)),
    }
}
