//! A chunk as the pipeline keeps it. A source gives columns, each a tensor over the chunk's
//! rows, and a batch picks rows, shuffled. Picking a row column by column touches one
//! cache line per column, which for a wide numeric data set is most of the cost of a batch.
//! So a chunk's f32 feature columns are moved into one row-major block, where a row's
//! values sit together: a shuffled batch then reads a few cache lines per row. The values
//! are moved, not copied, so the data set is held once. Without a shuffle a batch takes
//! consecutive rows, which the columns give in order, and chunks stay as they came.

use abi_stable::std_types::RVec;
use estimator_plugin_api::abi::{Chunk, DType, TensorBuf};

use super::schema::Schema;

/// Where each f32 feature column's values sit in a row of the row-major block.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct RowLayout {
    /// `(feature index, offset in the row, values per row)` of each f32 feature column.
    pub(super) columns: Vec<(usize, usize, usize)>,
    /// Values in one row of the block.
    pub(super) stride: usize,
}

impl RowLayout {
    pub(super) fn of(schema: &Schema) -> Self {
        let mut layout = RowLayout::default();
        for (index, column) in schema.features.iter().enumerate() {
            if column.dtype == DType::F32 {
                layout.columns.push((index, layout.stride, column.width));
                layout.stride += column.width;
            }
        }
        layout
    }

    /// Whether feature `index` lives in the block.
    pub(super) fn holds(&self, index: usize) -> bool {
        self.columns.iter().any(|&(i, _, _)| i == index)
    }
}

/// A chunk whose f32 feature columns are in one row-major block; its other columns and
/// its labels stay in `chunk`, and the moved columns keep their shapes with no values.
pub(super) struct Rows {
    pub(super) chunk: Chunk,
    block: Vec<f32>,
    stride: usize,
}

impl Rows {
    /// `chunk` of `rows` rows, already checked against the schema `layout` comes from.
    pub(super) fn new(mut chunk: Chunk, rows: usize, layout: &RowLayout) -> Self {
        let stride = layout.stride;
        let mut block = vec![0.0f32; rows * stride];
        for &(index, offset, width) in &layout.columns {
            let Some(feature) = chunk.features.get_mut(index) else {
                continue;
            };
            let values = std::mem::replace(&mut feature.tensor.data, TensorBuf::F32(RVec::new()));
            let TensorBuf::F32(values) = values else {
                continue;
            };
            if width == 0 {
                continue;
            }
            for (row, src) in block
                .chunks_exact_mut(stride)
                .zip(values.chunks_exact(width))
            {
                row[offset..offset + width].copy_from_slice(src);
            }
        }
        Rows {
            chunk,
            block,
            stride,
        }
    }

    /// Row `row`'s f32 feature values, column after column as the layout places them.
    pub(super) fn row(&self, row: usize) -> &[f32] {
        self.block
            .get(row * self.stride..(row + 1) * self.stride)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use estimator_plugin_api::abi::{NamedTensor, Tensor};

    #[test]
    fn f32_columns_move_into_rows_and_the_others_stay() {
        let chunk = Chunk {
            features: vec![
                NamedTensor::new("a", Tensor::f32(vec![3], vec![1.0, 2.0, 3.0])),
                NamedTensor::new("id", Tensor::i64(vec![3], vec![7, 8, 9])),
                NamedTensor::new(
                    "b",
                    Tensor::f32(vec![3, 2], vec![10., 11., 20., 21., 30., 31.]),
                ),
            ]
            .into(),
            labels: abi_stable::std_types::ROption::RNone,
        };
        let layout = RowLayout::of(&Schema::of(&chunk));
        assert_eq!(layout.columns, [(0, 0, 1), (2, 1, 2)]);
        assert!(layout.holds(2) && !layout.holds(1));
        let rows = Rows::new(chunk, 3, &layout);
        assert_eq!(rows.row(1), [2.0, 20.0, 21.0]);
        assert_eq!(rows.row(2), [3.0, 30.0, 31.0]);
        assert_eq!(rows.row(3), [] as [f32; 0]);
        // The moved columns keep their shapes, not their values: held once.
        let b = &rows.chunk.features[2].tensor;
        assert_eq!((b.shape.as_slice(), b.data.len()), (&[3, 2][..], 0));
        assert_eq!(rows.chunk.features[1].tensor.data.len(), 3);
    }
}
