//! `tf.estimator.DNNLinearCombinedClassifier` and `DNNLinearCombinedRegressor` (wide &
//! deep): the logits of a DNN over dense columns plus those of a linear model over
//! (typically categorical) columns. Each part has its own optimizer: TF's defaults are
//! Adagrad 0.001 for `dnn` and Ftrl `min(0.005, 1/sqrt(linear columns))` for `linear`;
//! the manifest sets them as `optimizer: {dnn: ..., linear: ...}`.

use estimator_plugin_api::abi::{FactoryContext, PluginError};
use estimator_plugin_api::sdk::feature_columns::{
    FeatureColumn, LinearModel, NumericColumn, SparseCombiner,
};
use estimator_plugin_api::sdk::layers::Activation;
use estimator_plugin_api::sdk::tape::LossReduction;
use serde::Deserialize;

use crate::canned::{Body, Canned, CannedParams};
use crate::dnn::{dnn_optimizer, DnnArgs, DnnBody};
use crate::linear::{linear_optimizer, LINEAR_SCOPE};
use estimator_plugin_api::sdk::heads::{Head, LossArgs};

/// The arguments both combined models share (each params struct lists them, as serde
/// cannot flatten into a struct that refuses unknown keys).
struct Parts {
    linear_feature_columns: Vec<FeatureColumn>,
    dnn_feature_columns: Vec<FeatureColumn>,
    dnn_hidden_units: Vec<usize>,
    dnn_activation_fn: Activation,
    dnn_dropout: Option<f32>,
    batch_norm: bool,
    linear_sparse_combiner: SparseCombiner,
}

impl Parts {
    /// The body and each present part's default optimizer, as TF checks and builds them.
    fn build(
        self,
        logits_dimension: usize,
        ctx: &FactoryContext<'_>,
    ) -> Result<(Body, Vec<estimator_plugin_api::sdk::OptimizerPart>), PluginError> {
        if self.linear_feature_columns.is_empty() && self.dnn_feature_columns.is_empty() {
            return Err(PluginError::bad_params(
                "Either linear_feature_columns or dnn_feature_columns must be defined.",
            ));
        }
        let mut optimizers = Vec::new();
        let dnn = match self.dnn_feature_columns.is_empty() {
            true => None,
            false if self.dnn_hidden_units.is_empty() => {
                return Err(PluginError::bad_params(
                    "dnn_hidden_units must be defined when dnn_feature_columns is specified.",
                ))
            }
            false => {
                optimizers.push(dnn_optimizer());
                let args = DnnArgs {
                    hidden_units: self.dnn_hidden_units,
                    feature_columns: self.dnn_feature_columns,
                    activation: self.dnn_activation_fn,
                    dropout: self.dnn_dropout,
                    batch_norm: self.batch_norm,
                };
                Some(DnnBody::new(args, logits_dimension, ctx)?)
            }
        };
        let linear = match self.linear_feature_columns.is_empty() {
            true => None,
            false => {
                let n = self.linear_feature_columns.len() as f64;
                optimizers.push(linear_optimizer(0.005f64.min(1.0 / n.sqrt())));
                Some(LinearModel::new(
                    self.linear_feature_columns,
                    logits_dimension,
                    self.linear_sparse_combiner,
                    LINEAR_SCOPE,
                    ctx,
                )?)
            }
        };
        Ok((Body::Combined(dnn, linear), optimizers))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnnLinearCombinedClassifierParams {
    #[serde(default)]
    pub linear_feature_columns: Vec<FeatureColumn>,
    #[serde(default)]
    pub dnn_feature_columns: Vec<FeatureColumn>,
    #[serde(default)]
    pub dnn_hidden_units: Vec<usize>,
    /// TF's `dnn_activation_fn`; `linear` is TF's `None`.
    #[serde(default)]
    pub dnn_activation_fn: Activation,
    #[serde(default)]
    pub linear_sparse_combiner: SparseCombiner,
    /// The fraction of each hidden layer's outputs dropped in training.
    #[serde(default)]
    pub dnn_dropout: Option<f32>,
    /// Batch normalization after each hidden layer.
    #[serde(default)]
    pub batch_norm: bool,
    #[serde(default = "two")]
    pub n_classes: usize,
    #[serde(default)]
    pub label_vocabulary: Option<Vec<String>>,
    #[serde(default)]
    pub weight_column: Option<NumericColumn>,
    #[serde(default)]
    pub loss_reduction: LossReduction,
}

fn two() -> usize {
    2
}

impl CannedParams for DnnLinearCombinedClassifierParams {
    fn build(self, ctx: &FactoryContext<'_>) -> Result<Canned<Self>, PluginError> {
        let args = LossArgs::new(self.weight_column, self.loss_reduction)?;
        let head = Head::classifier(self.n_classes, self.label_vocabulary, args)?;
        let parts = Parts {
            linear_feature_columns: self.linear_feature_columns,
            dnn_feature_columns: self.dnn_feature_columns,
            dnn_hidden_units: self.dnn_hidden_units,
            dnn_activation_fn: self.dnn_activation_fn,
            linear_sparse_combiner: self.linear_sparse_combiner,
            dnn_dropout: self.dnn_dropout,
            batch_norm: self.batch_norm,
        };
        let (body, optimizers) = parts.build(head.logits_dimension(), ctx)?;
        Ok(Canned::new(body, head, optimizers))
    }
}

pub type DnnLinearCombinedClassifier = Canned<DnnLinearCombinedClassifierParams>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnnLinearCombinedRegressorParams {
    #[serde(default)]
    pub linear_feature_columns: Vec<FeatureColumn>,
    #[serde(default)]
    pub dnn_feature_columns: Vec<FeatureColumn>,
    #[serde(default)]
    pub dnn_hidden_units: Vec<usize>,
    /// TF's `dnn_activation_fn`; `linear` is TF's `None`.
    #[serde(default)]
    pub dnn_activation_fn: Activation,
    #[serde(default)]
    pub linear_sparse_combiner: SparseCombiner,
    /// The fraction of each hidden layer's outputs dropped in training.
    #[serde(default)]
    pub dnn_dropout: Option<f32>,
    /// Batch normalization after each hidden layer.
    #[serde(default)]
    pub batch_norm: bool,
    #[serde(default = "one")]
    pub label_dimension: usize,
    #[serde(default)]
    pub weight_column: Option<NumericColumn>,
    #[serde(default)]
    pub loss_reduction: LossReduction,
}

fn one() -> usize {
    1
}

impl CannedParams for DnnLinearCombinedRegressorParams {
    fn build(self, ctx: &FactoryContext<'_>) -> Result<Canned<Self>, PluginError> {
        let args = LossArgs::new(self.weight_column, self.loss_reduction)?;
        let head = Head::regressor(self.label_dimension, args)?;
        let parts = Parts {
            linear_feature_columns: self.linear_feature_columns,
            dnn_feature_columns: self.dnn_feature_columns,
            dnn_hidden_units: self.dnn_hidden_units,
            dnn_activation_fn: self.dnn_activation_fn,
            linear_sparse_combiner: self.linear_sparse_combiner,
            dnn_dropout: self.dnn_dropout,
            batch_norm: self.batch_norm,
        };
        let (body, optimizers) = parts.build(head.logits_dimension(), ctx)?;
        Ok(Canned::new(body, head, optimizers))
    }
}

pub type DnnLinearCombinedRegressor = Canned<DnnLinearCombinedRegressorParams>;
