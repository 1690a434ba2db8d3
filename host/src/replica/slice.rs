//! Each rank's share of a global batch: a contiguous run of its rows, the first ranks
//! taking one more row when the batch does not divide evenly, so the shares cover the
//! batch in rank order.

use std::ops::Range;

use estimator_plugin_api::abi::{NamedView, TensorData, TensorView};

use crate::input::BatchRef;

/// The rows of a batch of `len` that rank `rank` of `size` takes.
pub fn rows_of_rank(len: usize, rank: usize, size: usize) -> Range<usize> {
    let size = size.max(1);
    let (base, extra) = (len / size, len % size);
    let start = rank * base + rank.min(extra);
    let end = start + base + usize::from(rank < extra);
    start.min(len)..end.min(len)
}

/// Views of a batch's rows for one rank. The shapes are kept in buffers reused from step to
/// step.
#[derive(Default)]
pub struct BatchSlicer {
    shapes: Vec<Vec<usize>>,
}

impl BatchSlicer {
    /// The rows `rows` of `batch`.
    pub fn slice<'a>(&'a mut self, batch: &BatchRef<'a>, rows: Range<usize>) -> BatchRef<'a> {
        let columns = batch.features.len() + usize::from(batch.labels.is_some());
        self.shapes.resize_with(columns, Vec::new);
        for (shape, view) in self.shapes.iter_mut().zip(
            batch
                .features
                .iter()
                .map(|f| &f.tensor)
                .chain(batch.labels.as_ref()),
        ) {
            shape.clear();
            shape.extend_from_slice(view.shape.as_slice());
            if let Some(first) = shape.first_mut() {
                *first = rows.len();
            }
        }
        let (feature_shapes, label_shape) = self.shapes.split_at(batch.features.len());
        let features = batch
            .features
            .iter()
            .zip(feature_shapes)
            .map(|(f, shape)| NamedView {
                name: f.name,
                tensor: rows_of(&f.tensor, shape, &rows),
            })
            .collect();
        let labels = batch
            .labels
            .as_ref()
            .zip(label_shape.first())
            .map(|(t, shape)| rows_of(t, shape, &rows));
        BatchRef {
            features,
            labels,
            len: rows.len(),
            global_len: batch.global_len,
        }
    }
}

/// Rows `rows` of `t`, shaped `shape`.
fn rows_of<'a>(t: &TensorView<'a>, shape: &'a [usize], rows: &Range<usize>) -> TensorView<'a> {
    let width: usize = t.shape.iter().skip(1).product();
    let range = rows.start * width..rows.end * width;
    let data = match t.data {
        TensorData::F32(v) => TensorData::F32(v.as_slice()[range].into()),
        TensorData::I64(v) => TensorData::I64(v.as_slice()[range].into()),
        TensorData::Str(v) => TensorData::Str(v.as_slice()[range].into()),
    };
    TensorView {
        shape: shape.into(),
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_take_contiguous_shares_that_cover_the_batch_in_order() {
        assert_eq!(rows_of_rank(10, 0, 1), 0..10);
        let shares: Vec<_> = (0..3).map(|r| rows_of_rank(10, r, 3)).collect();
        assert_eq!(shares, [0..4, 4..7, 7..10]);
        let short: Vec<_> = (0..4).map(|r| rows_of_rank(2, r, 4)).collect();
        assert_eq!(short, [0..1, 1..2, 2..2, 2..2], "a rank may get no rows");
    }

    #[test]
    fn a_slice_views_its_rows_of_every_column() {
        let (x, labels) = ([0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0], [7i64, 8, 9]);
        let (x_shape, label_shape) = ([3usize, 2], [3usize]);
        let batch = BatchRef {
            features: vec![NamedView {
                name: "x".into(),
                tensor: TensorView::f32(&x_shape, &x),
            }],
            labels: Some(TensorView::i64(&label_shape, &labels)),
            len: 3,
            global_len: 3,
        };
        let mut slicer = BatchSlicer::default();
        let part = slicer.slice(&batch, 1..3);
        assert_eq!(part.len, 2);
        assert_eq!(part.features[0].tensor.shape.as_slice(), &[2, 2]);
        let TensorData::F32(v) = part.features[0].tensor.data else {
            panic!("f32")
        };
        assert_eq!(v.as_slice(), &[2.0, 3.0, 4.0, 5.0]);
        let labels = part.labels.expect("labels");
        assert_eq!(labels.shape.as_slice(), &[2]);
        let TensorData::I64(l) = labels.data else {
            panic!("i64")
        };
        assert_eq!(l.as_slice(), &[8, 9]);
    }
}
