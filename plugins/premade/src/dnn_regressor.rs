//! `tf.estimator.DNNRegressor`: dense features → hidden layers → `label_dimension`
//! outputs → regression head.

use estimator_plugin_api::abi::{FactoryContext, PluginError};
use estimator_plugin_api::sdk::feature_columns::{FeatureColumn, NumericColumn};
use estimator_plugin_api::sdk::layers::Activation;
use estimator_plugin_api::sdk::tape::LossReduction;
use serde::Deserialize;

use crate::canned::{Body, Canned, CannedParams};
use crate::dnn::{dnn_optimizer, DnnArgs, DnnBody};
use estimator_plugin_api::sdk::heads::{Head, LossArgs};

/// TF's constructor arguments, with TF's defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnnRegressorParams {
    pub hidden_units: Vec<usize>,
    pub feature_columns: Vec<FeatureColumn>,
    #[serde(default = "one")]
    pub label_dimension: usize,
    #[serde(default)]
    pub weight_column: Option<NumericColumn>,
    #[serde(default)]
    pub loss_reduction: LossReduction,
    /// TF's `activation_fn`; `linear` is TF's `None`.
    #[serde(default, alias = "activation")]
    pub activation_fn: Activation,
    /// The fraction of each hidden layer's outputs dropped in training.
    #[serde(default)]
    pub dropout: Option<f32>,
    /// Batch normalization after each hidden layer.
    #[serde(default)]
    pub batch_norm: bool,
}

fn one() -> usize {
    1
}

impl CannedParams for DnnRegressorParams {
    fn build(self, ctx: &FactoryContext<'_>) -> Result<Canned<Self>, PluginError> {
        let args = LossArgs::new(self.weight_column, self.loss_reduction)?;
        let head = Head::regressor(self.label_dimension, args)?;
        let args = DnnArgs {
            hidden_units: self.hidden_units,
            feature_columns: self.feature_columns,
            activation: self.activation_fn,
            dropout: self.dropout,
            batch_norm: self.batch_norm,
        };
        let dnn = DnnBody::new(args, head.logits_dimension(), ctx)?;
        Ok(Canned::new(Body::Dnn(dnn), head, vec![dnn_optimizer()]))
    }
}

pub type DnnRegressor = Canned<DnnRegressorParams>;
