//! The checkpoint file: safetensors holding every variable and slot, `global_step`, and
//! metadata; readable by Python's `safetensors` as it is.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};

use crate::error::{Error, Result};

/// A tensor to save, borrowed from the variable store or the optimizer.
pub struct SavedTensor<'a> {
    pub name: &'a str,
    pub shape: &'a [usize],
    pub data: &'a [f32],
}

/// A checkpoint read back from disk.
#[derive(Debug)]
pub struct Checkpoint {
    pub path: PathBuf,
    pub global_step: i64,
    pub tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    pub metadata: BTreeMap<String, String>,
}

impl Checkpoint {
    /// Takes the tensor `name`, checking it has `shape`.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        take_tensor(&mut self.tensors, &self.path, name, shape)
    }
}

/// Removes tensor `name` from a file's `tensors`, checking it has `shape`.
fn take_tensor(
    tensors: &mut HashMap<String, (Vec<usize>, Vec<f32>)>,
    path: &Path,
    name: &str,
    shape: &[usize],
) -> Result<Vec<f32>> {
    let (saved_shape, data) = tensors.remove(name).ok_or_else(|| Error::Checkpoint {
        path: path.to_path_buf(),
        message: format!("has no tensor `{name}`; was it written by another model?"),
    })?;
    if saved_shape != shape {
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            message: format!(
                "tensor `{name}` has shape {saved_shape:?}, the model needs {shape:?}"
            ),
        });
    }
    Ok(data)
}

/// The metadata key of every tensor's crc32c (TF's bundle checksum), as a JSON object from
/// tensor name to checksum.
const CHECKSUMS: &str = "tensor_crc32c";

/// Each tensor's crc32c over its bytes, as the JSON text stored under [`CHECKSUMS`].
fn checksums(views: &[(String, TensorView<'_>)]) -> String {
    let sums: BTreeMap<&str, u32> = views
        .iter()
        .map(|(name, view)| (name.as_str(), crc32c::crc32c(view.data())))
        .collect();
    serde_json::json!(sums).to_string()
}

/// Checks every tensor of `file` against the checksums its metadata records. A file
/// without them (written before checksums were) is taken as it is.
fn verify_checksums(
    file: &safetensors::SafeTensors<'_>,
    recorded: Option<&String>,
) -> std::result::Result<(), String> {
    let Some(recorded) = recorded else {
        return Ok(());
    };
    let mut sums: BTreeMap<String, u32> = serde_json::from_str(recorded)
        .map_err(|e| format!("metadata `{CHECKSUMS}` is damaged: {e}"))?;
    for (name, view) in file.tensors() {
        let sum = sums.remove(&name).ok_or_else(|| {
            format!("tensor `{name}` has no recorded crc32c: the file is damaged")
        })?;
        if crc32c::crc32c(view.data()) != sum {
            return Err(format!(
                "tensor `{name}` fails its crc32c check: the file is damaged"
            ));
        }
    }
    match sums.into_keys().next() {
        Some(name) => Err(format!(
            "has a crc32c for tensor `{name}` but not the tensor: the file is damaged"
        )),
        None => Ok(()),
    }
}

/// Serializes tensors and metadata in the safetensors format, with every tensor's crc32c.
pub fn encode(
    tensors: &[SavedTensor<'_>],
    global_step: i64,
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| t.data.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let step_bytes = global_step.to_le_bytes();
    let mut views = Vec::with_capacity(tensors.len() + 1);
    let bad = |e: safetensors::SafeTensorError| {
        Error::Internal(format!("cannot encode a checkpoint: {e}"))
    };
    views.push((
        "global_step".to_owned(),
        TensorView::new(Dtype::I64, vec![], &step_bytes).map_err(bad)?,
    ));
    for (t, b) in tensors.iter().zip(&bytes) {
        views.push((
            t.name.to_owned(),
            TensorView::new(Dtype::F32, t.shape.to_vec(), b).map_err(bad)?,
        ));
    }
    let mut info: HashMap<String, String> = metadata.clone().into_iter().collect();
    info.insert("global_step".into(), global_step.to_string());
    info.insert(CHECKSUMS.into(), checksums(&views));
    let bytes = safetensors::serialize(views, &Some(info)).map_err(bad)?;
    with_sorted_header(bytes)
}

/// safetensors writes its JSON header from hash maps, in an order that changes from run to
/// run; rewriting it with sorted keys makes equal checkpoints equal files.
fn with_sorted_header(bytes: Vec<u8>) -> Result<Vec<u8>> {
    #[derive(serde::Deserialize, serde::Serialize)]
    struct Header {
        #[serde(rename = "__metadata__")]
        metadata: BTreeMap<String, String>,
        #[serde(flatten)]
        tensors: BTreeMap<String, serde_json::Value>,
    }
    let bad = |m: String| Error::Internal(format!("cannot encode a checkpoint: {m}"));
    let (len, rest) = bytes
        .split_first_chunk::<8>()
        .ok_or_else(|| bad("no header".into()))?;
    let len = usize::try_from(u64::from_le_bytes(*len)).map_err(|e| bad(e.to_string()))?;
    let (header, data) = rest
        .split_at_checked(len)
        .ok_or_else(|| bad("header past the end".into()))?;
    let header: Header = serde_json::from_slice(header).map_err(|e| bad(e.to_string()))?;
    let mut header = serde_json::to_vec(&header).map_err(|e| bad(e.to_string()))?;
    // The data must stay 8-byte aligned; safetensors pads the header with spaces.
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + header.len() + data.len());
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(data);
    Ok(out)
}

/// `ckpt` as our checkpoint file's bytes (tensors sorted by name), however it was read:
/// how rank 0 hands the checkpoint it resumes from to the other ranks.
pub fn encode_checkpoint(ckpt: &Checkpoint) -> Result<Vec<u8>> {
    let mut names: Vec<&String> = ckpt.tensors.keys().collect();
    names.sort();
    let tensors: Vec<SavedTensor<'_>> = names
        .into_iter()
        .map(|name| {
            let (shape, data) = &ckpt.tensors[name];
            SavedTensor { name, shape, data }
        })
        .collect();
    let mut metadata = ckpt.metadata.clone();
    metadata.remove("global_step");
    encode(&tensors, ckpt.global_step, &metadata)
}

/// Reads a checkpoint: our safetensors file, or TF's tensor bundle when `path` is a TF
/// checkpoint's prefix (`model_dir/model.ckpt-300`, beside its `.index` file).
pub fn read(path: &Path) -> Result<Checkpoint> {
    if !path.exists() && super::tf::is_tf_checkpoint(path) {
        return read_tf(path);
    }
    let bytes = std::fs::read(path).map_err(|e| Error::Checkpoint {
        path: path.to_path_buf(),
        message: format!("cannot read: {e}"),
    })?;
    decode(&bytes, path)
}

/// A TF checkpoint as ours: float tensors as float32 (TF's float64 narrowed), and the
/// global step. TF's integer and boolean tensors other than `global_step` (optimizer
/// counters) are left out.
fn read_tf(prefix: &Path) -> Result<Checkpoint> {
    use super::tf::TfValues;
    let bundle = super::tf::read_bundle(prefix)?;
    let mut tensors = HashMap::new();
    let mut global_step = None;
    let mut iterations = BTreeMap::new();
    for (name, tensor) in bundle {
        match (name.as_str(), tensor.values) {
            ("global_step", TfValues::I64(v)) if v.len() == 1 => global_step = v.first().copied(),
            (counter, TfValues::I64(v)) if counter.ends_with("/iter") && v.len() == 1 => {
                iterations.insert(name, v[0]);
            }
            (_, TfValues::F32(v)) => {
                tensors.insert(name, (tensor.shape, v));
            }
            (_, TfValues::F64(v)) => {
                tensors.insert(
                    name,
                    (tensor.shape, v.into_iter().map(|x| x as f32).collect()),
                );
            }
            _ => {}
        }
    }
    let global_step = global_step.ok_or_else(|| Error::Checkpoint {
        path: prefix.to_path_buf(),
        message: "has no int64 global_step".into(),
    })?;
    Ok(Checkpoint {
        path: prefix.to_path_buf(),
        global_step,
        tensors,
        metadata: BTreeMap::from([(
            super::contents::OPTIMIZER_ITERATIONS.to_owned(),
            serde_json::json!(iterations).to_string(),
        )]),
    })
}

/// Parses a checkpoint file's bytes; `path` names it in errors and in the result.
pub fn decode(bytes: &[u8], path: &Path) -> Result<Checkpoint> {
    let weights = decode_weights(bytes, path, false)?;
    let global_step = weights.global_step.ok_or_else(|| Error::Checkpoint {
        path: path.to_path_buf(),
        message: "has no global_step".into(),
    })?;
    Ok(Checkpoint {
        path: weights.path,
        global_step,
        tensors: weights.tensors,
        metadata: weights.metadata,
    })
}

/// Tensors from a safetensors file that may hold weights alone (one written by Python's
/// `safetensors`, say): no `global_step` needed, and float64 tensors read as float32.
#[derive(Debug)]
pub struct Weights {
    pub path: PathBuf,
    pub global_step: Option<i64>,
    pub tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    pub metadata: BTreeMap<String, String>,
}

impl Weights {
    /// Takes the tensor `name`, checking it has `shape`.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        take_tensor(&mut self.tensors, &self.path, name, shape)
    }
}

/// Reads a safetensors file of weights (see [`Weights`]), or TF's checkpoint `path` is
/// the prefix of.
pub fn read_weights(path: &Path) -> Result<Weights> {
    if !path.exists() && super::tf::is_tf_checkpoint(path) {
        let ckpt = read_tf(path)?;
        return Ok(Weights {
            path: ckpt.path,
            global_step: Some(ckpt.global_step),
            tensors: ckpt.tensors,
            metadata: ckpt.metadata,
        });
    }
    let bytes = std::fs::read(path).map_err(|e| Error::Checkpoint {
        path: path.to_path_buf(),
        message: format!("cannot read: {e}"),
    })?;
    decode_weights(&bytes, path, true)
}

/// The tensors, metadata and global step (if any) of safetensors `bytes`; float64 tensors
/// are read as float32 when `widen` says so.
fn decode_weights(bytes: &[u8], path: &Path, widen: bool) -> Result<Weights> {
    let bad = |message: String| Error::Checkpoint {
        path: path.to_path_buf(),
        message,
    };
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| bad(format!("not a valid checkpoint: {e}")))?;
    let mut metadata: BTreeMap<String, String> = meta
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let file = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| bad(format!("not a valid checkpoint: {e}")))?;
    verify_checksums(&file, metadata.remove(CHECKSUMS).as_ref()).map_err(bad)?;
    let mut tensors = HashMap::new();
    let mut global_step = None;
    for (name, view) in file.tensors() {
        match view.dtype() {
            Dtype::F32 => {
                let data = view
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                tensors.insert(name, (view.shape().to_vec(), data));
            }
            Dtype::F64 if widen => {
                let data = view
                    .data()
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap_or_default()) as f32)
                    .collect();
                tensors.insert(name, (view.shape().to_vec(), data));
            }
            Dtype::I64 if name == "global_step" && view.data().len() == 8 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(view.data());
                global_step = Some(i64::from_le_bytes(b));
            }
            other => {
                return Err(bad(format!(
                    "tensor `{name}` has unsupported dtype {other:?}"
                )))
            }
        }
    }
    Ok(Weights {
        path: path.to_path_buf(),
        global_step,
        tensors,
        metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::test_support::keep;
    use crate::checkpoint::{file_name, latest, system_clock, Committer};

    #[test]
    fn checkpoint_round_trips_through_safetensors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = [1.5f32, -2.0, 3.25];
        let tensors = [SavedTensor {
            name: "w",
            shape: &[3],
            data: &data,
        }];
        let meta = BTreeMap::from([("plugin".to_owned(), "x".to_owned())]);
        let mut saver = Committer::new(dir.path(), keep(2), system_clock()).expect("empty dir");
        for step in [0, 10, 20] {
            saver
                .save(step, &encode(&tensors, step, &meta).expect("encodes"))
                .expect("writes");
        }
        assert!(
            !dir.path().join(file_name(0)).exists(),
            "retention deleted the oldest"
        );
        let latest = latest(dir.path())
            .expect("state readable")
            .expect("a checkpoint");
        let mut ckpt = read(&latest).expect("valid file");
        assert_eq!(ckpt.global_step, 20);
        assert_eq!(ckpt.metadata.get("plugin").map(String::as_str), Some("x"));
        assert_eq!(ckpt.take("w", &[3]).expect("present"), data.to_vec());
    }

    #[test]
    fn equal_checkpoints_encode_to_equal_bytes() {
        let data = [1.0f32, 2.0];
        let tensors = [
            SavedTensor {
                name: "b",
                shape: &[2],
                data: &data,
            },
            SavedTensor {
                name: "a",
                shape: &[1, 2],
                data: &data,
            },
        ];
        let meta: BTreeMap<String, String> =
            (0..8).map(|i| (format!("k{i}"), i.to_string())).collect();
        let first = encode(&tensors, 7, &meta).expect("encodes");
        // Each encoding builds fresh hash maps with fresh random orders inside safetensors.
        for _ in 0..5 {
            assert_eq!(encode(&tensors, 7, &meta).expect("encodes"), first);
        }
        let header_len = u64::from_le_bytes(first[..8].try_into().expect("8 bytes")) as usize;
        assert_eq!(header_len % 8, 0, "data stays aligned");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(file_name(7));
        std::fs::write(&path, &first).expect("write");
        let mut ckpt = read(&path).expect("still a valid safetensors file");
        assert_eq!(ckpt.metadata.get("k3").map(String::as_str), Some("3"));
        assert_eq!(ckpt.take("a", &[1, 2]).expect("present"), data.to_vec());
    }

    #[test]
    fn truncated_checkpoint_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(file_name(5));
        std::fs::write(&path, b"\x10\x00\x00").expect("write");
        let err = read(&path).unwrap_err().to_string();
        assert!(
            err.contains("model.ckpt-5.safetensors: not a valid checkpoint"),
            "{err}"
        );
    }

    #[test]
    fn a_flipped_bit_in_any_tensor_is_refused_naming_the_tensor() {
        let (w, b) = ([1.5f32, -2.0, 3.25, 0.0], [7.0f32]);
        let tensors = [
            SavedTensor {
                name: "dense/kernel",
                shape: &[2, 2],
                data: &w,
            },
            SavedTensor {
                name: "dense/bias",
                shape: &[1],
                data: &b,
            },
        ];
        let bytes = encode(&tensors, 12, &BTreeMap::new()).expect("encodes");
        let header = 8 + u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
        // The data is the global step's 8 bytes and the two tensors' 20, in name order.
        assert_eq!(bytes.len() - header, 8 + 16 + 4);
        let path = Path::new("model.ckpt-12.safetensors");
        assert_eq!(decode(&bytes, path).expect("whole").global_step, 12);
        for at in header..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[at] ^= 1 << bit;
                let err = decode(&damaged, path)
                    .expect_err("damage detected")
                    .to_string();
                assert!(
                    err.starts_with("model.ckpt-12.safetensors: tensor `")
                        && err.ends_with("` fails its crc32c check: the file is damaged"),
                    "byte {at} bit {bit}: {err}"
                );
            }
        }
    }

    #[test]
    fn a_checkpoint_without_checksums_still_reads() {
        // A file as written before checksums were: safetensors with the step alone.
        let (step, w) = (3i64.to_le_bytes(), 2.0f32.to_le_bytes());
        let views = [
            (
                "global_step",
                TensorView::new(Dtype::I64, vec![], &step).expect("view"),
            ),
            ("w", TensorView::new(Dtype::F32, vec![1], &w).expect("view")),
        ];
        let info = HashMap::from([("global_step".to_owned(), "3".to_owned())]);
        let old = safetensors::serialize(views, &Some(info)).expect("serializes");
        let ckpt = decode(&old, Path::new("old.safetensors")).expect("reads");
        assert_eq!(
            (ckpt.global_step, ckpt.tensors["w"].1.clone()),
            (3, vec![2.0])
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Variable names as models give them: TF's paths (`dnn/hiddenlayer_0/kernel`,
        /// `training/Adam/.../m`), CSV column names in any case with dots and dashes, and
        /// any printable text, up to 200 characters. `global_step` and safetensors'
        /// `__metadata__` are the only names taken.
        fn names() -> impl Strategy<Value = String> {
            prop_oneof![
                "([A-Za-z0-9_.-]{1,20}/){0,6}[A-Za-z0-9_.-]{1,20}",
                "\\PC{1,40}",
                "[a-z]{200}",
            ]
            .prop_filter("reserved", |n| n != "global_step" && n != "__metadata__")
        }

        /// Tensors with distinct names, shapes of rank 0 to 4 (empty dimensions included)
        /// and any finite or non-finite values.
        fn tensors() -> impl Strategy<Value = Vec<(String, Vec<usize>, Vec<f32>)>> {
            proptest::collection::btree_map(
                names(),
                proptest::collection::vec(0usize..4, 0..=4),
                0..6,
            )
            .prop_flat_map(|shapes| {
                shapes
                    .into_iter()
                    .map(|(name, shape)| {
                        let n = shape.iter().product::<usize>();
                        proptest::collection::vec(any::<f32>(), n)
                            .prop_map(move |values| (name.clone(), shape.clone(), values))
                    })
                    .collect::<Vec<_>>()
            })
        }

        proptest! {
            #[test]
            fn checkpoints_round_trip_bit_for_bit(
                tensors in tensors(),
                step in any::<i64>(),
                metadata in proptest::collection::btree_map("\\PC{1,20}", "\\PC{0,40}", 0..4),
            ) {
                let saved: Vec<SavedTensor<'_>> = tensors
                    .iter()
                    .map(|(name, shape, data)| SavedTensor { name, shape, data })
                    .collect();
                let metadata: BTreeMap<String, String> =
                    metadata.into_iter().filter(|(k, _)| k != "global_step" && k != CHECKSUMS).collect();
                let bytes = encode(&saved, step, &metadata).expect("encodes");
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join(file_name(step));
                std::fs::write(&path, &bytes).expect("write");
                let mut ckpt = read(&path).expect("reads back");
                prop_assert_eq!(ckpt.global_step, step);
                prop_assert_eq!(ckpt.tensors.len(), tensors.len());
                for (key, value) in &metadata {
                    prop_assert_eq!(ckpt.metadata.get(key), Some(value));
                }
                for (name, shape, data) in &tensors {
                    let back = ckpt.take(name, shape).expect("present");
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    prop_assert_eq!(bits(&back), bits(data));
                }
            }

            #[test]
            fn any_bytes_are_read_or_refused_naming_the_file(
                bytes in proptest::collection::vec(any::<u8>(), 0..600),
            ) {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join(file_name(3));
                std::fs::write(&path, &bytes).expect("write");
                if let Err(e) = read(&path) {
                    prop_assert!(e.to_string().contains("model.ckpt-3.safetensors"), "{e}");
                }
            }

            #[test]
            fn a_damaged_checkpoint_is_read_or_refused(at in 0usize..400, byte in any::<u8>(), keep in 0usize..400) {
                let data = [1.0f32, 2.0, 3.0];
                let tensors = [SavedTensor { name: "w", shape: &[3], data: &data }];
                let mut bytes = encode(&tensors, 9, &BTreeMap::new()).expect("encodes");
                let at = at % bytes.len();
                bytes[at] = byte;
                bytes.truncate(keep.max(1).min(bytes.len()));
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join(file_name(9));
                std::fs::write(&path, &bytes).expect("write");
                if let Err(e) = read(&path) {
                    prop_assert!(e.to_string().contains("model.ckpt-9.safetensors"), "{e}");
                }
            }
        }
    }
}
