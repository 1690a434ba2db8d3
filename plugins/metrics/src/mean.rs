use estimator_plugin_api::abi::{FactoryContext, PluginError, TensorView};
use estimator_plugin_api::sdk::StreamingMetric;

use crate::accuracy::NoParams;
use crate::{merge_state, values, weights};

/// Weighted mean of every value of the predictions tensor (labels are ignored), as
/// `tf.metrics.mean`. With several values per example, each example's weight applies to
/// each of its values.
#[derive(Debug, Default, PartialEq)]
pub struct Mean {
    total: f64,
    count: f64,
}

impl StreamingMetric for Mean {
    type Params = NoParams;

    fn new(_: NoParams, _ctx: &FactoryContext<'_>) -> Result<Self, PluginError> {
        Ok(Self::default())
    }

    fn update(
        &mut self,
        _labels: &TensorView<'_>,
        predictions: &TensorView<'_>,
        weight: Option<&TensorView<'_>>,
    ) -> Result<(), PluginError> {
        let examples = predictions.batch_len();
        let values = values("predictions", predictions)?;
        let weights = weights(weight, examples)?;
        let per_example = values.len().checked_div(examples).unwrap_or(0);
        for (row, w) in weights.iter().enumerate() {
            for v in &values[row * per_example..(row + 1) * per_example] {
                self.total += v * w;
                self.count += w;
            }
        }
        Ok(())
    }

    fn result(&self) -> Result<f64, PluginError> {
        Ok(if self.count == 0.0 {
            0.0
        } else {
            self.total / self.count
        })
    }

    fn reset(&mut self) {
        *self = Self::default();
    }

    fn state(&self) -> Vec<f64> {
        vec![self.total, self.count]
    }

    fn merge(&mut self, other: &[f64]) -> Result<(), PluginError> {
        merge_state(&mut self.total, &mut self.count, other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_mean_over_batches() {
        let ctx = FactoryContext {
            base_dir: ".".into(),
            seed: 0,
        };
        let mut m = Mean::new(NoParams {}, &ctx).expect("no params");
        let labels = TensorView::i64(&[2], &[0, 0]);
        m.update(&labels, &TensorView::f32(&[2], &[1.0, 3.0]), None)
            .expect("valid");
        m.update(
            &labels,
            &TensorView::f32(&[2], &[5.0, 7.0]),
            Some(&TensorView::f32(&[2], &[2.0, 0.0])),
        )
        .expect("valid");
        // (1 + 3 + 2*5) / (1 + 1 + 2) = 3.5
        assert_eq!(m.result().expect("result"), 3.5);
    }
}
