//! Fixtures for tests and benchmarks: models that break the contract on purpose, so the
//! host's refusals can be tested through the real ABI, and `noop`, a model that does no
//! work, so a benchmark can time the ABI crossing alone. Never use it for anything else.

use estimator_plugin_api::abi::{
    BuiltIn, Chunk, EstimatorSpec, FactoryContext, Gradient, Initializer, ModeKeys, NamedTensor,
    PluginError, Tensor, TensorView, VarSpec,
};
use estimator_plugin_api::sdk::{Input, Model, ModelInputs, StreamingMetric};
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

/// Where a fixture panics: `params: { at: ... }`, each fixture naming its own calls.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PanicAt {
    #[serde(default)]
    pub at: Option<String>,
}

impl PanicAt {
    /// Panics when `call` is where these params say (or is `default` and they say nothing).
    fn check(&self, call: &str, default: &str) {
        if self.at.as_deref().unwrap_or(default) == call {
            panic!("{call} exploded on purpose");
        }
    }
}

/// Panics in `new`, `variables` or (the default) `model_fn`.
pub struct Panics(PanicAt);

impl Model for Panics {
    type Params = PanicAt;
    fn new(params: PanicAt, _: &FactoryContext<'_>) -> Result<Self, PluginError> {
        params.check("new", "model_fn");
        Ok(Panics(params))
    }
    fn variables(&self) -> Vec<VarSpec> {
        self.0.check("variables", "model_fn");
        one_variable()
    }
    fn model_fn(&mut self, _: &ModelInputs<'_>) -> Result<EstimatorSpec, PluginError> {
        self.0.check("model_fn", "model_fn");
        unreachable!("model_fn panics above")
    }
}

/// An input that panics in `open` or (the default) `next_chunk`.
pub struct PanickingInput;

impl Input for PanickingInput {
    type Params = PanicAt;
    fn open(params: PanicAt, _: &FactoryContext<'_>, _: ModeKeys) -> Result<Self, PluginError> {
        params.check("open", "next_chunk");
        Ok(PanickingInput)
    }
    fn next_chunk(&mut self) -> Result<Option<Chunk>, PluginError> {
        panic!("next_chunk exploded on purpose")
    }
}

/// A metric that panics in `new`, `result` or (the default) `update`.
pub struct PanickingMetric(PanicAt);

impl StreamingMetric for PanickingMetric {
    type Params = PanicAt;
    fn new(params: PanicAt, _: &FactoryContext<'_>) -> Result<Self, PluginError> {
        params.check("new", "update");
        Ok(PanickingMetric(params))
    }
    fn update(
        &mut self,
        _: &TensorView<'_>,
        _: &TensorView<'_>,
        _: Option<&TensorView<'_>>,
    ) -> Result<(), PluginError> {
        self.0.check("update", "update");
        Ok(())
    }
    fn result(&self) -> Result<f64, PluginError> {
        self.0.check("result", "update");
        Ok(0.0)
    }
    fn reset(&mut self) {}
    fn state(&self) -> Vec<f64> {
        Vec::new()
    }
    fn merge(&mut self, _: &[f64]) -> Result<(), PluginError> {
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleParams {
    /// The rule of the host's spec check to break.
    pub rule: String,
}

/// A valid TRAIN spec (a dense gradient for `w`, a row gradient for `table`, an update of
/// the non-trainable `moving`, a prediction per example) with one rule broken, named by
/// `params.rule`.
pub struct BreaksRule(RuleParams);

impl Model for BreaksRule {
    type Params = RuleParams;
    fn new(params: RuleParams, _: &FactoryContext<'_>) -> Result<Self, PluginError> {
        Ok(BreaksRule(params))
    }
    fn variables(&self) -> Vec<VarSpec> {
        vec![
            VarSpec::new("w", &[1], Initializer::Zeros),
            VarSpec::new("table", &[3, 2], Initializer::Zeros),
            VarSpec::new("moving", &[1], Initializer::Zeros).non_trainable(),
        ]
    }
    fn model_fn(&mut self, inputs: &ModelInputs<'_>) -> Result<EstimatorSpec, PluginError> {
        let n = batch_len(inputs);
        let w = || Gradient::dense("w", Tensor::f32(vec![1], vec![0.5]));
        let table =
            |row: i64| Gradient::sparse("table", vec![row], Tensor::f32(vec![1, 2], vec![0.5; 2]));
        let moving =
            |values: Vec<f32>| NamedTensor::new("moving", Tensor::f32(vec![values.len()], values));
        let mut spec = EstimatorSpec::new(inputs.mode);
        spec.set_loss(1.0);
        spec.gradients = vec![w(), table(1)].into();
        spec.updates = vec![moving(vec![0.5])].into();
        spec.predictions = vec![NamedTensor::new("p", Tensor::f32(vec![n], vec![0.0; n]))].into();
        match self.0.rule.as_str() {
            "missing_gradients" => spec.gradients.clear(),
            "extra_gradient" => spec.gradients.push(w()),
            "gradient_order" => spec.gradients = vec![table(1), w()].into(),
            "gradient_dtype" => {
                spec.gradients[0] = Gradient::dense("w", Tensor::i64(vec![1], vec![1]))
            }
            "rows_outside" => spec.gradients[1] = table(5),
            "update_unknown" => {
                spec.updates =
                    vec![NamedTensor::new("nope", Tensor::f32(vec![1], vec![0.0]))].into()
            }
            "update_trainable" => {
                spec.updates = vec![NamedTensor::new("w", Tensor::f32(vec![1], vec![0.0]))].into()
            }
            "update_twice" => spec.updates.push(moving(vec![0.25])),
            "update_shape" => spec.updates = vec![moving(vec![0.5, 0.5])].into(),
            "update_nan" => spec.updates = vec![moving(vec![f32::NAN])].into(),
            "prediction_values" => {
                spec.predictions = vec![NamedTensor::new(
                    "p",
                    Tensor::f32(vec![n], vec![0.0; n - 1]),
                )]
                .into()
            }
            "none" => {}
            other => {
                return Err(PluginError::bad_params(format!(
                    "rule `{other}` is not one this fixture breaks"
                )))
            }
        }
        Ok(spec)
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
        spec.set_loss(1.0);
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
        spec.set_loss(loss);
        spec.gradients
            .push(Gradient::dense("w", Tensor::f32(vec![1], vec![0.5])));
        Ok(spec)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StagedParams {
    /// The number of values in the one variable `w` (a large one makes checkpoint writes
    /// take a while).
    #[serde(default = "one")]
    pub size: usize,
    /// From this global step on, model_fn sleeps `sleep_ms` before it returns.
    #[serde(default)]
    pub sleep_from_step: Option<i64>,
    #[serde(default)]
    pub sleep_ms: u64,
    /// At this global step, model_fn returns an error.
    #[serde(default)]
    pub fail_at_step: Option<i64>,
    /// model_fn panics when the first feature of the batch's first example is over this
    /// (a server's warm-up passes; a request with a large value makes it panic).
    #[serde(default)]
    pub panic_above: Option<f32>,
    /// With `fail_at_step`, fail only on this rank of a data-parallel run (as `mpirun`
    /// numbers it), as a plugin failing on one rank's rows would.
    #[serde(default)]
    pub fail_on_rank: Option<usize>,
}

/// This process's rank under `mpirun`; 0 without it.
fn mpi_rank() -> usize {
    std::env::var("OMPI_COMM_WORLD_RANK")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn one() -> usize {
    1
}

/// A valid model (loss 1, gradient 0.5 for every value of `w`) that sleeps or fails at
/// the steps its params name, so tests can act while a step or a write is under way.
pub struct Staged(StagedParams);

impl Model for Staged {
    type Params = StagedParams;
    fn new(params: StagedParams, _: &FactoryContext<'_>) -> Result<Self, PluginError> {
        Ok(Staged(params))
    }
    fn variables(&self) -> Vec<VarSpec> {
        vec![VarSpec::new("w", &[self.0.size], Initializer::Zeros)]
    }
    fn model_fn(&mut self, inputs: &ModelInputs<'_>) -> Result<EstimatorSpec, PluginError> {
        let step = inputs.ctx.global_step;
        if self.0.sleep_from_step.is_some_and(|from| step >= from) {
            std::thread::sleep(std::time::Duration::from_millis(self.0.sleep_ms));
        }
        if let Some(limit) = self.0.panic_above {
            let first = inputs.features.first().map(|f| f.tensor.data);
            if let Some(estimator_plugin_api::abi::TensorData::F32(values)) = first {
                if values.first().is_some_and(|&v| v > limit) {
                    panic!("a value over {limit}: panicking on purpose");
                }
            }
        }
        let this_rank = self.0.fail_on_rank.is_none_or(|r| r == mpi_rank());
        if self.0.fail_at_step == Some(step) && this_rank {
            return Err(PluginError::bad_data(format!(
                "failing at step {step} on purpose"
            )));
        }
        let mut spec = EstimatorSpec::new(inputs.mode);
        spec.set_loss(1.0);
        let size = self.0.size;
        spec.gradients.push(Gradient::dense(
            "w",
            Tensor::f32(vec![size], vec![0.5; size]),
        ));
        let n = batch_len(inputs);
        spec.predictions
            .push(NamedTensor::new("p", Tensor::f32(vec![n], vec![0.0; n])));
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
        spec.set_loss(1.0);
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
            spec.set_loss(0.0);
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

/// The hooks of one manifest-style entry, `{name: {setting: value, ...}}`, as typed
/// requests. Settings keep their YAML type (an integer stays an integer); a value the
/// ABI has no type for is sent as its text, for the host to refuse.
fn built_ins(entry: &serde_json::Value) -> Vec<BuiltIn> {
    use serde_json::Value;
    let Value::Object(hooks) = entry else {
        return Vec::new();
    };
    hooks
        .iter()
        .map(|(name, settings)| {
            let mut hook = BuiltIn::new(name.as_str());
            let Value::Object(settings) = settings else {
                return hook;
            };
            for (key, value) in settings {
                hook = match value {
                    Value::Bool(b) => hook.with(key.as_str(), *b),
                    Value::Number(n) => match n.as_i64() {
                        Some(i) => hook.with(key.as_str(), i),
                        None => hook.with(key.as_str(), n.as_f64().unwrap_or(f64::NAN)),
                    },
                    Value::String(t) => hook.with(key.as_str(), t.as_str()),
                    Value::Array(items) => hook.with(
                        key.as_str(),
                        items
                            .iter()
                            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                            .collect::<Vec<String>>(),
                    ),
                    other => hook.with(key.as_str(), other.to_string()),
                };
            }
            hook
        })
        .collect()
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
            spec.set_loss(0.0);
        }
        Ok(spec)
    }
    fn requested_hooks(&self, mode: ModeKeys) -> Vec<BuiltIn> {
        let listed = match mode {
            ModeKeys::Train => &self.0.train,
            ModeKeys::Eval => &self.0.eval,
            ModeKeys::Predict => return Vec::new(),
        };
        listed.iter().flat_map(built_ins).collect()
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
        "breaks_rule" => BreaksRule,
        "staged" => Staged,
    ],
    metrics: ["panics" => PanickingMetric],
    inputs: ["panics" => PanickingInput],
}
