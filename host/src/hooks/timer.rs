//! When a hook fires: every N steps, every N seconds, or only at the end (TF's
//! `SecondOrStepTimer`), and the check of a hook's period settings.

use crate::error::Invalid;

/// Every period a hook can fire on: every N steps, every N seconds, or only at the end.
#[derive(Debug)]
pub(crate) struct Timer {
    every_steps: Option<u64>,
    every_secs: Option<f64>,
    last: Option<(i64, std::time::Instant)>,
}

impl Timer {
    pub(crate) fn new(every_steps: Option<u64>, every_secs: Option<f64>) -> Self {
        Timer {
            every_steps,
            every_secs,
            last: None,
        }
    }

    /// Whether to fire at `step`: on the first step, then when enough steps or seconds
    /// have passed since the last firing (TF's `SecondOrStepTimer`).
    pub(crate) fn should_fire(&self, step: i64) -> bool {
        let Some((last_step, last_time)) = self.last else {
            return self.every_steps.is_some() || self.every_secs.is_some();
        };
        if let Some(n) = self.every_steps {
            return step >= last_step + n as i64;
        }
        if let Some(s) = self.every_secs {
            return last_time.elapsed().as_secs_f64() >= s;
        }
        false
    }

    /// Records a firing at `step`; returns the steps and seconds since the previous one.
    pub(crate) fn fired(&mut self, step: i64) -> Option<(i64, f64)> {
        let now = std::time::Instant::now();
        let since = self
            .last
            .map(|(s, t)| (step - s, now.duration_since(t).as_secs_f64()));
        self.last = Some((step, now));
        since
    }
}

/// Exactly one of `every_n_steps` / `every_n_secs` (or, where allowed, `at_end`).
pub(crate) fn one_period(
    name: &str,
    steps: Option<u64>,
    secs: Option<f64>,
    at_end: bool,
) -> Result<(), Invalid> {
    let given = usize::from(steps.is_some()) + usize::from(secs.is_some());
    if given > 1 || (given == 0 && !at_end) {
        return Err(Invalid(format!(
            "{name}: exactly one of every_n_iter/every_n_steps or every_n_secs must be set{}",
            if at_end { " (or at_end)" } else { "" }
        )));
    }
    if steps == Some(0) || secs.is_some_and(|s| s.is_nan() || s <= 0.0) {
        return Err(Invalid(format!("{name}: the period must be > 0")));
    }
    Ok(())
}
