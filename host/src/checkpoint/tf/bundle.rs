//! TF's tensor-bundle checkpoints (V2), read whole: `<prefix>.index`, a table mapping each
//! tensor's name to a `BundleEntryProto` (dtype, shape, shard, offset, size, CRC-32C),
//! with the `BundleHeaderProto` under the empty key; and the `<prefix>.data-NNNNN-of-NNNNN`
//! shards holding the tensors' bytes. Every tensor's checksum is checked, and a damaged
//! file is refused as a whole: nothing is half-read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use prost::Message;

use super::table;
use crate::error::{Error, Result};

/// `BundleHeaderProto`.
#[derive(Clone, PartialEq, Message)]
struct BundleHeader {
    #[prost(int32, tag = "1")]
    num_shards: i32,
    /// 0: little-endian, the only one TF writes on the machines it runs on.
    #[prost(int32, tag = "2")]
    endianness: i32,
}

/// `BundleEntryProto`.
#[derive(Clone, PartialEq, Message)]
struct BundleEntry {
    #[prost(int32, tag = "1")]
    dtype: i32,
    #[prost(message, optional, tag = "2")]
    shape: Option<TensorShape>,
    #[prost(int32, tag = "3")]
    shard_id: i32,
    #[prost(int64, tag = "4")]
    offset: i64,
    #[prost(int64, tag = "5")]
    size: i64,
    #[prost(fixed32, tag = "6")]
    crc32c: u32,
    /// Partitioned variables' slices; estimators' checkpoints have none.
    #[prost(message, repeated, tag = "7")]
    slices: Vec<Empty>,
}

#[derive(Clone, PartialEq, Message)]
struct TensorShape {
    #[prost(message, repeated, tag = "2")]
    dim: Vec<Dim>,
    #[prost(bool, tag = "3")]
    unknown_rank: bool,
}

#[derive(Clone, PartialEq, Message)]
struct Dim {
    #[prost(int64, tag = "1")]
    size: i64,
}

#[derive(Clone, PartialEq, Message)]
struct Empty {}

/// A tensor's values, in the dtypes TF's estimators write.
#[derive(Clone, Debug, PartialEq)]
pub enum TfValues {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    Bool(Vec<bool>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct TfTensor {
    pub shape: Vec<usize>,
    pub values: TfValues,
}

/// TF's `DataType` numbers for the dtypes read here, and their sizes.
fn dtype(code: i32) -> Option<(&'static str, usize)> {
    match code {
        1 => Some(("float32", 4)),
        2 => Some(("float64", 8)),
        3 => Some(("int32", 4)),
        9 => Some(("int64", 8)),
        10 => Some(("bool", 1)),
        _ => None,
    }
}

/// Every tensor of the checkpoint `prefix` (`model_dir/model.ckpt-300`), by name.
pub fn read_bundle(prefix: &Path) -> Result<BTreeMap<String, TfTensor>> {
    let index_path = with_suffix(prefix, ".index");
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| Error::Checkpoint {
            path: path.to_path_buf(),
            message: format!("cannot read: {e}"),
        })
    };
    let index = read(&index_path)?;
    let shards = shard_count(&index).map_err(|message| Error::Checkpoint {
        path: index_path.clone(),
        message,
    })?;
    let data = (0..shards)
        .map(|s| read(&shard_file(prefix, s, shards)))
        .collect::<Result<Vec<_>>>()?;
    decode_bundle(prefix, &index, &data)
}

/// The number of data shards the index names in its header.
fn shard_count(index: &[u8]) -> std::result::Result<usize, String> {
    let entries = table::entries(index)?;
    let (_, value) = entries
        .iter()
        .find(|(key, _)| key.is_empty())
        .ok_or("has no header (the empty key)")?;
    let header = BundleHeader::decode(value.as_slice()).map_err(|e| format!("the header: {e}"))?;
    if header.endianness != 0 {
        return Err("is big-endian; only little-endian checkpoints are read".into());
    }
    usize::try_from(header.num_shards)
        .ok()
        .filter(|&n| n > 0 && n <= 100_000)
        .ok_or_else(|| format!("has {} shards", header.num_shards))
}

/// The tensors of an index file's bytes and its shards' bytes; `prefix` names the files
/// in errors.
pub fn decode_bundle(
    prefix: &Path,
    index: &[u8],
    shards: &[Vec<u8>],
) -> Result<BTreeMap<String, TfTensor>> {
    let index_path = with_suffix(prefix, ".index");
    let bad = |path: &Path, message: String| Error::Checkpoint {
        path: path.to_path_buf(),
        message,
    };
    let count = shard_count(index).map_err(|m| bad(&index_path, m))?;
    if count != shards.len() {
        return Err(bad(
            &index_path,
            format!("names {count} shards, {} were given", shards.len()),
        ));
    }
    let entries = table::entries(index).map_err(|m| bad(&index_path, m))?;
    let mut out = BTreeMap::new();
    for (key, value) in entries {
        if key.is_empty() {
            continue;
        }
        let name = String::from_utf8(key)
            .map_err(|_| bad(&index_path, "a tensor name is not UTF-8".into()))?;
        let entry = BundleEntry::decode(value.as_slice())
            .map_err(|e| bad(&index_path, format!("tensor `{name}`: {e}")))?;
        let shard = usize::try_from(entry.shard_id)
            .ok()
            .filter(|&s| s < count)
            .ok_or_else(|| {
                bad(
                    &index_path,
                    format!("tensor `{name}` is in shard {} of {count}", entry.shard_id),
                )
            })?;
        let shard_path = shard_file(prefix, shard, count);
        let tensor = tensor(&name, &entry, &shards[shard]).map_err(|m| bad(&shard_path, m))?;
        out.insert(name, tensor);
    }
    Ok(out)
}

/// One tensor from its entry and its shard's bytes.
fn tensor(name: &str, entry: &BundleEntry, shard: &[u8]) -> std::result::Result<TfTensor, String> {
    if !entry.slices.is_empty() {
        return Err(format!(
            "tensor `{name}` is partitioned; partitioned variables are not read"
        ));
    }
    let (dtype_name, width) = dtype(entry.dtype).ok_or_else(|| {
        format!(
            "tensor `{name}` has TF dtype {}, which is not read",
            entry.dtype
        )
    })?;
    let shape_proto = entry.shape.clone().unwrap_or_default();
    if shape_proto.unknown_rank {
        return Err(format!("tensor `{name}` has an unknown rank"));
    }
    let shape = shape_proto
        .dim
        .iter()
        .map(|d| {
            usize::try_from(d.size)
                .map_err(|_| format!("tensor `{name}` has a dimension of {}", d.size))
        })
        .collect::<std::result::Result<Vec<usize>, String>>()?;
    let count = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("tensor `{name}`: its shape {shape:?} overflows"))?;
    let (offset, size) = (usize::try_from(entry.offset), usize::try_from(entry.size));
    let (Ok(offset), Ok(size)) = (offset, size) else {
        return Err(format!(
            "tensor `{name}` has offset {} and size {}",
            entry.offset, entry.size
        ));
    };
    if count.checked_mul(width) != Some(size) {
        return Err(format!(
            "tensor `{name}` ({dtype_name} {shape:?}) should take {} bytes, its entry says {size}",
            count.saturating_mul(width)
        ));
    }
    let bytes = offset
        .checked_add(size)
        .and_then(|end| shard.get(offset..end))
        .ok_or_else(|| {
            format!(
                "tensor `{name}` runs past the end ({} bytes at {offset})",
                size
            )
        })?;
    if crate::events::masked_crc(bytes) != entry.crc32c {
        return Err(format!("tensor `{name}` fails its checksum"));
    }
    let values = match entry.dtype {
        1 => TfValues::F32(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        2 => TfValues::F64(
            bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(eight(c)))
                .collect(),
        ),
        3 => TfValues::I32(
            bytes
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        9 => TfValues::I64(
            bytes
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(eight(c)))
                .collect(),
        ),
        _ => TfValues::Bool(bytes.iter().map(|&b| b != 0).collect()),
    };
    Ok(TfTensor { shape, values })
}

fn eight(c: &[u8]) -> [u8; 8] {
    let mut out = [0; 8];
    out.copy_from_slice(c);
    out
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// `<prefix>.data-00000-of-00001`.
fn shard_file(prefix: &Path, shard: usize, shards: usize) -> PathBuf {
    with_suffix(prefix, &format!(".data-{shard:05}-of-{shards:05}"))
}

/// Whether `prefix` names a TF checkpoint: its `.index` file exists.
pub fn is_tf_checkpoint(prefix: &Path) -> bool {
    with_suffix(prefix, ".index").is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iris(step: u32) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../data/tf_model_dirs/iris_dnn_classifier/model_dir")
            .join(format!("model.ckpt-{step}"))
    }

    #[test]
    fn a_tf_dnn_checkpoint_reads_with_every_checksum() {
        let tensors = read_bundle(&iris(300)).expect("reads");
        assert_eq!(tensors["global_step"].values, TfValues::I64(vec![300]));
        let kernel = &tensors["dnn/hiddenlayer_0/kernel"];
        assert_eq!(kernel.shape, [4, 10]);
        assert!(
            matches!(&kernel.values, TfValues::F32(v) if v.len() == 40 && v.iter().all(|x| x.is_finite()))
        );
        assert_eq!(tensors["dnn/logits/bias"].shape, [3]);
        let slots: Vec<&String> = tensors
            .keys()
            .filter(|k| k.starts_with("training/Adagrad/"))
            .collect();
        assert!(
            !slots.is_empty(),
            "{:?}",
            tensors.keys().collect::<Vec<_>>()
        );
        assert!(is_tf_checkpoint(&iris(300)));
        assert!(!is_tf_checkpoint(&iris(301)));
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(256))]

        /// Damage anywhere (a changed byte, or the file cut short) is refused with the
        /// file named, or changes nothing the format reads; it never panics.
        #[test]
        fn damage_is_refused_or_harmless(at in 0usize..2221, xor in 1u8..=255, cut in proptest::bool::ANY) {
            let prefix = iris(300);
            let mut index = std::fs::read(with_suffix(&prefix, ".index")).expect("index");
            let mut data = std::fs::read(shard_file(&prefix, 0, 1)).expect("data");
            let target = if at < index.len() { &mut index } else { &mut data };
            let at = at % target.len();
            match cut {
                true => target.truncate(at),
                false => target[at] ^= xor,
            }
            match decode_bundle(&prefix, &index, &[data]) {
                Err(Error::Checkpoint { path, .. }) => proptest::prop_assert!(path.starts_with(prefix.parent().expect("dir"))),
                Err(other) => proptest::prop_assert!(false, "{other}"),
                Ok(tensors) => proptest::prop_assert_eq!(tensors, read_bundle(&prefix).expect("reads")),
            }
        }
    }

    #[test]
    fn a_damaged_byte_anywhere_is_refused_never_half_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let prefix = dir.path().join("model.ckpt-300");
        let index = std::fs::read(with_suffix(&iris(300), ".index")).expect("index");
        let data = std::fs::read(shard_file(&iris(300), 0, 1)).expect("data");
        for (file, bytes) in [(".index", &index), (".data-00000-of-00001", &data)] {
            // Every byte of the tensor data; every 7th of the index.
            let step = if file == ".index" { 7 } else { 1 };
            for at in (0..bytes.len()).step_by(step) {
                let mut damaged = bytes.clone();
                damaged[at] ^= 0x20;
                std::fs::write(
                    with_suffix(&prefix, ".index"),
                    if file == ".index" { &damaged } else { &index },
                )
                .expect("write");
                std::fs::write(
                    shard_file(&prefix, 0, 1),
                    if file == ".index" { &data } else { &damaged },
                )
                .expect("write");
                match read_bundle(&prefix) {
                    Err(Error::Checkpoint { message, .. }) => assert!(!message.is_empty()),
                    Err(other) => panic!("{file} byte {at}: {other}"),
                    // A flipped bit in padding the format never reads changes nothing;
                    // the shard has none: every tensor's crc32c covers all of it.
                    Ok(_) if file != ".index" => panic!("{file} byte {at} went unseen"),
                    Ok(tensors) => assert_eq!(
                        tensors,
                        read_bundle(&iris(300)).expect("reads"),
                        "{file} byte {at}"
                    ),
                }
            }
        }
    }
}
