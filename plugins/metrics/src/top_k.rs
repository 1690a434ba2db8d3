//! `precision_at_k` and `recall_at_k` for one label per example, as TF's sparse versions:
//! an example counts when its label is among the `k` highest-scoring classes.
//! Predictions are scores per class (`[batch, classes]`, e.g. `probabilities`).

use estimator_plugin_api::abi::{FactoryContext, PluginError, TensorView};
use estimator_plugin_api::sdk::StreamingMetric;
use serde::Deserialize;

use crate::{merge_state, values, weights};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopKParams {
    pub k: usize,
}

/// Weighted hits (label in the top k) and weighted examples.
#[derive(Debug, Default)]
struct Hits {
    k: usize,
    hits: f64,
    examples: f64,
}

impl Hits {
    fn new(p: TopKParams) -> Result<Self, PluginError> {
        match p.k {
            0 => Err(PluginError::bad_params("k must be at least 1")),
            k => Ok(Hits {
                k,
                ..Hits::default()
            }),
        }
    }

    fn update(
        &mut self,
        labels: &TensorView<'_>,
        predictions: &TensorView<'_>,
        weight: Option<&TensorView<'_>>,
    ) -> Result<(), PluginError> {
        let labels = values("labels", labels)?;
        let scores = values("predictions", predictions)?;
        let classes = predictions.shape.get(1).copied().unwrap_or(0);
        if classes == 0 || scores.len() != labels.len() * classes {
            return Err(PluginError::bad_data(format!(
                "predictions must be [batch, classes] scores for {} labels, got shape {:?}",
                labels.len(),
                predictions.shape.as_slice()
            )));
        }
        for ((label, row), w) in labels
            .iter()
            .zip(scores.chunks_exact(classes))
            .zip(weights(weight, labels.len())?)
        {
            let label = *label as usize;
            let mut order: Vec<usize> = (0..classes).collect();
            // Highest first; ties keep the lower class id first, as TF's top_k.
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
            if order.iter().take(self.k).any(|&c| c == label) {
                self.hits += w;
            }
            self.examples += w;
        }
        Ok(())
    }
}

macro_rules! top_k_metric {
    ($(#[$doc:meta])* $name:ident, |$h:ident| $result:expr) => {
        $(#[$doc])*
        pub struct $name(Hits);

        impl StreamingMetric for $name {
            type Params = TopKParams;

            fn new(p: TopKParams, _ctx: &FactoryContext<'_>) -> Result<Self, PluginError> {
                Hits::new(p).map($name)
            }

            fn update(
                &mut self,
                labels: &TensorView<'_>,
                predictions: &TensorView<'_>,
                weight: Option<&TensorView<'_>>,
            ) -> Result<(), PluginError> {
                self.0.update(labels, predictions, weight)
            }

            fn result(&self) -> Result<f64, PluginError> {
                let $h = &self.0;
                if $h.examples == 0.0 {
                    return Ok(0.0);
                }
                Ok($result)
            }

            fn reset(&mut self) {
                self.0.hits = 0.0;
                self.0.examples = 0.0;
            }

            fn state(&self) -> Vec<f64> {
                vec![self.0.hits, self.0.examples]
            }

            fn merge(&mut self, other: &[f64]) -> Result<(), PluginError> {
                merge_state(&mut self.0.hits, &mut self.0.examples, other)
            }
        }
    };
}

top_k_metric!(
    /// Hits over `k` predictions per example.
    PrecisionAtK, |h| h.hits / (h.k as f64 * h.examples)
);
top_k_metric!(
    /// Hits over examples (one label each).
    RecallAtK, |h| h.hits / h.examples
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::ctx;

    #[test]
    fn top_k_matches_hand_computation() {
        let labels = [2i64, 0, 1];
        // Rows: [0.1, 0.3, 0.6] → top-2 {2, 1} hit; [0.2, 0.5, 0.3] → {1, 2} miss;
        // [0.4, 0.35, 0.25] → {0, 1} hit.
        let scores = [0.1f32, 0.3, 0.6, 0.2, 0.5, 0.3, 0.4, 0.35, 0.25];
        let (l, p) = (
            TensorView::i64(&[3], &labels),
            TensorView::f32(&[3, 3], &scores),
        );
        let mut recall = RecallAtK::new(TopKParams { k: 2 }, &ctx()).expect("params");
        let mut precision = PrecisionAtK::new(TopKParams { k: 2 }, &ctx()).expect("params");
        recall.update(&l, &p, None).expect("valid");
        precision.update(&l, &p, None).expect("valid");
        assert!((recall.result().expect("result") - 2.0 / 3.0).abs() < 1e-12);
        assert!((precision.result().expect("result") - 2.0 / 6.0).abs() < 1e-12);
        recall.merge(&[1.0, 1.0]).expect("valid state");
        assert!((recall.result().expect("result") - 3.0 / 4.0).abs() < 1e-12);
        let err = recall
            .update(&l, &TensorView::f32(&[9], &scores), None)
            .unwrap_err();
        assert!(err.message.contains("[batch, classes]"), "{err}");
    }
}
