//! Hooks: code that runs around every step of a loop, as TF's `SessionRunHook`.
//!
//! The loop calls, in order: [`Hook::begin`] once; [`Hook::after_create_session`] once the
//! variables exist (initialised, restored or warm-started); [`Hook::before_run`] and
//! [`Hook::after_run`] around every step; [`Hook::end`] once at the end, however the loop
//! ends short of an error. A hook stops the loop with [`HookContext::request_stop`]; the
//! loop finishes the step, saves, and calls `end`.
//!
//! The built-in hooks are configured in the manifest's `hooks:` (see `docs/manifest.md`);
//! a library user passes their own as `Box<dyn Hook>`.
//!
//! - `hook`: the [`Hook`] trait and what a loop tells it;
//! - `set`: the hooks of one loop, called in order;
//! - `config`: the built-in hooks as the manifest lists them;
//! - `timer`: when a hook fires;
//! - one file per built-in hook; `checkpoint_saver` is TF's `CheckpointSaverHook`.

mod checkpoint_saver;
mod config;
mod early_stopping;
mod final_ops;
mod hook;
mod logging_tensor;
mod nan_tensor;
mod profiler;
mod set;
mod step_counter;
mod stop_at_step;
mod summary_saver;
mod timer;

pub(crate) use checkpoint_saver::CheckpointSaverHook;
pub use checkpoint_saver::CheckpointSaverListener;
pub use config::{CheckpointSaverSettings, HookConfig, HooksSection};
pub use early_stopping::{EarlyStoppingHook, Rule as EarlyStoppingRule};
pub use final_ops::FinalOpsHook;
pub use hook::{Hook, HookContext, RunInfo, RunValues, StepTimings};
pub use logging_tensor::{LoggingTensorHook, LoggingTensorSettings};
pub use nan_tensor::NanTensorHook;
pub use profiler::ProfilerHook;
pub use set::HookSet;
pub use step_counter::{Settings as StepCounterSettings, StepCounterHook};
pub use stop_at_step::StopAtStepHook;
pub use summary_saver::{Settings as SummarySaverSettings, SummarySaverHook};
pub(crate) use timer::{one_period, Timer};
