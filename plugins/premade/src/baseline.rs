//! `tf.estimator.BaselineClassifier` and `BaselineRegressor`: a bias per logit and no
//! features, so they learn the label distribution (the classes' log-odds, or the mean).
//! A model to beat: any useful model does better than its baseline.

use estimator_plugin_api::abi::{FactoryContext, PluginError};
use estimator_plugin_api::sdk::feature_columns::NumericColumn;
use estimator_plugin_api::sdk::tape::LossReduction;
use estimator_plugin_api::sdk::OptimizerPart;
use serde::Deserialize;

use crate::canned::{optimizer_part, Body, Canned, CannedParams};
use estimator_plugin_api::sdk::heads::{Head, LossArgs};

/// TF's baseline default: Ftrl with learning rate 0.3.
fn baseline_optimizer() -> OptimizerPart {
    optimizer_part("baseline", "ftrl", 0.3)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineClassifierParams {
    #[serde(default = "two")]
    pub n_classes: usize,
    /// Class names in id order, for string labels.
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

impl CannedParams for BaselineClassifierParams {
    fn build(self, _ctx: &FactoryContext<'_>) -> Result<Canned<Self>, PluginError> {
        let args = LossArgs::new(self.weight_column, self.loss_reduction)?;
        let head = Head::classifier(self.n_classes, self.label_vocabulary, args)?;
        let body = Body::baseline(head.logits_dimension());
        Ok(Canned::new(body, head, vec![baseline_optimizer()]))
    }
}

pub type BaselineClassifier = Canned<BaselineClassifierParams>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineRegressorParams {
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

impl CannedParams for BaselineRegressorParams {
    fn build(self, _ctx: &FactoryContext<'_>) -> Result<Canned<Self>, PluginError> {
        let args = LossArgs::new(self.weight_column, self.loss_reduction)?;
        let head = Head::regressor(self.label_dimension, args)?;
        let body = Body::baseline(head.logits_dimension());
        Ok(Canned::new(body, head, vec![baseline_optimizer()]))
    }
}

pub type BaselineRegressor = Canned<BaselineRegressorParams>;
