//! The types that cross the boundary between the host and a plugin library.
//!
//! Everything here is `#[repr(C)]` and derives `StableAbi`, so abi_stable can check at load
//! time that the host and the plugin agree on every layout; a library built from the same
//! source of this module, whose `fingerprint` is the host's, is not walked again.

mod error;
mod export;
mod factory;
mod fingerprint;
mod logging;
mod root;
mod settings;
mod spec;
mod tensor;

pub use error::{ErrorKind, ErrorKind_NE, PluginError};
pub use export::{ExportMethod, ExportMethod_NE, ExportOutput, SignatureOutput};
pub use factory::{
    InputSource, InputSourceBox, InputSource_TO, Metric, MetricBox, Metric_TO, ModelFn, ModelFnBox,
    ModelFn_TO,
};
pub use fingerprint::{ABI_FINGERPRINT, FINGERPRINT_SYMBOL};
pub use logging::{HostLogger, LogLevel};
pub use root::{PluginModule, PluginModule_Ref};
pub use settings::{BuiltIn, OptimizerPart, Setting, SettingValue, SettingValue_NE};
pub use spec::{
    known_mode, Chunk, EstimatorSpec, FactoryContext, Gradient, Initializer, Initializer_NE,
    MetricPartial, MetricValue, ModeKeys, ModeKeys_NE, StepContext, VarSpec,
};
pub use tensor::{DType, NamedTensor, NamedView, Tensor, TensorBuf, TensorData, TensorView};
