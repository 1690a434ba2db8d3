//! TF's heads: what turns a model's logits into predictions, a loss and eval metrics, in
//! one call from any model_fn (TF's `head.create_estimator_spec`): [`Head::spec`]. Every
//! premade model ends in one; the model supplies logits of the head's width.

mod binary;
mod class_names;
mod multi_class;
mod regression;

use ndarray::{Array2, ArrayView2};

use crate::abi::{EstimatorSpec, ExportOutput, MetricPartial, MetricValue, PluginError, Tensor};
use crate::sdk::feature_columns::NumericColumn;
use crate::sdk::layers::Params;
use crate::sdk::tape::{LossReduction, Tape, Var, Weighting};
use crate::sdk::{argmax_rows, softmax_rows, tensor_from_array2, ModelInputs};

pub use binary::BinaryClassHead;
pub use class_names::ClassNames;
pub use multi_class::MultiClassHead;
pub use regression::RegressionHead;

/// The constructor arguments every head takes (each model's params list them).
#[derive(Clone, Debug, Default)]
pub struct LossArgs {
    /// TF's `weight_column`: a feature key, or a numeric column (its normalizer applied),
    /// whose values weight each example's loss and metrics.
    pub weight_column: Option<NumericColumn>,
    pub loss_reduction: LossReduction,
}

impl LossArgs {
    pub fn new(
        weight_column: Option<NumericColumn>,
        loss_reduction: LossReduction,
    ) -> Result<Self, PluginError> {
        if let Some(column) = &weight_column {
            column.check()?;
        }
        Ok(LossArgs {
            weight_column,
            loss_reduction,
        })
    }

    /// Each example's weight for this batch, or `None` without a weight column.
    pub fn weights(&self, inputs: &ModelInputs<'_>) -> Result<Option<Vec<f32>>, PluginError> {
        let Some(column) = &self.weight_column else {
            return Ok(None);
        };
        let values = column.values(inputs)?;
        if values.ncols() != 1 {
            return Err(PluginError::bad_data(format!(
                "weight_column `{}` must hold one value per example, got {}",
                column.key,
                values.ncols()
            )));
        }
        Ok(Some(values.iter().copied().collect()))
    }
}

/// One example weight per row, 1 when there is no weight column.
pub fn weight_at(weights: Option<&[f32]>, row: usize) -> f64 {
    weights.map_or(1.0, |w| f64::from(w[row]))
}

/// The weighting a loss op needs.
pub fn weighting<'w>(args: &LossArgs, weights: Option<&'w [f32]>) -> Weighting<'w> {
    Weighting {
        weights,
        reduction: args.loss_reduction,
    }
}

/// A head, chosen as TF's `binary_or_multi_class_head` does for classifiers.
pub enum Head {
    Binary(BinaryClassHead),
    MultiClass(MultiClassHead),
    Regression(RegressionHead),
}

impl Head {
    /// `n_classes == 2` gives the binary head, more the multi-class head; fewer is TF's
    /// error.
    pub fn classifier(
        n_classes: usize,
        label_vocabulary: Option<Vec<String>>,
        args: LossArgs,
    ) -> Result<Head, PluginError> {
        if n_classes < 2 {
            return Err(PluginError::bad_params(format!(
                "n_classes must be > 2: {n_classes} (2 for a binary classifier)"
            )));
        }
        let classes = ClassNames::new(n_classes, label_vocabulary)?;
        Ok(match n_classes {
            2 => Head::Binary(BinaryClassHead { classes, args }),
            _ => Head::MultiClass(MultiClassHead { classes, args }),
        })
    }

    pub fn regressor(label_dimension: usize, args: LossArgs) -> Result<Head, PluginError> {
        if label_dimension == 0 {
            return Err(PluginError::bad_params("Invalid label_dimension 0."));
        }
        Ok(Head::Regression(RegressionHead {
            label_dimension,
            args,
        }))
    }

    /// Width of the logits the model must produce.
    pub fn logits_dimension(&self) -> usize {
        match self {
            Head::Binary(_) => 1,
            Head::MultiClass(h) => h.classes.len(),
            Head::Regression(h) => h.label_dimension,
        }
    }

    pub fn spec(
        &self,
        tape: &mut Tape,
        params: &Params,
        logits: Var,
        inputs: &ModelInputs<'_>,
    ) -> Result<EstimatorSpec, PluginError> {
        match self {
            Head::Binary(h) => h.spec(tape, params, logits, inputs),
            Head::MultiClass(h) => h.spec(tape, params, logits, inputs),
            Head::Regression(h) => h.spec(tape, params, logits, inputs),
        }
    }

    /// TF's serving signatures for this head's predictions: `serving_default` and
    /// `classification` (scores `probabilities`, classes `all_classes`) for a classifier,
    /// plus `regression` (`logistic`) for a binary one; `serving_default` and
    /// `regression` (`predictions`) for a regressor; and `predict` (every prediction).
    pub fn export_outputs(&self) -> Vec<ExportOutput> {
        let classification =
            |name| ExportOutput::classification(name, "probabilities", "all_classes");
        let mut outputs = match self {
            Head::Binary(_) => vec![
                classification("serving_default"),
                classification("classification"),
                ExportOutput::regression("regression", "logistic"),
            ],
            Head::MultiClass(_) => vec![
                classification("serving_default"),
                classification("classification"),
            ],
            Head::Regression(_) => vec![
                ExportOutput::regression("serving_default", "predictions"),
                ExportOutput::regression("regression", "predictions"),
            ],
        };
        outputs.push(ExportOutput::predict_all("predict"));
        outputs
    }

    pub fn eval_metric_results(&self, sums: &[MetricPartial]) -> Vec<MetricValue> {
        match self {
            Head::Binary(_) => BinaryClassHead::eval_metric_results(sums),
            _ => sums.iter().map(MetricPartial::ratio_value).collect(),
        }
    }
}

/// The predictions [`add_class_predictions`] adds, for [`ModelInputs::wants_any_prediction`].
pub const CLASS_PREDICTIONS: [&str; 3] = ["logits", "probabilities", "class_ids"];

/// Adds TF's classification predictions of `logits` to `spec`: `logits`, `probabilities`
/// (their softmax) and `class_ids` (`[batch, 1]`, the most probable class). Returns the
/// class ids.
pub fn add_class_predictions(spec: &mut EstimatorSpec, logits: ArrayView2<'_, f32>) -> Vec<i64> {
    add_class_predictions_with(spec, logits, softmax_rows(logits))
}

/// [`add_class_predictions`] with the logits' softmax already computed (by the loss, see
/// [`crate::sdk::tape::Tape::loss_softmax`]).
pub fn add_class_predictions_with(
    spec: &mut EstimatorSpec,
    logits: ArrayView2<'_, f32>,
    probabilities: Array2<f32>,
) -> Vec<i64> {
    let class_ids = argmax_rows(logits);
    spec.add_prediction("logits", tensor_from_array2(logits.to_owned()));
    spec.add_prediction("probabilities", tensor_from_array2(probabilities));
    spec.add_prediction(
        "class_ids",
        Tensor::i64(vec![logits.nrows(), 1], class_ids.clone()),
    );
    class_ids
}
