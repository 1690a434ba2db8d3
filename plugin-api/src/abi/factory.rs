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
use super::export::ExportOutput;
use super::settings::{BuiltIn, OptimizerPart};
use super::spec::{
    Chunk, EstimatorSpec, MetricPartial, MetricValue, ModeKeys_NE, StepContext, VarSpec,
};
use super::tensor::{NamedView, TensorView};

/// A model: its variables and its model_fn.
///
/// Call sequence: the host calls `variables` once after creation, then
/// `optimizer_parts` (TRAIN) and `requested_hooks` for each loop it runs; it creates and
/// initialises (or restores) the variables, then calls `model_fn` once per batch.
/// `model_fn` receives every declared variable, in declaration order, as a borrowed view
/// valid only for that call. At the end of an evaluation, `eval_metric_results` turns the
/// sums of `eval_metric_ops` into the values reported.
#[sabi_trait]
pub trait ModelFn: Send {
    fn variables(&self) -> RResult<RVec<VarSpec>, PluginError>;

    /// The optimizers the model's variables want, TF's per-estimator defaults. Empty for
    /// one part, over every variable, with the host's default.
    fn optimizer_parts(&self) -> RResult<RVec<OptimizerPart>, PluginError>;

    /// The built-in hooks the model asks for in a mode's loop (TF's `training_hooks`
    /// and `training_chief_hooks` in TRAIN, `evaluation_hooks`, `prediction_hooks`), each
    /// named and set as in the manifest's `hooks:`.
    fn requested_hooks(&self, mode: ModeKeys_NE) -> RResult<RVec<BuiltIn>, PluginError>;

    /// Turns the sums of `eval_metric_ops` over one evaluation (per name, every batch's
    /// `total` and `count` added) into the values reported, TF's metric value ops. Sums
    /// may be sufficient statistics no user sees (an AUC's confusion counts).
    fn eval_metric_results(
        &self,
        sums: RSlice<'_, MetricPartial>,
    ) -> RResult<RVec<MetricValue>, PluginError>;

    #[sabi(last_prefix_field)]
    fn model_fn(
        &mut self,
        features: RSlice<'_, NamedView<'_>>,
        labels: ROption<TensorView<'_>>,
        mode: ModeKeys_NE,
        variables: RSlice<'_, NamedView<'_>>,
        ctx: StepContext,
    ) -> RResult<EstimatorSpec, PluginError>;

    /// The model's serving signatures (TF's `export_outputs` in PREDICT), which
    /// `estimator export` writes and `estimator serve` answers. Appended after the last
    /// prefix field: a library built before it declares none (this default), and is
    /// served with TF's default, `serving_default` predicting everything.
    fn export_outputs(&self) -> RResult<RVec<ExportOutput>, PluginError> {
        RResult::ROk(RVec::new())
    }

    /// The predictions the host reads from TRAIN steps, by name: those its hooks log or
    /// summarize (TF's fetches). A model may leave the others out of a TRAIN spec, as TF
    /// runs only the ops a step fetches. Called before each training loop. Appended after
    /// the last prefix field: a library built before it computes every prediction (this
    /// default ignores the call).
    fn set_train_fetches(&mut self, predictions: RSlice<'_, RString>) -> RResult<(), PluginError> {
        let _ = predictions;
        RResult::ROk(())
    }

    /// Takes back a TRAIN spec this model returned, once the host has applied it, so
    /// that the next step can reuse its buffers (the gradients' names and shapes) rather
    /// than allocate them again. Appended after the last prefix field: a library built
    /// before it drops the spec (this default).
    fn recycle_spec(&mut self, spec: EstimatorSpec) {
        drop(spec);
    }
}

/// A streaming metric, like a `tf.metrics` (value, update_op) pair.
///
/// Call sequence: `update` once per evaluation batch, `result` at the end; `reset` starts
/// over. `state` is the metric's partial result as numbers and `merge` adds another
/// instance's `state` into this one, so an evaluation split in parts (over processes, or
/// over halves of the data) reports what one pass would.
#[sabi_trait]
pub trait Metric: Send {
    fn update(
        &mut self,
        labels: TensorView<'_>,
        predictions: TensorView<'_>,
        weights: ROption<TensorView<'_>>,
    ) -> RResult<(), PluginError>;

    fn result(&self) -> RResult<f64, PluginError>;

    fn reset(&mut self) -> RResult<(), PluginError>;

    fn state(&self) -> RResult<RVec<f64>, PluginError>;

    #[sabi(last_prefix_field)]
    fn merge(&mut self, other_state: RSlice<'_, f64>) -> RResult<(), PluginError>;
}

/// A source of examples in chunks. `next_chunk` is called until it returns `RNone` (end
/// of input); a source is opened again for every pass over the data the host cannot
/// cache.
#[sabi_trait]
pub trait InputSource: Send {
    #[sabi(last_prefix_field)]
    fn next_chunk(&mut self) -> RResult<ROption<Chunk>, PluginError>;
}

pub type ModelFnBox = ModelFn_TO<'static, RBox<()>>;
pub type MetricBox = Metric_TO<'static, RBox<()>>;
pub type InputSourceBox = InputSource_TO<'static, RBox<()>>;
