//! The `checkpoint` state file (TF's text format) naming the latest checkpoint and the
//! ones kept, and reading the latest whole checkpoint back.

use std::path::{Path, PathBuf};

use super::format::{read, Checkpoint};
use crate::error::{Error, Result};

/// The state file's name in model_dir, as TF's.
pub const STATE_FILE: &str = "checkpoint";

/// The checkpoint file of `step`.
pub fn file_name(step: i64) -> String {
    format!("model.ckpt-{step}.safetensors")
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

/// The global step in a checkpoint file name `model.ckpt-<step>.safetensors`.
pub fn step_of(file_name: &str) -> Option<i64> {
    file_name
        .strip_prefix("model.ckpt-")?
        .strip_suffix(".safetensors")?
        .parse()
        .ok()
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::test_support::{entries, keep};
    use crate::checkpoint::{encode, system_clock, Committer, SavedTensor};
    use std::collections::BTreeMap;

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
    fn a_damaged_latest_checkpoint_falls_back_to_the_one_before() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = [1.0f32];
        let tensors = [SavedTensor {
            name: "w",
            shape: &[1],
            data: &data,
        }];
        let mut saver = Committer::new(dir.path(), keep(5), system_clock()).expect("saver");
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

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
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
