//! TF's DNN body, shared by `DNNClassifier` and `DNNRegressor`: dense features → hidden
//! layers → logits of the head's width.

use estimator_plugin_api::abi::{FactoryContext, ModeKeys, NamedTensor, PluginError};
use estimator_plugin_api::sdk::dropout::Dropout;
use estimator_plugin_api::sdk::feature_columns::{DenseFeatures, FeatureColumn};
use estimator_plugin_api::sdk::layers::{Activation, Mlp, Params};
use estimator_plugin_api::sdk::tape::{Tape, Var};
use estimator_plugin_api::sdk::variables::VarBuilder;
use estimator_plugin_api::sdk::{ModelInputs, OptimizerPart};

use crate::canned::optimizer_part;

/// TF's DNN arguments, as each DNN model's params give them.
pub struct DnnArgs {
    pub hidden_units: Vec<usize>,
    pub feature_columns: Vec<FeatureColumn>,
    pub activation: Activation,
    /// The fraction of each hidden layer's outputs dropped in training.
    pub dropout: Option<f32>,
    pub batch_norm: bool,
}

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
        args: DnnArgs,
        logits_dimension: usize,
        ctx: &FactoryContext<'_>,
    ) -> Result<Self, PluginError> {
        if args.hidden_units.contains(&0) {
            return Err(PluginError::bad_params("hidden_units must all be > 0"));
        }
        let input = DenseFeatures::new(args.feature_columns, INPUT_LAYER, ctx)?;
        let mut mlp = Mlp::new(
            "dnn",
            input.width(),
            &args.hidden_units,
            logits_dimension,
            args.activation,
        );
        if let Some(rate) = args.dropout {
            mlp = mlp.with_dropout(Dropout::new(rate)?);
        }
        if args.batch_norm {
            mlp = mlp.with_batch_norm();
        }
        Ok(DnnBody { input, mlp })
    }

    /// Declares the input layer's tables, then the layers' variables, in `vars`.
    pub fn declare(self, vars: &mut VarBuilder) -> Self {
        DnnBody {
            input: self.input.declare(vars),
            mlp: self.mlp.declare(vars),
        }
    }

    /// The logits, and in TRAIN batch norm's new moving averages.
    pub fn logits(
        &self,
        tape: &mut Tape,
        params: &Params,
        inputs: &ModelInputs<'_>,
    ) -> Result<(Var, Vec<NamedTensor>), PluginError> {
        let x = self.input.apply(tape, params, inputs)?;
        let training = inputs.mode == ModeKeys::Train;
        self.mlp.forward(tape, params, x, training, inputs.ctx.seed)
    }
}
