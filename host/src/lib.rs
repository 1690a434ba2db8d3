//! The estimator runtime as a library: manifests, plugin loading, and the train / evaluate /
//! predict loops of [`Estimator`]. The `estimator` binary is a thin CLI over it.
//!
//! The public API: [`Estimator`] and what its calls take and return, [`Manifest`],
//! [`PluginRegistry`], the [`hooks`] (TF's `SessionRunHook` and the built-in ones),
//! reading [`checkpoint`]s and TensorBoard [`events`], the [`threads`] matmuls use, and the
//! binary's [`cli`] pieces.
//! Everything else is the runtime's own. Benchmarks reach a few internals through the
//! `bench` feature.

pub mod checkpoint;
pub mod cli;
pub(crate) mod config;
pub(crate) mod denormals;
pub(crate) mod error;
pub(crate) mod estimator;
pub(crate) mod eval_metrics;
pub mod events;
pub mod export;
pub(crate) mod fingerprint;
pub mod hooks;
pub(crate) mod input;
pub(crate) mod lock;
pub(crate) mod optimizer;
pub(crate) mod plugin_logs;
pub(crate) mod plugins;
pub mod replica;
pub(crate) mod seed;
pub mod serve;
pub(crate) mod spec_check;
pub mod threads;
pub(crate) mod variables;
pub(crate) mod views;
pub(crate) mod warm_start;

pub use config::Manifest;
pub use error::{Error, Invalid, Result};
pub use estimator::{
    Estimator, PredictionRow, StopAt, TrainAndEvaluateOutcome, TrainOutcome, RESOLVED_CONFIG,
};
pub use plugins::PluginRegistry;

/// Internals the criterion benchmarks time on their own (`--features bench`).
#[cfg(feature = "bench")]
pub mod bench {
    pub use crate::denormals::FlushDenormals;
    pub use crate::input::{Opener, Pipeline, PipelineConfig};
    pub use crate::optimizer::{Optimizer, OptimizerConfig};
    /// TF's EstimatorSpec checks, as the loops make them.
    pub mod spec_check {
        pub use crate::spec_check::check;
    }
    pub use crate::variables::VariableStore;
}
