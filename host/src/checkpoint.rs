//! Checkpoints: `model.ckpt-<step>.safetensors` files plus the `checkpoint` state file.
//!
//! Each write goes to a temporary file in model_dir, is fsynced, and renamed into place;
//! the state file is rewritten the same way *after* the checkpoint, so it is the commit
//! marker: a crash at any instant leaves the previous state file naming whole checkpoints.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use safetensors::tensor::{Dtype, TensorView};

use crate::error::{Error, Result};

pub const STATE_FILE: &str = "checkpoint";

pub fn file_name(step: i64) -> String {
    format!("model.ckpt-{step}.safetensors")
}

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

/// TF's `CheckpointState`: the latest checkpoint and all kept ones, oldest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CheckpointState {
    pub latest: Option<String>,
    /// Listed checkpoints with the Unix time each was written.
    pub all: Vec<(String, f64)>,
}

impl CheckpointState {
    /// Parses TF's text format (the fields this runtime writes; others are ignored).
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let mut state = CheckpointState::default();
        let mut times = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let bad = || Error::Checkpoint {
                path: path.to_path_buf(),
                message: format!("line {}: cannot parse `{line}`", i + 1),
            };
            let (key, value) = line.split_once(':').ok_or_else(bad)?;
            let value = value.trim();
            match key.trim() {
                "model_checkpoint_path" => state.latest = Some(unquote(value).ok_or_else(bad)?),
                "all_model_checkpoint_paths" => {
                    state.all.push((unquote(value).ok_or_else(bad)?, 0.0))
                }
                "all_model_checkpoint_timestamps" => {
                    times.push(value.parse::<f64>().map_err(|_| bad())?)
                }
                _ => {}
            }
        }
        for (entry, t) in state.all.iter_mut().zip(times) {
            entry.1 = t;
        }
        Ok(state)
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        if let Some(latest) = &self.latest {
            out.push_str(&format!("model_checkpoint_path: \"{latest}\"\n"));
        }
        for (name, _) in &self.all {
            out.push_str(&format!("all_model_checkpoint_paths: \"{name}\"\n"));
        }
        for (_, time) in &self.all {
            out.push_str(&format!("all_model_checkpoint_timestamps: {time:.6}\n"));
        }
        out
    }
}

fn unquote(value: &str) -> Option<String> {
    value
        .strip_prefix('"')?
        .strip_suffix('"')
        .map(str::to_owned)
}

/// What retention decides after a save: which checkpoints stay listed, which files go.
#[derive(Debug, PartialEq)]
pub struct Retention {
    pub listed: Vec<(String, f64)>,
    pub delete: Vec<String>,
}

/// TF's Saver retention: `max_to_keep` and `keep_checkpoint_every_n_hours`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetentionPolicy {
    /// Checkpoints listed and kept; 0 keeps every file and lists only the latest.
    pub keep_max: usize,
    /// A checkpoint leaving the window is kept on disk (unlisted) when it was written
    /// after the next keep time, which then moves this many seconds on.
    pub keep_every_secs: f64,
}

/// Applies `policy` to the listed checkpoints `all` (oldest first, with their write
/// times); `next_keep` is the time after which a checkpoint leaving the window is kept.
pub fn retain(all: &[(String, f64)], policy: RetentionPolicy, next_keep: &mut f64) -> Retention {
    if policy.keep_max == 0 {
        return Retention {
            listed: all.last().cloned().into_iter().collect(),
            delete: Vec::new(),
        };
    }
    let cut = all.len().saturating_sub(policy.keep_max);
    let mut delete = Vec::new();
    for (name, time) in &all[..cut] {
        if *time > *next_keep {
            *next_keep += policy.keep_every_secs;
        } else {
            delete.push(name.clone());
        }
    }
    Retention {
        listed: all[cut..].to_vec(),
        delete,
    }
}

/// Seconds since the Unix epoch; injectable so that retention by age is testable.
pub type Clock = Box<dyn Fn() -> f64 + Send>;

pub fn system_clock() -> Clock {
    Box::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default()
    })
}

pub fn read_state(model_dir: &Path) -> Result<Option<CheckpointState>> {
    let path = model_dir.join(STATE_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => CheckpointState::parse(&text, &path).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("{}: cannot read", path.display()), e)),
    }
}

/// The latest checkpoint named by the state file, if any.
pub fn latest(model_dir: &Path) -> Result<Option<PathBuf>> {
    Ok(read_state(model_dir)?
        .and_then(|s| s.latest)
        .map(|name| model_dir.join(name)))
}

/// Deletes temporary files and checkpoints newer than the committed latest one. Failures
/// are ignored: the files are harmless, only untidy.
fn remove_uncommitted(model_dir: &Path, state: &CheckpointState) {
    let latest = state.latest.as_deref().and_then(step_of).unwrap_or(-1);
    let Ok(entries) = std::fs::read_dir(model_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let uncommitted =
            name.starts_with(TEMP_PREFIX) || step_of(name).is_some_and(|s| s > latest);
        if uncommitted {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The global step in a checkpoint file name `model.ckpt-<step>.safetensors`.
pub fn step_of(file_name: &str) -> Option<i64> {
    file_name
        .strip_prefix("model.ckpt-")?
        .strip_suffix(".safetensors")?
        .parse()
        .ok()
}

/// Temporary files `write_atomic` creates in model_dir before renaming them.
const TEMP_PREFIX: &str = ".tmp-";

/// The newest whole checkpoint the state file lists. A damaged or missing one is skipped
/// with a warning naming it, and the one before it is used; when every listed checkpoint
/// is damaged, that is an error.
pub fn read_latest_whole(model_dir: &Path) -> Result<Option<Checkpoint>> {
    let Some(state) = read_state(model_dir)? else {
        return Ok(None);
    };
    let mut names: Vec<&String> = state.latest.iter().collect();
    names.extend(
        state
            .all
            .iter()
            .rev()
            .map(|(n, _)| n)
            .filter(|n| Some(*n) != state.latest.as_ref()),
    );
    let Some(newest) = names.first() else {
        return Ok(None);
    };
    let newest = model_dir.join(newest);
    for name in names {
        let path = model_dir.join(name);
        match read(&path) {
            Ok(ckpt) => return Ok(Some(ckpt)),
            Err(e) => tracing::warn!("{e}; using the checkpoint before it"),
        }
    }
    Err(Error::Checkpoint {
        path: newest,
        message: "this and every earlier listed checkpoint are damaged or missing".into(),
    })
}

/// Writes `bytes` to `path` atomically: temp file in the same folder, fsync, rename, fsync
/// the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let context = || format!("{}: cannot write", path.display());
    let mut builder = tempfile::Builder::new();
    builder.prefix(TEMP_PREFIX);
    // tempfile creates files readable by their owner only; checkpoints are shared with
    // the user's other tools (TensorBoard, a serving process), so create them as any file.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut tmp = builder
        .tempfile_in(dir)
        .map_err(|e| Error::io(context(), e))?;
    tmp.write_all(bytes).map_err(|e| Error::io(context(), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io(context(), e))?;
    tmp.persist(path)
        .map_err(|e| Error::io(context(), e.error))?;
    if let Ok(d) = std::fs::File::open(dir) {
        // Makes the rename itself durable; not all filesystems support syncing a folder.
        let _ = d.sync_all();
    }
    Ok(())
}

/// Serializes tensors and metadata in the safetensors format.
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
    let bad =
        |e: safetensors::SafeTensorError| Error::Usage(format!("cannot encode checkpoint: {e}"));
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
    let bad = |m: String| Error::Usage(format!("cannot encode checkpoint: {m}"));
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

/// Reads a checkpoint file.
pub fn read(path: &Path) -> Result<Checkpoint> {
    let bytes = std::fs::read(path).map_err(|e| Error::Checkpoint {
        path: path.to_path_buf(),
        message: format!("cannot read: {e}"),
    })?;
    decode(&bytes, path)
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

/// Reads a safetensors file of weights (see [`Weights`]).
pub fn read_weights(path: &Path) -> Result<Weights> {
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
    let metadata: BTreeMap<String, String> = meta
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let file = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| bad(format!("not a valid checkpoint: {e}")))?;
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

/// Saves checkpoints into one model_dir and applies retention, continuing the state a
/// previous run left.
pub struct Saver {
    model_dir: PathBuf,
    policy: RetentionPolicy,
    state: CheckpointState,
    clock: Clock,
    /// As TF's Saver: a checkpoint leaving the window after this time is kept.
    next_keep: f64,
}

impl Saver {
    /// A saver for `model_dir`, which the caller has locked. Removes what a run that
    /// crashed there left half done: temporary files, and checkpoints written after the
    /// latest the state file commits (which may be incomplete runs' leftovers).
    pub fn new(model_dir: &Path, policy: RetentionPolicy, clock: Clock) -> Result<Self> {
        let state = read_state(model_dir)?.unwrap_or_default();
        remove_uncommitted(model_dir, &state);
        let next_keep = clock() + policy.keep_every_secs;
        Ok(Saver {
            model_dir: model_dir.to_path_buf(),
            policy,
            state,
            clock,
            next_keep,
        })
    }

    /// Writes the checkpoint for `global_step`, then the state file, then deletes what
    /// retention dropped. Returns the checkpoint's path.
    pub fn save(&mut self, global_step: i64, encoded: &[u8]) -> Result<PathBuf> {
        let name = file_name(global_step);
        let path = self.model_dir.join(&name);
        write_atomic(&path, encoded)?;
        let now = (self.clock)();
        self.state.all.retain(|(n, _)| n != &name);
        self.state.all.push((name.clone(), now));
        let retention = retain(&self.state.all, self.policy, &mut self.next_keep);
        self.state.all = retention.listed;
        self.state.latest = Some(name);
        write_atomic(
            &self.model_dir.join(STATE_FILE),
            self.state.to_text().as_bytes(),
        )?;
        for old in retention.delete {
            // Already gone is fine: retention only wants it not to be there.
            let _ = std::fs::remove_file(self.model_dir.join(old));
        }
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(steps: &[i64]) -> Vec<(String, f64)> {
        steps.iter().map(|&s| (file_name(s), s as f64)).collect()
    }

    fn keep(keep_max: usize) -> RetentionPolicy {
        RetentionPolicy {
            keep_max,
            keep_every_secs: 10000.0 * 3600.0,
        }
    }

    #[test]
    fn retention_keeps_the_newest_and_deletes_the_rest() {
        let r = retain(&entries(&[0, 30, 60, 90, 100]), keep(3), &mut 1e12);
        assert_eq!(r.listed, entries(&[60, 90, 100]));
        assert_eq!(r.delete, vec![file_name(0), file_name(30)]);
    }

    #[test]
    fn keep_max_zero_deletes_nothing_and_lists_the_latest() {
        let r = retain(&entries(&[0, 30, 60]), keep(0), &mut 1e12);
        assert_eq!(r.listed, entries(&[60]));
        assert!(r.delete.is_empty());
    }

    /// TF's keep_checkpoint_every_n_hours, with a clock that ticks one second per save:
    /// every 2 s, a checkpoint leaving the window of 2 stays on disk, unlisted.
    #[test]
    fn every_n_hours_keeps_checkpoints_leaving_the_window_by_age() {
        let dir = tempfile::tempdir().expect("temp dir");
        let tick = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let clock_tick = std::sync::Arc::clone(&tick);
        let clock: Clock =
            Box::new(move || clock_tick.load(std::sync::atomic::Ordering::SeqCst) as f64);
        let policy = RetentionPolicy {
            keep_max: 2,
            keep_every_secs: 2.0,
        };
        let mut saver = Saver::new(dir.path(), policy, clock).expect("saver");
        for step in 0..=8 {
            tick.store(step as u64, std::sync::atomic::Ordering::SeqCst);
            saver.save(step, b"x").expect("saves");
        }
        let mut on_disk: Vec<i64> = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(|e| step_of(&e.expect("entry").file_name().to_string_lossy()))
            .collect();
        on_disk.sort();
        assert_eq!(on_disk, vec![3, 5, 7, 8]);
        let state = read_state(dir.path()).expect("state").expect("written");
        assert_eq!(state.all, entries(&[7, 8]));
    }

    #[test]
    fn state_file_round_trips_in_tf_text_format() {
        let state = CheckpointState {
            latest: Some(file_name(200)),
            all: entries(&[0, 200]),
        };
        let text = state.to_text();
        assert!(text.starts_with("model_checkpoint_path: \"model.ckpt-200.safetensors\"\nall_model_checkpoint_paths: \"model.ckpt-0.safetensors\"\n"));
        assert_eq!(
            CheckpointState::parse(&text, Path::new("checkpoint")).expect("valid"),
            state
        );
    }

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
        let mut saver = Saver::new(dir.path(), keep(2), system_clock()).expect("empty dir");
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
    fn a_new_saver_removes_what_a_crashed_run_left_uncommitted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = CheckpointState {
            latest: Some(file_name(10)),
            all: entries(&[10]),
        };
        std::fs::write(dir.path().join(STATE_FILE), state.to_text()).expect("write");
        for name in [
            file_name(5),
            file_name(10),
            file_name(15),
            ".tmp-x1".into(),
            "notes.txt".into(),
        ] {
            std::fs::write(dir.path().join(name), b"x").expect("write");
        }
        Saver::new(dir.path(), keep(5), system_clock()).expect("saver");
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![
                STATE_FILE.to_owned(),
                file_name(10),
                file_name(5),
                "notes.txt".into()
            ]
        );
    }

    #[cfg(unix)]
    #[test]
    fn written_files_get_the_permissions_of_any_new_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        write_atomic(&dir.path().join("a"), b"x").expect("writes");
        std::fs::write(dir.path().join("b"), b"x").expect("writes");
        let mode = |name: &str| {
            std::fs::metadata(dir.path().join(name))
                .expect("exists")
                .permissions()
                .mode()
        };
        assert_eq!(mode("a"), mode("b"));
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
    fn a_damaged_latest_checkpoint_falls_back_to_the_one_before() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = [1.0f32];
        let tensors = [SavedTensor {
            name: "w",
            shape: &[1],
            data: &data,
        }];
        let mut saver = Saver::new(dir.path(), keep(5), system_clock()).expect("saver");
        for step in [10, 20, 30] {
            saver
                .save(
                    step,
                    &encode(&tensors, step, &BTreeMap::new()).expect("encodes"),
                )
                .expect("saves");
        }
        std::fs::write(dir.path().join(file_name(30)), b"\x10\x00").expect("damage");
        std::fs::remove_file(dir.path().join(file_name(20))).expect("remove");
        let ckpt = read_latest_whole(dir.path())
            .expect("falls back")
            .expect("a checkpoint");
        assert_eq!(ckpt.global_step, 10);
        std::fs::write(dir.path().join(file_name(10)), b"").expect("damage");
        let err = read_latest_whole(dir.path()).unwrap_err().to_string();
        assert!(err.ends_with("model.ckpt-30.safetensors: this and every earlier listed checkpoint are damaged or missing"), "{err}");
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
                    metadata.into_iter().filter(|(k, _)| k != "global_step").collect();
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

            #[test]
            fn any_state_text_is_parsed_or_refused_naming_the_file(text in any::<String>()) {
                if let Err(e) = CheckpointState::parse(&text, Path::new("model/checkpoint")) {
                    prop_assert!(e.to_string().starts_with("model/checkpoint"), "{e}");
                }
            }

            #[test]
            fn states_round_trip_through_their_text(
                steps in proptest::collection::btree_set(0i64..1_000_000, 0..6),
            ) {
                let all: Vec<(String, f64)> = steps
                    .iter()
                    .map(|&s| (file_name(s), 1.7e9 + s as f64))
                    .collect();
                let state = CheckpointState { latest: all.last().map(|(n, _)| n.clone()), all };
                let back = CheckpointState::parse(&state.to_text(), Path::new("checkpoint"))
                    .expect("parses");
                prop_assert_eq!(back, state);
            }
        }
    }
}
