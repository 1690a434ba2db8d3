//! `estimator checkpoints MODEL_DIR`: what a model_dir holds, as TF's
//! `latest_checkpoint`, `get_variable_names` and `get_variable_value` tell it.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use crate::checkpoint::{self, Checkpoint};
use crate::error::{Error, Result};

/// One line per checkpoint in `model_dir`, oldest first: name, step, when it was
/// written, and whether the state file lists it (and as the latest). TF's checkpoints
/// are listed by their prefix (`model.ckpt-300`), as TF's state file names them. Each is
/// read whole, checksums included, and one that fails is marked `DAMAGED` with the cause.
pub fn list(model_dir: &Path) -> Result<String> {
    let state = checkpoint::read_state(model_dir)?.unwrap_or_default();
    let mut files: Vec<(i64, String)> = std::fs::read_dir(model_dir)
        .map_err(|e| Error::io(format!("{}: cannot list", model_dir.display()), e))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            match checkpoint::tf::step_of_index(&name) {
                Some(step) => Some((step, format!("model.ckpt-{step}"))),
                None => checkpoint::step_of(&name).map(|step| (step, name)),
            }
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::ModelDir(format!(
            "Could not find trained model in model_dir: {}",
            model_dir.display()
        )));
    }
    let mut out = String::new();
    for (step, name) in files {
        let listed = state.all.iter().find(|(n, _)| *n == name);
        // TF's own state files record no times (they read as 0).
        let written = match listed {
            Some((_, t)) if *t > 0.0 => format!("written {}", timestamp(*t)),
            _ => "written at an unrecorded time".to_owned(),
        };
        let role = match (
            state.latest.as_deref() == Some(name.as_str()),
            listed.is_some(),
        ) {
            (true, _) => "latest",
            (false, true) => "listed",
            (false, false) => "kept, not listed",
        };
        let health = match checkpoint::read(&model_dir.join(&name)) {
            Ok(_) => String::new(),
            Err(Error::Checkpoint { message, .. }) => format!("  DAMAGED: {message}"),
            Err(other) => format!("  DAMAGED: {other}"),
        };
        out.push_str(&format!(
            "{name}  step {step}  {written}  ({role}){health}\n"
        ));
    }
    Ok(out)
}

/// The variables in a checkpoint, sorted by name, with their shapes.
pub fn variables(ckpt: &Checkpoint) -> String {
    let mut names: Vec<(&String, &Vec<usize>)> = ckpt
        .tensors
        .iter()
        .map(|(n, (shape, _))| (n, shape))
        .collect();
    names.sort();
    let mut out = format!("global_step  []  {}\n", ckpt.global_step);
    for (name, shape) in names {
        out.push_str(&format!("{name}  {shape:?}\n"));
    }
    out
}

/// One variable's value as a (nested) JSON array.
pub fn value(ckpt: &Checkpoint, name: &str) -> Result<String> {
    if name == "global_step" {
        return Ok(ckpt.global_step.to_string());
    }
    let (shape, data) = ckpt.tensors.get(name).ok_or_else(|| Error::Checkpoint {
        path: ckpt.path.clone(),
        message: format!("has no variable `{name}` (see --variables)"),
    })?;
    Ok(nested(shape, data).to_string())
}

fn nested(shape: &[usize], data: &[f32]) -> serde_json::Value {
    match shape.split_first() {
        None => data
            .first()
            .map_or(serde_json::Value::Null, |v| serde_json::json!(v)),
        Some((&rows, rest)) => {
            let width = rest.iter().product::<usize>();
            serde_json::Value::Array(
                (0..rows)
                    .map(|r| nested(rest, data.get(r * width..(r + 1) * width).unwrap_or(&[])))
                    .collect(),
            )
        }
    }
}

fn timestamp(unix: f64) -> String {
    let time = UNIX_EPOCH + Duration::from_secs_f64(unix.max(0.0));
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{Committer, RetentionPolicy, SavedTensor};
    use std::collections::BTreeMap;

    #[test]
    fn lists_checkpoints_with_their_role_and_shows_variables() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let tensors = [SavedTensor {
            name: "w",
            shape: &[2, 3],
            data: &data,
        }];
        let policy = RetentionPolicy {
            keep_max: 2,
            keep_every_secs: 1e9,
        };
        let clock: checkpoint::Clock = Box::new(|| 1_800_000_000.0);
        let mut saver = Committer::new(dir.path(), policy, clock).expect("saver");
        for step in [0, 5, 9] {
            saver
                .save(
                    step,
                    &checkpoint::encode(&tensors, step, &BTreeMap::new()).expect("encodes"),
                )
                .expect("saves");
        }
        let kept_by_age = checkpoint::encode(&tensors, 1, &BTreeMap::new()).expect("encodes");
        std::fs::write(dir.path().join(checkpoint::file_name(1)), kept_by_age).expect("write");
        let five = dir.path().join(checkpoint::file_name(5));
        let mut bytes = std::fs::read(&five).expect("read");
        *bytes.last_mut().expect("data") ^= 0x01;
        std::fs::write(&five, bytes).expect("damage");
        assert_eq!(
            list(dir.path()).expect("lists"),
            "model.ckpt-1.safetensors  step 1  written at an unrecorded time  (kept, not listed)\n\
             model.ckpt-5.safetensors  step 5  written 2027-01-15T08:00:00Z  (listed)  \
             DAMAGED: tensor `w` fails its crc32c check: the file is damaged\n\
             model.ckpt-9.safetensors  step 9  written 2027-01-15T08:00:00Z  (latest)\n"
        );
        let ckpt = checkpoint::read(&dir.path().join(checkpoint::file_name(9))).expect("reads");
        assert_eq!(variables(&ckpt), "global_step  []  9\nw  [2, 3]\n");
        assert_eq!(
            value(&ckpt, "w").expect("present"),
            "[[1.0,2.0,3.0],[4.0,5.0,6.0]]"
        );
        assert!(value(&ckpt, "v")
            .unwrap_err()
            .to_string()
            .contains("has no variable `v`"));
    }

    #[test]
    fn an_empty_model_dir_says_so_as_tf() {
        let dir = tempfile::tempdir().expect("temp dir");
        let err = list(dir.path()).unwrap_err().to_string();
        assert!(
            err.starts_with("Could not find trained model in model_dir:"),
            "{err}"
        );
    }
}
