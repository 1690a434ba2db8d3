//! Gathering a batch: the rows picked for it are copied into buffers allocated once for
//! `batch_size` rows, and lent to model_fn as views. The f32 features come row by row from
//! each chunk's row-major block (see `rows`); the other columns one column at a time.

use estimator_plugin_api::abi::{NamedView, TensorBuf, TensorData, TensorView};

use super::pipeline::Pipeline;
use super::reader::RowRef;
use super::rows::{RowLayout, Rows};

/// One batch of examples, borrowed from the pipeline until the next call.
pub struct BatchRef<'a> {
    pub features: Vec<NamedView<'a>>,
    pub labels: Option<TensorView<'a>>,
    /// The rows here.
    pub len: usize,
    /// The rows of the whole batch: more than `len` for one rank's share of it in a
    /// data-parallel run, `len` otherwise.
    pub global_len: usize,
}

/// A batch's columns, allocated once for `batch_size` rows, with their shapes for the
/// current number of rows.
pub(super) struct BatchBuffers {
    pub(super) columns: Vec<TensorBuf>,
    pub(super) shapes: Vec<Vec<usize>>,
    pub(super) label: Option<(TensorBuf, Vec<usize>)>,
}

impl Pipeline {
    /// Copies the picked rows into the batch buffers, one column at a time.
    pub(super) fn gather(&mut self) {
        let Some(schema) = self.reader.schema.as_ref() else {
            return;
        };
        let size = self.config.batch_size;
        let batch = self.batch.get_or_insert_with(|| BatchBuffers {
            columns: schema.features.iter().map(|c| c.alloc(size)).collect(),
            shapes: schema.features.iter().map(|c| c.batch_shape(0)).collect(),
            label: schema
                .label
                .as_ref()
                .map(|c| (c.alloc(size), c.batch_shape(0))),
        });
        let rows = self.picked.len();
        let layout = &self.reader.layout;
        gather_rows(&mut batch.columns, layout, &self.picked);
        for (index, (column, col)) in batch.columns.iter_mut().zip(&schema.features).enumerate() {
            if layout.holds(index) {
                continue;
            }
            gather_column(column, col.width, &self.picked, |rows| {
                &rows.chunk.features[index].tensor.data
            });
        }
        // Written only when it changes: the step reads the shapes on another core, where
        // each line written here would be a cache miss.
        for shape in &mut batch.shapes {
            set_rows(shape, rows);
        }
        if let (Some((column, shape)), Some(col)) = (batch.label.as_mut(), &schema.label) {
            gather_column(column, col.width, &self.picked, |rows| {
                // Schemas are checked per chunk: a labelled schema means labelled chunks.
                match rows.chunk.labels.as_ref().into_option() {
                    Some(labels) => &labels.data,
                    None => &EMPTY,
                }
            });
            set_rows(shape, rows);
        }
    }

    pub(super) fn views(&self) -> Option<BatchRef<'_>> {
        let (schema, batch) = (self.reader.schema.as_ref()?, self.batch.as_ref()?);
        let names = schema.features.iter().map(|c| c.name.as_str());
        Some(batch.views_into(names, (self.picked.len(), self.batch_rows), Vec::new()))
    }
}

impl BatchBuffers {
    /// The bytes its values take (for strings, their handles).
    pub(super) fn bytes(&self) -> usize {
        let label = self.label.as_ref().map(|(label, _)| label);
        self.columns.iter().chain(label).map(buffer_bytes).sum()
    }

    /// Views of the first `len` rows, the feature columns named `names` in order, listed
    /// in `list`'s buffer.
    pub(super) fn views_into<'a>(
        &'a self,
        names: impl IntoIterator<Item = &'a str>,
        (len, global_len): (usize, usize),
        list: Vec<NamedView<'_>>,
    ) -> BatchRef<'a> {
        let mut features = crate::views::recycle(list);
        features.extend(names.into_iter().zip(&self.columns).zip(&self.shapes).map(
            |((name, buf), shape)| NamedView {
                name: name.into(),
                tensor: view(buf, shape),
            },
        ));
        let labels = self.label.as_ref().map(|(buf, shape)| view(buf, shape));
        BatchRef {
            features,
            labels,
            len,
            global_len,
        }
    }
}

pub(super) static EMPTY: TensorBuf = TensorBuf::F32(abi_stable::std_types::RVec::new());

/// Rows gathered together: their f32 values (16 KB for 256 columns) stay in the first-level
/// cache while each column takes its 16 values, one cache line of the batch's column.
const ROWS_TOGETHER: usize = 16;

/// Copies each picked row's f32 features, from its chunk's row-major block, into their
/// columns: a block of rows at a time, column by column, so that both the rows read and
/// the column written stay in cache.
fn gather_rows(columns: &mut [TensorBuf], layout: &RowLayout, picked: &[RowRef]) {
    let mut rows: [&[f32]; ROWS_TOGETHER] = [&[]; ROWS_TOGETHER];
    for (block, refs) in picked.chunks(ROWS_TOGETHER).enumerate() {
        for (row, r) in rows.iter_mut().zip(refs) {
            *row = r.chunk.row(r.row);
        }
        let rows = &rows[..refs.len()];
        let first = block * ROWS_TOGETHER;
        for &(index, offset, width) in &layout.columns {
            let Some(TensorBuf::F32(dst)) = columns.get_mut(index) else {
                continue;
            };
            let Some(dst) = dst.get_mut(first * width..(first + rows.len()) * width) else {
                continue;
            };
            match width {
                // Most columns hold one value: a `memcpy` call would cost more.
                1 => {
                    for (d, row) in dst.iter_mut().zip(rows) {
                        *d = row.get(offset).copied().unwrap_or_default();
                    }
                }
                _ => {
                    for (d, row) in dst.chunks_exact_mut(width).zip(rows) {
                        if let Some(src) = row.get(offset..offset + width) {
                            d.copy_from_slice(src);
                        }
                    }
                }
            }
        }
    }
}

/// Copies each picked row's values of one column into `dst`, row after row.
pub(super) fn gather_column<'r>(
    dst: &mut TensorBuf,
    width: usize,
    picked: &'r [RowRef],
    column: impl Fn(&'r Rows) -> &'r TensorBuf,
) {
    if width == 0 {
        return;
    }
    match dst {
        TensorBuf::F32(dst) => gather_values(dst, width, picked, |b| match column(b) {
            TensorBuf::F32(v) => v.as_slice(),
            _ => &[],
        }),
        TensorBuf::I64(dst) => gather_values(dst, width, picked, |b| match column(b) {
            TensorBuf::I64(v) => v.as_slice(),
            _ => &[],
        }),
        TensorBuf::Str(dst) => gather_values(dst, width, picked, |b| match column(b) {
            TensorBuf::Str(v) => v.as_slice(),
            _ => &[],
        }),
    }
}

/// The typed body of [`gather_column`]. Consecutive rows usually come from the same chunk
/// (always, without a shuffle), so the column is looked up again only when the chunk
/// changes. Values are copied one by one: rows are one to a few values wide, where a
/// `memcpy` call would cost more than the copy.
pub(super) fn gather_values<'r, T: Clone + 'r>(
    dst: &mut [T],
    width: usize,
    picked: &'r [RowRef],
    values: impl Fn(&'r Rows) -> &'r [T],
) {
    let mut current: Option<(*const Rows, &'r [T])> = None;
    for (r, out) in picked.iter().zip(dst.chunks_exact_mut(width)) {
        let chunk: &'r Rows = &r.chunk;
        let src = match current {
            Some((ptr, src)) if std::ptr::eq(ptr, chunk) => src,
            _ => {
                let src = values(chunk);
                current = Some((chunk, src));
                src
            }
        };
        // Schemas are checked per chunk, so the row is always in range.
        if let Some(row) = src.get(r.row * width..(r.row + 1) * width) {
            for (d, s) in out.iter_mut().zip(row) {
                d.clone_from(s);
            }
        }
    }
}

/// Sets a batch shape's rows, leaving its cache line alone when they are the same.
fn set_rows(shape: &mut [usize], rows: usize) {
    if let Some(first) = shape.first_mut().filter(|first| **first != rows) {
        *first = rows;
    }
}

/// The first rows of `buf`, as many as `shape` says.
fn view<'a>(buf: &'a TensorBuf, shape: &'a [usize]) -> TensorView<'a> {
    let n: usize = shape.iter().product();
    let data = match buf {
        TensorBuf::F32(v) => TensorData::F32(v[..n].into()),
        TensorBuf::I64(v) => TensorData::I64(v[..n].into()),
        TensorBuf::Str(v) => TensorData::Str(v[..n].into()),
    };
    TensorView {
        shape: shape.into(),
        data,
    }
}

fn buffer_bytes(buffer: &TensorBuf) -> usize {
    match buffer {
        TensorBuf::F32(values) => std::mem::size_of_val(values.as_slice()),
        TensorBuf::I64(values) => std::mem::size_of_val(values.as_slice()),
        TensorBuf::Str(values) => std::mem::size_of_val(values.as_slice()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_takes_its_columns_and_labels_bytes() {
        let buffers = BatchBuffers {
            columns: vec![
                TensorBuf::F32(vec![0.0; 10].into()),
                TensorBuf::F32(vec![0.0; 10].into()),
            ],
            shapes: vec![vec![10], vec![10]],
            label: Some((TensorBuf::I64(vec![0; 10].into()), vec![10])),
        };
        assert_eq!(buffers.bytes(), 10 * 4 * 2 + 10 * 8);
    }

    #[test]
    fn a_shape_takes_the_rows_of_a_batch() {
        let mut shape = [32, 4];
        set_rows(&mut shape, 32);
        assert_eq!(shape, [32, 4]);
        set_rows(&mut shape, 7);
        assert_eq!(shape, [7, 4]);
        set_rows(&mut [], 7);
    }
}
