//! `tf.estimator.LinearClassifier` and `LinearRegressor`: a weight per feature column (a
//! row per id for categorical columns, used without an indicator or embedding) and a
//! bias, into a head. TF's default optimizer is Ftrl with learning rate 0.2.

use estimator_plugin_api::abi::{FactoryContext, PluginError};
use estimator_plugin_api::sdk::feature_columns::{
    FeatureColumn, LinearModel, NumericColumn, SparseCombiner,
};
use estimator_plugin_api::sdk::tape::LossReduction;
use estimator_plugin_api::sdk::OptimizerPart;
use serde::Deserialize;

use crate::canned::{optimizer_part, Body, Canned, CannedParams};
use estimator_plugin_api::sdk::heads::{Head, LossArgs};

/// Where TF's linear estimators put their variables.
pub const LINEAR_SCOPE: &str = "linear/linear_model";

/// The optimizer part of the `linear/` variables, Ftrl at `learning_rate`.
pub fn linear_optimizer(learning_rate: f64) -> OptimizerPart {
    optimizer_part("linear", "ftrl", learning_rate)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearClassifierParams {
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
    #[serde(default)]
    pub sparse_combiner: SparseCombiner,
}

fn two() -> usize {
    2
}

impl CannedParams for LinearClassifierParams {
    fn build(self, ctx: &FactoryContext<'_>) -> Result<Canned<Self>, PluginError> {
        let args = LossArgs::new(self.weight_column, self.loss_reduction)?;
        let head = Head::classifier(self.n_classes, self.label_vocabulary, args)?;
        let linear = LinearModel::new(
            self.feature_columns,
            head.logits_dimension(),
            self.sparse_combiner,
            LINEAR_SCOPE,
            ctx,
        )?;
        Ok(Canned::new(
            Body::Linear(linear),
            head,
            vec![linear_optimizer(0.2)],
        ))
    }
}

pub type LinearClassifier = Canned<LinearClassifierParams>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearRegressorParams {
    pub feature_columns: Vec<FeatureColumn>,
    #[serde(default = "one")]
    pub label_dimension: usize,
    #[serde(default)]
    pub weight_column: Option<NumericColumn>,
    #[serde(default)]
    pub loss_reduction: LossReduction,
    #[serde(default)]
    pub sparse_combiner: SparseCombiner,
}

fn one() -> usize {
    1
}

impl CannedParams for LinearRegressorParams {
    fn build(self, ctx: &FactoryContext<'_>) -> Result<Canned<Self>, PluginError> {
        let args = LossArgs::new(self.weight_column, self.loss_reduction)?;
        let head = Head::regressor(self.label_dimension, args)?;
        let linear = LinearModel::new(
            self.feature_columns,
            head.logits_dimension(),
            self.sparse_combiner,
            LINEAR_SCOPE,
            ctx,
        )?;
        Ok(Canned::new(
            Body::Linear(linear),
            head,
            vec![linear_optimizer(0.2)],
        ))
    }
}

pub type LinearRegressor = Canned<LinearRegressorParams>;
