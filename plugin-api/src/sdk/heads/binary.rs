//! TF's `BinaryClassHead`: one logit per example, sigmoid cross-entropy, and TF's binary
//! eval metrics (accuracy, accuracy_baseline, auc, auc_precision_recall, average_loss,
//! label/mean, prediction/mean, precision, recall).

use ndarray::ArrayView2;

use crate::abi::{
    EstimatorSpec, MetricPartial, MetricValue, ModeKeys, NamedTensor, PluginError, Tensor,
    TensorData, TensorView,
};
use crate::sdk::auc::{ThresholdCounts, DEFAULT_NUM_THRESHOLDS};
use crate::sdk::layers::Params;
use crate::sdk::tape::{Tape, Var};
use crate::sdk::{tensor_from_array2, ModelInputs};

use super::class_names::ClassNames;
use super::{weight_at, weighting, LossArgs};

/// Prefix of the partial sums that hold the AUC's confusion counts; they are turned into
/// `auc` and `auc_precision_recall` and never reported themselves.
const CURVE: &str = "auc/counts/";

/// The predictions a TRAIN step carries when a hook fetches one of them.
const PREDICTIONS: [&str; 4] = ["logits", "logistic", "probabilities", "class_ids"];

pub struct BinaryClassHead {
    pub classes: ClassNames,
    pub args: LossArgs,
}

impl BinaryClassHead {
    /// Builds the spec from the logits: TF's binary predictions (in TRAIN, only when a
    /// hook fetches one), the reduced loss in TRAIN and EVAL, TF's binary metrics in EVAL,
    /// and the gradients in TRAIN.
    pub fn spec(
        &self,
        tape: &mut Tape,
        params: &Params,
        logits: Var,
        inputs: &ModelInputs<'_>,
    ) -> Result<EstimatorSpec, PluginError> {
        let mut spec = EstimatorSpec::new(inputs.mode);
        if inputs.mode == ModeKeys::Predict {
            self.add_predictions(&mut spec, tape.value(logits), true);
            return Ok(spec);
        }
        let targets = self.targets(inputs.labels()?)?;
        let weights = self.args.weights(inputs)?;
        let loss = tape.sigmoid_cross_entropy(
            logits,
            targets.clone(),
            weighting(&self.args, weights.as_deref()),
        )?;
        spec.loss = Some(tape.scalar(loss)).into();
        if inputs.mode == ModeKeys::Train {
            if inputs.wants_any_prediction(&PREDICTIONS) {
                self.add_predictions(&mut spec, tape.value(logits), false);
            }
            spec.gradients = params.gradients(tape.backward(loss));
            return Ok(spec);
        }
        let (logistic, class_ids) = self.add_predictions(&mut spec, tape.value(logits), true);
        let mut sums = Sums::default();
        let mut curve = ThresholdCounts::new(DEFAULT_NUM_THRESHOLDS);
        for (row, &element_loss) in tape.element_losses(loss).iter().enumerate() {
            let w = weight_at(weights.as_deref(), row);
            let (label, predicted) = (targets[row], class_ids[row]);
            sums.add(w, f64::from(label), predicted, f64::from(logistic[row]));
            sums.loss += w * f64::from(element_loss);
            curve.add(label > 0.0, f64::from(logistic[row]), w);
        }
        let mut ops = sums.partials();
        ops.extend(
            curve
                .state()
                .into_iter()
                .enumerate()
                .map(|(i, count)| MetricPartial::new(format!("{CURVE}{i}"), count, 0.0)),
        );
        spec.eval_metric_ops = ops.into();
        Ok(spec)
    }

    /// Adds TF's binary predictions, in TF's key order, and returns the `logistic` values
    /// and the class ids. Without `names` (in TRAIN) only the numeric ones: `classes`,
    /// `all_class_ids` and `all_classes` are for prediction output and serving, and
    /// building a string per example every step would cost more than the rest of the head.
    fn add_predictions(
        &self,
        spec: &mut EstimatorSpec,
        logits: ArrayView2<'_, f32>,
        names: bool,
    ) -> (Vec<f32>, Vec<i64>) {
        let batch = logits.nrows();
        let logistic: Vec<f32> = logits.iter().map(|&x| sigmoid(x)).collect();
        // argmax over [0, logit]: a logit of exactly 0 is class 0, as TF.
        let class_ids: Vec<i64> = logits.iter().map(|&x| i64::from(x > 0.0)).collect();
        let probabilities = logistic.iter().flat_map(|&p| [1.0 - p, p]).collect();
        spec.predictions.extend([
            NamedTensor::new("logits", tensor_from_array2(logits.to_owned())),
            NamedTensor::new("logistic", Tensor::f32(vec![batch, 1], logistic.clone())),
            NamedTensor::new("probabilities", Tensor::f32(vec![batch, 2], probabilities)),
            NamedTensor::new("class_ids", Tensor::i64(vec![batch, 1], class_ids.clone())),
        ]);
        if names {
            spec.predictions
                .extend(self.classes.predictions(&class_ids));
        }
        (logistic, class_ids)
    }

    /// Labels as sigmoid targets: class ids 0 or 1, vocabulary words, or floats in [0, 1]
    /// (TF casts binary labels to float).
    fn targets(&self, labels: &TensorView<'_>) -> Result<Vec<f32>, PluginError> {
        if let TensorData::F32(values) = labels.data {
            if values.len() != labels.batch_len() {
                return Err(PluginError::bad_data(format!(
                    "labels must have shape [batch] or [batch, 1], got {:?}",
                    labels.shape.as_slice()
                )));
            }
            return match values.iter().find(|v| !(0.0..=1.0).contains(*v)) {
                Some(v) => Err(PluginError::bad_data(format!(
                    "label {v} is outside [0, 1] (a binary classifier's labels)"
                ))),
                None => Ok(values.to_vec()),
            };
        }
        self.classes
            .ids(labels)?
            .iter()
            .map(|&id| match id {
                0 | 1 => Ok(id as f32),
                _ => Err(PluginError::bad_data(format!(
                    "label {id} is outside [0, 2)"
                ))),
            })
            .collect()
    }

    /// TF's binary metrics from the sums over a whole evaluation.
    pub fn eval_metric_results(sums: &[MetricPartial]) -> Vec<MetricValue> {
        let mut out = Vec::new();
        let mut counts = Vec::new();
        for s in sums {
            match s.name.as_str().strip_prefix(CURVE) {
                Some(index) => counts.push((index.parse::<usize>().unwrap_or(usize::MAX), s.total)),
                None => out.push(s.ratio_value()),
            }
        }
        if let Some(label_mean) = out.iter().find(|m| m.name.as_str() == "label/mean") {
            let m = label_mean.value;
            out.push(MetricValue::new("accuracy_baseline", m.max(1.0 - m)));
        }
        counts.sort_by_key(|&(i, _)| i);
        let state: Vec<f64> = counts.into_iter().map(|(_, c)| c).collect();
        if let Some(curve) = ThresholdCounts::from_state(&state) {
            out.push(MetricValue::new("auc", curve.roc_auc()));
            out.push(MetricValue::new(
                "auc_precision_recall",
                curve.pr_auc_interpolated(),
            ));
        }
        out
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Weighted sums for the ratio metrics of one batch.
#[derive(Default)]
struct Sums {
    weight: f64,
    correct: f64,
    loss: f64,
    label: f64,
    prediction: f64,
    true_positives: f64,
    predicted_positives: f64,
    positives: f64,
}

impl Sums {
    fn add(&mut self, w: f64, label: f64, class_id: i64, logistic: f64) {
        let (actual, predicted) = (label > 0.0, class_id == 1);
        self.weight += w;
        self.label += w * label;
        self.prediction += w * logistic;
        if label == class_id as f64 {
            self.correct += w;
        }
        if predicted {
            self.predicted_positives += w;
        }
        if actual {
            self.positives += w;
        }
        if actual && predicted {
            self.true_positives += w;
        }
    }

    fn partials(&self) -> Vec<MetricPartial> {
        vec![
            MetricPartial::new("accuracy", self.correct, self.weight),
            MetricPartial::new("average_loss", self.loss, self.weight),
            MetricPartial::new("label/mean", self.label, self.weight),
            MetricPartial::new("prediction/mean", self.prediction, self.weight),
            MetricPartial::new("precision", self.true_positives, self.predicted_positives),
            MetricPartial::new("recall", self.true_positives, self.positives),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_from_sums_match_hand_computation() {
        // Labels 1, 0, 1, 0 with logistic 0.9, 0.6, 0.3, 0.1 (class ids 1, 1, 0, 0).
        let mut sums = Sums::default();
        let mut curve = ThresholdCounts::new(DEFAULT_NUM_THRESHOLDS);
        for (label, p) in [(1.0, 0.9), (0.0, 0.6), (1.0, 0.3), (0.0, 0.1)] {
            sums.add(1.0, label, i64::from(p > 0.5), p);
            curve.add(label > 0.0, p, 1.0);
        }
        let mut partials = sums.partials();
        partials.extend(
            curve
                .state()
                .into_iter()
                .enumerate()
                .map(|(i, c)| MetricPartial::new(format!("{CURVE}{i}"), c, 0.0)),
        );
        let results = BinaryClassHead::eval_metric_results(&partials);
        let get = |name: &str| {
            results
                .iter()
                .find(|m| m.name.as_str() == name)
                .map(|m| m.value)
                .unwrap_or(f64::NAN)
        };
        assert_eq!(get("accuracy"), 0.5);
        assert_eq!(get("precision"), 0.5, "tp 1 of 2 predicted positives");
        assert_eq!(get("recall"), 0.5, "tp 1 of 2 positives");
        assert_eq!(get("label/mean"), 0.5);
        assert!((get("prediction/mean") - 0.475).abs() < 1e-12);
        assert_eq!(get("accuracy_baseline"), 0.5);
        // Pairs (positive, negative) ordered right: (0.9, 0.6), (0.9, 0.1), (0.3, 0.1).
        assert!((get("auc") - 0.75).abs() < 1e-9, "{}", get("auc"));
        // Keras' interpolated PR area, by hand, from the top threshold down: the positive
        // at 0.9 leaves predicted positives 1 -> 0 and tp 1 -> 0 (slope 1, intercept 0):
        // 1/2 of the 2 positives. The positive at 0.3 leaves 3 -> 2 with tp 2 -> 1 (slope 1,
        // intercept 1 - 2 = -1, ratio 3/2): (1 - ln 1.5) / 2. The negatives add nothing.
        let pr = 0.5 + (1.0 - 1.5f64.ln()) / 2.0;
        assert!(
            (get("auc_precision_recall") - pr).abs() < 1e-9,
            "{} vs {pr}",
            get("auc_precision_recall")
        );
        assert!(
            results.iter().all(|m| !m.name.as_str().starts_with(CURVE)),
            "the counts are not reported"
        );
    }
}
