//! The SDK plugin authors use: plain Rust traits for models, metrics and inputs, ndarray
//! views of the tensors the host passes, a reverse-mode tape with layers and losses, and the
//! [`export_plugin!`](crate::export_plugin) macro that turns it all into a plugin library.

pub mod auc;
pub mod batch_norm;
pub mod dropout;
pub mod export;
pub mod feature_columns;
mod feature_hint;
pub mod heads;
pub mod layer_norm;
pub mod layers;
pub mod logging;
mod plugin;
mod spare;
pub mod sparse;
pub mod tape;
pub mod variables;
mod view;

pub use crate::abi::{BuiltIn, OptimizerPart};
pub use feature_hint::FeatureHint;
pub use plugin::{Input, Model, ModelInputs, StreamingMetric};
pub use spare::recycle_spec;
pub use view::{argmax_rows, f32_matrix, i64_column, softmax_rows, tensor_from_array2};
