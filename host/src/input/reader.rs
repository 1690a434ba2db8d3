//! Reading rows pass after pass: from the source, or from the first pass's chunks when
//! `cache` keeps them.

use std::rc::Rc;

use estimator_plugin_api::abi::{InputSourceBox, Tensor, TensorBuf};

use super::pipeline::{Opener, PipelineConfig};
use super::rows::{RowLayout, Rows};
use super::schema::Schema;
use crate::error::{Error, Result};

/// One example: a row of a chunk the source produced.
#[derive(Clone)]
pub(super) struct RowRef {
    pub(super) chunk: Rc<Rows>,
    pub(super) row: usize,
    /// Its number in the pass, counting from 0: how a saved position names it.
    pub(super) ordinal: u64,
}

/// Reads rows pass after pass, from the source or from the cached first pass.
pub(super) struct RowReader {
    pub(super) opener: Opener,
    pub(super) source: Option<InputSourceBox>,
    pub(super) use_cache: bool,
    pub(super) cache: Vec<Rc<Rows>>,
    pub(super) cache_complete: bool,
    /// The chunk being read and its number of rows.
    pub(super) current: Option<(Rc<Rows>, usize)>,
    pub(super) next_cached: usize,
    pub(super) row: usize,
    /// Rows read in this pass: the next row's ordinal.
    pub(super) rows_read: u64,
    pub(super) schema: Option<Schema>,
    /// Where the schema's f32 features sit in each chunk's row-major block; empty (the
    /// chunks kept as columns) without a shuffle, whose batches take consecutive rows,
    /// which gathering by column reads in order.
    pub(super) layout: RowLayout,
    shuffled: bool,
    pub(super) label: String,
    pub(super) plugin: String,
}

impl RowReader {
    pub(super) fn new(opener: Opener, config: &PipelineConfig) -> Self {
        RowReader {
            opener,
            source: None,
            use_cache: config.cache,
            cache: Vec::new(),
            cache_complete: false,
            current: None,
            next_cached: 0,
            row: 0,
            rows_read: 0,
            schema: None,
            layout: RowLayout::default(),
            shuffled: config.shuffle.is_some(),
            label: config.label.clone(),
            plugin: config.plugin.clone(),
        }
    }

    pub(super) fn start_pass(&mut self) -> Result<()> {
        self.current = None;
        self.row = 0;
        self.next_cached = 0;
        self.rows_read = 0;
        if !self.cache_complete {
            self.cache.clear();
            self.source = Some((self.opener)()?);
        }
        Ok(())
    }

    /// The next row of this pass, or `None` at its end.
    pub(super) fn next_row(&mut self) -> Result<Option<RowRef>> {
        loop {
            if let Some((chunk, rows)) = &self.current {
                if self.row < *rows {
                    self.row += 1;
                    self.rows_read += 1;
                    return Ok(Some(RowRef {
                        chunk: Rc::clone(chunk),
                        row: self.row - 1,
                        ordinal: self.rows_read - 1,
                    }));
                }
            }
            if !self.advance_chunk()? {
                return Ok(None);
            }
        }
    }

    pub(super) fn advance_chunk(&mut self) -> Result<bool> {
        self.row = 0;
        if self.cache_complete {
            let Some(chunk) = self.cache.get(self.next_cached) else {
                return Ok(false);
            };
            let rows = chunk
                .chunk
                .features
                .first()
                .map_or(0, |f| f.tensor.batch_len());
            self.current = Some((Rc::clone(chunk), rows));
            self.next_cached += 1;
            return Ok(true);
        }
        let Some(source) = self.source.as_mut() else {
            return Ok(false);
        };
        let next = source
            .next_chunk()
            .into_result()
            .map_err(|source| Error::PluginCall {
                plugin: self.plugin.clone(),
                call: format!("{} next_chunk", self.label),
                source,
            })?;
        let Some(chunk) = next.into_option() else {
            self.source = None;
            self.current = None;
            self.cache_complete = self.use_cache;
            self.next_cached = self.cache.len();
            return Ok(false);
        };
        if self.schema.is_none() {
            let schema = Schema::of(&chunk);
            if self.shuffled {
                self.layout = RowLayout::of(&schema);
            }
            self.schema = Some(schema);
        }
        let rows = match &self.schema {
            Some(schema) => schema.check(&chunk, &self.label)?,
            None => 0,
        };
        let chunk = Rc::new(Rows::new(chunk, rows, &self.layout));
        if self.use_cache {
            self.cache.push(Rc::clone(&chunk));
        }
        self.current = Some((chunk, rows));
        Ok(true)
    }
}

/// Stacks tensors along their first dimension; they share dtype and row shape.
pub fn concatenate_tensors(tensors: &[&Tensor]) -> Tensor {
    let rows: usize = tensors.iter().map(|t| t.batch_len()).sum();
    let mut shape: Vec<usize> = tensors.first().map_or(vec![0], |t| t.shape.to_vec());
    if let Some(first) = shape.first_mut() {
        *first = rows;
    }
    let data = match tensors.first().map(|t| &t.data) {
        Some(TensorBuf::I64(_)) => TensorBuf::I64(
            tensors
                .iter()
                .flat_map(|t| match &t.data {
                    TensorBuf::I64(v) => v.as_slice(),
                    _ => &[],
                })
                .copied()
                .collect(),
        ),
        Some(TensorBuf::Str(_)) => TensorBuf::Str(
            tensors
                .iter()
                .flat_map(|t| match &t.data {
                    TensorBuf::Str(v) => v.as_slice(),
                    _ => &[],
                })
                .cloned()
                .collect(),
        ),
        _ => TensorBuf::F32(
            tensors
                .iter()
                .flat_map(|t| match &t.data {
                    TensorBuf::F32(v) => v.as_slice(),
                    _ => &[],
                })
                .copied()
                .collect(),
        ),
    };
    Tensor {
        shape: shape.into(),
        data,
    }
}
