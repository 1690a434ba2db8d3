//! TF's DNN body, shared by `DNNClassifier` and `DNNRegressor`: dense features → hidden
//! layers → logits of the head's width.

use estimator_plugin_api::abi::{FactoryContext, PluginError, VarSpec};
use estimator_plugin_api::sdk::feature_columns::{DenseFeatures, FeatureColumn};
use estimator_plugin_api::sdk::layers::{Activation, Mlp, Params};
use estimator_plugin_api::sdk::tape::{Tape, Var};
use estimator_plugin_api::sdk::{ModelInputs, OptimizerPart};

use crate::head::optimizer_part;

/// Where TF's DNN estimators put their input layer's variables (embedding tables).
const INPUT_LAYER: &str = "dnn/input_from_feature_columns/input_layer";

/// TF's DNN default: Adagrad with learning rate 0.001, for the `dnn/` variables.
pub fn dnn_optimizer() -> OptimizerPart {
    optimizer_part("dnn", "adagrad", 0.001)
}

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
        ctx: &FactoryContext<'_>,
    ) -> Result<Self, PluginError> {
        if hidden_units.contains(&0) {
            return Err(PluginError::bad_params("hidden_units must all be > 0"));
        }
        let input = DenseFeatures::new(feature_columns, INPUT_LAYER, ctx)?;
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
        let mut vars = self.input.variables();
        vars.extend(self.mlp.variables());
        vars
    }

    pub fn logits(
        &self,
        tape: &mut Tape,
        params: &Params,
        inputs: &ModelInputs<'_>,
    ) -> Result<Var, PluginError> {
        let x = self.input.apply(tape, params, inputs)?;
        self.mlp.apply(tape, params, x)
    }
}
