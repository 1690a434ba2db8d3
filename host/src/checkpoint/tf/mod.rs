//! TensorFlow's own checkpoints, as TF Estimator 2.15 wrote them into a model_dir.
//!
//! - `table`: the sorted string table the index is written in (LevelDB's format);
//! - `bundle`: the tensor bundle: the index's entries and the data shards.

mod bundle;
mod table;

pub use bundle::{decode_bundle, is_tf_checkpoint, read_bundle, TfTensor, TfValues};
