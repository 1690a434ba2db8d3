//! `tf.estimator.BaselineClassifier` and `BaselineRegressor`: a bias per output and no
//! features, so they learn the label distribution (the classes' log-odds, or the mean).
//! A model to beat: any useful model does better than its baseline.

use estimator_plugin_api::abi::{EstimatorSpec, FactoryContext, Initializer, PluginError, VarSpec};
use estimator_plugin_api::sdk::layers::Params;
use estimator_plugin_api::sdk::tape::{Tape, Var};
use estimator_plugin_api::sdk::{Model, ModelInputs};
use ndarray::Array2;
use serde::Deserialize;

use crate::multi_class_head::MultiClassHead;
use crate::regression_head::RegressionHead;

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
}

fn two() -> usize {
    2
}

pub struct BaselineClassifier {
    head: MultiClassHead,
}

impl Model for BaselineClassifier {
    type Params = BaselineClassifierParams;

    fn new(
        params: BaselineClassifierParams,
        _ctx: &FactoryContext<'_>,
    ) -> Result<Self, PluginError> {
        if params.n_classes <= 2 {
            return Err(PluginError::bad_params(format!(
                "n_classes {}: this version supports the multi-class head (n_classes > 2) only",
                params.n_classes
            )));
        }
        Ok(BaselineClassifier {
            head: MultiClassHead {
                n_classes: params.n_classes,
            },
        })
    }

    fn variables(&self) -> Vec<VarSpec> {
        vec![VarSpec::new(
            BIAS,
            &[self.head.n_classes],
            Initializer::Zeros,
        )]
    }

    fn model_fn(&mut self, inputs: &ModelInputs<'_>) -> Result<EstimatorSpec, PluginError> {
        let mut tape = Tape::new();
        let params = Params::load(&mut tape, inputs.specs, inputs.variables)?;
        let logits = logits(&mut tape, &params, inputs, self.head.n_classes)?;
        self.head.spec(&mut tape, &params, logits, inputs)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineRegressorParams {
    #[serde(default = "one")]
    pub label_dimension: usize,
}

fn one() -> usize {
    1
}

pub struct BaselineRegressor {
    head: RegressionHead,
}

impl Model for BaselineRegressor {
    type Params = BaselineRegressorParams;

    fn new(
        params: BaselineRegressorParams,
        _ctx: &FactoryContext<'_>,
    ) -> Result<Self, PluginError> {
        if params.label_dimension == 0 {
            return Err(PluginError::bad_params("label_dimension must be > 0"));
        }
        Ok(BaselineRegressor {
            head: RegressionHead {
                label_dimension: params.label_dimension,
            },
        })
    }

    fn variables(&self) -> Vec<VarSpec> {
        vec![VarSpec::new(
            BIAS,
            &[self.head.label_dimension],
            Initializer::Zeros,
        )]
    }

    fn model_fn(&mut self, inputs: &ModelInputs<'_>) -> Result<EstimatorSpec, PluginError> {
        let mut tape = Tape::new();
        let params = Params::load(&mut tape, inputs.specs, inputs.variables)?;
        let outputs = logits(&mut tape, &params, inputs, self.head.label_dimension)?;
        self.head.spec(&mut tape, &params, outputs, inputs)
    }
}
