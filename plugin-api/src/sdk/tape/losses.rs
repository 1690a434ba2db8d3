//! TF's `tf.losses` built from the tape's ops: `absolute_difference`, `huber_loss`,
//! `hinge_loss` and `log_loss`, each weighted and reduced as TF does. (The cross-entropies
//! and the squared error are fused ops in `mod.rs`, for their numerical stability.)

use ndarray::Array2;

use super::reduce::Over;
use super::{Tape, Var, Weighting};
use crate::abi::PluginError;

impl Tape<'_> {
    /// Per-element losses `[batch, k]` to the scalar loss: each example's elements times its
    /// weight, summed, and divided as the reduction says (TF's `compute_weighted_loss`).
    pub fn reduce_loss(
        &mut self,
        elements: Var,
        weighting: Weighting<'_>,
    ) -> Result<Var, PluginError> {
        let (rows, per_row) = self.value(elements).dim();
        let scales = weighting.scales(rows, per_row)?.iter().collect();
        let scales = Array2::from_shape_vec((rows, 1), scales)
            .map_err(|e| PluginError::bad_data(format!("loss weights: {e}")))?;
        let scales = self.constant(scales);
        let weighted = self.mul(elements, scales)?;
        Ok(self.sum(weighted, Over::All))
    }

    /// `|predictions − labels|`, reduced (TF's `absolute_difference`).
    pub fn absolute_difference(
        &mut self,
        predictions: Var,
        labels: Array2<f32>,
        weighting: Weighting<'_>,
    ) -> Result<Var, PluginError> {
        let labels = self.constant(labels);
        let difference = self.sub(predictions, labels)?;
        let elements = self.abs(difference);
        self.reduce_loss(elements, weighting)
    }

    /// Quadratic within `delta` of the labels, linear beyond, reduced (TF's `huber_loss`,
    /// delta 1 there).
    pub fn huber_loss(
        &mut self,
        predictions: Var,
        labels: Array2<f32>,
        delta: f32,
        weighting: Weighting<'_>,
    ) -> Result<Var, PluginError> {
        let labels = self.constant(labels);
        let difference = self.sub(predictions, labels)?;
        let elements = self.huber(difference, delta);
        self.reduce_loss(elements, weighting)
    }

    /// `max(0, 1 − (2·label − 1)·logit)` for labels in {0, 1}, reduced (TF's `hinge_loss`).
    pub fn hinge_loss(
        &mut self,
        logits: Var,
        labels: Array2<f32>,
        weighting: Weighting<'_>,
    ) -> Result<Var, PluginError> {
        let signs = self.constant(labels.mapv(|l| 2.0 * l - 1.0));
        let margins = self.mul(logits, signs)?;
        let shortfall = self.neg(margins);
        let shortfall = self.shift(shortfall, 1.0);
        let elements = self.relu(shortfall);
        self.reduce_loss(elements, weighting)
    }

    /// `−label·log(p + ε) − (1 − label)·log(1 − p + ε)` for probabilities `p`, reduced
    /// (TF's `log_loss`, ε 1e-7 there).
    pub fn log_loss(
        &mut self,
        predictions: Var,
        labels: Array2<f32>,
        epsilon: f32,
        weighting: Weighting<'_>,
    ) -> Result<Var, PluginError> {
        let positive = self.constant(labels.clone());
        let negative = self.constant(labels.mapv(|l| 1.0 - l));
        let p = self.shift(predictions, epsilon);
        let log_p = self.log(p);
        let q = self.neg(predictions);
        let q = self.shift(q, 1.0 + epsilon);
        let log_q = self.log(q);
        let a = self.mul(positive, log_p)?;
        let b = self.mul(negative, log_q)?;
        let sum = self.add(a, b)?;
        let elements = self.neg(sum);
        self.reduce_loss(elements, weighting)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_gradients_match, finite_value};
    use super::super::LossReduction;
    use super::*;
    use ndarray::array;
    use proptest::prelude::*;

    fn loss_of(
        build: impl Fn(&mut Tape<'_>, Var, Weighting<'_>) -> Result<Var, PluginError>,
        x: Array2<f32>,
        weights: Option<&[f32]>,
    ) -> f32 {
        let mut t = Tape::new();
        let x = t.param(x);
        let weighting = Weighting {
            weights,
            reduction: LossReduction::SumOverBatchSize,
        };
        let loss = build(&mut t, x, weighting).expect("valid");
        t.scalar(loss)
    }

    #[test]
    fn losses_match_tf_by_hand() {
        let close =
            |got: f32, expected: f32| assert!((got - expected).abs() < 1e-6, "{got} vs {expected}");
        // |1.5 − 1| and |1 − 2|: mean 0.75.
        close(
            loss_of(
                |t, p, w| t.absolute_difference(p, array![[1.0], [2.0]], w),
                array![[1.5], [1.0]],
                None,
            ),
            0.75,
        );
        // ½·0.5² = 0.125 within delta 1; 1·(2 − ½) = 1.5 beyond: mean 0.8125.
        close(
            loss_of(
                |t, p, w| t.huber_loss(p, array![[0.0], [0.0]], 1.0, w),
                array![[0.5], [2.0]],
                None,
            ),
            0.8125,
        );
        // max(0, 1 − 0.3) and max(0, 1 + 0.2): mean 0.95.
        close(
            loss_of(
                |t, p, w| t.hinge_loss(p, array![[1.0], [0.0]], w),
                array![[0.3], [0.2]],
                None,
            ),
            0.95,
        );
        // −ln(0.8 + ε) and −ln(1 − 0.4 + ε): mean 0.3669846.
        let expected = (-(0.8f64 + 1e-7).ln() - (0.6f64 + 1e-7).ln()) / 2.0;
        close(
            loss_of(
                |t, p, w| t.log_loss(p, array![[1.0], [0.0]], 1e-7, w),
                array![[0.8], [0.4]],
                None,
            ),
            expected as f32,
        );
        // Weights 2 and 0 with SUM_OVER_BATCH_SIZE: (2·0.5 + 0·1) / 2 = 0.5.
        close(
            loss_of(
                |t, p, w| t.absolute_difference(p, array![[1.0], [2.0]], w),
                array![[1.5], [1.0]],
                Some(&[2.0, 0.0]),
            ),
            0.5,
        );
    }

    proptest! {
        #[test]
        fn composed_losses_match_finite_differences(which in 0usize..4, seed in any::<u64>()) {
            let labels = finite_value((4, 1), 0.0, 1.0, seed ^ 3).mapv(|v| v.round());
            // Predictions away from the kinks (|difference| = delta, margin = 1) and in
            // (0, 1) for the log loss.
            let x = match which {
                3 => finite_value((4, 1), 0.2, 0.8, seed),
                _ => finite_value((4, 1), -3.0, 3.0, seed),
            };
            // Kinks: a difference of 0 or ±delta from labels 0 or 1, a margin of 1.
            let near_kink = |v: f32| [-1.0f32, 0.0, 1.0, 2.0].iter().any(|k| (v - k).abs() < 0.05);
            let x = x.mapv(|v| if which < 3 && near_kink(v) { v + 0.2 } else { v });
            let weights = [0.5f32, 1.0, 2.0, 0.0];
            assert_gradients_match(&[x], &move |t, v| {
                let w = Weighting { weights: Some(&weights), reduction: LossReduction::SumOverBatchSize };
                match which {
                    0 => t.absolute_difference(v[0], labels.clone(), w),
                    1 => t.huber_loss(v[0], labels.clone(), 1.0, w),
                    2 => t.hinge_loss(v[0], labels.clone(), w),
                    _ => t.log_loss(v[0], labels.clone(), 1e-7, w),
                }
                .expect("valid")
            });
        }
    }
}
