//! What TF's exporters decide, without IO: which exports to keep, and whether an
//! evaluation is the best so far.

/// The versions to delete so that only the `keep` largest remain (all when `None`).
pub fn versions_to_delete(versions: &[u64], keep: Option<usize>) -> Vec<u64> {
    let Some(keep) = keep else {
        return Vec::new();
    };
    let mut sorted = versions.to_vec();
    sorted.sort_unstable();
    let excess = sorted.len().saturating_sub(keep);
    sorted.truncate(excess);
    sorted
}

/// The best value of a metric among evaluations before `step` (a model_dir's eval
/// events, which survive a restart).
pub fn best_before(history: &[(i64, f64)], step: i64, higher_is_better: bool) -> Option<f64> {
    history
        .iter()
        .filter(|(s, v)| *s < step && !v.is_nan())
        .map(|(_, v)| *v)
        .reduce(|a, b| match improves(Some(a), b, higher_is_better) {
            true => b,
            false => a,
        })
}

/// Whether `current` is strictly better than `best` (TF's `_loss_smaller` for the
/// default); anything beats nothing, and NaN never wins.
pub fn improves(best: Option<f64>, current: f64, higher_is_better: bool) -> bool {
    if current.is_nan() {
        return false;
    }
    match best {
        None => true,
        Some(best) if higher_is_better => current > best,
        Some(best) => current < best,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_newest_are_kept() {
        assert_eq!(versions_to_delete(&[5, 1, 3, 9], Some(2)), [1, 3]);
        assert_eq!(versions_to_delete(&[5, 1], Some(2)), Vec::<u64>::new());
        assert_eq!(versions_to_delete(&[5, 1], None), Vec::<u64>::new());
    }

    #[test]
    fn the_best_is_strictly_better_and_read_from_earlier_evaluations() {
        let history = [(100, 0.5), (200, 0.3), (300, 0.4), (400, 0.1)];
        assert_eq!(best_before(&history, 400, false), Some(0.3));
        assert_eq!(best_before(&history, 100, false), None);
        assert_eq!(best_before(&history, 500, true), Some(0.5));
        assert!(improves(None, 0.9, false));
        assert!(improves(Some(0.3), 0.2, false));
        assert!(!improves(Some(0.3), 0.3, false), "strictly");
        assert!(improves(Some(0.3), 0.4, true));
        assert!(!improves(None, f64::NAN, false));
    }
}
