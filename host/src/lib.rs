//! The estimator runtime as a library: manifests, plugin loading, and the train / evaluate /
//! predict loops of [`estimator::Estimator`]. The `estimator` binary is a thin CLI over it.

pub mod checkpoint;
pub mod config;
pub mod denormals;
pub mod error;
pub mod estimator;
pub mod eval_metrics;
pub mod events;
pub mod hooks;
pub mod input;
pub mod inspect;
pub mod lock;
pub mod optimizer;
pub mod plugins;
pub mod progress;
pub mod seed;
pub mod spec_check;
pub mod variables;
pub mod warm_start;

pub use config::Manifest;
pub use error::{Error, Result};
pub use estimator::Estimator;
