//! Area under the ROC or precision-recall curve, as `tf.compat.v1.metrics.auc`: counts of
//! true/false positives/negatives at `num_thresholds` thresholds spread over [0, 1]
//! (plus one just below 0 and one just above 1), and the curve's area by trapezoids.
//! Predictions are the positive class's probability (with two columns, the second).

use estimator_plugin_api::abi::{FactoryContext, PluginError, TensorView};
use estimator_plugin_api::sdk::auc::{ThresholdCounts, DEFAULT_NUM_THRESHOLDS};
use estimator_plugin_api::sdk::StreamingMetric;
use serde::Deserialize;

use crate::{positive_scores, values, weights};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Curve {
    #[default]
    Roc,
    Pr,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AucParams {
    #[serde(default = "default_thresholds")]
    pub num_thresholds: usize,
    #[serde(default)]
    pub curve: Curve,
}

fn default_thresholds() -> usize {
    DEFAULT_NUM_THRESHOLDS
}

pub struct Auc {
    curve: Curve,
    counts: ThresholdCounts,
}

impl StreamingMetric for Auc {
    type Params = AucParams;

    fn new(p: AucParams, _ctx: &FactoryContext<'_>) -> Result<Self, PluginError> {
        if p.num_thresholds < 2 {
            return Err(PluginError::bad_params("num_thresholds must be at least 2"));
        }
        Ok(Auc {
            curve: p.curve,
            counts: ThresholdCounts::new(p.num_thresholds),
        })
    }

    fn update(
        &mut self,
        labels: &TensorView<'_>,
        predictions: &TensorView<'_>,
        weight: Option<&TensorView<'_>>,
    ) -> Result<(), PluginError> {
        let labels = values("labels", labels)?;
        let scores = positive_scores(predictions, labels.len())?;
        let weights = weights(weight, labels.len())?;
        for ((l, s), w) in labels.iter().zip(&scores).zip(&weights) {
            self.counts.add(*l != 0.0, *s, *w);
        }
        Ok(())
    }

    fn result(&self) -> Result<f64, PluginError> {
        Ok(match self.curve {
            Curve::Roc => self.counts.roc_auc(),
            Curve::Pr => self.counts.pr_auc_trapezoidal(),
        })
    }

    fn reset(&mut self) {
        self.counts.reset();
    }

    fn state(&self) -> Vec<f64> {
        self.counts.state()
    }

    fn merge(&mut self, other: &[f64]) -> Result<(), PluginError> {
        match self.counts.merge(other) {
            true => Ok(()),
            false => Err(PluginError::bad_data(format!(
                "state must hold 4 counts for each of {} thresholds, got {} values",
                self.counts.num_thresholds(),
                other.len()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::ctx;

    fn auc(curve: Curve, labels: &[i64], scores: &[f32]) -> Auc {
        let mut m = Auc::new(
            AucParams {
                num_thresholds: 200,
                curve,
            },
            &ctx(),
        )
        .expect("params");
        let shape = [labels.len()];
        m.update(
            &TensorView::i64(&shape, labels),
            &TensorView::f32(&shape, scores),
            None,
        )
        .expect("valid");
        m
    }

    #[test]
    fn roc_auc_matches_the_pairwise_count() {
        // Positives 0.35, 0.8; negatives 0.1, 0.4: 3 of 4 pairs ordered → 0.75.
        let m = auc(Curve::Roc, &[0, 0, 1, 1], &[0.1, 0.4, 0.35, 0.8]);
        assert!(
            (m.result().expect("result") - 0.75).abs() < 1e-9,
            "{}",
            m.result().expect("result")
        );
        let perfect = auc(Curve::Roc, &[0, 1], &[0.2, 0.9]);
        assert!((perfect.result().expect("result") - 1.0).abs() < 1e-9);
    }

    #[test]
    fn pr_auc_matches_hand_computation() {
        // Scores 0.9 (pos), 0.6 (neg), 0.3 (pos). Points by falling threshold:
        // recall 0 (precision 1), 0.5 @ 1, 0.5 @ 0.5, 1 @ 2/3:
        // area = 0.5·(1+1)/2 + 0 + 0.5·(0.5+2/3)/2 = 0.5 + 0.291666…
        let m = auc(Curve::Pr, &[1, 0, 1], &[0.9, 0.6, 0.3]);
        assert!(
            (m.result().expect("result") - (0.5 + 0.5 * (0.5 + 2.0 / 3.0) / 2.0)).abs() < 1e-9,
            "{}",
            m.result().expect("result")
        );
    }

    #[test]
    fn partial_states_merge() {
        let mut a = auc(Curve::Roc, &[0, 1], &[0.1, 0.35]);
        let b = auc(Curve::Roc, &[0, 1], &[0.4, 0.8]);
        a.merge(&b.state()).expect("same thresholds");
        assert!(
            (a.result().expect("result") - 0.75).abs() < 1e-9,
            "{}",
            a.result().expect("result")
        );
        assert!(a.merge(&[1.0]).is_err());
    }
}
