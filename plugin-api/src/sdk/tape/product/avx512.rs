//! The small-product kernel: `a · b (+ bias)` for results at most 32 columns wide, with
//! AVX-512.
//!
//! A block of four result rows lives in registers (one or two 16-lane registers per row)
//! while the kernel walks the summed dimension: per step it loads row `p` of `b`,
//! broadcasts the block's four elements of column `p` of `a`, and adds the products. Masked
//! loads and stores cover widths that are not a multiple of 16, so nothing is padded or
//! packed, and `a` is read in place in any layout.

use std::arch::x86_64::{
    __m512, __mmask16, _mm512_add_ps, _mm512_fmadd_ps, _mm512_mask_storeu_ps,
    _mm512_maskz_loadu_ps, _mm512_max_ps, _mm512_set1_ps, _mm512_setzero_ps,
};

use ndarray::{Array2, ArrayView1, ArrayView2};

use super::super::buffers;

/// Result rows per register block: four rows' independent sums keep the FMA units busy.
const BLOCK_ROWS: usize = 4;

/// An operand in place: its first element and the distance between rows and between
/// columns, in elements.
#[derive(Clone, Copy)]
struct Strided {
    start: *const f32,
    row_stride: usize,
    column_stride: usize,
}

impl Strided {
    /// `None` for views with negative strides.
    fn of(view: &ArrayView2<'_, f32>) -> Option<Strided> {
        let strides = view.strides();
        Some(Strided {
            start: view.as_ptr(),
            row_stride: usize::try_from(strides[0]).ok()?,
            column_stride: usize::try_from(strides[1]).ok()?,
        })
    }
}

/// `a · b`, plus `bias` on every row, or `None` when the CPU lacks AVX-512, the result is
/// wider than 32 columns, an operand is empty (the general path has nothing to gain on)
/// or has negative strides.
pub(super) fn affine(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    bias: Option<ArrayView1<'_, f32>>,
    relu: bool,
) -> Option<Array2<f32>> {
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    if n > 32 || m == 0 || k == 0 || n == 0 || !std::arch::is_x86_feature_detected!("avx512f") {
        return None;
    }
    // Shapes that do not fit are the general path's to report.
    if b.nrows() != k || bias.is_some_and(|bias| bias.len() != n) {
        return None;
    }
    let bias = match bias {
        Some(bias) => Some(bias.to_slice()?),
        None => None,
    };
    let a_in_place = Strided::of(&a)?;
    // The kernel loads rows of `b` whole; a transposed kernel (backward's `g · bᵀ`) is
    // copied into rows first. It is a layer's weights: small.
    let b_rows = match b.strides()[1] == 1 || n <= 1 {
        true => None,
        false => Some(row_major(b)),
    };
    let b_in_place = match &b_rows {
        Some(rows) => Strided::of(&rows.view())?,
        None => Strided::of(&b)?,
    };
    let mut out = buffers::take(m * n);
    // SAFETY: AVX-512F is present (checked above). `a_in_place` and `b_in_place` describe
    // live views of `m × k` and `k × n` elements with non-negative strides, `b`'s rows
    // contiguous; `bias` has `n` elements; `out` has room for `m × n`, which the kernel
    // writes in full before the length is set; the array takes `out` as `[m, n]`.
    unsafe {
        let kernel = match n <= 16 {
            true => affine_kernel::<1>,
            false => affine_kernel::<2>,
        };
        kernel(
            a_in_place,
            b_in_place,
            (bias, relu),
            (m, k, n),
            out.as_mut_ptr(),
        );
        out.set_len(m * n);
        if let Some(rows) = b_rows {
            buffers::give_array(rows);
        }
        // `out` holds the `m × n` values, row after row: the shape fits, and ndarray's
        // checks of it cost more than a small product's bookkeeping should.
        Some(Array2::from_shape_vec_unchecked((m, n), out))
    }
}

/// `b` copied into row-major order. A transposed kernel is column-major: plain loops over
/// its slice take a fraction of the time of ndarray's element-by-element gather.
fn row_major(b: ArrayView2<'_, f32>) -> Array2<f32> {
    let (k, n) = b.dim();
    let transposed = b.t();
    let Some(columns) = transposed.to_slice() else {
        return b.as_standard_layout().into_owned();
    };
    // Row `p` is element `p` of each column: every `k`th value from `p` on.
    let mut rows = buffers::take(k * n);
    for p in 0..k {
        rows.extend(columns[p..].iter().step_by(k));
    }
    Array2::from_shape_vec((k, n), rows).unwrap_or_else(|_| b.as_standard_layout().into_owned())
}

/// The `[1, n]` sums of `g`'s columns, or `None` when the CPU lacks AVX-512, `g` is wider
/// than 32 columns or its rows are not contiguous.
pub(super) fn column_sums(g: ArrayView2<'_, f32>) -> Option<Array2<f32>> {
    let (m, n) = g.dim();
    if n > 32 || !std::arch::is_x86_feature_detected!("avx512f") {
        return None;
    }
    let g_in_place = Strided::of(&g)?;
    if g_in_place.column_stride != 1 && n > 1 {
        return None;
    }
    let mut out = buffers::take(n);
    // SAFETY: AVX-512F is present; `g_in_place` describes a live `m × n` view with
    // contiguous rows; `out` has room for the `n` sums the kernel writes, and the array
    // takes them as `[1, n]`.
    unsafe {
        let kernel = match n <= 16 {
            true => column_sums_kernel::<1>,
            false => column_sums_kernel::<2>,
        };
        kernel(g_in_place, (m, n), out.as_mut_ptr());
        out.set_len(n);
        // `out` holds the `n` sums: they fit `[1, n]`.
        Some(Array2::from_shape_vec_unchecked((1, n), out))
    }
}

/// Writes the `n` column sums of `g`, summing four rows at a time into separate registers
/// (independent additions) and adding those four at the end.
///
/// # Safety
/// The CPU has AVX-512F; `g` addresses `m × n` readable elements with contiguous rows;
/// `out` has room for `n` elements; `n <= 16 × REGISTERS`.
#[target_feature(enable = "avx512f")]
unsafe fn column_sums_kernel<const REGISTERS: usize>(
    g: Strided,
    (m, n): (usize, usize),
    out: *mut f32,
) {
    let masks = lane_masks::<REGISTERS>(n);
    let mut sums = [[_mm512_setzero_ps(); REGISTERS]; BLOCK_ROWS];
    // SAFETY: every row read is below `m`; the caller's contract does the rest.
    unsafe {
        let mut first = 0;
        while first + BLOCK_ROWS <= m {
            for (r, row_sums) in sums.iter_mut().enumerate() {
                add_row(row_sums, g, first + r, &masks);
            }
            first += BLOCK_ROWS;
        }
        for (row_sums, row) in sums.iter_mut().zip(first..m) {
            add_row(row_sums, g, row, &masks);
        }
        for r in 0..REGISTERS {
            let total = _mm512_add_ps(
                _mm512_add_ps(sums[0][r], sums[1][r]),
                _mm512_add_ps(sums[2][r], sums[3][r]),
            );
            _mm512_mask_storeu_ps(out.add(16 * r), masks[r], total);
        }
    }
}

/// The lanes of each of a row's `REGISTERS` registers that lie within `n` columns.
fn lane_masks<const REGISTERS: usize>(n: usize) -> [__mmask16; REGISTERS] {
    std::array::from_fn(|r| {
        let lanes = n.saturating_sub(16 * r).min(16);
        ((1u32 << lanes) - 1) as __mmask16
    })
}

/// Writes `out[m × n] = a · b (+ bias)`, rows in blocks of four, then the last one to three.
///
/// # Safety
/// The CPU has AVX-512F; `a` and `b` address `m × k` and `k × n` readable elements, `b`'s
/// columns adjacent; `bias` has `n` elements; `out` has room for `m × n` elements;
/// `n <= 16 × REGISTERS`.
#[target_feature(enable = "avx512f")]
unsafe fn affine_kernel<const REGISTERS: usize>(
    a: Strided,
    b: Strided,
    (bias, relu): (Option<&[f32]>, bool),
    (m, k, n): (usize, usize, usize),
    out: *mut f32,
) {
    let masks = lane_masks::<REGISTERS>(n);
    // SAFETY: `bias` has `n` elements; masked-off lanes are not read. (A closure in a
    // function with target features has them too.)
    let bias = bias.map(|bias| unsafe { load_row(bias.as_ptr(), &masks) });
    let blocks = Blocks {
        b,
        k,
        n,
        masks,
        bias,
        relu,
    };
    let mut row = 0;
    // SAFETY (each call): rows `row..row + R` are within `m`; the caller's contract does
    // the rest.
    unsafe {
        while row + BLOCK_ROWS <= m {
            blocks.rows::<BLOCK_ROWS>(a, row, out);
            row += BLOCK_ROWS;
        }
        match m - row {
            3 => blocks.rows::<3>(a, row, out),
            2 => blocks.rows::<2>(a, row, out),
            1 => blocks.rows::<1>(a, row, out),
            _ => {}
        }
    }
}

/// Adds row `row` of `g` to `sums`.
///
/// # Safety
/// The CPU has AVX-512F; the lanes within `masks` of row `row` are readable.
#[inline(always)]
unsafe fn add_row<const REGISTERS: usize>(
    sums: &mut [__m512; REGISTERS],
    g: Strided,
    row: usize,
    masks: &[__mmask16; REGISTERS],
) {
    // SAFETY: as the caller promises.
    unsafe {
        let values = load_row(g.start.add(row * g.row_stride), masks);
        for (sum, value) in sums.iter_mut().zip(values) {
            *sum = _mm512_add_ps(*sum, value);
        }
    }
}

/// A row of up to `16 × REGISTERS` values, the lanes outside `masks` zero.
///
/// # Safety
/// The CPU has AVX-512F; the lanes within `masks` are readable from `row`.
#[inline(always)]
unsafe fn load_row<const REGISTERS: usize>(
    row: *const f32,
    masks: &[__mmask16; REGISTERS],
) -> [__m512; REGISTERS] {
    // SAFETY: as the caller promises. (`REGISTERS` is a constant: the loop unrolls, and
    // the kernels inline all of this; their disassembly has no calls.)
    unsafe {
        let mut registers = [_mm512_setzero_ps(); REGISTERS];
        for (r, (register, mask)) in registers.iter_mut().zip(masks).enumerate() {
            *register = _mm512_maskz_loadu_ps(*mask, row.add(16 * r));
        }
        registers
    }
}

/// What every block of rows shares.
struct Blocks<const REGISTERS: usize> {
    b: Strided,
    k: usize,
    n: usize,
    masks: [__mmask16; REGISTERS],
    bias: Option<[__m512; REGISTERS]>,
    /// Whether values are stored as `max(0, value)`.
    relu: bool,
}

impl<const REGISTERS: usize> Blocks<REGISTERS> {
    /// Result rows `first..first + ROWS`, summed in registers and stored once.
    ///
    /// # Safety
    /// As [`affine_kernel`], with `first + ROWS <= m`.
    #[inline(always)]
    unsafe fn rows<const ROWS: usize>(&self, a: Strided, first: usize, out: *mut f32) {
        // SAFETY: every pointer below stays within the operands the caller describes.
        unsafe {
            let mut sums = [[_mm512_setzero_ps(); REGISTERS]; ROWS];
            let a_rows = a.start.add(first * a.row_stride);
            for p in 0..self.k {
                let b_row = self.b.start.add(p * self.b.row_stride);
                let b_p = load_row(b_row, &self.masks);
                let a_p = a_rows.add(p * a.column_stride);
                for (i, row_sums) in sums.iter_mut().enumerate() {
                    let a_ip = _mm512_set1_ps(*a_p.add(i * a.row_stride));
                    for (sum, b_pr) in row_sums.iter_mut().zip(&b_p) {
                        *sum = _mm512_fmadd_ps(a_ip, *b_pr, *sum);
                    }
                }
            }
            for (i, row_sums) in sums.iter().enumerate() {
                let out_row = out.add((first + i) * self.n);
                for (r, sum) in row_sums.iter().enumerate() {
                    let mut value = match &self.bias {
                        Some(bias) => _mm512_add_ps(*sum, bias[r]),
                        None => *sum,
                    };
                    if self.relu {
                        value = _mm512_max_ps(value, _mm512_setzero_ps());
                    }
                    _mm512_mask_storeu_ps(out_row.add(16 * r), self.masks[r], value);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_small_products_on_cpus_with_avx512_and_matches_matrixmultiply() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return;
        }
        let a = Array2::from_shape_fn((7, 5), |(i, j)| (i * 5 + j) as f32 * 0.5 - 3.0);
        let b = Array2::from_shape_fn((5, 20), |(i, j)| (i + 2 * j) as f32 * 0.25 - 2.0);
        let bias = Array2::from_shape_fn((1, 20), |(_, j)| j as f32);
        let got = affine(a.view(), b.view(), Some(bias.row(0)), false).expect("small path taken");
        // Small integers and quarters: every sum is exact, whatever the order.
        assert_eq!(got, a.dot(&b) + &bias);
        let wide = Array2::<f32>::zeros((5, 33));
        assert!(affine(a.view(), wide.view(), None, false).is_none());
        // Shapes that do not fit go to the general path, which reports them.
        assert!(affine(a.view(), b.t(), None, false).is_none());
        let short_bias = Array2::<f32>::zeros((1, 19));
        assert!(affine(a.view(), b.view(), Some(short_bias.row(0)), false).is_none());
        let sums = column_sums(b.view()).expect("small path taken");
        assert_eq!(
            sums,
            b.sum_axis(ndarray::Axis(0)).insert_axis(ndarray::Axis(0))
        );
    }

    #[test]
    fn a_transposed_operand_is_copied_into_rows_whatever_its_layout() {
        let b = Array2::from_shape_fn((5, 3), |(i, j)| (i * 3 + j) as f32);
        // A transposed kernel (column-major), a strided view, and a single column.
        for view in [
            b.t(),
            b.slice(ndarray::s![..;2, ..]),
            b.slice(ndarray::s![.., 1..2]),
        ] {
            let rows = row_major(view);
            assert!(rows.is_standard_layout());
            assert_eq!(rows, view);
        }
    }
}
