//! Fixtures for tests and benchmarks: models that break the contract on purpose, so the
//! host's refusals can be tested through the real ABI, and `noop`, a model that does no
//! work, so a benchmark can time the ABI crossing alone. Never use it for anything else.

use abi_stable::std_types::ROption;
use estimator_plugin_api::abi::{
    EstimatorSpec, FactoryContext, Gradient, Initializer, ModeKeys, NamedTensor, PluginError,
    Tensor, VarSpec,
};
use estimator_plugin_api::sdk::{Model, ModelInputs};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

fn one_variable() -> Vec<VarSpec> {
    vec![VarSpec::new("w", &[1], Initializer::Zeros)]
}

fn batch_len(inputs: &ModelInputs<'_>) -> usize {
    inputs.features.first().map_or(0, |f| f.tensor.batch_len())
}

/// Panics inside model_fn.
pub struct Panics;

impl Model for Panics {
    type Params = NoParams;
    fn new(_: NoParams, _: &FactoryContext<'_>) -> Result<Self, PluginError> {
        Ok(Panics)
    }
    fn variables(&self) -> Vec<VarSpec> {
        one_variable()
    }
    fn model_fn(&mut self, _: &ModelInputs<'_>) -> Result<EstimatorSpec, PluginError> {
        panic!("model_fn exploded on purpose")
    }
}

/// Returns a TRAIN spec with gradients but no loss.
pub struct NoLoss;

impl Model for NoLoss {
    type Params = NoParams;
    fn new(_: NoParams, _: &FactoryContext<'_>) -> Result<Self, PluginError> {
        Ok(NoLoss)
    }
    fn variables(&self) -> Vec<VarSpec> {
        one_variable()
    }
    fn model_fn(&mut self, inputs: &ModelInputs<'_>) -> Result<EstimatorSpec, PluginError> {
        let mut spec = EstimatorSpec::new(inputs.mode);
        spec.gradients
            .push(Gradient::dense("w", Tensor::f32(vec![1], vec![0.0])));
        let n = batch_len(inputs);
        spec.predictions
            .push(NamedTensor::new("p", Tensor::f32(vec![n], vec![0.0; n])));
        Ok(spec)
    }
}

/// Returns a gradient whose shape does not match its variable.
pub struct WrongGradient;

impl Model for WrongGradient {
    type Params = NoParams;
    fn new(_: NoParams, _: &FactoryContext<'_>) -> Result<Self, PluginError> {
        Ok(WrongGradient)
    }
    fn variables(&self) -> Vec<VarSpec> {
        one_variable()
    }
    fn model_fn(&mut self, inputs: &ModelInputs<'_>) -> Result<EstimatorSpec, PluginError> {
        let mut spec = EstimatorSpec::new(inputs.mode);
        spec.loss = ROption::RSome(1.0);
        spec.gradients
            .push(Gradient::dense("w", Tensor::f32(vec![2], vec![0.0, 0.0])));
        Ok(spec)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NanLossParams {
    /// The first global step whose loss is NaN.
    #[serde(default)]
    pub at_step: i64,
    /// Infinity instead of NaN.
    #[serde(default)]
    pub infinite: bool,
}

/// A valid model until `at_step`, then a NaN (or infinite) loss.
pub struct NanLoss(NanLossParams);

impl Model for NanLoss {
    type Params = NanLossParams;
    fn new(params: NanLossParams, _: &FactoryContext<'_>) -> Result<Self, PluginError> {
        Ok(NanLoss(params))
    }
    fn variables(&self) -> Vec<VarSpec> {
        one_variable()
    }
    fn model_fn(&mut self, inputs: &ModelInputs<'_>) -> Result<EstimatorSpec, PluginError> {
        let mut spec = EstimatorSpec::new(inputs.mode);
        let bad = if self.0.infinite {
            f32::INFINITY
        } else {
            f32::NAN
        };
        let loss = if inputs.ctx.global_step >= self.0.at_step {
            bad
        } else {
            1.0
        };
        spec.loss = ROption::RSome(loss);
        spec.gradients
            .push(Gradient::dense("w", Tensor::f32(vec![1], vec![0.5])));
        Ok(spec)
    }
}

/// Returns predictions with one row more than the batch.
pub struct WrongBatchPredictions;

impl Model for WrongBatchPredictions {
    type Params = NoParams;
    fn new(_: NoParams, _: &FactoryContext<'_>) -> Result<Self, PluginError> {
        Ok(WrongBatchPredictions)
    }
    fn variables(&self) -> Vec<VarSpec> {
        one_variable()
    }
    fn model_fn(&mut self, inputs: &ModelInputs<'_>) -> Result<EstimatorSpec, PluginError> {
        let mut spec = EstimatorSpec::new(inputs.mode);
        spec.loss = ROption::RSome(1.0);
        spec.gradients
            .push(Gradient::dense("w", Tensor::f32(vec![1], vec![0.0])));
        let n = batch_len(inputs) + 1;
        spec.predictions.push(NamedTensor::new(
            "class_ids",
            Tensor::i64(vec![n], vec![0; n]),
        ));
        Ok(spec)
    }
}

/// No variables and no work: a valid spec with loss 0 in TRAIN and EVAL and the batch's
/// row numbers as predictions in PREDICT. The benchmark of the ABI crossing calls it.
pub struct Noop;

impl Model for Noop {
    type Params = NoParams;
    fn new(_: NoParams, _: &FactoryContext<'_>) -> Result<Self, PluginError> {
        Ok(Noop)
    }
    fn variables(&self) -> Vec<VarSpec> {
        Vec::new()
    }
    fn model_fn(&mut self, inputs: &ModelInputs<'_>) -> Result<EstimatorSpec, PluginError> {
        let mut spec = EstimatorSpec::new(inputs.mode);
        if inputs.mode == ModeKeys::Predict {
            spec.predictions.push(row_numbers(inputs));
        } else {
            spec.loss = ROption::RSome(0.0);
        }
        Ok(spec)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HooksParams {
    /// The hooks requested in TRAIN, as JSON in the manifest's form.
    #[serde(default)]
    pub train: Vec<serde_json::Value>,
    #[serde(default)]
    pub eval: Vec<serde_json::Value>,
}

/// The batch's row numbers, 0 to n - 1, as the prediction `row`.
fn row_numbers(inputs: &ModelInputs<'_>) -> NamedTensor {
    let n = batch_len(inputs);
    NamedTensor::new("row", Tensor::i64(vec![n], (0..n as i64).collect()))
}

/// A model with no variables that asks for the hooks its params list (TF's `training_hooks`,
/// `evaluation_hooks` in an EstimatorSpec).
pub struct WithHooks(HooksParams);

impl Model for WithHooks {
    type Params = HooksParams;
    fn new(params: HooksParams, _: &FactoryContext<'_>) -> Result<Self, PluginError> {
        Ok(WithHooks(params))
    }
    fn variables(&self) -> Vec<VarSpec> {
        Vec::new()
    }
    /// Loss 0 outside PREDICT, and the row numbers as the prediction `row` in every mode.
    fn model_fn(&mut self, inputs: &ModelInputs<'_>) -> Result<EstimatorSpec, PluginError> {
        let mut spec = EstimatorSpec::new(inputs.mode);
        spec.predictions.push(row_numbers(inputs));
        if inputs.mode != ModeKeys::Predict {
            spec.loss = ROption::RSome(0.0);
        }
        Ok(spec)
    }
    fn requested_hooks(&self, mode: ModeKeys) -> Vec<serde_json::Value> {
        match mode {
            ModeKeys::Train => self.0.train.clone(),
            ModeKeys::Eval => self.0.eval.clone(),
            ModeKeys::Predict => Vec::new(),
        }
    }
}

estimator_plugin_api::export_plugin! {
    models: [
        "panics" => Panics,
        "no_loss" => NoLoss,
        "wrong_gradient" => WrongGradient,
        "noop" => Noop,
        "nan_loss" => NanLoss,
        "wrong_batch_predictions" => WrongBatchPredictions,
        "with_hooks" => WithHooks,
    ],
    metrics: [],
    inputs: [],
}
