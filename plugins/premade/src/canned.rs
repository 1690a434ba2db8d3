//! What every premade model is: a body that turns features into logits, a head that turns
//! logits into predictions, a loss and metrics, and TF's default optimizer for each part
//! of the body. Each model's params (TF's constructor arguments) build the three.

use std::marker::PhantomData;

use estimator_plugin_api::abi::{
    EstimatorSpec, ExportOutput, FactoryContext, Initializer, MetricPartial, MetricValue, ModeKeys,
    NamedTensor, PluginError, VarSpec,
};
use estimator_plugin_api::sdk::feature_columns::LinearModel;
use estimator_plugin_api::sdk::layers::Params;
use estimator_plugin_api::sdk::tape::{Tape, Var};
use estimator_plugin_api::sdk::variables::{LayerVars, VarBuilder};
use estimator_plugin_api::sdk::{BuiltIn, Model, ModelInputs, OptimizerPart};
use ndarray::Array2;
use serde::de::DeserializeOwned;

use crate::dnn::DnnBody;
use estimator_plugin_api::sdk::heads::Head;

/// The part of a model before its head.
pub enum Body {
    Dnn(DnnBody),
    Linear(LinearModel),
    /// TF's wide & deep: the sum of a DNN's and a linear model's logits, either optional.
    Combined(Option<DnnBody>, Option<LinearModel>),
    /// A learned bias per logit, the same for every example.
    Baseline {
        logits_dimension: usize,
        /// Its bias, once declared.
        bias: LayerVars,
    },
}

const BASELINE_BIAS: &str = "baseline/bias";

impl Body {
    /// A baseline's body over `logits_dimension` logits.
    pub fn baseline(logits_dimension: usize) -> Self {
        Body::Baseline {
            logits_dimension,
            bias: LayerVars::default(),
        }
    }

    /// Declares the body's variables in `vars`, in TF's order: a DNN's, then a linear
    /// model's.
    fn declare(self, vars: &mut VarBuilder) -> Self {
        match self {
            Body::Dnn(dnn) => Body::Dnn(dnn.declare(vars)),
            Body::Linear(linear) => Body::Linear(linear.declare(vars)),
            Body::Combined(dnn, linear) => {
                let dnn = dnn.map(|d| d.declare(vars));
                Body::Combined(dnn, linear.map(|l| l.declare(vars)))
            }
            Body::Baseline {
                logits_dimension, ..
            } => {
                let spec = VarSpec::new(BASELINE_BIAS, &[logits_dimension], Initializer::Zeros);
                Body::Baseline {
                    logits_dimension,
                    bias: LayerVars::declare(vars, [spec]),
                }
            }
        }
    }

    /// The logits, and the new values of non-trainable variables (batch norm's moving
    /// averages) in TRAIN.
    fn logits(
        &self,
        tape: &mut Tape,
        params: &Params,
        inputs: &ModelInputs<'_>,
    ) -> Result<(Var, Vec<NamedTensor>), PluginError> {
        match self {
            Body::Dnn(dnn) => dnn.logits(tape, params, inputs),
            Body::Linear(linear) => Ok((linear.apply(tape, params, inputs)?, Vec::new())),
            Body::Combined(dnn, linear) => {
                let dnn = dnn
                    .as_ref()
                    .map(|d| d.logits(tape, params, inputs))
                    .transpose()?;
                let linear = linear
                    .as_ref()
                    .map(|l| l.apply(tape, params, inputs))
                    .transpose()?;
                match (dnn, linear) {
                    (Some((d, updates)), Some(l)) => Ok((tape.add(d, l)?, updates)),
                    (Some(dnn), None) => Ok(dnn),
                    (None, Some(l)) => Ok((l, Vec::new())),
                    (None, None) => Err(PluginError::bad_params(
                        "Either linear_feature_columns or dnn_feature_columns must be defined.",
                    )),
                }
            }
            Body::Baseline {
                logits_dimension,
                bias,
            } => {
                let zeros = tape.constant(Array2::zeros((inputs.batch_len(), *logits_dimension)));
                let bias = params.var(bias.get(0, BASELINE_BIAS)?);
                let logits = tape.add_bias(zeros, bias)?;
                Ok((logits, Vec::new()))
            }
        }
    }
}

/// A part of the model's variables (those named `<name>/…`) and TF's default optimizer
/// for it.
pub fn optimizer_part(name: &str, optimizer: &str, learning_rate: f64) -> OptimizerPart {
    OptimizerPart::new(
        name,
        format!("{name}/"),
        BuiltIn::new(optimizer).with("learning_rate", learning_rate),
    )
}

/// A premade model's params: TF's constructor arguments, which build the model.
pub trait CannedParams: DeserializeOwned + Send + 'static {
    fn build(self, ctx: &FactoryContext<'_>) -> Result<Canned<Self>, PluginError>;
}

/// A premade model, built from its params `P`.
pub struct Canned<P> {
    pub body: Body,
    /// The body's variables, declared once.
    vars: VarBuilder,
    pub head: Head,
    /// TF's default optimizer for each part of the body.
    pub optimizers: Vec<OptimizerPart>,
    pub params: PhantomData<fn() -> P>,
}

impl<P> Canned<P> {
    pub fn new(body: Body, head: Head, optimizers: Vec<OptimizerPart>) -> Self {
        let mut vars = VarBuilder::new();
        let body = body.declare(&mut vars);
        Canned {
            body,
            vars,
            head,
            optimizers,
            params: PhantomData,
        }
    }
}

impl<P: CannedParams> Model for Canned<P> {
    type Params = P;

    fn new(params: P, ctx: &FactoryContext<'_>) -> Result<Self, PluginError> {
        params.build(ctx)
    }

    fn variables(&self) -> Vec<VarSpec> {
        self.vars.specs()
    }

    fn model_fn(&mut self, inputs: &ModelInputs<'_>) -> Result<EstimatorSpec, PluginError> {
        let mut tape = Tape::new();
        let params = Params::load(&mut tape, inputs.specs, inputs.variables)?;
        let (logits, updates) = self.body.logits(&mut tape, &params, inputs)?;
        let mut spec = self.head.spec(&mut tape, &params, logits, inputs)?;
        if inputs.mode == ModeKeys::Train {
            spec.set_updates(updates);
        }
        Ok(spec)
    }

    fn optimizer_parts(&self) -> Vec<OptimizerPart> {
        self.optimizers.clone()
    }

    fn eval_metric_results(&self, sums: &[MetricPartial]) -> Result<Vec<MetricValue>, PluginError> {
        Ok(self.head.eval_metric_results(sums))
    }

    fn export_outputs(&self) -> Vec<ExportOutput> {
        self.head.export_outputs()
    }
}
