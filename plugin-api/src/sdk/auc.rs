//! Areas under the ROC and precision-recall curves from confusion counts at fixed
//! thresholds, as `tf.keras.metrics.AUC` and `tf.compat.v1.metrics.auc` compute them.
//!
//! The counts are additive, so partial counts from batches or workers merge by addition;
//! the area is computed once at the end.

/// True/false positives/negatives at `n` thresholds: one just below 0, `n - 2` evenly
/// spaced inside (0, 1), and one just above 1. A score counts as positive when it is
/// strictly above the threshold.
#[derive(Clone, Debug, PartialEq)]
pub struct ThresholdCounts {
    thresholds: Vec<f64>,
    /// Per threshold: tp, fp, tn, fn.
    counts: Vec<[f64; 4]>,
}

/// TF's default number of thresholds.
pub const DEFAULT_NUM_THRESHOLDS: usize = 200;

impl ThresholdCounts {
    /// Counts at `num_thresholds` thresholds (at least 2, checked by the caller).
    pub fn new(num_thresholds: usize) -> Self {
        let n = num_thresholds.max(2);
        let eps = 1e-7;
        let thresholds = std::iter::once(-eps)
            .chain((1..n - 1).map(|i| i as f64 / (n - 1) as f64))
            .chain(std::iter::once(1.0 + eps))
            .collect();
        ThresholdCounts {
            thresholds,
            counts: vec![[0.0; 4]; n],
        }
    }

    /// Rebuilds counts from [`ThresholdCounts::state`]; `None` when the length does not fit.
    pub fn from_state(state: &[f64]) -> Option<Self> {
        if state.len() < 8 || !state.len().is_multiple_of(4) {
            return None;
        }
        let mut counts = ThresholdCounts::new(state.len() / 4);
        counts.merge(state).then_some(counts)
    }

    pub fn num_thresholds(&self) -> usize {
        self.thresholds.len()
    }

    /// Counts one example: whether its label is positive, its score, its weight.
    pub fn add(&mut self, positive: bool, score: f64, weight: f64) {
        for (t, counts) in self.thresholds.iter().zip(self.counts.iter_mut()) {
            let slot = match (positive, score > *t) {
                (true, true) => 0,
                (false, true) => 1,
                (false, false) => 2,
                (true, false) => 3,
            };
            counts[slot] += weight;
        }
    }

    /// The counts, flat: tp, fp, tn, fn for each threshold in turn.
    pub fn state(&self) -> Vec<f64> {
        self.counts.iter().flatten().copied().collect()
    }

    /// Adds counts from another instance's `state`; false when its length does not fit.
    pub fn merge(&mut self, state: &[f64]) -> bool {
        if state.len() != self.counts.len() * 4 {
            return false;
        }
        for (mine, theirs) in self.counts.iter_mut().zip(state.chunks_exact(4)) {
            for (m, t) in mine.iter_mut().zip(theirs) {
                *m += t;
            }
        }
        true
    }

    pub fn reset(&mut self) {
        self.counts.iter_mut().for_each(|c| *c = [0.0; 4]);
    }

    /// Area under the ROC curve (false positive rate, true positive rate) by trapezoids;
    /// Keras' `interpolation` and v1's `trapezoidal` agree here.
    pub fn roc_auc(&self) -> f64 {
        let points: Vec<(f64, f64)> = self
            .counts
            .iter()
            .map(|&[tp, fp, tn, fn_]| (no_nan(fp, fp + tn), no_nan(tp, tp + fn_)))
            .collect();
        trapezoids(&points)
    }

    /// Area under the precision-recall curve by trapezoids over (recall, precision), as
    /// `tf.compat.v1.metrics.auc(curve='PR')`: no positive prediction counts as precision 1.
    pub fn pr_auc_trapezoidal(&self) -> f64 {
        let points: Vec<(f64, f64)> = self
            .counts
            .iter()
            .map(|&[tp, fp, _, fn_]| {
                let precision = if tp + fp > 0.0 { tp / (tp + fp) } else { 1.0 };
                (no_nan(tp, tp + fn_), precision)
            })
            .collect();
        trapezoids(&points)
    }

    /// Area under the precision-recall curve with Davis & Goadrich's interpolation, as
    /// `tf.keras.metrics.AUC(curve='PR')` (the V2 binary head's `auc_precision_recall`):
    /// precision is interpolated along the true positives between adjacent thresholds.
    pub fn pr_auc_interpolated(&self) -> f64 {
        self.counts
            .windows(2)
            .map(|w| {
                let ([tp0, fp0, ..], [tp1, fp1, _, fn1]) = (w[0], w[1]);
                let (p0, p1) = (tp0 + fp0, tp1 + fp1);
                let dtp = tp0 - tp1;
                let slope = no_nan(dtp, (p0 - p1).max(0.0));
                let intercept = tp1 - slope * p1;
                let ratio = if p0 > 0.0 && p1 > 0.0 {
                    no_nan(p0, p1.max(0.0))
                } else {
                    1.0
                };
                no_nan(slope * (dtp + intercept * ratio.ln()), (tp1 + fn1).max(0.0))
            })
            .sum()
    }
}

/// `a / b`, or 0 when `b` is 0 (TF's `divide_no_nan`).
fn no_nan(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        0.0
    } else {
        a / b
    }
}

/// The area under points ordered by decreasing x.
fn trapezoids(points: &[(f64, f64)]) -> f64 {
    points
        .windows(2)
        .map(|w| (w[0].0 - w[1].0) * (w[0].1 + w[1].1) / 2.0)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(labels: &[bool], scores: &[f64]) -> ThresholdCounts {
        let mut c = ThresholdCounts::new(DEFAULT_NUM_THRESHOLDS);
        for (&l, &s) in labels.iter().zip(scores) {
            c.add(l, s, 1.0);
        }
        c
    }

    #[test]
    fn roc_auc_matches_the_pairwise_count() {
        // Negatives 0.1, 0.4; positives 0.35, 0.8: 3 of 4 pairs ordered right.
        let c = counts(&[false, false, true, true], &[0.1, 0.4, 0.35, 0.8]);
        assert!((c.roc_auc() - 0.75).abs() < 1e-9, "{}", c.roc_auc());
    }

    #[test]
    fn interpolated_pr_auc_matches_hand_computation() {
        // One positive scored 0.8, one negative scored 0.4. Between the thresholds around
        // 0.4 the predicted positives fall from 2 to 1 while tp stays 1: the increment
        // there is 0 (dtp = 0); between those around 0.8, tp falls from 1 to 0 with p from
        // 1 to 0, where p1 = 0 sets the ratio to 1 and tp1 + fn1 = 1: slope 1,
        // intercept 0, increment 1·(1 + 0) / 1 = 1. Area 1.
        let c = counts(&[true, false], &[0.8, 0.4]);
        assert!((c.pr_auc_interpolated() - 1.0).abs() < 1e-9);
        // Reversed ranking: the negative outscores the positive. The positive at 0.4 is
        // found only after the negative, so precision is 1/2 there: the step from p = 2
        // to p = 1 has dtp = 1, dp = 1, slope 1, intercept tp1 - p1 = -1,
        // increment (1 + (-1)·ln 2) / 1 = 1 - ln 2.
        let c = counts(&[true, false], &[0.4, 0.8]);
        let expected = 1.0 - 2f64.ln();
        assert!(
            (c.pr_auc_interpolated() - expected).abs() < 1e-9,
            "{} vs {expected}",
            c.pr_auc_interpolated()
        );
    }

    #[test]
    fn state_round_trips_and_merges_by_addition() {
        let a = counts(&[true, false], &[0.9, 0.2]);
        let b = counts(&[false, true], &[0.7, 0.3]);
        let mut merged = ThresholdCounts::from_state(&a.state()).expect("valid state");
        assert!(merged.merge(&b.state()));
        let whole = counts(&[true, false, false, true], &[0.9, 0.2, 0.7, 0.3]);
        assert_eq!(merged, whole);
        assert!(ThresholdCounts::from_state(&[1.0; 7]).is_none());
    }
}
