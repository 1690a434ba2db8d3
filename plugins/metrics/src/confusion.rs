//! Binary classification counts and the ratios built on them, as `tf.compat.v1.metrics`:
//! a prediction is positive when it is above `threshold` (0.5: probabilities or class ids
//! 0/1 alike), a label when it is not 0. With two columns of predictions (a binary
//! head's probabilities) the second, the positive class's, is used.

use estimator_plugin_api::abi::{FactoryContext, PluginError, TensorView};
use estimator_plugin_api::sdk::StreamingMetric;
use serde::Deserialize;

use crate::{positive_scores, values, weights};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdParams {
    #[serde(default = "half")]
    pub threshold: f64,
}

fn half() -> f64 {
    0.5
}

/// Weighted true/false positive/negative counts.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Counts {
    pub tp: f64,
    pub fp: f64,
    pub tn: f64,
    pub fn_: f64,
}

impl Counts {
    fn update(
        &mut self,
        threshold: f64,
        labels: &TensorView<'_>,
        predictions: &TensorView<'_>,
        weight: Option<&TensorView<'_>>,
    ) -> Result<(), PluginError> {
        let labels = values("labels", labels)?;
        let scores = positive_scores(predictions, labels.len())?;
        for ((l, s), w) in labels
            .iter()
            .zip(&scores)
            .zip(weights(weight, labels.len())?)
        {
            match (*l != 0.0, *s > threshold) {
                (true, true) => self.tp += w,
                (false, true) => self.fp += w,
                (false, false) => self.tn += w,
                (true, false) => self.fn_ += w,
            }
        }
        Ok(())
    }

    fn state(&self) -> Vec<f64> {
        vec![self.tp, self.fp, self.tn, self.fn_]
    }

    fn merge(&mut self, other: &[f64]) -> Result<(), PluginError> {
        let [tp, fp, tn, fn_] = other else {
            return Err(PluginError::bad_data(format!(
                "state must be [tp, fp, tn, fn], got {} values",
                other.len()
            )));
        };
        self.tp += tp;
        self.fp += fp;
        self.tn += tn;
        self.fn_ += fn_;
        Ok(())
    }
}

fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator > 0.0 {
        numerator / denominator
    } else {
        0.0
    }
}

/// One exported metric per result over the counts.
macro_rules! confusion_metric {
    ($(#[$doc:meta])* $name:ident, |$c:ident| $result:expr) => {
        $(#[$doc])*
        pub struct $name {
            threshold: f64,
            counts: Counts,
        }

        impl StreamingMetric for $name {
            type Params = ThresholdParams;

            fn new(p: ThresholdParams, _ctx: &FactoryContext<'_>) -> Result<Self, PluginError> {
                Ok($name {
                    threshold: p.threshold,
                    counts: Counts::default(),
                })
            }

            fn update(
                &mut self,
                labels: &TensorView<'_>,
                predictions: &TensorView<'_>,
                weight: Option<&TensorView<'_>>,
            ) -> Result<(), PluginError> {
                self.counts.update(self.threshold, labels, predictions, weight)
            }

            fn result(&self) -> Result<f64, PluginError> {
                let $c = &self.counts;
                Ok($result)
            }

            fn reset(&mut self) {
                self.counts = Counts::default();
            }

            fn state(&self) -> Vec<f64> {
                self.counts.state()
            }

            fn merge(&mut self, other: &[f64]) -> Result<(), PluginError> {
                self.counts.merge(other)
            }
        }
    };
}

confusion_metric!(
    /// `tp / (tp + fp)`.
    Precision, |c| ratio(c.tp, c.tp + c.fp)
);
confusion_metric!(
    /// `tp / (tp + fn)`.
    Recall, |c| ratio(c.tp, c.tp + c.fn_)
);
confusion_metric!(TruePositives, |c| c.tp);
confusion_metric!(FalsePositives, |c| c.fp);
confusion_metric!(TrueNegatives, |c| c.tn);
confusion_metric!(FalseNegatives, |c| c.fn_);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::ctx;

    #[test]
    fn counts_precision_and_recall_match_hand_computation() {
        let shape = [6usize];
        let labels = [1i64, 1, 1, 0, 0, 0];
        let probs = [0.9f32, 0.6, 0.2, 0.7, 0.1, 0.4];
        // threshold 0.5: tp 2 (0.9, 0.6), fn 1 (0.2), fp 1 (0.7), tn 2.
        let mut p = Precision::new(ThresholdParams { threshold: 0.5 }, &ctx()).expect("params");
        let mut r = Recall::new(ThresholdParams { threshold: 0.5 }, &ctx()).expect("params");
        for m in [&mut p as &mut dyn Update, &mut r] {
            m.run(
                &TensorView::i64(&shape, &labels),
                &TensorView::f32(&shape, &probs),
            );
        }
        assert!((p.result().expect("result") - 2.0 / 3.0).abs() < 1e-12);
        assert!((r.result().expect("result") - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(p.state(), vec![2.0, 1.0, 2.0, 1.0]);
        // Merging another worker's counts: tp 1, fp 0, tn 0, fn 1.
        p.merge(&[1.0, 0.0, 0.0, 1.0]).expect("valid state");
        assert!((p.result().expect("result") - 3.0 / 4.0).abs() < 1e-12);
        let mut tp =
            TruePositives::new(ThresholdParams { threshold: 0.65 }, &ctx()).expect("params");
        tp.run(
            &TensorView::i64(&shape, &labels),
            &TensorView::f32(&shape, &probs),
        );
        assert_eq!(
            tp.result().expect("result"),
            1.0,
            "only 0.9 is above 0.65 among positives"
        );
    }

    #[test]
    fn a_binary_heads_two_columns_use_the_positive_class() {
        let labels = [1i64, 0];
        let probs = [0.2f32, 0.8, 0.7, 0.3]; // rows: [0.2, 0.8], [0.7, 0.3]
        let mut p = Precision::new(ThresholdParams { threshold: 0.5 }, &ctx()).expect("params");
        p.run(
            &TensorView::i64(&[2], &labels),
            &TensorView::f32(&[2, 2], &probs),
        );
        assert_eq!(p.state(), vec![1.0, 0.0, 1.0, 0.0]);
    }

    /// Runs `update` without weights, whatever the metric.
    trait Update {
        fn run(&mut self, labels: &TensorView<'_>, predictions: &TensorView<'_>);
    }

    impl<M: StreamingMetric> Update for M {
        fn run(&mut self, labels: &TensorView<'_>, predictions: &TensorView<'_>) {
            self.update(labels, predictions, None).expect("valid batch");
        }
    }
}
