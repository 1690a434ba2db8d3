use estimator_plugin_api::abi::{FactoryContext, PluginError, TensorView};
use estimator_plugin_api::sdk::StreamingMetric;
use serde::Deserialize;

use crate::{merge_state, paired, weights};

/// Fraction of examples whose prediction equals the label, weighted.
#[derive(Debug, Default, PartialEq)]
pub struct Accuracy {
    correct: f64,
    count: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

impl StreamingMetric for Accuracy {
    type Params = NoParams;

    fn new(_: NoParams, _ctx: &FactoryContext<'_>) -> Result<Self, PluginError> {
        Ok(Self::default())
    }

    fn update(
        &mut self,
        labels: &TensorView<'_>,
        predictions: &TensorView<'_>,
        weight: Option<&TensorView<'_>>,
    ) -> Result<(), PluginError> {
        let (labels, predictions) = paired("accuracy: ", labels, predictions)?;
        for ((l, p), w) in labels
            .iter()
            .zip(&predictions)
            .zip(weights(weight, labels.len())?)
        {
            if l == p {
                self.correct += w;
            }
            self.count += w;
        }
        Ok(())
    }

    fn result(&self) -> Result<f64, PluginError> {
        Ok(if self.count == 0.0 {
            0.0
        } else {
            self.correct / self.count
        })
    }

    fn reset(&mut self) {
        *self = Self::default();
    }

    fn state(&self) -> Vec<f64> {
        vec![self.correct, self.count]
    }

    fn merge(&mut self, other: &[f64]) -> Result<(), PluginError> {
        merge_state(&mut self.correct, &mut self.count, other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> FactoryContext<'static> {
        FactoryContext {
            base_dir: ".".into(),
            seed: 0,
        }
    }

    #[test]
    fn streams_over_batches_and_merges_partial_states() {
        let shape = [4usize, 1];
        let mut a = Accuracy::new(NoParams {}, &ctx()).expect("no params");
        // batch 1: 3 of 4 right; batch 2: 1 of 4 right -> 4 / 8
        a.update(
            &TensorView::i64(&shape, &[0, 1, 2, 2]),
            &TensorView::i64(&shape, &[0, 1, 2, 0]),
            None,
        )
        .expect("same lengths");
        let mut b = Accuracy::new(NoParams {}, &ctx()).expect("no params");
        b.update(
            &TensorView::i64(&shape, &[1, 1, 1, 1]),
            &TensorView::i64(&shape, &[1, 0, 0, 0]),
            None,
        )
        .expect("same lengths");
        assert_eq!(a.result().expect("result"), 0.75);
        a.merge(&b.state()).expect("valid state");
        assert_eq!(a.result().expect("result"), 0.5);
    }

    #[test]
    fn weights_scale_each_example() {
        let shape = [2usize];
        let mut a = Accuracy::new(NoParams {}, &ctx()).expect("no params");
        let w = [3.0f32, 1.0];
        a.update(
            &TensorView::i64(&shape, &[1, 1]),
            &TensorView::i64(&shape, &[1, 0]),
            Some(&TensorView::f32(&shape, &w)),
        )
        .expect("same lengths");
        assert_eq!(a.result().expect("result"), 0.75);
    }

    #[test]
    fn length_mismatch_is_an_error() {
        let mut a = Accuracy::new(NoParams {}, &ctx()).expect("no params");
        let err = a
            .update(
                &TensorView::i64(&[2], &[1, 1]),
                &TensorView::i64(&[1], &[1]),
                None,
            )
            .unwrap_err();
        assert_eq!(err.message.as_str(), "accuracy: 2 labels but 1 predictions");
    }
}
