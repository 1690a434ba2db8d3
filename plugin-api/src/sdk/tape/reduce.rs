//! Reductions and row-wise normalizations: `sum` and `mean` over an axis or everything,
//! `softmax` and `log_softmax` over each row.

use ndarray::{Array2, Axis};

use super::{Op, Tape, Var};

/// Which elements a reduction adds up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Over {
    /// Each column's rows: `[m, n]` → `[1, n]`.
    Rows,
    /// Each row's columns: `[m, n]` → `[m, 1]`.
    Columns,
    /// Everything: `[m, n]` → `[1, 1]`.
    All,
}

impl Over {
    fn sum(self, x: &ndarray::ArrayView2<'_, f32>) -> Array2<f32> {
        match self {
            Over::Rows => x.sum_axis(Axis(0)).insert_axis(Axis(0)),
            Over::Columns => x.sum_axis(Axis(1)).insert_axis(Axis(1)),
            Over::All => Array2::from_elem((1, 1), x.sum()),
        }
    }

    /// How many elements each reduced value adds up.
    fn count(self, (rows, cols): (usize, usize)) -> usize {
        match self {
            Over::Rows => rows,
            Over::Columns => cols,
            Over::All => rows * cols,
        }
    }
}

impl Tape<'_> {
    /// The sum of `x`'s elements over rows, columns or everything.
    pub fn sum(&mut self, x: Var, over: Over) -> Var {
        let value = over.sum(&self.nodes[x.0].value.view());
        self.push(
            value,
            Op::Reduce {
                x,
                over,
                mean: false,
            },
        )
    }

    /// The mean of `x`'s elements over rows, columns or everything.
    pub fn mean(&mut self, x: Var, over: Over) -> Var {
        let xv = self.nodes[x.0].value.view();
        let n = over.count(xv.dim()).max(1) as f32;
        let value = over.sum(&xv) / n;
        self.push(
            value,
            Op::Reduce {
                x,
                over,
                mean: true,
            },
        )
    }

    /// Each row's softmax.
    pub fn softmax(&mut self, x: Var) -> Var {
        let mut value = self.nodes[x.0].value.to_owned();
        for mut row in value.rows_mut() {
            let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            row.mapv_inplace(|v| (v - max).exp());
            let total = row.sum();
            row.mapv_inplace(|v| v / total);
        }
        self.push(value, Op::Softmax(x))
    }

    /// Each row's log-softmax, `x − log Σ eˣ`, computed stably.
    pub fn log_softmax(&mut self, x: Var) -> Var {
        let mut value = self.nodes[x.0].value.to_owned();
        for mut row in value.rows_mut() {
            let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            // Shifted by the max before and after the log, so large logits keep their
            // precision.
            let log_total = row.fold(0.0, |s, &v| s + (v - max).exp()).ln();
            row.mapv_inplace(|v| (v - max) - log_total);
        }
        self.push(value, Op::LogSoftmax(x))
    }

    /// The gradient of a reduction: `g` spread back over the elements it added up.
    pub(super) fn reduce_backward(
        &self,
        x: Var,
        over: Over,
        mean: bool,
        g: &Array2<f32>,
    ) -> Array2<f32> {
        let shape = self.nodes[x.0].value.dim();
        let scale = match mean {
            true => 1.0 / over.count(shape).max(1) as f32,
            false => 1.0,
        };
        let spread = g
            .broadcast(shape)
            .expect("a reduction's gradient broadcasts back");
        spread.mapv(|v| v * scale)
    }

    /// Softmax's gradient: `y ⊙ (g − Σ g⊙y)` per row.
    pub(super) fn softmax_backward(
        y: ndarray::ArrayView2<'_, f32>,
        mut g: Array2<f32>,
    ) -> Array2<f32> {
        for (mut g_row, y_row) in g.rows_mut().into_iter().zip(y.rows()) {
            let dot: f32 = g_row.iter().zip(y_row).map(|(g, y)| g * y).sum();
            g_row.zip_mut_with(&y_row, |g, &y| *g = y * (*g - dot));
        }
        g
    }

    /// Log-softmax's gradient: `g − softmax ⊙ Σ g` per row.
    pub(super) fn log_softmax_backward(
        y: ndarray::ArrayView2<'_, f32>,
        mut g: Array2<f32>,
    ) -> Array2<f32> {
        for (mut g_row, y_row) in g.rows_mut().into_iter().zip(y.rows()) {
            let total: f32 = g_row.sum();
            g_row.zip_mut_with(&y_row, |g, &y| *g -= y.exp() * total);
        }
        g
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_gradients_match, finite_value};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn softmax_rows_sum_to_one_and_log_softmax_is_its_log() {
        let mut t = Tape::new();
        let x = t.constant(ndarray::array![[1.0, 2.0, 3.0], [1000.0, 1000.0, 0.0]]);
        let s = t.softmax(x);
        let l = t.log_softmax(x);
        for r in 0..2 {
            assert!((t.value(s).row(r).sum() - 1.0).abs() < 1e-6);
            for c in 0..3 {
                let (log, soft) = (t.value(l)[[r, c]], t.value(s)[[r, c]]);
                assert!(
                    (log - soft.ln()).abs() < 1e-5 || soft == 0.0,
                    "{log} vs ln {soft}"
                );
            }
        }
        assert!(
            (t.value(s)[[1, 0]] - 0.5).abs() < 1e-6,
            "stable for large logits"
        );
        let m = t.mean(x, Over::Columns);
        assert_eq!(t.value(m)[[0, 0]], 2.0);
    }

    proptest! {
        #[test]
        fn reduction_gradients_match_finite_differences(
            over in prop_oneof![Just(Over::Rows), Just(Over::Columns), Just(Over::All)],
            mean in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let x = finite_value((3, 4), -2.0, 2.0, seed);
            assert_gradients_match(&[x], &move |t, v| match mean {
                true => t.mean(v[0], over),
                false => t.sum(v[0], over),
            });
        }

        #[test]
        fn softmax_gradients_match_finite_differences(log in any::<bool>(), seed in any::<u64>()) {
            let x = finite_value((3, 4), -2.0, 2.0, seed);
            assert_gradients_match(&[x], &move |t, v| match log {
                true => t.log_softmax(v[0]),
                false => t.softmax(v[0]),
            });
        }
    }
}
