//! `tf.estimator.DNNClassifier`: dense features → hidden layers → logits → head.

use estimator_plugin_api::abi::{EstimatorSpec, FactoryContext, PluginError, VarSpec};
use estimator_plugin_api::sdk::feature_columns::{DenseFeatures, FeatureColumn};
use estimator_plugin_api::sdk::layers::{Activation, Mlp, Params};
use estimator_plugin_api::sdk::tape::Tape;
use estimator_plugin_api::sdk::{Model, ModelInputs};
use serde::Deserialize;

use crate::multi_class_head::MultiClassHead;

/// TF's constructor arguments, with TF's defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnnClassifierParams {
    pub hidden_units: Vec<usize>,
    pub feature_columns: Vec<FeatureColumn>,
    #[serde(default = "two")]
    pub n_classes: usize,
    /// TF's `activation_fn`; `linear` is TF's `None`.
    #[serde(default, alias = "activation")]
    pub activation_fn: Activation,
}

fn two() -> usize {
    2
}

pub struct DnnClassifier {
    input: DenseFeatures,
    mlp: Mlp,
    head: MultiClassHead,
}

impl Model for DnnClassifier {
    type Params = DnnClassifierParams;

    fn new(params: DnnClassifierParams, _ctx: &FactoryContext<'_>) -> Result<Self, PluginError> {
        if params.n_classes <= 2 {
            return Err(PluginError::bad_params(format!(
                "n_classes {}: this version supports the multi-class head (n_classes > 2) only",
                params.n_classes
            )));
        }
        if params.hidden_units.contains(&0) {
            return Err(PluginError::bad_params("hidden_units must all be > 0"));
        }
        let input = DenseFeatures::new(params.feature_columns)?;
        let mlp = Mlp::new(
            "dnn",
            input.width(),
            &params.hidden_units,
            params.n_classes,
            params.activation_fn,
        );
        Ok(DnnClassifier {
            input,
            mlp,
            head: MultiClassHead {
                n_classes: params.n_classes,
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
        let logits = self.mlp.apply(&mut tape, &params, x)?;
        self.head.spec(&mut tape, &params, logits, inputs)
    }
}
