//! TF's DNN body, shared by `DNNClassifier` and `DNNRegressor`: dense features → hidden
//! layers → logits of the head's width.

use estimator_plugin_api::abi::{PluginError, VarSpec};
use estimator_plugin_api::sdk::feature_columns::{DenseFeatures, FeatureColumn};
use estimator_plugin_api::sdk::layers::{Activation, Mlp, Params};
use estimator_plugin_api::sdk::tape::{Tape, Var};
use estimator_plugin_api::sdk::ModelInputs;

pub struct DnnBody {
    input: DenseFeatures,
    mlp: Mlp,
}

impl DnnBody {
    pub fn new(
        hidden_units: &[usize],
        feature_columns: Vec<FeatureColumn>,
        activation: Activation,
        logits_dimension: usize,
    ) -> Result<Self, PluginError> {
        if hidden_units.contains(&0) {
            return Err(PluginError::bad_params("hidden_units must all be > 0"));
        }
        let input = DenseFeatures::new(feature_columns)?;
        let mlp = Mlp::new(
            "dnn",
            input.width(),
            hidden_units,
            logits_dimension,
            activation,
        );
        Ok(DnnBody { input, mlp })
    }

    pub fn variables(&self) -> Vec<VarSpec> {
        self.mlp.variables()
    }

    pub fn logits(
        &self,
        tape: &mut Tape,
        params: &Params,
        inputs: &ModelInputs<'_>,
    ) -> Result<Var, PluginError> {
        let x = tape.constant(self.input.build(inputs)?);
        self.mlp.apply(tape, params, x)
    }
}
