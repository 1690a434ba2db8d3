//! `tf.estimator.DNNRegressor`: dense features → hidden layers → `label_dimension`
//! outputs → regression head.

use estimator_plugin_api::abi::{EstimatorSpec, FactoryContext, PluginError, VarSpec};
use estimator_plugin_api::sdk::feature_columns::{FeatureColumn, NumericColumn};
use estimator_plugin_api::sdk::layers::{Activation, Params};
use estimator_plugin_api::sdk::tape::{LossReduction, Tape};
use estimator_plugin_api::sdk::{Model, ModelInputs, OptimizerPart};
use serde::Deserialize;

use crate::dnn::DnnBody;
use crate::head::{optimizer_part, Head, LossArgs};

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
}

fn one() -> usize {
    1
}

pub struct DnnRegressor {
    body: DnnBody,
    head: Head,
}

impl Model for DnnRegressor {
    type Params = DnnRegressorParams;

    fn new(params: DnnRegressorParams, _ctx: &FactoryContext<'_>) -> Result<Self, PluginError> {
        let head = Head::regressor(
            params.label_dimension,
            LossArgs {
                weight_column: params.weight_column,
                loss_reduction: params.loss_reduction,
            },
        )?;
        let body = DnnBody::new(
            &params.hidden_units,
            params.feature_columns,
            params.activation_fn,
            head.logits_dimension(),
        )?;
        Ok(DnnRegressor { body, head })
    }

    fn variables(&self) -> Vec<VarSpec> {
        self.body.variables()
    }

    /// TF's DNN default: Adagrad with learning rate 0.001.
    fn optimizer_parts(&self) -> Vec<OptimizerPart> {
        vec![optimizer_part("dnn", "adagrad", 0.001)]
    }

    fn model_fn(&mut self, inputs: &ModelInputs<'_>) -> Result<EstimatorSpec, PluginError> {
        let mut tape = Tape::new();
        let params = Params::load(&mut tape, inputs.specs, inputs.variables)?;
        let outputs = self.body.logits(&mut tape, &params, inputs)?;
        self.head.spec(&mut tape, &params, outputs, inputs)
    }
}
