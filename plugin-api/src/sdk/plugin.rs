//! The plain Rust traits plugin authors implement. The export macro adapts them to the ABI.

use serde::de::DeserializeOwned;

use super::feature_hint::FeatureHint;

use crate::abi::{
    BuiltIn, Chunk, EstimatorSpec, ExportOutput, FactoryContext, MetricPartial, MetricValue,
    ModeKeys, NamedView, OptimizerPart, PluginError, StepContext, TensorView, VarSpec,
};

/// Everything model_fn receives for one batch, borrowed from the host for the call.
pub struct ModelInputs<'a> {
    pub features: &'a [NamedView<'a>],
    /// Absent in PREDICT.
    pub labels: Option<TensorView<'a>>,
    pub mode: ModeKeys,
    /// The model's variables in declaration order.
    pub variables: &'a [NamedView<'a>],
    /// The model's declarations, the same order as `variables`.
    pub specs: &'a [VarSpec],
    pub ctx: StepContext,
    /// In TRAIN, the predictions the host reads from the step (its hooks' fetches);
    /// `None` when it has not said, and reads them all. See
    /// [`ModelInputs::wants_prediction`].
    pub train_fetches: Option<&'a [String]>,
}

impl<'a> ModelInputs<'a> {
    /// The feature `name`. Features sorted by name (as a server passes them) are found by
    /// binary search; otherwise by a scan.
    pub fn feature(&self, name: &str) -> Result<&TensorView<'a>, PluginError> {
        self.position(name)
            .map(|index| &self.features[index].tensor)
    }

    /// The feature `name`, looked for first where `hint` says it was last time, and the
    /// hint updated: a model that keeps one hint per feature it reads finds each in one
    /// comparison when batches keep their layout, as a host's do.
    pub fn feature_hinted(
        &self,
        name: &str,
        hint: &FeatureHint,
    ) -> Result<&TensorView<'a>, PluginError> {
        if let Some(found) = self.features.get(hint.get()) {
            if found.name.as_str() == name {
                return Ok(&found.tensor);
            }
        }
        let index = self.position(name)?;
        hint.set(index);
        Ok(&self.features[index].tensor)
    }

    fn position(&self, name: &str) -> Result<usize, PluginError> {
        let by_search = self
            .features
            .binary_search_by(|f| f.name.as_str().cmp(name))
            .ok();
        by_search
            .or_else(|| self.features.iter().position(|f| f.name.as_str() == name))
            .ok_or_else(|| {
                let known: Vec<&str> = self.features.iter().map(|f| f.name.as_str()).collect();
                PluginError::bad_data(format!(
                    "feature `{name}` is not in the input (it has: {})",
                    known.join(", ")
                ))
            })
    }

    /// The number of examples in the batch.
    pub fn batch_len(&self) -> usize {
        self.features
            .first()
            .map(|f| f.tensor.batch_len())
            .or_else(|| self.labels.as_ref().map(TensorView::batch_len))
            .unwrap_or(0)
    }

    /// Whether the host reads prediction `name` from this step: always in EVAL and
    /// PREDICT, and in TRAIN only when a hook fetches it. As TF runs only the ops a step
    /// fetches, a TRAIN step may skip the predictions no one reads.
    pub fn wants_prediction(&self, name: &str) -> bool {
        self.mode != ModeKeys::Train
            || self
                .train_fetches
                .is_none_or(|fetches| fetches.iter().any(|f| f == name))
    }

    /// Whether the host reads any of `names` from this step ([`ModelInputs::wants_prediction`]).
    pub fn wants_any_prediction(&self, names: &[&str]) -> bool {
        names.iter().any(|name| self.wants_prediction(name))
    }

    /// The labels, or an error naming the mode when the input has none.
    pub fn labels(&self) -> Result<&TensorView<'a>, PluginError> {
        self.labels.as_ref().ok_or_else(|| {
            PluginError::bad_data(format!(
                "mode {} needs labels but the input has none",
                self.mode
            ))
        })
    }
}

/// A model: TF's `model_fn` plus the variables it uses.
///
/// Call sequence: `new` once with the manifest's `params`; `variables` once; then
/// `model_fn` once per batch, in any mode.
pub trait Model: Send + Sized + 'static {
    /// The manifest's `model.params`, deserialized; unknown keys should be rejected.
    type Params: DeserializeOwned;

    fn new(params: Self::Params, ctx: &FactoryContext<'_>) -> Result<Self, PluginError>;

    fn variables(&self) -> Vec<VarSpec>;

    fn model_fn(&mut self, inputs: &ModelInputs<'_>) -> Result<EstimatorSpec, PluginError>;

    /// Built-in hooks the model wants in `mode`'s loop (TF's `training_hooks`,
    /// `evaluation_hooks`, `prediction_hooks`), each named and set as the manifest's
    /// `hooks:` would: `BuiltIn::new("logging_tensor").with("tensors", ["loss"])
    /// .with("every_n_iter", 10)`.
    fn requested_hooks(&self, _mode: ModeKeys) -> Vec<BuiltIn> {
        Vec::new()
    }

    /// Which optimizer updates which variables, with TF's default for each part (a DNN's
    /// Adagrad 0.001, a linear model's Ftrl 0.2). The manifest's `optimizer:` overrides a
    /// part's default. Empty (the default): one part, the host's default optimizer.
    fn optimizer_parts(&self) -> Vec<OptimizerPart> {
        Vec::new()
    }

    /// The model's serving signatures, TF's `export_outputs`. Empty (the default): TF's
    /// default, `serving_default` predicting every prediction. A head gives TF's
    /// (`Head::export_outputs`).
    fn export_outputs(&self) -> Vec<ExportOutput> {
        Vec::new()
    }

    /// The reported metrics from the sums of `eval_metric_ops` over a whole evaluation
    /// (each name's totals and counts added up): TF's metric value ops. By default each
    /// sum's `total / count`; override it for metrics that are not ratios (an AUC from
    /// confusion counts, a baseline from a label mean).
    fn eval_metric_results(&self, sums: &[MetricPartial]) -> Result<Vec<MetricValue>, PluginError> {
        Ok(sums.iter().map(MetricPartial::ratio_value).collect())
    }
}

/// A streaming metric. `state` is its partial result as a flat vector, which `merge`
/// adds into another instance of the same metric (made with the same params).
pub trait StreamingMetric: Send + Sized + 'static {
    type Params: DeserializeOwned;

    fn new(params: Self::Params, ctx: &FactoryContext<'_>) -> Result<Self, PluginError>;

    fn update(
        &mut self,
        labels: &TensorView<'_>,
        predictions: &TensorView<'_>,
        weights: Option<&TensorView<'_>>,
    ) -> Result<(), PluginError>;

    /// The value over every update (and merged state) so far.
    fn result(&self) -> Result<f64, PluginError>;

    fn reset(&mut self);

    fn state(&self) -> Vec<f64>;

    fn merge(&mut self, other_state: &[f64]) -> Result<(), PluginError>;
}

/// An input source yielding chunks of examples until the data ends. `open` is called again
/// for each pass over the data that the host does not cache.
pub trait Input: Send + Sized + 'static {
    type Params: DeserializeOwned;

    fn open(
        params: Self::Params,
        ctx: &FactoryContext<'_>,
        mode: ModeKeys,
    ) -> Result<Self, PluginError>;

    fn next_chunk(&mut self) -> Result<Option<Chunk>, PluginError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(mode: ModeKeys, train_fetches: Option<&[String]>) -> ModelInputs<'_> {
        ModelInputs {
            features: &[],
            labels: None,
            mode,
            variables: &[],
            specs: &[],
            ctx: StepContext {
                global_step: 0,
                seed: 0,
            },
            train_fetches,
        }
    }

    #[test]
    fn a_training_step_wants_only_the_fetched_predictions() {
        let fetched = ["probabilities".to_owned()];
        let train = inputs(ModeKeys::Train, Some(&fetched));
        assert!(train.wants_prediction("probabilities"));
        assert!(!train.wants_prediction("logits"));
        assert!(train.wants_any_prediction(&["logits", "probabilities"]));
        assert!(!inputs(ModeKeys::Train, Some(&[])).wants_any_prediction(&["logits"]));
        // A host that has not said reads everything; so do EVAL and PREDICT.
        assert!(inputs(ModeKeys::Train, None).wants_prediction("logits"));
        for mode in [ModeKeys::Eval, ModeKeys::Predict] {
            assert!(inputs(mode, Some(&[])).wants_prediction("logits"));
        }
    }
}
