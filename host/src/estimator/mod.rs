//! The Estimator: `train`, `evaluate` and `predict` over a model plugin, as TF's
//! `tf.estimator.Estimator`.
//!
//! - `train`: the training loop, read top to bottom;
//! - `infer`: the one loop evaluate and predict share;
//! - `export`: a trained model as a self-contained version for serving;
//! - `train_and_evaluate`: training whose checkpoints are evaluated as they come;
//! - `session`: assembling a run from the manifest (model, variables, inputs, metrics,
//!   optimizers, warm start) and calling model_fn;
//! - `hook_setup`: which hooks each loop runs;
//! - `model_dir`: finding, creating and reading model_dir;
//! - `predictions`: a spec's predictions as one JSON object per example;
//! - `step_clock`: the profiler's split of a step's time.
//!
//! As in TF's runtime, the loops run with subnormal floats flushed to zero (see
//! [`crate::denormals`]).

mod export;
mod exporters;
mod hook_setup;
mod infer;
mod model_dir;
pub(crate) mod predictions;
mod session;
mod step_clock;
#[cfg(test)]
mod test_support;
mod train;
mod train_and_evaluate;

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tracing::info;

use crate::config::Manifest;
use crate::error::Result;
use crate::plugins::PluginRegistry;
use crate::replica::Replicas;
use crate::seed;

pub use model_dir::RESOLVED_CONFIG;
pub use predictions::PredictionRow;
pub use train_and_evaluate::TrainAndEvaluateOutcome;

/// When `train` stops, besides the end of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopAt {
    /// Run this many more steps than the latest checkpoint has (TF's `steps`).
    Steps(u64),
    /// Run until the global step reaches this value (TF's `max_steps`).
    MaxSteps(u64),
}

/// What `train` did.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOutcome {
    pub global_step: i64,
    /// The loss of the last step run, if any ran.
    pub final_loss: Option<f32>,
    /// Stopped by a stop request (a signal) before its end; a checkpoint was saved.
    pub interrupted: bool,
}

/// TF's `Estimator`: trains, evaluates and predicts with the model a manifest names.
///
/// From Rust, with a hook of your own (the CLI does the same without the hook):
///
/// ```no_run
/// use estimator_host::StopAt;
/// use estimator_host::hooks::{Hook, HookContext, RunValues};
/// use estimator_host::PluginRegistry;
/// use estimator_host::{Estimator, Manifest, Result};
///
/// /// Stops training once the loss falls below a threshold.
/// struct LossBelow(f32);
///
/// impl Hook for LossBelow {
///     fn name(&self) -> &str {
///         "loss_below"
///     }
///
///     fn after_run(&mut self, values: &RunValues<'_>, ctx: &mut HookContext) -> Result<()> {
///         if values.loss.is_some_and(|loss| loss < self.0) {
///             ctx.request_stop();
///         }
///         Ok(())
///     }
/// }
///
/// fn main() -> Result<()> {
///     let manifest = Manifest::load("configs/iris_custom.yaml".as_ref())?;
///     let mut estimator = Estimator::new(manifest, PluginRegistry::from_env());
///     let mut early = LossBelow(0.1);
///     let outcome = estimator.train_with_hooks(Some(StopAt::MaxSteps(1000)), vec![&mut early])?;
///     let metrics = estimator.evaluate(None)?;
///     println!("global step {}: accuracy {}", outcome.global_step, metrics["accuracy"]);
///     Ok(())
/// }
/// ```
pub struct Estimator {
    manifest: Manifest,
    registry: PluginRegistry,
    seed: u64,
    stop: Arc<AtomicBool>,
    /// The other processes of a data-parallel run; one process by default.
    replicas: Rc<Replicas>,
}

impl Estimator {
    pub fn new(manifest: Manifest, registry: PluginRegistry) -> Self {
        let seed = manifest.run_config.random_seed.unwrap_or_else(|| {
            let s = seed::fresh();
            info!("run_config.random_seed is not set; using {s} for this run");
            s
        });
        Estimator {
            manifest,
            registry,
            seed,
            stop: Arc::new(AtomicBool::new(false)),
            replicas: Rc::new(Replicas::single()),
        }
    }

    /// Trains as one of `replicas` (the processes `mpirun` started): every rank takes
    /// its share of each batch, and rank 0 alone writes model_dir. The ranks take rank
    /// 0's seed, so a manifest without `random_seed` still starts them alike.
    pub fn with_replicas(mut self, replicas: Rc<Replicas>) -> Self {
        self.seed = replicas.broadcast_u64(self.seed);
        self.replicas = replicas;
        self
    }

    pub fn replicas(&self) -> &Replicas {
        &self.replicas
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn model_dir(&self) -> PathBuf {
        self.manifest.model_dir()
    }

    /// A flag that, once set, makes `train` stop after the current step, save a
    /// checkpoint and return with `interrupted`. The CLI sets it on SIGINT and SIGTERM.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// The manifest as this run sees it: defaults filled in, the seed fixed, as YAML.
    pub fn resolved_config(&self) -> Result<String> {
        let mut manifest = self.manifest.clone();
        manifest.run_config.random_seed = Some(self.seed);
        manifest.to_yaml()
    }
}
