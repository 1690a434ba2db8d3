//! The columns every chunk of a source must have, taken from its first chunk.

use abi_stable::std_types::RString;
use estimator_plugin_api::abi::{Chunk, DType, Tensor, TensorBuf};

use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq)]
pub(super) struct ColumnSchema {
    pub(super) name: String,
    /// Shape of one example (the chunk's shape without its leading dimension).
    pub(super) row_shape: Vec<usize>,
    pub(super) width: usize,
    pub(super) dtype: DType,
}

impl ColumnSchema {
    pub(super) fn of(name: &str, tensor: &Tensor) -> Self {
        ColumnSchema {
            name: name.to_owned(),
            row_shape: tensor.shape.iter().skip(1).copied().collect(),
            width: tensor.shape.iter().skip(1).product(),
            dtype: tensor.dtype(),
        }
    }

    /// Whether `tensor` named `name` is this column's layout (checked for every chunk of a
    /// streamed input, so without building a schema of it).
    pub(super) fn fits(&self, name: &str, tensor: &Tensor) -> bool {
        self.name == name
            && tensor.shape.iter().skip(1).eq(self.row_shape.iter())
            && tensor.dtype() == self.dtype
    }

    /// The shape of a batch of `rows` examples.
    pub(super) fn batch_shape(&self, rows: usize) -> Vec<usize> {
        std::iter::once(rows)
            .chain(self.row_shape.iter().copied())
            .collect()
    }

    pub(super) fn alloc(&self, rows: usize) -> TensorBuf {
        let n = self.width * rows;
        match self.dtype {
            DType::F32 => TensorBuf::F32(vec![0.0; n].into()),
            DType::I64 => TensorBuf::I64(vec![0; n].into()),
            DType::Str => TensorBuf::Str(vec![RString::new(); n].into()),
        }
    }
}

/// The columns every chunk must have, taken from the first chunk.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Schema {
    pub(super) features: Vec<ColumnSchema>,
    pub(super) label: Option<ColumnSchema>,
}

impl Schema {
    pub(super) fn of(chunk: &Chunk) -> Self {
        Schema {
            features: chunk
                .features
                .iter()
                .map(|f| ColumnSchema::of(&f.name, &f.tensor))
                .collect(),
            label: chunk
                .labels
                .as_ref()
                .into_option()
                .map(|t| ColumnSchema::of("labels", t)),
        }
    }

    /// Checks a chunk against the schema and that each column holds `rows × width` values;
    /// returns the number of rows.
    pub(super) fn check(&self, chunk: &Chunk, label: &str) -> Result<usize> {
        let rows = chunk.features.first().map_or(0, |f| f.tensor.batch_len());
        let labels = chunk.labels.as_ref().into_option();
        let fits = chunk.features.len() == self.features.len()
            && chunk
                .features
                .iter()
                .zip(&self.features)
                .all(|(f, col)| col.fits(&f.name, &f.tensor))
            && match (labels, &self.label) {
                (Some(t), Some(col)) => col.fits("labels", t),
                (None, None) => true,
                _ => false,
            };
        if !fits {
            return Err(Error::Data(format!(
                "{label}: a chunk's columns differ from the first chunk's"
            )));
        }
        let tensors = chunk
            .features
            .iter()
            .map(|f| &f.tensor)
            .chain(chunk.labels.as_ref().into_option());
        for t in tensors {
            if t.batch_len() != rows || t.shape_len() != t.data.len() {
                return Err(Error::Data(format!(
                    "{label}: a chunk's columns have different numbers of rows or do not match their shapes"
                )));
            }
        }
        Ok(rows)
    }
}
