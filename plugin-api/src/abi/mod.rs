//! The types that cross the boundary between the host and a plugin library.
//!
//! Everything here is `#[repr(C)]` and derives `StableAbi`, so abi_stable can check at load
//! time that the host and the plugin agree on every layout.

mod error;
mod factory;
mod root;
mod spec;
mod tensor;

pub use error::{ErrorKind, PluginError};
pub use factory::{
    InputSource, InputSourceBox, InputSource_TO, Metric, MetricBox, Metric_TO, ModelFn, ModelFnBox,
    ModelFn_TO,
};
pub use root::{PluginModule, PluginModule_Ref};
pub use spec::{
    Batch, EstimatorSpec, FactoryContext, Gradient, Initializer, MetricPartial, MetricValue,
    ModeKeys, StepContext, VarSpec,
};
pub use tensor::{DType, NamedTensor, NamedView, Tensor, TensorBuf, TensorData, TensorView};
