//! `tf.estimator.DNNRegressor`: dense features → hidden layers → `label_dimension`
//! outputs → regression head.

use estimator_plugin_api::abi::{EstimatorSpec, FactoryContext, PluginError, VarSpec};
use estimator_plugin_api::sdk::feature_columns::{DenseFeatures, FeatureColumn};
use estimator_plugin_api::sdk::layers::{Activation, Mlp, Params};
use estimator_plugin_api::sdk::tape::Tape;
use estimator_plugin_api::sdk::{Model, ModelInputs};
use serde::Deserialize;

use crate::regression_head::RegressionHead;

/// TF's constructor arguments, with TF's defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnnRegressorParams {
    pub hidden_units: Vec<usize>,
    pub feature_columns: Vec<FeatureColumn>,
    #[serde(default = "one")]
    pub label_dimension: usize,
    /// TF's `activation_fn`; `linear` is TF's `None`.
    #[serde(default, alias = "activation")]
    pub activation_fn: Activation,
}

fn one() -> usize {
    1
}

pub struct DnnRegressor {
    input: DenseFeatures,
    mlp: Mlp,
    head: RegressionHead,
}

impl Model for DnnRegressor {
    type Params = DnnRegressorParams;

    fn new(params: DnnRegressorParams, _ctx: &FactoryContext<'_>) -> Result<Self, PluginError> {
        if params.hidden_units.contains(&0) {
            return Err(PluginError::bad_params("hidden_units must all be > 0"));
        }
        if params.label_dimension == 0 {
            return Err(PluginError::bad_params("label_dimension must be > 0"));
        }
        let input = DenseFeatures::new(params.feature_columns)?;
        let mlp = Mlp::new(
            "dnn",
            input.width(),
            &params.hidden_units,
            params.label_dimension,
            params.activation_fn,
        );
        Ok(DnnRegressor {
            input,
            mlp,
            head: RegressionHead {
                label_dimension: params.label_dimension,
            },
        })
    }

    fn variables(&self) -> Vec<VarSpec> {
        self.mlp.variables()
    }

    fn model_fn(&mut self, inputs: &ModelInputs<'_>) -> Result<EstimatorSpec, PluginError> {
        let mut tape = Tape::new();
        let params = Params::load(&mut tape, inputs.specs, inputs.variables)?;
        let x = tape.constant(self.input.build(inputs)?);
        let outputs = self.mlp.apply(&mut tape, &params, x)?;
        self.head.spec(&mut tape, &params, outputs, inputs)
    }
}
