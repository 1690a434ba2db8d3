//! Ops that move values without computing: a slice of columns and the transpose.

use ndarray::{s, Array2};

use super::{Op, Tape, Var};
use crate::abi::PluginError;

impl Tape<'_> {
    /// Columns `start..end` of `x`.
    pub fn slice(&mut self, x: Var, start: usize, end: usize) -> Result<Var, PluginError> {
        let xv = &self.nodes[x.0].value;
        if start > end || end > xv.ncols() {
            return Err(PluginError::bad_data(format!(
                "slice: columns {start}..{end} of a value with {} columns",
                xv.ncols()
            )));
        }
        let value = xv.slice(s![.., start..end]).to_owned();
        Ok(self.push(value, Op::Slice { x, start }))
    }

    /// `xᵀ`.
    pub fn transpose(&mut self, x: Var) -> Var {
        let value = self.nodes[x.0].value.t().to_owned();
        self.push(value, Op::Transpose(x))
    }

    /// A slice's gradient: `g` in its columns, zeros elsewhere.
    pub(super) fn slice_backward(&self, x: Var, start: usize, g: &Array2<f32>) -> Array2<f32> {
        let mut dx = Array2::zeros(self.nodes[x.0].value.dim());
        dx.slice_mut(s![.., start..start + g.ncols()]).assign(g);
        dx
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_gradients_match, finite_value};
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn slice_transpose_concat_and_matmul_gradients_match_finite_differences(
            start in 0usize..3,
            width in 1usize..3,
            seed in any::<u64>(),
        ) {
            let x = finite_value((3, 5), -1.0, 1.0, seed);
            let k = finite_value((3, 4), -1.0, 1.0, seed ^ 7);
            assert_gradients_match(&[x, k], &move |t, v| {
                let part = t.slice(v[0], start, start + width).expect("in range");
                let both = t.concat(&[part, v[0]]).expect("same rows");
                let turned = t.transpose(both);
                t.matmul(turned, v[1]).expect("shapes fit")
            });
        }
    }

    proptest! {
        #[test]
        fn stacked_rows_gradients_match_finite_differences(
            top in 1usize..4,
            seed in any::<u64>(),
        ) {
            let a = finite_value((top, 2), -1.0, 1.0, seed);
            let b = finite_value((3, 2), -1.0, 1.0, seed ^ 5);
            let x = finite_value((4, top + 3), -1.0, 1.0, seed ^ 9);
            assert_gradients_match(&[a, b, x], &move |t, v| {
                let stacked = t.stack_rows(&[v[0], v[1]]).expect("same columns");
                t.matmul(v[2], stacked).expect("shapes fit")
            });
        }
    }

    proptest! {
        #[test]
        fn affine_gradients_match_finite_differences_and_its_values_the_two_ops(
            seed in any::<u64>(),
        ) {
            let x = finite_value((4, 3), -1.0, 1.0, seed);
            let k = finite_value((3, 2), -1.0, 1.0, seed ^ 3);
            let b = finite_value((1, 2), -1.0, 1.0, seed ^ 11);
            assert_gradients_match(&[x.clone(), k.clone(), b.clone()], &move |t, v| {
                t.affine(v[0], v[1], v[2]).expect("shapes fit")
            });
            let mut t = Tape::new();
            let (x, k, b) = (t.param(x), t.param(k), t.param(b));
            let fused = t.affine(x, k, b).expect("shapes fit");
            let product = t.matmul(x, k).expect("shapes fit");
            let apart = t.add_bias(product, b).expect("shapes fit");
            prop_assert_eq!(t.value(fused), t.value(apart));
        }
    }

    proptest! {
        #[test]
        fn affine_relu_is_affine_then_relu_in_values_and_gradients(seed in any::<u64>()) {
            let x = finite_value((5, 3), -1.0, 1.0, seed);
            let k = finite_value((3, 4), -1.0, 1.0, seed ^ 3);
            let b = finite_value((1, 4), -1.0, 1.0, seed ^ 11);
            let w = finite_value((5, 4), -1.0, 1.0, seed ^ 17);
            let run = |fused: bool| {
                let mut t = Tape::new();
                let (xv, kv, bv) = (t.param(x.clone()), t.param(k.clone()), t.param(b.clone()));
                let h = match fused {
                    true => t.affine_relu(xv, kv, bv).expect("shapes fit"),
                    false => {
                        let a = t.affine(xv, kv, bv).expect("shapes fit");
                        t.relu(a)
                    }
                };
                let weights = t.constant(w.clone());
                let weighted = t.mul(h, weights).expect("same shape");
                let loss = t.sum(weighted, super::super::Over::All);
                let grads = t.backward(loss);
                (t.value(h).to_owned(), [xv, kv, bv].map(|v| grads.of(v)))
            };
            prop_assert_eq!(run(true), run(false));
        }
    }

    #[test]
    fn rows_stack_alike_from_contiguous_and_strided_values() {
        // A column-major view's rows are not one run of memory: it takes the general path,
        // the others are copied slice by slice; both give the same rows and gradients.
        let columns = ndarray::array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]];
        let mut t = Tape::new();
        let strided = t.param_view(columns.t());
        let row = t.param(ndarray::array![[7.0f32, 8.0]]);
        let stacked = t.stack_rows(&[row, strided, row]).expect("same columns");
        let want = ndarray::array![
            [7.0f32, 8.0],
            [1.0, 4.0],
            [2.0, 5.0],
            [3.0, 6.0],
            [7.0, 8.0]
        ];
        assert_eq!(t.value(stacked), want);
        let weights = t.constant(ndarray::array![[1.0f32], [10.0]]);
        let out = t.matmul(stacked, weights).expect("shapes fit");
        let loss = t.sum(out, super::super::Over::All);
        let grads = t.backward(loss);
        assert_eq!(grads.of(row), Some(ndarray::array![[2.0f32, 20.0]]));
        assert_eq!(
            grads.of(strided),
            Some(ndarray::array![[1.0f32, 10.0], [1.0, 10.0], [1.0, 10.0]])
        );
    }

    #[test]
    fn joining_values_that_do_not_fit_is_refused() {
        let mut t = Tape::new();
        let a = t.constant(Array2::zeros((2, 3)));
        let b = t.constant(Array2::zeros((1, 2)));
        let stacked = t.stack_rows(&[a, b]).unwrap_err();
        assert_eq!(stacked.message.as_str(), "stack_rows: 2 columns under 3");
        let side_by_side = t.concat(&[a, b]).unwrap_err();
        assert_eq!(side_by_side.message.as_str(), "concat: 1 rows next to 2");
    }

    #[test]
    fn a_slice_past_the_columns_is_refused() {
        let mut t = Tape::new();
        let x = t.constant(Array2::zeros((2, 3)));
        assert!(t
            .slice(x, 2, 4)
            .unwrap_err()
            .message
            .contains("columns 2..4 of a value with 3 columns"));
    }
}
