//! The objects a plugin library creates: models, metrics and input sources.
//!
//! Each is an abi_stable trait object. Plugin authors never implement these traits directly:
//! the SDK adapts its plain Rust traits to them and catches panics at the boundary.

// The sabi_trait expansion defines impls inside a const block.
#![allow(non_local_definitions)]

use abi_stable::{
    sabi_trait,
    std_types::{RBox, ROption, RResult, RSlice, RString, RVec},
};

use super::error::PluginError;
use super::spec::{
    Batch, EstimatorSpec, MetricPartial, MetricValue, ModeKeys, StepContext, VarSpec,
};
use super::tensor::{NamedView, TensorView};

/// A model: its variables and its model_fn.
///
/// Call sequence: the host calls `variables` once after creation, creates and initialises
/// (or restores) them, then calls `model_fn` once per batch. `variables` passes every declared
/// variable, in declaration order, as a borrowed view valid only for that call.
#[sabi_trait]
pub trait ModelFn: Send {
    fn variables(&self) -> RResult<RVec<VarSpec>, PluginError>;

    #[sabi(last_prefix_field)]
    fn model_fn(
        &mut self,
        features: RSlice<'_, NamedView<'_>>,
        labels: ROption<TensorView<'_>>,
        mode: ModeKeys,
        variables: RSlice<'_, NamedView<'_>>,
        ctx: StepContext,
    ) -> RResult<EstimatorSpec, PluginError>;

    /// The built-in hooks the model asks for in a mode's loop (TF's `training_hooks`
    /// and `training_chief_hooks` in TRAIN, `evaluation_hooks`, `prediction_hooks`), as
    /// a JSON list in the manifest's `hooks:` form; empty for none. Appended after the
    /// last prefix field: a library built before it has none (this default).
    fn requested_hooks(&self, _mode: ModeKeys) -> RResult<RString, PluginError> {
        RResult::ROk(RString::new())
    }

    /// The optimizers the model's variables want, TF's per-estimator defaults: a JSON
    /// list of `{"name", "variables", "optimizer"}` — a part's name (the key the
    /// manifest's `optimizer:` uses to override it), the prefix of the variable names it
    /// updates, and its default optimizer in the manifest's form. Empty for one part with
    /// the host's default. Appended after the last prefix field: a library built before it
    /// declares none (this default).
    fn optimizer_parts(&self) -> RResult<RString, PluginError> {
        RResult::ROk(RString::new())
    }

    /// Turns the sums of `eval_metric_ops` over one evaluation (per name, every batch's
    /// `total` and `count` added) into the values reported, TF's metric value ops. Sums
    /// may be sufficient statistics no user sees (an AUC's confusion counts). Appended
    /// after the last prefix field: a library built before it reports each sum's ratio
    /// (this default).
    fn eval_metric_results(
        &self,
        sums: RSlice<'_, MetricPartial>,
    ) -> RResult<RVec<MetricValue>, PluginError> {
        RResult::ROk(sums.iter().map(MetricPartial::ratio_value).collect())
    }
}

/// A streaming metric, like a `tf.metrics` (value, update_op) pair.
///
/// Call sequence: `update` once per evaluation batch, `result` at the end; `reset` starts
/// over; `state` and `merge` combine partial states computed elsewhere (other workers).
#[sabi_trait]
pub trait Metric: Send {
    fn update(
        &mut self,
        labels: TensorView<'_>,
        predictions: TensorView<'_>,
        weights: ROption<TensorView<'_>>,
    ) -> RResult<(), PluginError>;

    fn result(&self) -> f64;

    fn reset(&mut self);

    fn state(&self) -> RVec<f64>;

    #[sabi(last_prefix_field)]
    fn merge(&mut self, other_state: RSlice<'_, f64>) -> RResult<(), PluginError>;
}

/// A source of columnar chunks. `next_chunk` is called until it returns `RNone` (end of
/// input); a source is opened again for every pass over the data the host cannot cache.
#[sabi_trait]
pub trait InputSource: Send {
    #[sabi(last_prefix_field)]
    fn next_chunk(&mut self) -> RResult<ROption<Batch>, PluginError>;
}

pub type ModelFnBox = ModelFn_TO<'static, RBox<()>>;
pub type MetricBox = Metric_TO<'static, RBox<()>>;
pub type InputSourceBox = InputSource_TO<'static, RBox<()>>;
