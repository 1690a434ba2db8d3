//! TensorFlow's own checkpoints, as TF Estimator 2.15 wrote them into a model_dir.
//!
//! - `table`: the sorted string table the index is written in (LevelDB's format);
//! - `bundle`: the tensor bundle: the index's entries and the data shards.

mod bundle;
mod table;

pub use bundle::{decode_bundle, is_tf_checkpoint, read_bundle, TfTensor, TfValues};

/// The global step of a TF checkpoint's index file name, `model.ckpt-<step>.index`.
pub fn step_of_index(file_name: &str) -> Option<i64> {
    file_name
        .strip_prefix("model.ckpt-")?
        .strip_suffix(".index")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_index_file_names_its_step() {
        assert_eq!(super::step_of_index("model.ckpt-300.index"), Some(300));
        assert_eq!(super::step_of_index("model.ckpt-300.safetensors"), None);
        assert_eq!(super::step_of_index("model.ckpt-x.index"), None);
    }
}
