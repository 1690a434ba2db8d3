//! Conversions between the ABI's tensors and ndarray, without copying borrowed data.

use ndarray::{Array2, ArrayView2};

use crate::abi::{PluginError, Tensor, TensorData, TensorView};

/// Views a numeric tensor as a `[batch, width]` matrix: rank 1 becomes one column, higher
/// ranks keep the leading dimension and flatten the rest. No copy.
pub fn f32_matrix<'a>(
    name: &str,
    view: &TensorView<'a>,
) -> Result<ArrayView2<'a, f32>, PluginError> {
    let TensorData::F32(data) = view.data else {
        return Err(PluginError::bad_data(format!(
            "tensor `{name}` has dtype {:?}, expected F32",
            view.dtype()
        )));
    };
    let rows = view.batch_len();
    let width = data.len().checked_div(rows).unwrap_or(0);
    if rows * width != data.len() || view.shape.iter().product::<usize>() != data.len() {
        return Err(PluginError::bad_data(format!(
            "tensor `{name}`: shape {:?} does not match its {} elements",
            view.shape.as_slice(),
            data.len()
        )));
    }
    ArrayView2::from_shape((rows, width), data.as_slice())
        .map_err(|e| PluginError::bad_data(format!("tensor `{name}`: {e}")))
}

/// Reads an integer tensor of shape `[batch]` or `[batch, 1]` as a slice. No copy.
pub fn i64_column<'a>(name: &str, view: &TensorView<'a>) -> Result<&'a [i64], PluginError> {
    let TensorData::I64(data) = view.data else {
        return Err(PluginError::bad_data(format!(
            "tensor `{name}` has dtype {:?}, expected I64",
            view.dtype()
        )));
    };
    if data.len() != view.batch_len() {
        return Err(PluginError::bad_data(format!(
            "tensor `{name}` must have shape [batch] or [batch, 1], got {:?}",
            view.shape.as_slice()
        )));
    }
    Ok(data.as_slice())
}

/// Moves a matrix into an owned ABI tensor of shape `[rows, cols]`.
pub fn tensor_from_array2(array: Array2<f32>) -> Tensor {
    let shape = array.shape().to_vec();
    let data = if array.is_standard_layout() {
        array.into_raw_vec_and_offset().0
    } else {
        array.iter().copied().collect()
    };
    Tensor::f32(shape, data)
}

/// Row-wise softmax, stable against large logits.
pub fn softmax_rows(logits: ArrayView2<'_, f32>) -> Array2<f32> {
    let mut out = logits.as_standard_layout().into_owned();
    let cols = out.ncols().max(1);
    // Rows are a handful of classes: plain slices beat per-row ndarray iterators.
    if let Some(values) = out.as_slice_mut() {
        for row in values.chunks_exact_mut(cols) {
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let mut sum = 0.0;
            for v in row.iter_mut() {
                *v = (*v - max).exp();
                sum += *v;
            }
            for v in row.iter_mut() {
                *v /= sum;
            }
        }
    }
    out
}

/// Index of the largest value in each row (the first one on ties, as TF's argmax).
pub fn argmax_rows(values: ArrayView2<'_, f32>) -> Vec<i64> {
    let values = values.as_standard_layout();
    match (values.ncols(), values.as_slice()) {
        // Rows are a handful of classes: plain slices beat per-row ndarray iterators.
        (cols @ 1.., Some(flat)) => flat.chunks_exact(cols).map(argmax).collect(),
        _ => vec![0; values.nrows()],
    }
}

fn argmax(row: &[f32]) -> i64 {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn matrix_view_borrows_without_copy() {
        let data = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let shape = [3usize, 2];
        let view = TensorView::f32(&shape, &data);
        let m = f32_matrix("x", &view).expect("valid view");
        assert_eq!(m.shape(), &[3, 2]);
        assert_eq!(m[[2, 1]], 6.0);
        assert!(std::ptr::eq(m.as_ptr(), data.as_ptr()));
    }

    #[test]
    fn rank_one_becomes_one_column() {
        let data = [1.0f32, 2.0, 3.0];
        let shape = [3usize];
        let m = f32_matrix("x", &TensorView::f32(&shape, &data)).expect("valid view");
        assert_eq!(m.shape(), &[3, 1]);
    }

    #[test]
    fn mismatched_shape_is_an_error() {
        let data = [1.0f32, 2.0, 3.0];
        let shape = [2usize, 2];
        let err = f32_matrix("x", &TensorView::f32(&shape, &data)).unwrap_err();
        assert!(err.message.contains("tensor `x`"), "{err}");
    }

    #[test]
    fn softmax_and_argmax_match_hand_computation() {
        let logits = array![[0.0f32, 0.0, (2.0f32).ln()], [3.0, 1.0, 1.0]];
        let p = softmax_rows(logits.view());
        assert!((p[[0, 2]] - 0.5).abs() < 1e-6);
        assert!((p[[0, 0]] - 0.25).abs() < 1e-6);
        assert_eq!(argmax_rows(logits.view()), vec![2, 0]);
    }

    #[test]
    fn argmax_takes_the_first_of_equal_values_in_any_layout() {
        let values = array![[1.0f32, 3.0, 3.0], [2.0, 2.0, 0.0], [0.0, -1.0, 5.0]];
        assert_eq!(argmax_rows(values.view()), vec![1, 0, 2]);
        // The transpose is a column-major view: [1, 2, 0], [3, 2, -1], [3, 0, 5].
        assert_eq!(argmax_rows(values.t()), vec![1, 0, 2]);
    }
}
