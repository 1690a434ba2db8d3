//! `warm_start_from`: initialise a new model's variables from another run's checkpoint,
//! as TF's `WarmStartSettings`. Applied only when model_dir has no checkpoint yet.
//!
//! TF's selection rules, kept as they are: a single regex (the default, `.*`) is matched
//! from the start of the name, not the whole name, against trainable variables only; a
//! list of regexes matches every variable, optimizer slots and `global_step` included.
//! `var_name_to_prev_var_name` renames (current name → name in the source); it never
//! selects, and a key that renames nothing selected is an error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::checkpoint;
use crate::error::{Error, Invalid, Result};

/// `warm_start_from:` in the manifest: a path, or TF's `WarmStartSettings` fields.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum WarmStartFrom {
    Path(String),
    Settings(WarmStartSettings),
}

// By hand rather than `untagged`, so that a mistake inside the settings is reported
// where it is, not as "no variant matched".
impl<'de> Deserialize<'de> for WarmStartFrom {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = WarmStartFrom;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a checkpoint path or {ckpt_to_initialize_from, vars_to_warm_start, var_name_to_prev_var_name}")
            }
            fn visit_str<E: serde::de::Error>(
                self,
                v: &str,
            ) -> std::result::Result<WarmStartFrom, E> {
                Ok(WarmStartFrom::Path(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<WarmStartFrom, A::Error> {
                WarmStartSettings::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(WarmStartFrom::Settings)
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WarmStartSettings {
    /// A checkpoint file, or a model_dir (its latest checkpoint).
    pub ckpt_to_initialize_from: String,
    #[serde(default)]
    pub vars_to_warm_start: VarsToWarmStart,
    #[serde(default)]
    pub var_name_to_prev_var_name: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum VarsToWarmStart {
    /// Matched from the start of the name against trainable variables.
    Regex(String),
    /// Each matched from the start of the name against every variable.
    List(Vec<String>),
}

impl<'de> Deserialize<'de> for VarsToWarmStart {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = VarsToWarmStart;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a regex or a list of regexes")
            }
            fn visit_str<E: serde::de::Error>(
                self,
                v: &str,
            ) -> std::result::Result<VarsToWarmStart, E> {
                Ok(VarsToWarmStart::Regex(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> std::result::Result<VarsToWarmStart, A::Error> {
                Vec::<String>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(VarsToWarmStart::List)
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl Default for VarsToWarmStart {
    fn default() -> Self {
        VarsToWarmStart::Regex(".*".into())
    }
}

impl WarmStartFrom {
    fn settings(&self) -> WarmStartSettings {
        match self {
            WarmStartFrom::Path(path) => WarmStartSettings {
                ckpt_to_initialize_from: path.clone(),
                vars_to_warm_start: VarsToWarmStart::default(),
                var_name_to_prev_var_name: BTreeMap::new(),
            },
            WarmStartFrom::Settings(s) => s.clone(),
        }
    }
}

/// A value the model needs, offered for warm-starting.
pub struct Target<'a> {
    pub name: &'a str,
    pub shape: &'a [usize],
    pub data: &'a mut Vec<f32>,
    pub trainable: bool,
}

/// Initialises the selected `targets` from the source checkpoint, and `global_step` when
/// a list selects it. `manifest` names the manifest in errors, `base_dir` anchors a
/// relative path. Returns the names warm-started.
pub fn apply(
    from: &WarmStartFrom,
    manifest: &Path,
    base_dir: &Path,
    targets: &mut [Target<'_>],
    global_step: &mut i64,
) -> Result<Vec<String>> {
    let settings = from.settings();
    let bad = |m: String| Error::Manifest(format!("{}: warm_start_from: {m}", manifest.display()));
    let (regexes, all_variables) = match &settings.vars_to_warm_start {
        VarsToWarmStart::Regex(r) => (vec![r.clone()], false),
        VarsToWarmStart::List(list) => (list.clone(), true),
    };
    let regexes = regexes
        .iter()
        .map(|r| Regex::new(&format!("^(?:{r})")).map_err(|e| bad(format!("`{r}`: {e}"))))
        .collect::<Result<Vec<_>>>()?;
    let selected = |name: &str, trainable: bool| {
        (trainable || all_variables) && regexes.iter().any(|r| r.is_match(name))
    };
    let path =
        source_path(&base_dir.join(&settings.ckpt_to_initialize_from)).map_err(|m| bad(m.0))?;
    // A file of weights alone (written by Python, say) is a source too.
    let mut source = checkpoint::read_weights(&path)?;
    info!("Warm-starting from: {}", path.display());

    let mut renames = settings.var_name_to_prev_var_name.clone();
    let mut started = Vec::new();
    for target in targets.iter_mut().filter(|t| selected(t.name, t.trainable)) {
        let prev = renames.remove(target.name);
        let source_name = prev.as_deref().unwrap_or(target.name);
        info!(
            "Warm-starting variable: {}; prev_var_name: {}",
            target.name,
            prev.as_deref().unwrap_or("Unchanged")
        );
        *target.data = source.take(source_name, target.shape)?;
        started.push(target.name.to_owned());
    }
    if all_variables && selected("global_step", false) {
        *global_step = source.global_step.ok_or_else(|| Error::Checkpoint {
            path: path.clone(),
            message: "has no global_step to warm-start".into(),
        })?;
        started.push("global_step".into());
    }
    if !renames.is_empty() {
        let unused: Vec<&str> = renames.keys().map(String::as_str).collect();
        let viable: Vec<&str> = targets
            .iter()
            .filter(|t| selected(t.name, t.trainable))
            .map(|t| t.name)
            .collect();
        return Err(bad(format!(
            "var_name_to_prev_var_name names variables that were not warm-started: {}; the warm-started ones are: {}",
            unused.join(", "),
            viable.join(", ")
        )));
    }
    Ok(started)
}

/// A checkpoint file as given (or TF's checkpoint prefix), or with `.safetensors` added to
/// a prefix, or a model_dir's latest checkpoint (ours or TF's); otherwise why not.
fn source_path(path: &Path) -> std::result::Result<PathBuf, Invalid> {
    if path.is_dir() {
        let latest = checkpoint::latest(path).map_err(|e| Invalid(e.to_string()))?;
        return latest.ok_or_else(|| Invalid(format!("{} has no checkpoint", path.display())));
    }
    if path.is_file() || checkpoint::tf::is_tf_checkpoint(path) {
        return Ok(path.to_path_buf());
    }
    let with_suffix = PathBuf::from(format!("{}.safetensors", path.display()));
    match with_suffix.is_file() {
        true => Ok(with_suffix),
        false => Err(Invalid(format!(
            "no checkpoint or model_dir at {}",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::SavedTensor;

    /// A source checkpoint with `a/w` = [1, 2], `b/w` = [3], a slot and global step 40.
    fn source(dir: &Path) -> PathBuf {
        let (aw, bw, slot) = ([1.0f32, 2.0], [3.0f32], [9.0f32, 9.0]);
        let tensors = [
            SavedTensor {
                name: "a/w",
                shape: &[2],
                data: &aw,
            },
            SavedTensor {
                name: "old_b",
                shape: &[1],
                data: &bw,
            },
            SavedTensor {
                name: "training/Adagrad/a/w/accumulator",
                shape: &[2],
                data: &slot,
            },
        ];
        let bytes = checkpoint::encode(&tensors, 40, &BTreeMap::new()).expect("encodes");
        let path = dir.join(checkpoint::file_name(40));
        std::fs::write(&path, bytes).expect("write");
        path
    }

    fn settings(vars: VarsToWarmStart, renames: &[(&str, &str)]) -> WarmStartFrom {
        WarmStartFrom::Settings(WarmStartSettings {
            ckpt_to_initialize_from: "model.ckpt-40".into(),
            vars_to_warm_start: vars,
            var_name_to_prev_var_name: renames
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        })
    }

    struct Values {
        aw: Vec<f32>,
        bw: Vec<f32>,
        slot: Vec<f32>,
        step: i64,
    }

    fn run(from: &WarmStartFrom, dir: &Path) -> Result<(Values, Vec<String>)> {
        let mut v = Values {
            aw: vec![0.0; 2],
            bw: vec![0.0],
            slot: vec![0.1; 2],
            step: 0,
        };
        let mut targets = [
            Target {
                name: "a/w",
                shape: &[2],
                data: &mut v.aw,
                trainable: true,
            },
            Target {
                name: "b/w",
                shape: &[1],
                data: &mut v.bw,
                trainable: true,
            },
            Target {
                name: "training/Adagrad/a/w/accumulator",
                shape: &[2],
                data: &mut v.slot,
                trainable: false,
            },
        ];
        let started = apply(from, Path::new("m.yaml"), dir, &mut targets, &mut v.step)?;
        Ok((v, started))
    }

    #[test]
    fn a_regex_selects_trainable_variables_matched_from_the_start() {
        let dir = tempfile::tempdir().expect("temp dir");
        source(dir.path());
        let (v, started) = run(
            &settings(VarsToWarmStart::Regex("a".into()), &[]),
            dir.path(),
        )
        .expect("ok");
        assert_eq!(started, vec!["a/w"]);
        assert_eq!(
            (v.aw, v.bw, v.slot, v.step),
            (vec![1.0, 2.0], vec![0.0], vec![0.1, 0.1], 0)
        );
        // `w` matches no name from its start.
        let (_, started) = run(
            &settings(VarsToWarmStart::Regex("w".into()), &[]),
            dir.path(),
        )
        .expect("ok");
        assert!(started.is_empty());
    }

    #[test]
    fn a_list_selects_slots_and_global_step_too() {
        let dir = tempfile::tempdir().expect("temp dir");
        source(dir.path());
        let list =
            VarsToWarmStart::List(vec!["a/".into(), "training/".into(), "global_step".into()]);
        let (v, started) = run(&settings(list, &[]), dir.path()).expect("ok");
        assert_eq!(
            started,
            vec!["a/w", "training/Adagrad/a/w/accumulator", "global_step"]
        );
        assert_eq!((v.slot, v.step), (vec![9.0, 9.0], 40));
    }

    #[test]
    fn renames_map_current_names_to_the_source_and_unused_ones_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        source(dir.path());
        let (v, _) = run(
            &settings(VarsToWarmStart::default(), &[("b/w", "old_b")]),
            dir.path(),
        )
        .expect("ok");
        assert_eq!((v.aw, v.bw), (vec![1.0, 2.0], vec![3.0]));
        let err = run(
            &settings(
                VarsToWarmStart::default(),
                &[("b/w", "old_b"), ("c/w", "x")],
            ),
            dir.path(),
        )
        .err()
        .expect("refused")
        .to_string();
        assert!(
            err.contains("names variables that were not warm-started: c/w"),
            "{err}"
        );
        // Without the rename, `b/w` is selected but missing from the source.
        let err = run(&settings(VarsToWarmStart::default(), &[]), dir.path())
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("has no tensor `b/w`"), "{err}");
    }

    #[test]
    fn a_model_dir_means_its_latest_checkpoint() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(source_path(dir.path())
            .unwrap_err()
            .to_string()
            .contains("has no checkpoint"));
        let missing = source_path(&dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("no checkpoint or model_dir at"),
            "{missing}"
        );
    }
}
