//! The input pipeline: a plugin source, then the generic stages shuffle(buffer, seed),
//! repeat and batch, in TF's order `shuffle(B).repeat().batch(N)`.
//!
//! Rows are copied from the source's chunks into preallocated slots (the shuffle buffer,
//! then the batch), so steady-state batching allocates nothing. With `cache` (the default),
//! the first pass's chunks are kept and later passes replay them instead of re-reading.

use std::rc::Rc;

use abi_stable::std_types::RString;
use estimator_plugin_api::abi::{
    Batch, InputSourceBox, NamedView, Tensor, TensorBuf, TensorData, TensorView,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};

/// Opens the source again for a new pass over the data.
pub type Opener = Box<dyn FnMut() -> Result<InputSourceBox>>;

/// Pipeline settings from the manifest's input entry.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// `input.<mode>` in messages.
    pub label: String,
    pub batch_size: usize,
    pub shuffle: Option<usize>,
    pub repeat: bool,
    pub drop_remainder: bool,
    pub cache: bool,
}

#[derive(Clone, Debug, PartialEq)]
struct ColumnSchema {
    name: String,
    /// Shape of one example (the chunk's shape without its leading dimension).
    row_shape: Vec<usize>,
    width: usize,
    dtype: estimator_plugin_api::abi::DType,
}

/// Columnar storage with a fixed number of row slots.
struct Slots {
    columns: Vec<TensorBuf>,
    label: Option<TensorBuf>,
}

fn alloc(schema: &ColumnSchema, rows: usize) -> TensorBuf {
    let n = schema.width * rows;
    match schema.dtype {
        estimator_plugin_api::abi::DType::F32 => TensorBuf::F32(vec![0.0; n].into()),
        estimator_plugin_api::abi::DType::I64 => TensorBuf::I64(vec![0; n].into()),
        estimator_plugin_api::abi::DType::Str => TensorBuf::Str(vec![RString::new(); n].into()),
    }
}

fn copy_row(src: &TensorBuf, src_row: usize, dst: &mut TensorBuf, dst_row: usize, width: usize) {
    let (s, d) = (src_row * width, dst_row * width);
    match (src, dst) {
        (TensorBuf::F32(a), TensorBuf::F32(b)) => b[d..d + width].copy_from_slice(&a[s..s + width]),
        (TensorBuf::I64(a), TensorBuf::I64(b)) => b[d..d + width].copy_from_slice(&a[s..s + width]),
        (TensorBuf::Str(a), TensorBuf::Str(b)) => {
            b[d..d + width].clone_from_slice(&a[s..s + width])
        }
        // Schemas are checked per chunk, so dtypes always agree here.
        _ => {}
    }
}

impl Slots {
    fn new(schema: &Schema, rows: usize) -> Self {
        Slots {
            columns: schema.features.iter().map(|c| alloc(c, rows)).collect(),
            label: schema.label.as_ref().map(|c| alloc(c, rows)),
        }
    }

    fn copy_from_chunk(&mut self, schema: &Schema, chunk: &Batch, row: usize, slot: usize) {
        for ((dst, src), col) in self
            .columns
            .iter_mut()
            .zip(chunk.features.iter())
            .zip(&schema.features)
        {
            copy_row(&src.tensor.data, row, dst, slot, col.width);
        }
        if let (Some(dst), Some(src), Some(col)) = (
            &mut self.label,
            chunk.labels.as_ref().into_option(),
            &schema.label,
        ) {
            copy_row(&src.data, row, dst, slot, col.width);
        }
    }

    fn copy_from_slots(&mut self, schema: &Schema, src: &Slots, row: usize, slot: usize) {
        for ((dst, src), col) in self
            .columns
            .iter_mut()
            .zip(&src.columns)
            .zip(&schema.features)
        {
            copy_row(src, row, dst, slot, col.width);
        }
        if let (Some(dst), Some(src), Some(col)) = (&mut self.label, &src.label, &schema.label) {
            copy_row(src, row, dst, slot, col.width);
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Schema {
    features: Vec<ColumnSchema>,
    label: Option<ColumnSchema>,
}

fn column_schema(name: &str, tensor: &Tensor) -> ColumnSchema {
    ColumnSchema {
        name: name.to_owned(),
        row_shape: tensor.shape.iter().skip(1).copied().collect(),
        width: tensor.shape.iter().skip(1).product(),
        dtype: tensor.dtype(),
    }
}

impl Schema {
    fn of(chunk: &Batch) -> Self {
        Schema {
            features: chunk
                .features
                .iter()
                .map(|f| column_schema(&f.name, &f.tensor))
                .collect(),
            label: chunk
                .labels
                .as_ref()
                .into_option()
                .map(|t| column_schema("labels", t)),
        }
    }

    /// Checks a chunk against the schema and that each column holds `rows × width` values.
    fn check(&self, chunk: &Batch, label: &str) -> Result<usize> {
        let rows = chunk.features.first().map_or(0, |f| f.tensor.batch_len());
        let got = Schema::of(chunk);
        let same_layout = |a: &ColumnSchema, b: &ColumnSchema| {
            a.name == b.name && a.row_shape == b.row_shape && a.dtype == b.dtype
        };
        let fits = got.features.len() == self.features.len()
            && got
                .features
                .iter()
                .zip(&self.features)
                .all(|(a, b)| same_layout(a, b))
            && got.label.is_some() == self.label.is_some()
            && got
                .label
                .iter()
                .zip(&self.label)
                .all(|(a, b)| same_layout(a, b));
        if !fits {
            return Err(Error::Usage(format!(
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
                return Err(Error::Usage(format!(
                    "{label}: a chunk's columns have different numbers of rows or do not match their shapes"
                )));
            }
        }
        Ok(rows)
    }
}

/// Reads rows pass after pass, from the source or from the cached first pass.
struct RowReader {
    opener: Opener,
    source: Option<InputSourceBox>,
    use_cache: bool,
    cache: Vec<Batch>,
    cache_complete: bool,
    /// The chunk being read: an index into `cache`, or a chunk not cached.
    current: Option<Current>,
    next_cached: usize,
    row: usize,
    schema: Option<Rc<Schema>>,
    label: String,
}

enum Current {
    Cached(usize),
    Owned(Batch),
}

impl RowReader {
    fn chunk(&self) -> Option<&Batch> {
        match self.current.as_ref()? {
            Current::Cached(i) => self.cache.get(*i),
            Current::Owned(b) => Some(b),
        }
    }

    fn start_pass(&mut self) -> Result<()> {
        self.current = None;
        self.row = 0;
        self.next_cached = 0;
        if !self.cache_complete {
            self.cache.clear();
            self.source = Some((self.opener)()?);
        }
        Ok(())
    }

    /// Hands the next row of this pass to `take`; `false` at the end of the pass.
    fn next_row(&mut self, take: impl FnOnce(&Schema, &Batch, usize)) -> Result<bool> {
        loop {
            if let (Some(chunk), Some(schema)) = (self.chunk(), self.schema.as_ref()) {
                if self.row < chunk.features.first().map_or(0, |f| f.tensor.batch_len()) {
                    take(schema, chunk, self.row);
                    self.row += 1;
                    return Ok(true);
                }
            }
            if !self.advance_chunk()? {
                return Ok(false);
            }
        }
    }

    fn advance_chunk(&mut self) -> Result<bool> {
        self.row = 0;
        if self.cache_complete {
            if self.next_cached < self.cache.len() {
                self.current = Some(Current::Cached(self.next_cached));
                self.next_cached += 1;
                return Ok(true);
            }
            return Ok(false);
        }
        let Some(source) = self.source.as_mut() else {
            return Ok(false);
        };
        let next = source
            .next_chunk()
            .into_result()
            .map_err(|e| Error::Usage(format!("{}: {e}", self.label)))?;
        match next.into_option() {
            Some(chunk) => {
                match &self.schema {
                    Some(schema) => {
                        schema.check(&chunk, &self.label)?;
                    }
                    None => {
                        let schema = Schema::of(&chunk);
                        schema.check(&chunk, &self.label)?;
                        self.schema = Some(Rc::new(schema));
                    }
                }
                if self.use_cache {
                    self.cache.push(chunk);
                    self.current = Some(Current::Cached(self.cache.len() - 1));
                } else {
                    self.current = Some(Current::Owned(chunk));
                }
                Ok(true)
            }
            None => {
                self.source = None;
                self.current = None;
                self.cache_complete = self.use_cache;
                self.next_cached = self.cache.len();
                Ok(false)
            }
        }
    }
}

/// TF's shuffle buffer: holds up to `capacity` rows; each draw takes a uniformly random
/// one and refills its slot from the input.
struct ShuffleBuffer {
    slots: Option<Slots>,
    capacity: usize,
    len: usize,
    rng: ChaCha8Rng,
    pass_ended: bool,
}

/// One batch of examples, borrowed from the pipeline until the next call.
pub struct BatchRef<'a> {
    pub features: Vec<NamedView<'a>>,
    pub labels: Option<TensorView<'a>>,
    pub len: usize,
}

pub struct Pipeline {
    config: PipelineConfig,
    reader: RowReader,
    shuffle: Option<ShuffleBuffer>,
    batch: Option<Slots>,
    shapes: Vec<Vec<usize>>,
    label_shape: Vec<usize>,
    started: bool,
    /// Rows seen in the current pass; a pass with none ends a repeating input.
    rows_this_pass: usize,
}

impl Pipeline {
    pub fn new(config: PipelineConfig, opener: Opener, rng: ChaCha8Rng) -> Self {
        let shuffle = config.shuffle.map(|capacity| ShuffleBuffer {
            slots: None,
            capacity,
            len: 0,
            rng,
            pass_ended: false,
        });
        let reader = RowReader {
            opener,
            source: None,
            use_cache: config.cache,
            cache: Vec::new(),
            cache_complete: false,
            current: None,
            next_cached: 0,
            row: 0,
            schema: None,
            label: config.label.clone(),
        };
        Pipeline {
            config,
            reader,
            shuffle,
            batch: None,
            shapes: Vec::new(),
            label_shape: Vec::new(),
            started: false,
            rows_this_pass: 0,
        }
    }

    /// The next batch, or `None` at the end of the input.
    pub fn next_batch(&mut self) -> Result<Option<BatchRef<'_>>> {
        if !self.started {
            self.reader.start_pass()?;
            self.started = true;
        }
        let mut filled = 0;
        while filled < self.config.batch_size {
            if !self.next_element(filled)? {
                break;
            }
            filled += 1;
        }
        if filled == 0 || (filled < self.config.batch_size && self.config.drop_remainder) {
            return Ok(None);
        }
        Ok(Some(self.views(filled)))
    }

    /// Moves the next element into batch slot `slot`; `false` at the end of the input.
    fn next_element(&mut self, slot: usize) -> Result<bool> {
        loop {
            let got = match self.shuffle.is_some() {
                true => self.next_shuffled(slot)?,
                false => self.next_unshuffled(slot)?,
            };
            if got {
                self.rows_this_pass += 1;
                return Ok(true);
            }
            if !self.config.repeat || self.rows_this_pass == 0 {
                return Ok(false);
            }
            self.rows_this_pass = 0;
            self.reader.start_pass()?;
            if let Some(s) = self.shuffle.as_mut() {
                s.pass_ended = false;
            }
        }
    }

    fn next_unshuffled(&mut self, slot: usize) -> Result<bool> {
        let (batch, size) = (&mut self.batch, self.config.batch_size);
        self.reader.next_row(|schema, chunk, row| {
            batch
                .get_or_insert_with(|| Slots::new(schema, size))
                .copy_from_chunk(schema, chunk, row, slot);
        })
    }

    fn next_shuffled(&mut self, slot: usize) -> Result<bool> {
        let Some(shuffle) = self.shuffle.as_mut() else {
            return Ok(false);
        };
        // Fill the buffer from the input until it is full or this pass ends.
        while shuffle.len < shuffle.capacity && !shuffle.pass_ended {
            let (slots, len, capacity) = (&mut shuffle.slots, shuffle.len, shuffle.capacity);
            let got = self.reader.next_row(|schema, chunk, row| {
                slots
                    .get_or_insert_with(|| Slots::new(schema, capacity))
                    .copy_from_chunk(schema, chunk, row, len);
            })?;
            if got {
                shuffle.len += 1;
            } else {
                shuffle.pass_ended = true;
            }
        }
        if shuffle.len == 0 {
            return Ok(false);
        }
        let Some(schema) = self.reader.schema.clone() else {
            return Ok(false);
        };
        let pick = shuffle.rng.gen_range(0..shuffle.len);
        let Some(buffer) = shuffle.slots.as_mut() else {
            return Ok(false);
        };
        let size = self.config.batch_size;
        self.batch
            .get_or_insert_with(|| Slots::new(&schema, size))
            .copy_from_slots(&schema, buffer, pick, slot);
        // Refill the picked slot: from the input if it has more, else with the last row.
        let refilled = !shuffle.pass_ended
            && self
                .reader
                .next_row(|schema, chunk, row| buffer.copy_from_chunk(schema, chunk, row, pick))?;
        if !refilled {
            shuffle.pass_ended = true;
            let last = shuffle.len - 1;
            if pick != last {
                move_slot(buffer, &schema, last, pick);
            }
            shuffle.len -= 1;
        }
        Ok(true)
    }

    fn views(&mut self, len: usize) -> BatchRef<'_> {
        let schema = match self.reader.schema.as_ref() {
            Some(s) => s,
            None => {
                return BatchRef {
                    features: Vec::new(),
                    labels: None,
                    len: 0,
                }
            }
        };
        if self.shapes.len() != schema.features.len() {
            self.shapes = schema
                .features
                .iter()
                .map(|c| {
                    std::iter::once(0)
                        .chain(c.row_shape.iter().copied())
                        .collect()
                })
                .collect();
            self.label_shape = schema
                .label
                .as_ref()
                .map(|c| {
                    std::iter::once(0)
                        .chain(c.row_shape.iter().copied())
                        .collect()
                })
                .unwrap_or_default();
        }
        for shape in &mut self.shapes {
            shape[0] = len;
        }
        if let Some(first) = self.label_shape.first_mut() {
            *first = len;
        }
        let Some(batch) = self.batch.as_ref() else {
            return BatchRef {
                features: Vec::new(),
                labels: None,
                len: 0,
            };
        };
        let features = schema
            .features
            .iter()
            .zip(&batch.columns)
            .zip(&self.shapes)
            .map(|((col, buf), shape)| NamedView {
                name: col.name.as_str().into(),
                tensor: view(buf, shape, col.width * len),
            })
            .collect();
        let labels = match (&batch.label, &schema.label) {
            (Some(buf), Some(col)) => Some(view(buf, &self.label_shape, col.width * len)),
            _ => None,
        };
        BatchRef {
            features,
            labels,
            len,
        }
    }
}

fn move_slot(buffer: &mut Slots, schema: &Schema, from: usize, to: usize) {
    let move_in = |buf: &mut TensorBuf, width: usize| match buf {
        TensorBuf::F32(v) => v.copy_within(from * width..(from + 1) * width, to * width),
        TensorBuf::I64(v) => v.copy_within(from * width..(from + 1) * width, to * width),
        TensorBuf::Str(v) => {
            for i in 0..width {
                v.swap(from * width + i, to * width + i);
            }
        }
    };
    for (buf, col) in buffer.columns.iter_mut().zip(&schema.features) {
        move_in(buf, col.width);
    }
    if let (Some(buf), Some(col)) = (buffer.label.as_mut(), schema.label.as_ref()) {
        move_in(buf, col.width);
    }
}

fn view<'a>(buf: &'a TensorBuf, shape: &'a [usize], n: usize) -> TensorView<'a> {
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
