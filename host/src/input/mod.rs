//! The input pipeline: a plugin source, then the generic stages shuffle(buffer, seed),
//! repeat and batch, in TF's order `shuffle(B).repeat().batch(N)`.
//!
//! With a shuffle, each chunk's f32 feature columns are moved, once as it is read, into
//! one row-major block (`rows`). After that rows are never copied on their way through the stages: the
//! shuffle buffer holds references to rows of the chunks, and only the rows picked for a
//! batch are gathered into the batch's preallocated buffers. Steady-state batching
//! allocates nothing. With `cache` (the default), the first pass's chunks are kept as
//! they are (joining them would hold the data set twice for a moment), and later passes
//! replay them instead of re-reading the source.
//!
//! - `pipeline`: the stages wired together, batch after batch;
//! - `reader`: rows from the source, pass after pass, with the first pass cached;
//! - `schema`: the columns every chunk must have;
//! - `rows`: a chunk as kept, its f32 columns in one row-major block;
//! - `shuffle`: TF's shuffle buffer;
//! - `batch`: gathering picked rows into the batch's buffers;
//! - `position`: where a pipeline is, saved in checkpoints, and seeking back to it;
//! - `prefetch`: the pipeline on a background thread, batches ahead of the step (TF's
//!   `prefetch`), for training;
//! - `placement`: keeping that thread off the step's core.

mod batch;
mod pipeline;
mod placement;
mod position;
mod prefetch;
mod reader;
mod rows;
mod schema;
mod shuffle;
mod warm;

pub use batch::BatchRef;
pub use pipeline::{Opener, Pipeline, PipelineConfig};
pub use position::PipelinePosition;
pub use prefetch::Prefetched;
pub use reader::concatenate_tensors;
