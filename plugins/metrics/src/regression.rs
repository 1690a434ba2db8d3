//! Regression errors, as `tf.compat.v1.metrics`: weighted means of the squared or absolute
//! difference between prediction and label, and the root of the mean square.

use estimator_plugin_api::abi::{FactoryContext, PluginError, TensorView};
use estimator_plugin_api::sdk::StreamingMetric;

use crate::accuracy::NoParams;
use crate::{merge_state, paired, weights};

/// Weighted sum of `f(prediction - label)` and of the weights.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Sums {
    total: f64,
    count: f64,
}

impl Sums {
    fn update(
        &mut self,
        labels: &TensorView<'_>,
        predictions: &TensorView<'_>,
        weight: Option<&TensorView<'_>>,
        f: fn(f64) -> f64,
    ) -> Result<(), PluginError> {
        let (labels, predictions) = paired("", labels, predictions)?;
        for ((l, p), w) in labels
            .iter()
            .zip(&predictions)
            .zip(weights(weight, labels.len())?)
        {
            self.total += w * f(p - l);
            self.count += w;
        }
        Ok(())
    }

    fn mean(&self) -> f64 {
        if self.count == 0.0 {
            0.0
        } else {
            self.total / self.count
        }
    }
}

macro_rules! regression_metric {
    ($(#[$doc:meta])* $name:ident, $f:expr, |$mean:ident| $result:expr) => {
        $(#[$doc])*
        #[derive(Debug, Default)]
        pub struct $name(Sums);

        impl StreamingMetric for $name {
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
                self.0.update(labels, predictions, weight, $f)
            }

            fn result(&self) -> Result<f64, PluginError> {
                let $mean = self.0.mean();
                Ok($result)
            }

            fn reset(&mut self) {
                self.0 = Sums::default();
            }

            fn state(&self) -> Vec<f64> {
                vec![self.0.total, self.0.count]
            }

            fn merge(&mut self, other: &[f64]) -> Result<(), PluginError> {
                merge_state(&mut self.0.total, &mut self.0.count, other)
            }
        }
    };
}

regression_metric!(
    /// Weighted mean of `(prediction - label)²`.
    MeanSquaredError, |d| d * d, |m| m
);
regression_metric!(
    /// The square root of the weighted mean squared error.
    RootMeanSquaredError, |d| d * d, |m| m.sqrt()
);
regression_metric!(
    /// Weighted mean of `|prediction - label|`.
    MeanAbsoluteError, f64::abs, |m| m
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::ctx;

    #[test]
    fn errors_match_hand_computation_and_merge() {
        let shape = [3usize];
        let labels = [1.0f32, 2.0, 3.0];
        let preds = [1.5f32, 2.0, 1.0];
        // differences 0.5, 0, -2: squares 0.25, 0, 4 → mean 4.25/3; absolute 2.5/3.
        let mut mse = MeanSquaredError::new(NoParams {}, &ctx()).expect("params");
        let mut rmse = RootMeanSquaredError::new(NoParams {}, &ctx()).expect("params");
        let mut mae = MeanAbsoluteError::new(NoParams {}, &ctx()).expect("params");
        let (l, p) = (
            TensorView::f32(&shape, &labels),
            TensorView::f32(&shape, &preds),
        );
        mse.update(&l, &p, None).expect("valid");
        rmse.update(&l, &p, None).expect("valid");
        mae.update(&l, &p, None).expect("valid");
        assert!((mse.result().expect("result") - 4.25 / 3.0).abs() < 1e-12);
        assert!((rmse.result().expect("result") - (4.25f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((mae.result().expect("result") - 2.5 / 3.0).abs() < 1e-12);
        // Another worker saw one example with error 1: (4.25 + 1) / 4.
        mse.merge(&[1.0, 1.0]).expect("valid state");
        assert!((mse.result().expect("result") - 5.25 / 4.0).abs() < 1e-12);
    }
}
