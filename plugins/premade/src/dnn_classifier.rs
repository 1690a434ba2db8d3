//! `tf.estimator.DNNClassifier`: dense features → hidden layers → logits → a binary
//! (`n_classes: 2`, the default) or multi-class head.

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
pub struct DnnClassifierParams {
    pub hidden_units: Vec<usize>,
    pub feature_columns: Vec<FeatureColumn>,
    #[serde(default = "two")]
    pub n_classes: usize,
    /// Class names in id order, for string labels.
    #[serde(default)]
    pub label_vocabulary: Option<Vec<String>>,
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

fn two() -> usize {
    2
}

impl CannedParams for DnnClassifierParams {
    fn build(self, ctx: &FactoryContext<'_>) -> Result<Canned<Self>, PluginError> {
        let args = LossArgs::new(self.weight_column, self.loss_reduction)?;
        let head = Head::classifier(self.n_classes, self.label_vocabulary, args)?;
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

pub type DnnClassifier = Canned<DnnClassifierParams>;
