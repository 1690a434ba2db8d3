//! Progress bars on a terminal: steps, rate, loss and ETA while training; batches while
//! evaluating; examples while predicting. Off a terminal they draw nothing and the logs
//! stay plain. Log lines printed while a bar is up go above it instead of through it.

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use estimator_plugin_api::abi::ModeKeys;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::Result;
use crate::hooks::{Hook, HookContext, RunInfo, RunValues};

/// The bar on screen, if any, for [`LogWriter`] to print around.
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// A hook that draws the loop's progress bar on stderr when it is a terminal.
#[derive(Default)]
pub struct ProgressHook {
    bar: Option<ProgressBar>,
    mode: Option<ModeKeys>,
    start: i64,
    /// Examples seen, for PREDICT's count.
    examples: u64,
}

impl ProgressHook {
    pub fn new() -> Self {
        Self::default()
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{}", format_rate(state.per_sec()));
            },
        )
}

/// A rate with the digits a person reads: `68,156/s`, `12.3/s`, `0.50/s`.
fn format_rate(per_sec: f64) -> String {
    if !per_sec.is_finite() || per_sec < 0.0 {
        return "-/s".to_owned();
    }
    if per_sec < 10.0 {
        return format!("{per_sec:.2}/s");
    }
    if per_sec < 100.0 {
        return format!("{per_sec:.1}/s");
    }
    let digits = format!("{:.0}", per_sec.round());
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{grouped}/s")
}

impl Hook for ProgressHook {
    fn name(&self) -> &str {
        "progress"
    }

    fn begin(&mut self, run: &RunInfo) -> Result<()> {
        let total = run.last_step.map(|last| match run.mode {
            ModeKeys::Train => (last - run.start_step).max(0) as u64,
            _ => last.max(0) as u64,
        });
        let bar = match total {
            Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
        };
        let template = match (run.mode, total.is_some()) {
            (ModeKeys::Train, true) => {
                "train {bar:30} {pos}/{len} steps · {rate} · {msg} · ETA {eta}"
            }
            (ModeKeys::Train, false) => "train {spinner} {pos} steps · {rate} · {msg}",
            (ModeKeys::Eval, true) => "evaluate {bar:30} {pos}/{len} batches · {msg}",
            (ModeKeys::Eval, false) => "evaluate {spinner} {pos} batches · {msg}",
            (ModeKeys::Predict, _) => "predict {spinner} {pos} examples · {rate}",
        };
        bar.set_style(style(template));
        bar.enable_steady_tick(Duration::from_millis(200));
        self.start = run.start_step;
        self.mode = Some(run.mode);
        if let Ok(mut active) = ACTIVE.lock() {
            *active = Some(bar.clone());
        }
        self.bar = Some(bar);
        Ok(())
    }

    fn after_run(&mut self, values: &RunValues<'_>, _ctx: &mut HookContext) -> Result<()> {
        let Some(bar) = &self.bar else {
            return Ok(());
        };
        let position = match self.mode {
            Some(ModeKeys::Train) => (values.global_step - self.start).max(0) as u64,
            Some(ModeKeys::Predict) => {
                self.examples += values.batch_len as u64;
                self.examples
            }
            _ => values.step as u64 + 1,
        };
        bar.set_position(position);
        // A new message allocates: a few times a second is plenty.
        if position % 64 == 1 || bar.length() == Some(position) {
            if let Some(loss) = values.loss {
                bar.set_message(format!("loss {loss:.4}"));
            }
        }
        Ok(())
    }

    fn end(&mut self, _last: Option<&RunValues<'_>>) -> Result<()> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if let Ok(mut active) = ACTIVE.lock() {
            *active = None;
        }
        Ok(())
    }
}

/// A `tracing` writer that prints above the progress bar while one is up.
#[derive(Default)]
pub struct LogWriter {
    line: Vec<u8>,
}

/// What every log line starts with: a data-parallel run's rank, for ranks other than 0.
static LOG_PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();

impl LogWriter {
    /// Starts every later log line with `prefix` (set once).
    pub fn set_prefix(prefix: String) {
        let _ = LOG_PREFIX.set(prefix);
    }
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let mut line = std::mem::take(&mut self.line);
        if line.is_empty() {
            return Ok(());
        }
        if let Some(prefix) = LOG_PREFIX.get() {
            line.splice(0..0, prefix.bytes());
        }
        let bar = ACTIVE.lock().ok().and_then(|a| a.clone());
        match bar {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(&line)),
            None => std::io::stderr().write_all(&line),
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_show_the_digits_a_person_reads() {
        assert_eq!(format_rate(68156.4852), "68,156/s");
        assert_eq!(format_rate(1_234_567.0), "1,234,567/s");
        assert_eq!(format_rate(999.6), "1,000/s");
        assert_eq!(format_rate(100.0), "100/s");
        assert_eq!(format_rate(12.345), "12.3/s");
        assert_eq!(format_rate(0.5), "0.50/s");
        assert_eq!(format_rate(f64::NAN), "-/s");
    }
}
