//! When training saves a checkpoint, as TF's `CheckpointSaverHook` decides: at the first
//! step, then every `save_checkpoints_steps` steps or `save_checkpoints_secs` seconds, and
//! at the end. A pure policy: it is told the step and the time.

use std::time::{Duration, Instant};

use crate::config::CheckpointEvery;

#[derive(Clone, Copy, Debug)]
pub struct SaveSchedule {
    every: CheckpointEvery,
    /// The global step and time of the last save.
    last: (i64, Instant),
}

impl SaveSchedule {
    /// A schedule whose last save was at `start_step`, `now` (training saves at its start).
    pub fn new(every: CheckpointEvery, start_step: i64, now: Instant) -> Self {
        SaveSchedule {
            every,
            last: (start_step, now),
        }
    }

    /// Whether a save is due once training has reached `global_step` at `now`.
    pub fn is_due(&self, global_step: i64, now: Instant) -> bool {
        match self.every {
            CheckpointEvery::Steps(n) => global_step >= self.last.0.saturating_add(n as i64),
            CheckpointEvery::Secs(s) => now.duration_since(self.last.1) >= Duration::from_secs(s),
        }
    }

    /// Whether the end of training at `global_step` still needs a save.
    pub fn needs_final_save(&self, global_step: i64) -> bool {
        self.last.0 != global_step
    }

    /// Notes a save at `global_step`, `now`.
    pub fn saved(&mut self, global_step: i64, now: Instant) {
        self.last = (global_step, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_count_from_the_last_save() {
        let t = Instant::now();
        let mut s = SaveSchedule::new(CheckpointEvery::Steps(100), 40, t);
        assert!(!s.is_due(139, t));
        assert!(s.is_due(140, t));
        s.saved(140, t);
        assert!(!s.is_due(141, t) && s.is_due(240, t));
        assert!(s.needs_final_save(150) && !s.needs_final_save(140));
    }

    #[test]
    fn seconds_count_from_the_last_save_whatever_the_step() {
        let t = Instant::now();
        let mut s = SaveSchedule::new(CheckpointEvery::Secs(60), 0, t);
        assert!(!s.is_due(1_000_000, t + Duration::from_secs(59)));
        assert!(s.is_due(1, t + Duration::from_secs(60)));
        s.saved(5, t + Duration::from_secs(60));
        assert!(!s.is_due(6, t + Duration::from_secs(119)));
    }
}
