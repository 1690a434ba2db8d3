//! The tape's matrix products: `a · b`, and `a · b + bias` for dense layers.
//!
//! Large products go to ndarray's `dot` (matrixmultiply, with its thread pool). Small ones
//! go to a register-blocked kernel when the CPU has AVX-512: at an Iris layer's size
//! (100 x 10 x 10) matrixmultiply spends most of its time packing its operands into
//! blocks, which the kernel skips by reading them in place. Which path a product takes
//! depends on its shape and the CPU alone, never on the thread count, so results stay
//! the same on any number of threads.

use ndarray::{Array2, ArrayView2};

#[cfg(target_arch = "x86_64")]
mod avx512;

/// Products whose result is at most this many columns wide may take the small kernel:
/// it holds a block of result rows in registers, 16 columns to a register.
const SMALL_MAX_COLUMNS: usize = 32;

/// ... and that make at most this many multiply-adds. Iris's and the premade DNNs' layers
/// make at most ~30,000; a large model's (the compute-bound DNN's smallest makes 1.3M)
/// keep matrixmultiply, which splits them over threads.
const SMALL_MAX_MULTIPLY_ADDS: usize = 1 << 18;

/// Whether a `[m, k] · [k, n]` product is small enough for the small kernel.
fn is_small(m: usize, k: usize, n: usize) -> bool {
    n <= SMALL_MAX_COLUMNS && m.saturating_mul(k).saturating_mul(n) <= SMALL_MAX_MULTIPLY_ADDS
}

/// `a · b`.
pub(super) fn product(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>) -> Array2<f32> {
    affine(a, b, None, false)
}

/// `a · b`, plus the `[1, n]` `bias` added to every row when there is one, then with
/// `relu` each value's `max(0, ·)`. Adding the bias after the product keeps the values
/// those of a product then an addition.
pub(super) fn affine(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    bias: Option<ArrayView2<'_, f32>>,
    relu: bool,
) -> Array2<f32> {
    if is_small(a.nrows(), a.ncols(), b.ncols()) {
        #[cfg(target_arch = "x86_64")]
        if let Some(value) = avx512::affine(a, b, bias.as_ref().map(|bias| bias.row(0)), relu) {
            return value;
        }
    }
    let mut value = a.dot(&b);
    if let Some(bias) = bias {
        super::add_to_rows(&mut value, bias);
    }
    if relu {
        value.mapv_inplace(|v| v.max(0.0));
    }
    value
}

/// `[1, n]` sums of a `[rows, n]` gradient's columns (`[1, rows] · g` with a row of ones):
/// the gradient of a broadcast bias.
pub(super) fn column_sums(g: &Array2<f32>) -> Array2<f32> {
    #[cfg(target_arch = "x86_64")]
    if let Some(sums) = avx512::column_sums(g.view()) {
        return sums;
    }
    let mut sums = Array2::zeros((1, g.ncols()));
    // Plain slices where rows are contiguous: per-row ndarray iterators cost more.
    match (g.as_slice(), sums.as_slice_mut()) {
        (Some(values), Some(out)) => {
            for row in values.chunks_exact(out.len().max(1)) {
                for (s, v) in out.iter_mut().zip(row) {
                    *s += v;
                }
            }
        }
        _ => {
            for row in g.rows() {
                sums.row_mut(0).zip_mut_with(&row, |s, &v| *s += v);
            }
        }
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{s, Array2};

    fn matrix(rows: usize, cols: usize, seed: usize) -> Array2<f32> {
        Array2::from_shape_fn((rows, cols), |(i, j)| {
            ((i * 31 + j * 17 + seed * 7) % 23) as f32 * 0.125 - 1.4
        })
    }

    /// The product summed in f64, element by element: the reference.
    fn reference(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>) -> Array2<f32> {
        Array2::from_shape_fn((a.nrows(), b.ncols()), |(i, j)| {
            (0..a.ncols())
                .map(|p| f64::from(a[[i, p]]) * f64::from(b[[p, j]]))
                .sum::<f64>() as f32
        })
    }

    fn assert_close(got: &Array2<f32>, want: &Array2<f32>) {
        assert_eq!(got.dim(), want.dim());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 1e-4 * w.abs().max(1.0), "{g} vs {w}");
        }
    }

    #[test]
    fn products_of_every_small_shape_and_layout_match_the_reference() {
        // Widths around the kernel's 16-column registers, row counts around its blocks.
        for m in [1, 2, 3, 4, 5, 7, 8, 9, 33, 100] {
            for k in [1, 3, 10, 17] {
                for n in [1, 3, 10, 15, 16, 17, 30, 32] {
                    let (a, b) = (matrix(m, k, 1), matrix(k, n, 2));
                    assert_close(&product(a.view(), b.view()), &reference(a.view(), b.view()));
                    // Transposed operands, as backward passes them.
                    let (at, bt) = (matrix(k, m, 3), matrix(n, k, 4));
                    assert_close(&product(at.t(), bt.t()), &reference(at.t(), bt.t()));
                }
            }
        }
    }

    #[test]
    fn strided_views_and_empty_products_match_the_reference() {
        let a = matrix(9, 12, 5);
        let b = matrix(12, 20, 6);
        let (a, b) = (a.slice(s![..;2, 1..;3]), b.slice(s![1..;3, ..;2]));
        assert_close(&product(a, b), &reference(a, b));
        let reversed = b.slice(s![..;-1, ..]);
        assert_close(&product(a, reversed), &reference(a, reversed));
        for (m, k, n) in [(0, 3, 4), (3, 0, 4), (3, 4, 0)] {
            let (a, b) = (matrix(m, k, 1), matrix(k, n, 2));
            assert_eq!(product(a.view(), b.view()), Array2::<f32>::zeros((m, n)));
        }
    }

    #[test]
    fn affine_is_the_product_then_the_bias_bit_for_bit() {
        for (m, k, n) in [(100, 4, 10), (100, 10, 3), (32, 30, 32), (300, 300, 20)] {
            let (x, kernel, bias) = (matrix(m, k, 1), matrix(k, n, 2), matrix(1, n, 3));
            let mut expected = product(x.view(), kernel.view());
            expected += &bias;
            let got = affine(x.view(), kernel.view(), Some(bias.view()), false);
            assert_eq!(got, expected, "{m} x {k} x {n}");
            let rectified = affine(x.view(), kernel.view(), Some(bias.view()), true);
            assert_eq!(rectified, expected.mapv(|v| v.max(0.0)), "{m} x {k} x {n}");
        }
    }

    #[test]
    fn column_sums_match_the_reference_at_every_width() {
        for m in [0, 1, 3, 4, 5, 100] {
            for n in [1, 3, 10, 16, 17, 32, 33, 50] {
                let g = matrix(m, n, 4);
                let ones = Array2::ones((1, m));
                assert_close(&column_sums(&g), &reference(ones.view(), g.view()));
            }
        }
    }

    #[test]
    fn layers_of_small_models_are_small_and_large_models_are_not() {
        assert!(is_small(100, 10, 10));
        assert!(is_small(32, 30, 32));
        assert!(is_small(100, 100, 10));
        assert!(!is_small(32, 30, 33));
        assert!(!is_small(256, 512, 10));
        assert!(!is_small(usize::MAX, 2, 2));
    }
}
