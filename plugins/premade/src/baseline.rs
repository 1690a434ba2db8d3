//! `tf.estimator.BaselineClassifier` and `BaselineRegressor`: a bias per output and no
//! features, so they learn the label distribution (the classes' log-odds, or the mean).
//! A model to beat: any useful model does better than its baseline.

use estimator_plugin_api::abi::{
    EstimatorSpec, FactoryContext, Initializer, MetricPartial, MetricValue, PluginError, VarSpec,
};
use estimator_plugin_api::sdk::feature_columns::NumericColumn;
use estimator_plugin_api::sdk::layers::Params;
use estimator_plugin_api::sdk::tape::{LossReduction, Tape, Var};
use estimator_plugin_api::sdk::{Model, ModelInputs, OptimizerPart};
use ndarray::Array2;
use serde::Deserialize;

use crate::head::{optimizer_part, Head, LossArgs};

const BIAS: &str = "baseline/bias";

/// `[batch, outputs]` logits: the bias, the same for every example.
fn logits(
    tape: &mut Tape,
    params: &Params,
    inputs: &ModelInputs<'_>,
    outputs: usize,
) -> Result<Var, PluginError> {
    let batch = inputs.features.first().map_or(0, |f| f.tensor.batch_len());
    let zeros = tape.constant(Array2::zeros((batch, outputs)));
    tape.add_bias(zeros, params.get(BIAS)?)
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

pub struct BaselineClassifier {
    head: Head,
}

impl Model for BaselineClassifier {
    type Params = BaselineClassifierParams;

    fn new(
        params: BaselineClassifierParams,
        _ctx: &FactoryContext<'_>,
    ) -> Result<Self, PluginError> {
        let args = LossArgs {
            weight_column: params.weight_column,
            loss_reduction: params.loss_reduction,
        };
        Ok(BaselineClassifier {
            head: Head::classifier(params.n_classes, params.label_vocabulary, args)?,
        })
    }

    fn variables(&self) -> Vec<VarSpec> {
        bias(&self.head)
    }

    fn optimizer_parts(&self) -> Vec<OptimizerPart> {
        baseline_optimizer()
    }

    fn model_fn(&mut self, inputs: &ModelInputs<'_>) -> Result<EstimatorSpec, PluginError> {
        baseline_fn(&self.head, inputs)
    }

    fn eval_metric_results(&self, sums: &[MetricPartial]) -> Result<Vec<MetricValue>, PluginError> {
        Ok(self.head.eval_metric_results(sums))
    }
}

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

pub struct BaselineRegressor {
    head: Head,
}

impl Model for BaselineRegressor {
    type Params = BaselineRegressorParams;

    fn new(
        params: BaselineRegressorParams,
        _ctx: &FactoryContext<'_>,
    ) -> Result<Self, PluginError> {
        let args = LossArgs {
            weight_column: params.weight_column,
            loss_reduction: params.loss_reduction,
        };
        Ok(BaselineRegressor {
            head: Head::regressor(params.label_dimension, args)?,
        })
    }

    fn variables(&self) -> Vec<VarSpec> {
        bias(&self.head)
    }

    fn optimizer_parts(&self) -> Vec<OptimizerPart> {
        baseline_optimizer()
    }

    fn model_fn(&mut self, inputs: &ModelInputs<'_>) -> Result<EstimatorSpec, PluginError> {
        baseline_fn(&self.head, inputs)
    }
}

/// TF's baseline default: Ftrl with learning rate 0.3.
fn baseline_optimizer() -> Vec<OptimizerPart> {
    vec![optimizer_part("baseline", "ftrl", 0.3)]
}

/// The one variable: a bias per logit.
fn bias(head: &Head) -> Vec<VarSpec> {
    vec![VarSpec::new(
        BIAS,
        &[head.logits_dimension()],
        Initializer::Zeros,
    )]
}

fn baseline_fn(head: &Head, inputs: &ModelInputs<'_>) -> Result<EstimatorSpec, PluginError> {
    let mut tape = Tape::new();
    let params = Params::load(&mut tape, inputs.specs, inputs.variables)?;
    let logits = logits(&mut tape, &params, inputs, head.logits_dimension())?;
    head.spec(&mut tape, &params, logits, inputs)
}
