//! The input pipeline: a plugin source, then the generic stages shuffle(buffer, seed),
//! repeat and batch, in TF's order `shuffle(B).repeat().batch(N)`.
//!
//! Rows are never copied on their way through the stages: the shuffle buffer holds
//! references to rows of the source's chunks, and only the rows picked for a batch are
//! gathered, column by column, into the batch's preallocated buffers. Steady-state
//! batching allocates nothing. With `cache` (the default), the first pass's chunks are kept,
//! joined into one, and later passes replay it instead of re-reading the source.

use std::rc::Rc;

use abi_stable::std_types::{ROption, RString};
use estimator_plugin_api::abi::{
    Batch, DType, InputSourceBox, NamedTensor, NamedView, Tensor, TensorBuf, TensorData, TensorView,
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
    /// The input plugin's name, for errors from its calls.
    pub plugin: String,
    pub batch_size: usize,
    pub shuffle: Option<usize>,
    pub repeat: bool,
    pub drop_remainder: bool,
    pub cache: bool,
}

/// One example: a row of a chunk the source produced.
#[derive(Clone)]
struct RowRef {
    chunk: Rc<Batch>,
    row: usize,
    /// Its number in the pass, counting from 0: how a saved position names it.
    ordinal: u64,
}

/// Where a training pipeline is, saved in checkpoints so that a resumed run reads on
/// exactly where the interrupted one stopped.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PipelinePosition {
    /// Passes started over the data; 0 before the first batch.
    pub passes: u64,
    /// Rows read from the source in the current pass.
    pub rows_read: u64,
    /// Rows passed on to batches in the current pass.
    pub rows_emitted: u64,
    /// The shuffle buffer's rows, by ordinal in the current pass, in slot order.
    pub shuffle_buffer: Vec<u64>,
    /// Whether the shuffle buffer has seen the end of the current pass.
    pub shuffle_pass_ended: bool,
    /// The shuffle RNG's position in its stream (a u128, as text for JSON's sake).
    pub shuffle_rng_word: String,
}

#[derive(Clone, Debug, PartialEq)]
struct ColumnSchema {
    name: String,
    /// Shape of one example (the chunk's shape without its leading dimension).
    row_shape: Vec<usize>,
    width: usize,
    dtype: DType,
}

impl ColumnSchema {
    fn of(name: &str, tensor: &Tensor) -> Self {
        ColumnSchema {
            name: name.to_owned(),
            row_shape: tensor.shape.iter().skip(1).copied().collect(),
            width: tensor.shape.iter().skip(1).product(),
            dtype: tensor.dtype(),
        }
    }

    fn same_layout(&self, other: &ColumnSchema) -> bool {
        self.name == other.name && self.row_shape == other.row_shape && self.dtype == other.dtype
    }

    /// The shape of a batch of `rows` examples.
    fn batch_shape(&self, rows: usize) -> Vec<usize> {
        std::iter::once(rows)
            .chain(self.row_shape.iter().copied())
            .collect()
    }

    fn alloc(&self, rows: usize) -> TensorBuf {
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
struct Schema {
    features: Vec<ColumnSchema>,
    label: Option<ColumnSchema>,
}

impl Schema {
    fn of(chunk: &Batch) -> Self {
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
    fn check(&self, chunk: &Batch, label: &str) -> Result<usize> {
        let rows = chunk.features.first().map_or(0, |f| f.tensor.batch_len());
        let got = Schema::of(chunk);
        let fits = got.features.len() == self.features.len()
            && got
                .features
                .iter()
                .zip(&self.features)
                .all(|(a, b)| a.same_layout(b))
            && got.label.is_some() == self.label.is_some()
            && got
                .label
                .iter()
                .zip(&self.label)
                .all(|(a, b)| a.same_layout(b));
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
    cache: Vec<Rc<Batch>>,
    cache_complete: bool,
    /// The chunk being read and its number of rows.
    current: Option<(Rc<Batch>, usize)>,
    next_cached: usize,
    row: usize,
    /// Rows read in this pass: the next row's ordinal.
    rows_read: u64,
    schema: Option<Schema>,
    label: String,
    plugin: String,
}

impl RowReader {
    fn new(opener: Opener, config: &PipelineConfig) -> Self {
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
            label: config.label.clone(),
            plugin: config.plugin.clone(),
        }
    }

    fn start_pass(&mut self) -> Result<()> {
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
    fn next_row(&mut self) -> Result<Option<RowRef>> {
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

    fn advance_chunk(&mut self) -> Result<bool> {
        self.row = 0;
        if self.cache_complete {
            let Some(chunk) = self.cache.get(self.next_cached) else {
                return Ok(false);
            };
            let rows = chunk.features.first().map_or(0, |f| f.tensor.batch_len());
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
            if self.cache.len() > 1 {
                // Later passes read one chunk: batches then gather from a single buffer.
                self.cache = vec![Rc::new(concatenate(&self.cache))];
            }
            self.next_cached = self.cache.len();
            return Ok(false);
        };
        let schema = self.schema.get_or_insert_with(|| Schema::of(&chunk));
        let rows = schema.check(&chunk, &self.label)?;
        let chunk = Rc::new(chunk);
        if self.use_cache {
            self.cache.push(Rc::clone(&chunk));
        }
        self.current = Some((chunk, rows));
        Ok(true)
    }
}

/// TF's shuffle buffer: holds up to `capacity` rows; each draw takes a uniformly random
/// one and refills its slot from the input, or, once the pass has ended, with the last row.
struct ShuffleBuffer {
    rows: Vec<RowRef>,
    capacity: usize,
    rng: ChaCha8Rng,
    pass_ended: bool,
}

impl ShuffleBuffer {
    fn draw(&mut self, reader: &mut RowReader) -> Result<Option<RowRef>> {
        while self.rows.len() < self.capacity && !self.pass_ended {
            match reader.next_row()? {
                Some(row) => self.rows.push(row),
                None => self.pass_ended = true,
            }
        }
        if self.rows.is_empty() {
            return Ok(None);
        }
        let pick = self.rng.gen_range(0..self.rows.len());
        if !self.pass_ended {
            if let Some(next) = reader.next_row()? {
                return Ok(Some(std::mem::replace(&mut self.rows[pick], next)));
            }
            self.pass_ended = true;
        }
        Ok(Some(self.rows.swap_remove(pick)))
    }
}

/// One batch of examples, borrowed from the pipeline until the next call.
pub struct BatchRef<'a> {
    pub features: Vec<NamedView<'a>>,
    pub labels: Option<TensorView<'a>>,
    pub len: usize,
}

/// A batch's columns, allocated once for `batch_size` rows, with their shapes for the
/// current number of rows.
struct BatchBuffers {
    columns: Vec<TensorBuf>,
    shapes: Vec<Vec<usize>>,
    label: Option<(TensorBuf, Vec<usize>)>,
}

pub struct Pipeline {
    config: PipelineConfig,
    reader: RowReader,
    shuffle: Option<ShuffleBuffer>,
    /// The rows of the batch being assembled.
    picked: Vec<RowRef>,
    batch: Option<BatchBuffers>,
    /// Passes started; 0 until the first batch is asked for.
    passes: u64,
    /// Rows seen in the current pass; a pass with none ends a repeating input.
    rows_this_pass: u64,
}

impl Pipeline {
    pub fn new(config: PipelineConfig, opener: Opener, rng: ChaCha8Rng) -> Self {
        let shuffle = config.shuffle.map(|capacity| ShuffleBuffer {
            rows: Vec::with_capacity(capacity),
            capacity,
            rng,
            pass_ended: false,
        });
        Pipeline {
            reader: RowReader::new(opener, &config),
            shuffle,
            picked: Vec::with_capacity(config.batch_size),
            batch: None,
            passes: 0,
            rows_this_pass: 0,
            config,
        }
    }

    /// The next batch, or `None` at the end of the input.
    pub fn next_batch(&mut self) -> Result<Option<BatchRef<'_>>> {
        if self.passes == 0 {
            self.start_pass()?;
        }
        self.picked.clear();
        while self.picked.len() < self.config.batch_size {
            match self.next_element()? {
                Some(row) => self.picked.push(row),
                None => break,
            }
        }
        let filled = self.picked.len();
        if filled == 0 || (filled < self.config.batch_size && self.config.drop_remainder) {
            return Ok(None);
        }
        self.gather();
        Ok(self.views())
    }

    /// The next element after shuffle and repeat; `None` at the end of the input.
    fn next_element(&mut self) -> Result<Option<RowRef>> {
        loop {
            let next = match self.shuffle.as_mut() {
                Some(buffer) => buffer.draw(&mut self.reader)?,
                None => self.reader.next_row()?,
            };
            if next.is_some() {
                self.rows_this_pass += 1;
                return Ok(next);
            }
            if !self.config.repeat || self.rows_this_pass == 0 {
                return Ok(None);
            }
            self.start_pass()?;
        }
    }

    fn start_pass(&mut self) -> Result<()> {
        self.reader.start_pass()?;
        self.passes += 1;
        self.rows_this_pass = 0;
        if let Some(buffer) = self.shuffle.as_mut() {
            buffer.pass_ended = false;
        }
        Ok(())
    }

    /// Where the pipeline is now, for a checkpoint.
    pub fn position(&self) -> PipelinePosition {
        let shuffle = self.shuffle.as_ref();
        PipelinePosition {
            passes: self.passes,
            rows_read: self.reader.rows_read,
            rows_emitted: self.rows_this_pass,
            shuffle_buffer: shuffle
                .map_or(Vec::new(), |s| s.rows.iter().map(|r| r.ordinal).collect()),
            shuffle_pass_ended: shuffle.is_some_and(|s| s.pass_ended),
            shuffle_rng_word: shuffle.map_or(0, |s| s.rng.get_word_pos()).to_string(),
        }
    }

    /// Moves a new pipeline to `position`, re-reading the current pass up to it (and,
    /// with `cache`, a whole first pass to fill the cache). Refuses a position the data
    /// cannot reach: the data has changed since it was saved.
    pub fn seek(&mut self, position: &PipelinePosition) -> Result<()> {
        if position.passes == 0 {
            return Ok(());
        }
        let label = self.config.label.clone();
        let changed = |why: &str| {
            Error::Usage(format!(
                "{label}: cannot continue where the checkpoint stopped (pass {}, row {}): {why}; the data changed since",
                position.passes, position.rows_read
            ))
        };
        if position.passes > 1 && self.config.cache {
            self.reader.start_pass()?;
            while self.reader.next_row()?.is_some() {}
        }
        self.start_pass()?;
        self.passes = position.passes;
        self.rows_this_pass = position.rows_emitted;
        let slots: std::collections::HashMap<u64, usize> = position
            .shuffle_buffer
            .iter()
            .enumerate()
            .map(|(slot, &ordinal)| (ordinal, slot))
            .collect();
        let mut buffered: Vec<Option<RowRef>> = vec![None; slots.len()];
        while self.reader.rows_read < position.rows_read {
            let row = self
                .reader
                .next_row()?
                .ok_or_else(|| changed("it has fewer rows"))?;
            if let Some(&slot) = slots.get(&row.ordinal) {
                buffered[slot] = Some(row);
            }
        }
        let Some(shuffle) = self.shuffle.as_mut() else {
            return match slots.is_empty() {
                true => Ok(()),
                false => Err(changed("it was shuffled then")),
            };
        };
        shuffle.rows = buffered
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| changed("a buffered row is past the rows read"))?;
        shuffle.pass_ended = position.shuffle_pass_ended;
        let word = position
            .shuffle_rng_word
            .parse()
            .map_err(|_| changed("the shuffle position is unreadable"))?;
        shuffle.rng.set_word_pos(word);
        if shuffle.pass_ended && self.reader.next_row()?.is_some() {
            return Err(changed("it has more rows"));
        }
        Ok(())
    }

    /// Copies the picked rows into the batch buffers, one column at a time.
    fn gather(&mut self) {
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
        for (index, (column, col)) in batch.columns.iter_mut().zip(&schema.features).enumerate() {
            gather_column(column, col.width, &self.picked, |chunk| {
                &chunk.features[index].tensor.data
            });
        }
        for shape in &mut batch.shapes {
            shape[0] = rows;
        }
        if let (Some((column, shape)), Some(col)) = (batch.label.as_mut(), &schema.label) {
            gather_column(column, col.width, &self.picked, |chunk| {
                // Schemas are checked per chunk: a labelled schema means labelled chunks.
                match chunk.labels.as_ref().into_option() {
                    Some(labels) => &labels.data,
                    None => &EMPTY,
                }
            });
            shape[0] = rows;
        }
    }

    fn views(&self) -> Option<BatchRef<'_>> {
        let (schema, batch) = (self.reader.schema.as_ref()?, self.batch.as_ref()?);
        let len = self.picked.len();
        let features = schema
            .features
            .iter()
            .zip(&batch.columns)
            .zip(&batch.shapes)
            .map(|((col, buf), shape)| NamedView {
                name: col.name.as_str().into(),
                tensor: view(buf, shape, col.width * len),
            })
            .collect();
        let labels = batch
            .label
            .as_ref()
            .zip(schema.label.as_ref())
            .map(|((buf, shape), col)| view(buf, shape, col.width * len));
        Some(BatchRef {
            features,
            labels,
            len,
        })
    }
}

static EMPTY: TensorBuf = TensorBuf::F32(abi_stable::std_types::RVec::new());

/// Copies each picked row's values of one column into `dst`, row after row.
fn gather_column<'r>(
    dst: &mut TensorBuf,
    width: usize,
    picked: &'r [RowRef],
    column: impl Fn(&'r Batch) -> &'r TensorBuf,
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
/// (always, once the cache is compacted), so the column is looked up again only when the
/// chunk changes. Values are copied one by one: rows are one to a few values wide, where a
/// `memcpy` call would cost more than the copy.
fn gather_values<'r, T: Clone + 'r>(
    dst: &mut [T],
    width: usize,
    picked: &'r [RowRef],
    values: impl Fn(&'r Batch) -> &'r [T],
) {
    let mut current: Option<(*const Batch, &'r [T])> = None;
    for (r, out) in picked.iter().zip(dst.chunks_exact_mut(width)) {
        let chunk: &'r Batch = &r.chunk;
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

/// Concatenates the cached chunks of a pass into one.
fn concatenate(chunks: &[Rc<Batch>]) -> Batch {
    let Some(first) = chunks.first() else {
        return Batch {
            features: Default::default(),
            labels: ROption::RNone,
        };
    };
    let features = (0..first.features.len())
        .map(|i| {
            let tensors: Vec<&Tensor> = chunks.iter().map(|c| &c.features[i].tensor).collect();
            NamedTensor::new(
                first.features[i].name.as_str(),
                concatenate_tensors(&tensors),
            )
        })
        .collect();
    let labels = first.labels.as_ref().map(|_| {
        let tensors: Vec<&Tensor> = chunks
            .iter()
            .filter_map(|c| c.labels.as_ref().into_option())
            .collect();
        concatenate_tensors(&tensors)
    });
    Batch { features, labels }
}

/// Stacks tensors along their first dimension; they share dtype and row shape.
fn concatenate_tensors(tensors: &[&Tensor]) -> Tensor {
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

#[cfg(test)]
mod tests {
    use super::*;
    use abi_stable::sabi_trait::TD_Opaque;
    use abi_stable::std_types::{ROption, RResult};
    use estimator_plugin_api::abi::{InputSource, InputSource_TO, NamedTensor, PluginError};
    use rand::SeedableRng;

    /// A source of rows 0..rows, `x = i` (f32, width 2: i and 10·i) and label `i`, in
    /// chunks of `chunk` rows; counts how often it is opened.
    struct Counting {
        next: usize,
        rows: usize,
        chunk: usize,
    }

    impl InputSource for Counting {
        fn next_chunk(&mut self) -> RResult<ROption<Batch>, PluginError> {
            let end = (self.next + self.chunk).min(self.rows);
            if self.next >= end {
                return RResult::ROk(ROption::RNone);
            }
            let ids: Vec<usize> = (self.next..end).collect();
            self.next = end;
            let x = ids
                .iter()
                .flat_map(|&i| [i as f32, 10.0 * i as f32])
                .collect();
            let labels = ids.iter().map(|&i| i as i64).collect();
            let names = ids.iter().map(|i| RString::from(format!("r{i}"))).collect();
            let names = Tensor {
                shape: vec![ids.len()].into(),
                data: TensorBuf::Str(names),
            };
            RResult::ROk(ROption::RSome(Batch {
                features: vec![
                    NamedTensor::new("x", Tensor::f32(vec![ids.len(), 2], x)),
                    NamedTensor::new("name", names),
                ]
                .into(),
                labels: ROption::RSome(Tensor::i64(vec![ids.len()], labels)),
            }))
        }
    }

    fn pipeline(rows: usize, config: PipelineConfig) -> (Pipeline, Rc<std::cell::Cell<usize>>) {
        chunked_pipeline(rows, 3, config)
    }

    fn chunked_pipeline(
        rows: usize,
        chunk: usize,
        config: PipelineConfig,
    ) -> (Pipeline, Rc<std::cell::Cell<usize>>) {
        let opened = Rc::new(std::cell::Cell::new(0));
        let counter = Rc::clone(&opened);
        let opener: Opener = Box::new(move || {
            counter.set(counter.get() + 1);
            Ok(InputSource_TO::from_value(
                Counting {
                    next: 0,
                    rows,
                    chunk,
                },
                TD_Opaque,
            ))
        });
        let rng = ChaCha8Rng::seed_from_u64(5);
        (Pipeline::new(config, opener, rng), opened)
    }

    fn config(batch_size: usize) -> PipelineConfig {
        PipelineConfig {
            label: "input.train".into(),
            plugin: "test".into(),
            batch_size,
            shuffle: None,
            repeat: false,
            drop_remainder: false,
            cache: true,
        }
    }

    /// The labels of every batch until the end of the input (at most `limit` batches),
    /// checking that features travel with their labels.
    fn label_batches(p: &mut Pipeline, limit: usize) -> Vec<Vec<i64>> {
        let mut out = Vec::new();
        while out.len() < limit {
            let Some(batch) = p.next_batch().expect("no error") else {
                break;
            };
            let TensorData::I64(labels) = batch.labels.expect("labelled").data else {
                panic!("i64 labels")
            };
            let TensorData::F32(x) = batch.features[0].tensor.data else {
                panic!("f32 features")
            };
            let TensorData::Str(names) = batch.features[1].tensor.data else {
                panic!("string names")
            };
            assert_eq!(batch.features[0].tensor.shape.as_slice(), &[batch.len, 2]);
            for (row, &label) in labels.iter().enumerate() {
                assert_eq!(x[2 * row], label as f32);
                assert_eq!(x[2 * row + 1], 10.0 * label as f32);
                assert_eq!(names[row].as_str(), format!("r{label}"));
            }
            out.push(labels.to_vec());
        }
        out
    }

    #[test]
    fn batches_keep_order_and_the_last_may_be_short() {
        let (mut p, _) = pipeline(7, config(3));
        assert_eq!(
            label_batches(&mut p, 10),
            vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]
        );
    }

    #[test]
    fn drop_remainder_drops_the_short_batch() {
        let (mut p, _) = pipeline(
            7,
            PipelineConfig {
                drop_remainder: true,
                ..config(3)
            },
        );
        assert_eq!(
            label_batches(&mut p, 10),
            vec![vec![0, 1, 2], vec![3, 4, 5]]
        );
    }

    #[test]
    fn repeat_crosses_passes_within_a_batch_and_replays_the_cache() {
        let (mut p, opened) = pipeline(
            4,
            PipelineConfig {
                repeat: true,
                ..config(3)
            },
        );
        assert_eq!(
            label_batches(&mut p, 3),
            vec![vec![0, 1, 2], vec![3, 0, 1], vec![2, 3, 0]]
        );
        assert_eq!(opened.get(), 1, "later passes come from the cache");
        assert_eq!(
            p.reader.cache.len(),
            1,
            "the cached chunks are joined into one"
        );
    }

    #[test]
    fn without_cache_each_pass_reopens_the_source() {
        let (mut p, opened) = pipeline(
            4,
            PipelineConfig {
                repeat: true,
                cache: false,
                ..config(4)
            },
        );
        assert_eq!(label_batches(&mut p, 3).len(), 3);
        assert_eq!(opened.get(), 3);
    }

    #[test]
    fn shuffle_is_tf_buffer_sampling() {
        // Buffer of 2 over 0..5: fill [0, 1]; each draw takes a random slot and refills it
        // from the input; once the input ends, the last slot moves into the drawn one.
        let shuffled = PipelineConfig {
            shuffle: Some(2),
            ..config(5)
        };
        let (mut p, _) = pipeline(5, shuffled.clone());
        let got = label_batches(&mut p, 1).remove(0);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (mut buffer, mut next, mut expected) = (vec![0, 1], 2, Vec::new());
        while !buffer.is_empty() {
            let pick = rng.gen_range(0..buffer.len());
            expected.push(buffer[pick]);
            if next < 5 {
                buffer[pick] = next;
                next += 1;
            } else {
                buffer.swap_remove(pick);
            }
        }
        assert_eq!(got, expected);
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            vec![0, 1, 2, 3, 4],
            "each example exactly once per pass"
        );
        // The same seed gives the same order.
        let (mut again, _) = pipeline(5, shuffled);
        assert_eq!(label_batches(&mut again, 1).remove(0), got);
    }

    #[test]
    fn seeking_past_the_end_of_changed_data_is_refused() {
        let config = PipelineConfig {
            repeat: true,
            ..config(4)
        };
        let (mut long, _) = pipeline(10, config.clone());
        label_batches(&mut long, 2);
        let (mut short, _) = pipeline(6, config);
        let err = short.seek(&long.position()).unwrap_err().to_string();
        assert_eq!(
            err,
            "input.train: cannot continue where the checkpoint stopped (pass 1, row 8): it has fewer rows; the data changed since"
        );
    }

    #[test]
    fn an_empty_input_gives_no_batch_even_when_repeating() {
        let (mut p, _) = pipeline(
            0,
            PipelineConfig {
                repeat: true,
                ..config(2)
            },
        );
        assert!(label_batches(&mut p, 5).is_empty());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// A pipeline stopped after any number of batches and a new one moved to its
            /// position yield the same batches from there on.
            #[test]
            fn a_seeked_pipeline_continues_exactly(
                rows in 1usize..30,
                chunk in 1usize..7,
                batch in 1usize..9,
                shuffle in proptest::option::of(1usize..12),
                cache in any::<bool>(),
                before in 0usize..12,
            ) {
                let config = PipelineConfig { shuffle, cache, repeat: true, ..config(batch) };
                let (mut first, _) = chunked_pipeline(rows, chunk, config.clone());
                label_batches(&mut first, before);
                let position = first.position();
                let expected = label_batches(&mut first, 8);
                let (mut second, _) = chunked_pipeline(rows, chunk, config);
                second.seek(&position).expect("same data");
                prop_assert_eq!(label_batches(&mut second, 8), expected);
                prop_assert_eq!(second.position(), first.position());
            }

            /// One pass yields every example exactly once (shuffled or not), in full
            /// batches but perhaps the last, which drop_remainder drops.
            #[test]
            fn a_pass_yields_every_example_once_in_full_batches(
                rows in 0usize..40,
                chunk in 1usize..7,
                batch in 1usize..9,
                shuffle in proptest::option::of(1usize..12),
                drop_remainder in any::<bool>(),
                cache in any::<bool>(),
            ) {
                let config = PipelineConfig { shuffle, drop_remainder, cache, ..config(batch) };
                let (mut p, _) = chunked_pipeline(rows, chunk, config);
                let batches = label_batches(&mut p, 100);
                let full = rows / batch;
                for (i, b) in batches.iter().enumerate() {
                    prop_assert!(b.len() == batch || (i == full && !drop_remainder));
                }
                let mut seen: Vec<i64> = batches.concat();
                seen.sort();
                let expected: Vec<i64> = match drop_remainder {
                    false => (0..rows as i64).collect(),
                    true => seen.clone(),
                };
                prop_assert_eq!(&seen, &expected);
                seen.dedup();
                prop_assert_eq!(seen.len(), if drop_remainder { full * batch } else { rows });
            }
        }
    }
}
