//! What a model declares (variables) and what its model_fn returns (the EstimatorSpec).

// The NonExhaustive expansion of `#[derive(StableAbi)]` defines impls inside a const block.
#![allow(non_local_definitions)]

use abi_stable::{
    std_types::{ROption, RStr, RString, RVec},
    StableAbi,
};

use super::error::PluginError;
use super::tensor::{NamedTensor, Tensor};

/// The three modes of Estimator, with TF's string values.
///
/// It crosses the boundary as [`ModeKeys_NE`], so a later ABI 3.x may add a mode: a
/// library built before it receives an unknown mode as an error, never as garbage.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[sabi(kind(WithNonExhaustive(size = [usize; 1], traits(Debug, Clone, PartialEq, Eq, Hash))))]
pub enum ModeKeys {
    Train,
    Eval,
    Predict,
}

impl ModeKeys {
    /// TF's `ModeKeys` value: `train`, `eval`, `infer`.
    pub fn as_str(self) -> &'static str {
        match self {
            ModeKeys::Train => "train",
            ModeKeys::Eval => "eval",
            ModeKeys::Predict => "infer",
        }
    }
}

impl std::fmt::Display for ModeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<ModeKeys> for ModeKeys_NE {
    fn from(mode: ModeKeys) -> Self {
        ModeKeys_NE::new(mode)
    }
}

/// The mode a caller passed, or an error naming it when this build does not know it.
pub fn known_mode(mode: &ModeKeys_NE) -> Result<ModeKeys, PluginError> {
    mode.as_enum().copied().map_err(|_| {
        PluginError::other(format!(
            "unknown mode (discriminant {}): this library was built against an older ABI 3.x",
            mode.get_discriminant()
        ))
    })
}

/// How the host fills a variable before the first step (when no checkpoint exists).
///
/// It crosses the boundary as [`Initializer_NE`], so a later ABI 3.x may add one: a host
/// built before it refuses the variable by name instead of misreading it.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq)]
#[sabi(kind(WithNonExhaustive(size = [usize; 2], traits(Debug, Clone, PartialEq))))]
pub enum Initializer {
    Zeros,
    Ones,
    Constant(f32),
    /// Uniform in `±sqrt(6 / (fan_in + fan_out))`, Keras' default for kernels.
    GlorotUniform,
    RandomUniform {
        min: f32,
        max: f32,
    },
    /// Normal with mean 0, redrawn outside two standard deviations.
    TruncatedNormal {
        stddev: f32,
    },
}

/// A variable the model needs; the host creates, initialises, checkpoints and updates it.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct VarSpec {
    pub name: RString,
    pub shape: RVec<usize>,
    pub initializer: Initializer_NE,
    /// Trainable variables receive gradients; others are changed through `updates`.
    pub trainable: bool,
}

impl VarSpec {
    pub fn new(name: impl Into<String>, shape: &[usize], initializer: Initializer) -> Self {
        VarSpec {
            name: RString::from(name.into()),
            shape: shape.to_vec().into(),
            initializer: Initializer_NE::new(initializer),
            trainable: true,
        }
    }

    pub fn non_trainable(mut self) -> Self {
        self.trainable = false;
        self
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Per-step facts the host hands to model_fn.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepContext {
    /// Global step before this step runs.
    pub global_step: i64,
    /// A seed derived from `random_seed` and the step, for dropout and other randomness.
    pub seed: u64,
}

/// Partial sums of a streaming metric computed inside model_fn, like the local variables
/// a `tf.metrics` update_op adds to: the host adds `total` and `count` per name over all
/// batches, then the model turns the sums into values (`ModelFn::eval_metric_results`;
/// by default `total / count`).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct MetricPartial {
    pub name: RString,
    pub total: f64,
    pub count: f64,
}

impl MetricPartial {
    pub fn new(name: impl Into<String>, total: f64, count: f64) -> Self {
        MetricPartial {
            name: RString::from(name.into()),
            total,
            count,
        }
    }

    /// `total / count`, or 0 when nothing was counted (TF's `divide_no_nan`).
    pub fn ratio(&self) -> f64 {
        if self.count == 0.0 {
            0.0
        } else {
            self.total / self.count
        }
    }

    /// The value this sum reports unless the model says otherwise: its ratio, under its
    /// name.
    pub fn ratio_value(&self) -> MetricValue {
        MetricValue {
            name: self.name.clone(),
            value: self.ratio(),
        }
    }
}

/// A metric's value at the end of an evaluation, reported under `name`.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct MetricValue {
    pub name: RString,
    pub value: f64,
}

impl MetricValue {
    pub fn new(name: impl Into<String>, value: f64) -> Self {
        MetricValue {
            name: RString::from(name.into()),
            value,
        }
    }
}

/// The gradient of one trainable variable: dense, or for some rows only (TF's
/// `IndexedSlices`, the gradient of an embedding lookup), so that a large table's gradient
/// costs what the batch touched.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct Gradient {
    /// The variable's name.
    pub name: RString,
    /// Dense: the variable's shape. Row-sparse: `[rows.len(), <the variable's row shape>]`.
    pub values: Tensor,
    /// For a row-sparse gradient, the row of the variable each row of `values` belongs
    /// to; a row may repeat, and its parts add up.
    pub rows: ROption<RVec<i64>>,
}

impl Gradient {
    pub fn dense(name: impl Into<String>, values: Tensor) -> Self {
        Gradient {
            name: RString::from(name.into()),
            values,
            rows: ROption::RNone,
        }
    }

    /// A row-sparse gradient: row `i` of `values` belongs to row `rows[i]` of the variable.
    pub fn sparse(name: impl Into<String>, rows: Vec<i64>, values: Tensor) -> Self {
        Gradient {
            name: RString::from(name.into()),
            values,
            rows: ROption::RSome(rows.into()),
        }
    }
}

/// What model_fn returns, TF's `EstimatorSpec`.
///
/// Required per mode, as TF: TRAIN needs `loss` and `gradients` (our `train_op`: the host's
/// optimizer applies them), EVAL needs `loss`, PREDICT needs `predictions`.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct EstimatorSpec {
    pub mode: ModeKeys_NE,
    /// Named prediction tensors, each with the batch as its leading dimension.
    pub predictions: RVec<NamedTensor>,
    /// The scalar loss of this batch.
    pub loss: ROption<f32>,
    /// One gradient per trainable variable, in the order `variables()` declared them.
    pub gradients: RVec<Gradient>,
    /// New values for non-trainable variables (e.g. moving averages).
    pub updates: RVec<NamedTensor>,
    /// Streaming metrics the model computes itself.
    pub eval_metric_ops: RVec<MetricPartial>,
}

impl EstimatorSpec {
    pub fn new(mode: ModeKeys) -> Self {
        EstimatorSpec {
            mode: mode.into(),
            predictions: RVec::new(),
            loss: ROption::RNone,
            gradients: RVec::new(),
            updates: RVec::new(),
            eval_metric_ops: RVec::new(),
        }
    }

    pub fn prediction(&self, name: &str) -> Option<&Tensor> {
        self.predictions
            .iter()
            .find(|p| p.name.as_str() == name)
            .map(|p| &p.tensor)
    }

    /// Sets the batch's scalar loss.
    pub fn set_loss(&mut self, loss: f32) {
        self.loss = ROption::RSome(loss);
    }

    /// Adds a prediction tensor, the batch as its first dimension.
    pub fn add_prediction(&mut self, name: impl Into<String>, tensor: Tensor) {
        self.predictions.push(NamedTensor::new(name, tensor));
    }

    /// Sets the gradients, one per trainable variable in declaration order.
    pub fn set_gradients(&mut self, gradients: impl IntoIterator<Item = Gradient>) {
        self.gradients = gradients.into_iter().collect();
    }

    /// Sets the new values of non-trainable variables (batch norm's moving averages).
    pub fn set_updates(&mut self, updates: impl IntoIterator<Item = NamedTensor>) {
        self.updates = updates.into_iter().collect();
    }

    /// Adds a new value for a non-trainable variable.
    pub fn add_update(&mut self, name: impl Into<String>, tensor: Tensor) {
        self.updates.push(NamedTensor::new(name, tensor));
    }

    /// Adds a (total, count) partial sum to a metric the model computes itself.
    pub fn add_metric(&mut self, name: impl Into<String>, total: f64, count: f64) {
        self.eval_metric_ops
            .push(MetricPartial::new(name, total, count));
    }
}

/// A chunk: some consecutive examples from an input plugin, as columns. The host cuts
/// and joins chunks into the batches model_fn sees, so a chunk may have any length.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct Chunk {
    /// Feature columns, each with the examples as its leading dimension.
    pub features: RVec<NamedTensor>,
    /// The label column, absent in PREDICT.
    pub labels: ROption<Tensor>,
}

impl Chunk {
    pub fn new(features: Vec<NamedTensor>, labels: Option<Tensor>) -> Self {
        Chunk {
            features: features.into(),
            labels: labels.into(),
        }
    }

    /// The label column, if the input has one.
    pub fn labels(&self) -> Option<&Tensor> {
        self.labels.as_ref().into_option()
    }

    /// The number of examples: the first column's length.
    pub fn len(&self) -> usize {
        self.features
            .first()
            .map(|f| &f.tensor)
            .or(self.labels())
            .map_or(0, Tensor::batch_len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What every factory call receives besides the params.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct FactoryContext<'a> {
    /// The manifest's folder: relative paths in params resolve against it.
    pub base_dir: RStr<'a>,
    /// The run's `random_seed` (or the seed chosen for it).
    pub seed: u64,
}

impl FactoryContext<'_> {
    /// Resolves a path from params against the manifest's folder.
    pub fn resolve(&self, path: &str) -> std::path::PathBuf {
        std::path::Path::new(self.base_dir.as_str()).join(path)
    }
}
