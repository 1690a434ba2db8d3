//! TF's early-stopping hooks (`tf.estimator.experimental.stop_if_*`): stop training on
//! the metrics of evaluations that already ran, read from the eval event files in
//! model_dir (as `train-and-evaluate` writes them).
//!
//! As TF: the predicate runs after the first step and then every `run_every_secs` (60)
//! or `run_every_steps`; evaluations before `min_steps` are ignored; once it stops, that
//! is saved in checkpoints, so a resumed run stops at once. Clearer than TF: giving
//! `run_every_steps` alone is enough (TF also needs `run_every_secs: None`).

use crate::error::Invalid;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tracing::info;

use super::{Hook, HookContext, RunValues, Timer};
use crate::error::{Error, Result};
use crate::events::read_scalars;

/// The four rules, by TF's function names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// `stop_if_higher_hook`: some evaluation's metric > threshold.
    Higher,
    /// `stop_if_lower_hook`: some evaluation's metric < threshold.
    Lower,
    /// `stop_if_no_decrease_hook`: no new minimum for `max_steps_without_decrease` steps.
    NoDecrease,
    /// `stop_if_no_increase_hook`: no new maximum for `max_steps_without_increase` steps.
    NoIncrease,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub metric_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps_without_decrease: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps_without_increase: Option<u64>,
    #[serde(default)]
    pub min_steps: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_every_secs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_every_steps: Option<u64>,
    /// Where the evaluations are; default `model_dir/eval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_dir: Option<PathBuf>,
}

pub struct EarlyStoppingHook {
    rule: Rule,
    name: &'static str,
    settings: Settings,
    eval_dir: PathBuf,
    timer: Timer,
    stopped: bool,
}

impl EarlyStoppingHook {
    /// `model_dir` anchors the default eval folder.
    pub fn new(
        rule: Rule,
        settings: Settings,
        model_dir: &std::path::Path,
    ) -> Result<Self, Invalid> {
        let name = match rule {
            Rule::Higher => "stop_if_higher",
            Rule::Lower => "stop_if_lower",
            Rule::NoDecrease => "stop_if_no_decrease",
            Rule::NoIncrease => "stop_if_no_increase",
        };
        let needed = match rule {
            Rule::Higher | Rule::Lower => settings.threshold.map(|_| ()).ok_or("threshold"),
            Rule::NoDecrease => settings
                .max_steps_without_decrease
                .map(|_| ())
                .ok_or("max_steps_without_decrease"),
            Rule::NoIncrease => settings
                .max_steps_without_increase
                .map(|_| ())
                .ok_or("max_steps_without_increase"),
        };
        if let Err(key) = needed {
            return Err(Invalid(format!("{name}: `{key}` is required")));
        }
        let (steps, secs) = match (settings.run_every_steps, settings.run_every_secs) {
            (Some(_), Some(_)) => {
                return Err(Invalid(format!(
                    "{name}: only one of run_every_secs and run_every_steps must be set"
                )))
            }
            (None, None) => (None, Some(60.0)),
            other => other,
        };
        if steps == Some(0) || secs.is_some_and(|s| s.is_nan() || s <= 0.0) {
            return Err(Invalid(format!("{name}: the period must be > 0")));
        }
        let eval_dir = settings
            .eval_dir
            .clone()
            .unwrap_or_else(|| model_dir.join("eval"));
        Ok(EarlyStoppingHook {
            rule,
            name,
            settings,
            eval_dir,
            timer: Timer::new(steps, secs),
            stopped: false,
        })
    }

    /// Whether the evaluations so far say to stop.
    fn should_stop(&self) -> Result<bool> {
        let scalars = read_scalars(&self.eval_dir)?;
        let Some(series) = scalars.get(&self.settings.metric_name) else {
            if scalars.is_empty() {
                return Ok(false);
            }
            return Err(Error::Hook(format!(
                "{}: no metric `{}` in the evaluations in {} (they have: {})",
                self.name,
                self.settings.metric_name,
                self.eval_dir.display(),
                scalars.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        };
        let mut series: Vec<(i64, f64)> = series
            .iter()
            .copied()
            .filter(|(step, _)| *step >= self.settings.min_steps as i64)
            .collect();
        series.sort_by_key(|(step, _)| *step);
        Ok(decide(self.rule, &self.settings, &series))
    }
}

/// TF's predicates over evaluations in step order.
fn decide(rule: Rule, s: &Settings, series: &[(i64, f64)]) -> bool {
    let threshold = s.threshold.unwrap_or_default();
    let (window, better): (u64, fn(f64, f64) -> bool) = match rule {
        Rule::Higher => return series.iter().any(|(_, v)| *v > threshold),
        Rule::Lower => return series.iter().any(|(_, v)| *v < threshold),
        Rule::NoDecrease => (s.max_steps_without_decrease.unwrap_or(0), |v, best| {
            v < best
        }),
        Rule::NoIncrease => (s.max_steps_without_increase.unwrap_or(0), |v, best| {
            v > best
        }),
    };
    let mut best: Option<(i64, f64)> = None;
    for &(step, value) in series {
        match best {
            Some((_, b)) if !better(value, b) => {
                if let Some((best_step, _)) = best {
                    if step - best_step >= window as i64 {
                        return true;
                    }
                }
            }
            _ => best = Some((step, value)),
        }
    }
    false
}

impl Hook for EarlyStoppingHook {
    fn name(&self) -> &str {
        self.name
    }

    fn after_create_session(&mut self, _global_step: i64, ctx: &mut HookContext) -> Result<()> {
        if self.stopped {
            ctx.request_stop();
        }
        Ok(())
    }

    fn after_run(&mut self, values: &RunValues<'_>, ctx: &mut HookContext) -> Result<()> {
        if !self.timer.should_fire(values.global_step) {
            return Ok(());
        }
        self.timer.fired(values.global_step);
        if self.should_stop()? {
            info!(
                "Requesting early stopping at global step {} ({} on `{}`)",
                values.global_step, self.name, self.settings.metric_name
            );
            self.stopped = true;
            ctx.request_stop();
        }
        Ok(())
    }

    fn state(&self) -> Option<serde_json::Value> {
        self.stopped.then(|| serde_json::json!({ "stop": true }))
    }

    fn restore(&mut self, state: &serde_json::Value) -> Result<()> {
        self.stopped = state["stop"].as_bool().unwrap_or(false);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            metric_name: "loss".into(),
            threshold: Some(0.5),
            max_steps_without_decrease: Some(100),
            max_steps_without_increase: Some(100),
            min_steps: 0,
            run_every_secs: None,
            run_every_steps: None,
            eval_dir: None,
        }
    }

    #[test]
    fn thresholds_are_strict() {
        let s = settings();
        assert!(!decide(Rule::Higher, &s, &[(10, 0.5)]));
        assert!(decide(Rule::Higher, &s, &[(10, 0.2), (20, 0.51)]));
        assert!(decide(Rule::Lower, &s, &[(10, 0.49)]));
        assert!(!decide(Rule::Lower, &s, &[(10, 0.5)]));
    }

    #[test]
    fn no_decrease_counts_steps_since_the_best() {
        let s = settings();
        // Best 0.3 at 100; 190 is 90 steps later, 200 is 100: stop.
        let series = [(0, 0.9), (100, 0.3), (150, 0.4), (190, 0.3)];
        assert!(!decide(Rule::NoDecrease, &s, &series));
        assert!(decide(
            Rule::NoDecrease,
            &s,
            &[&series[..], &[(200, 0.35)]].concat()
        ));
        // A new minimum resets the count.
        assert!(!decide(
            Rule::NoDecrease,
            &s,
            &[(0, 0.9), (100, 0.3), (150, 0.2), (240, 0.25)]
        ));
        assert!(decide(Rule::NoIncrease, &s, &[(0, 0.9), (100, 0.8)]));
    }
}
