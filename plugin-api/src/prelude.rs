//! Everything a plugin author needs, in one import:
//!
//! ```
//! use estimator_plugin_api::prelude::*;
//! ```
//!
//! It brings the SDK's traits (`Model`, `Input`, `StreamingMetric`), the tape and its
//! layers, losses and feature columns, the types a model_fn returns, the export macros,
//! and `ndarray` and `tracing` (re-exported, so a plugin's `Cargo.toml` needs no version
//! of them; `tracing::info!` in a plugin logs through the host).

pub use crate::abi::{
    BuiltIn, Chunk, EstimatorSpec, ExportOutput, FactoryContext, Gradient, Initializer,
    MetricPartial, MetricValue, ModeKeys, NamedTensor, OptimizerPart, PluginError, Tensor,
    TensorView, VarSpec,
};
pub use crate::sdk::feature_columns::{DenseFeatures, FeatureColumn};
pub use crate::sdk::heads::{
    add_class_predictions, add_class_predictions_with, Head, LossArgs, CLASS_PREDICTIONS,
};
pub use crate::sdk::layer_norm::LayerNorm;
pub use crate::sdk::layers::{Activation, Dense, Mlp, Params, Regularizer};
pub use crate::sdk::tape::{LossReduction, Over, Tape, Var, Weighting};
pub use crate::sdk::variables::{VarBuilder, VarHandle};
pub use crate::sdk::{
    argmax_rows, f32_matrix, i64_column, softmax_rows, tensor_from_array2, Input, Model,
    ModelInputs, StreamingMetric,
};
pub use crate::{define_plugin_module, export_plugin};
pub use ndarray::{self, array, Array2, ArrayView2, Axis};
pub use tracing;
