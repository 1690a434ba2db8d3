//! What the checkpoint tests share.

use super::{file_name, RetentionPolicy};

/// State-file entries for `steps`, each written at the second its step says.
pub fn entries(steps: &[i64]) -> Vec<(String, f64)> {
    steps.iter().map(|&s| (file_name(s), s as f64)).collect()
}

/// Keeps `keep_max` checkpoints, and none for their age.
pub fn keep(keep_max: usize) -> RetentionPolicy {
    RetentionPolicy {
        keep_max,
        keep_every_secs: 10000.0 * 3600.0,
    }
}
