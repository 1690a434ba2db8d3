//! Where the loop's time goes: input, model_fn, optimizer and hooks, per step, logged
//! every N steps or seconds and at the end.

use crate::error::Invalid;
use serde::{Deserialize, Serialize};
use tracing::info;

use super::{Hook, HookContext, RunValues, StepTimings, Timer};
use crate::error::Result;

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_n_steps: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_n_secs: Option<f64>,
}

pub struct ProfilerHook {
    timer: Timer,
    window: (StepTimings, u64),
    total: (StepTimings, u64),
}

impl ProfilerHook {
    pub fn new(s: &Settings) -> Result<Self, Invalid> {
        if s.every_n_steps == Some(0) || s.every_n_secs.is_some_and(|x| x.is_nan() || x <= 0.0) {
            return Err("profiler: the period must be > 0".into());
        }
        Ok(ProfilerHook {
            timer: Timer::new(s.every_n_steps, s.every_n_secs),
            window: Default::default(),
            total: Default::default(),
        })
    }

    /// The totals so far and the steps they cover.
    pub fn totals(&self) -> (StepTimings, u64) {
        self.total
    }
}

fn add(into: &mut (StepTimings, u64), t: &StepTimings) {
    into.0.input += t.input;
    into.0.model_fn += t.model_fn;
    into.0.optimizer += t.optimizer;
    into.0.hooks += t.hooks;
    into.1 += 1;
}

/// `input 12.0% (1.5 µs/step), model_fn ...` over `steps` steps.
fn report((t, steps): &(StepTimings, u64)) -> String {
    let parts = [
        ("input", t.input),
        ("model_fn", t.model_fn),
        ("optimizer", t.optimizer),
        ("hooks", t.hooks),
    ];
    let total: f64 = parts
        .iter()
        .map(|(_, d)| d.as_secs_f64())
        .sum::<f64>()
        .max(1e-12);
    let line: Vec<String> = parts
        .iter()
        .map(|(name, d)| {
            let per_step = d.as_secs_f64() * 1e6 / (*steps).max(1) as f64;
            format!(
                "{name} {:.1}% ({per_step:.1} µs/step)",
                100.0 * d.as_secs_f64() / total
            )
        })
        .collect();
    format!("profile over {steps} steps: {}", line.join(", "))
}

impl Hook for ProfilerHook {
    fn name(&self) -> &str {
        "profiler"
    }

    fn wants_timings(&self) -> bool {
        true
    }

    fn after_run(&mut self, values: &RunValues<'_>, _ctx: &mut HookContext) -> Result<()> {
        if let Some(t) = &values.timings {
            add(&mut self.window, t);
            add(&mut self.total, t);
        }
        if self.timer.should_fire(values.step) {
            self.timer.fired(values.step);
            if self.window.1 > 0 {
                info!("{}", report(&self.window));
            }
            self.window = Default::default();
        }
        Ok(())
    }

    fn end(&mut self, _last: Option<&RunValues<'_>>) -> Result<()> {
        if self.total.1 > 0 {
            info!("{} (whole run)", report(&self.total));
        }
        Ok(())
    }
}
