//! TF's `SessionRunHook`: the trait every hook implements, and what the loop tells it.

use std::time::Duration;

use estimator_plugin_api::abi::{ModeKeys, NamedTensor};

use crate::error::Result;

/// What a loop tells its hooks about itself.
#[derive(Clone, Debug)]
pub struct RunInfo {
    pub mode: ModeKeys,
    /// The global step the loop starts at.
    pub start_step: i64,
    /// Where it will stop if nothing stops it sooner: the last global step in TRAIN, the
    /// number of batches in EVAL; `None` when only the input's end will tell.
    pub last_step: Option<i64>,
    /// The model's plugin, which an error about the model's output names.
    pub model_plugin: String,
}

/// What a step produced, for `after_run`.
#[derive(Debug)]
pub struct RunValues<'a> {
    /// The global step the batch ran at (TF's logged `step`).
    pub step: i64,
    /// The global step after the step (TRAIN counts it; EVAL and PREDICT do not).
    pub global_step: i64,
    /// The step's loss (TRAIN and EVAL).
    pub loss: Option<f32>,
    /// The step's predictions, by name: in TRAIN, those the hooks fetch (a model may
    /// carry more).
    pub predictions: &'a [NamedTensor],
    /// The examples in the step's batch.
    pub batch_len: usize,
    /// The optimizer's learning rate for the step (TRAIN).
    pub learning_rate: Option<f32>,
    /// Where the step's time went; present when a hook asks for it (the profiler).
    pub timings: Option<StepTimings>,
}

impl RunValues<'_> {
    /// A scalar by name: `loss`, `global_step`, or the mean of a numeric prediction.
    pub fn scalar(&self, name: &str) -> Option<f64> {
        match name {
            "loss" => self.loss.map(f64::from),
            "global_step" => Some(self.global_step as f64),
            _ => {
                let t = &self
                    .predictions
                    .iter()
                    .find(|p| p.name.as_str() == name)?
                    .tensor;
                let values: Vec<f64> = match &t.data {
                    estimator_plugin_api::abi::TensorBuf::F32(v) => {
                        v.iter().map(|&x| f64::from(x)).collect()
                    }
                    estimator_plugin_api::abi::TensorBuf::I64(v) => {
                        v.iter().map(|&x| x as f64).collect()
                    }
                    estimator_plugin_api::abi::TensorBuf::Str(_) => return None,
                };
                (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
            }
        }
    }
}

/// The time one step spent in each part of the loop.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepTimings {
    pub input: Duration,
    pub model_fn: Duration,
    pub optimizer: Duration,
    /// `before_run` and `after_run` of every hook, for the previous step.
    pub hooks: Duration,
}

/// What a hook can do to the loop.
#[derive(Debug, Default)]
pub struct HookContext {
    stop: bool,
}

impl HookContext {
    /// Ends the loop after the current step.
    pub fn request_stop(&mut self) {
        self.stop = true;
    }

    pub fn stop_requested(&self) -> bool {
        self.stop
    }
}

/// TF's `SessionRunHook`. Every method has a do-nothing default.
pub trait Hook: Send {
    /// The hook's name in logs and in checkpoints (its saved state is keyed by it).
    fn name(&self) -> &str;

    fn begin(&mut self, _run: &RunInfo) -> Result<()> {
        Ok(())
    }

    /// The variables exist; `global_step` is where the loop starts.
    fn after_create_session(&mut self, _global_step: i64, _ctx: &mut HookContext) -> Result<()> {
        Ok(())
    }

    /// Before a step that will run at `global_step`.
    fn before_run(&mut self, _global_step: i64) -> Result<()> {
        Ok(())
    }

    fn after_run(&mut self, _values: &RunValues<'_>, _ctx: &mut HookContext) -> Result<()> {
        Ok(())
    }

    /// At the end, with the last step's values if any step ran.
    fn end(&mut self, _last: Option<&RunValues<'_>>) -> Result<()> {
        Ok(())
    }

    /// Whether `after_run` needs [`RunValues::timings`].
    fn wants_timings(&self) -> bool {
        false
    }

    /// The predictions `after_run` and `end` read by name (TF's fetches). A TRAIN step
    /// carries only the predictions some hook fetches: a model may skip the rest.
    fn fetches(&self) -> &[String] {
        &[]
    }

    /// State to keep in checkpoints, so a resumed run continues as if never stopped.
    fn state(&self) -> Option<serde_json::Value> {
        None
    }

    fn restore(&mut self, _state: &serde_json::Value) -> Result<()> {
        Ok(())
    }
}
