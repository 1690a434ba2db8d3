//! When a version that failed to load is tried again: TF Serving's
//! `--max_num_load_retries` and `--load_retry_interval_micros` (pure).

use std::time::{Duration, Instant};

/// How often, and how far apart, a failed load is retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadRetries {
    /// Retries after the first try (TF Serving's default: 5).
    pub max_retries: u32,
    /// The wait before each retry (TF Serving's default: 60 s).
    pub interval: Duration,
}

impl Default for LoadRetries {
    fn default() -> Self {
        LoadRetries {
            max_retries: 5,
            interval: Duration::from_secs(60),
        }
    }
}

/// A version's failed tries so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failures {
    /// Tries that failed.
    pub count: u32,
    /// The last try's error.
    pub last_error: String,
    /// When the next try may start; `None` once every retry is spent.
    pub next_try: Option<Instant>,
}

impl LoadRetries {
    /// The record after one more failed try at `now`, given the failures before it.
    pub fn record(&self, before: Option<&Failures>, error: String, now: Instant) -> Failures {
        let count = before.map_or(0, |f| f.count) + 1;
        let next_try = (count <= self.max_retries).then(|| now + self.interval);
        Failures {
            count,
            last_error: error,
            next_try,
        }
    }
}

impl Failures {
    /// Whether the version may be tried at `now`.
    pub fn may_try(&self, now: Instant) -> bool {
        self.next_try.is_some_and(|at| now >= at)
    }

    /// Whether every retry is spent: the version is reported `END` with its error.
    pub fn gave_up(&self) -> bool {
        self.next_try.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_waits_the_interval_then_gives_up_after_the_last_retry() {
        let retries = LoadRetries {
            max_retries: 2,
            interval: Duration::from_secs(10),
        };
        let t0 = Instant::now();
        let first = retries.record(None, "a".into(), t0);
        assert_eq!(first.count, 1);
        assert!(!first.may_try(t0 + Duration::from_secs(9)));
        assert!(first.may_try(t0 + Duration::from_secs(10)));
        let second = retries.record(Some(&first), "b".into(), t0 + Duration::from_secs(10));
        assert_eq!(second.next_try, Some(t0 + Duration::from_secs(20)));
        assert!(!second.gave_up());
        let third = retries.record(Some(&second), "c".into(), t0 + Duration::from_secs(20));
        assert!(
            third.gave_up(),
            "two retries after the first try: three tries"
        );
        assert!(!third.may_try(t0 + Duration::from_secs(1000)));
        assert_eq!(third.last_error, "c");
    }

    #[test]
    fn no_retries_gives_up_at_the_first_failure() {
        let retries = LoadRetries {
            max_retries: 0,
            interval: Duration::ZERO,
        };
        assert!(retries.record(None, "x".into(), Instant::now()).gave_up());
    }

    #[test]
    fn tf_servings_defaults() {
        let d = LoadRetries::default();
        assert_eq!((d.max_retries, d.interval), (5, Duration::from_secs(60)));
    }
}
