//! `--model_config_file`: the models to serve, in TF Serving's own `ModelServerConfig` text
//! format (an existing file works unchanged) or as a YAML list. Either way each model has a
//! name, a base path (relative to the file), a version policy and version labels.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::policy::VersionPolicy;
use super::text_format::{self, Message, Scalar, Value};
use crate::error::{Error, Result};

/// One served model, as `--model_name`/`--model_base_path` or an entry of
/// `--model_config_file` gives it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub name: String,
    pub base_path: PathBuf,
    #[serde(default)]
    pub model_version_policy: VersionPolicy,
    /// Names for versions (`stable: 3`), served under `/v1/models/NAME/labels/LABEL`.
    #[serde(default)]
    pub version_labels: BTreeMap<String, u64>,
    /// TF Serving's `model_platform`; only `tensorflow` (its default) or this host's own.
    #[serde(default)]
    pub model_platform: Option<String>,
}

/// Reads `--model_config_file`, in TF Serving's text format when it starts with
/// `model_config_list`, else as YAML.
pub fn read_model_config_file(path: &Path) -> Result<Vec<ModelConfig>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("{}: cannot read: {e}", path.display())))?;
    let bad = |e: &dyn std::fmt::Display| Error::Usage(format!("{}: {e}", path.display()));
    let models = if is_text_format(&text) {
        let top = text_format::parse_file_text(path, &text)?;
        from_text_format(&top).map_err(|e| bad(&e))?
    } else {
        from_yaml(&text).map_err(|e| bad(&e))?
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let mut seen = std::collections::BTreeSet::new();
    models
        .into_iter()
        .map(|mut m| {
            if !seen.insert(m.name.clone()) {
                return Err(bad(&format!("model `{}` is configured twice", m.name)));
            }
            if let Some(platform) = m.model_platform.as_deref() {
                if !matches!(platform, "tensorflow" | "estimator") {
                    return Err(bad(&format!(
                        "model `{}`: model_platform `{platform}` is not served here (tensorflow or estimator)",
                        m.name
                    )));
                }
            }
            m.base_path = base.join(&m.base_path);
            Ok(m)
        })
        .collect()
}

/// Whether the first word of `text` (after comments) is `model_config_list`.
fn is_text_format(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .is_some_and(|l| l.starts_with("model_config_list"))
}

fn from_yaml(text: &str) -> std::result::Result<Vec<ModelConfig>, String> {
    // Through JSON, so that a policy is written as TF Serving writes it, `{latest: {...}}`
    // (serde_yaml reads enums from YAML tags only).
    let yaml: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    let json = serde_json::to_value(yaml).map_err(|e| e.to_string())?;
    serde_json::from_value(json).map_err(|e| e.to_string())
}

/// TF Serving's `ModelServerConfig { model_config_list { config { ... } ... } }`.
fn from_text_format(top: &Message) -> std::result::Result<Vec<ModelConfig>, String> {
    only_fields(top, "ModelServerConfig", &["model_config_list"])?;
    let mut models = Vec::new();
    for list in top.all("model_config_list") {
        let list = message(list, "model_config_list")?;
        only_fields(list, "model_config_list", &["config"])?;
        for config in list.all("config") {
            models.push(model(message(config, "config")?)?);
        }
    }
    Ok(models)
}

fn model(config: &Message) -> std::result::Result<ModelConfig, String> {
    only_fields(
        config,
        "config",
        &[
            "name",
            "base_path",
            "model_platform",
            "model_version_policy",
            "version_labels",
        ],
    )?;
    let name = one_string(config, "name")?.ok_or("a config has no `name`")?;
    let base_path = one_string(config, "base_path")?
        .ok_or_else(|| format!("model `{name}` has no `base_path`"))?;
    let mut version_labels = BTreeMap::new();
    for label in config.all("version_labels") {
        let label = message(label, "version_labels")?;
        only_fields(label, "version_labels", &["key", "value"])?;
        let key = one_string(label, "key")?.ok_or("a version label has no `key`")?;
        let value = one_number(label, "value")?.ok_or("a version label has no `value`")?;
        version_labels.insert(key, value);
    }
    let model_version_policy = match config.all("model_version_policy").next() {
        None => VersionPolicy::default(),
        Some(policy) => version_policy(message(policy, "model_version_policy")?)?,
    };
    Ok(ModelConfig {
        name,
        base_path: PathBuf::from(base_path),
        model_version_policy,
        version_labels,
        model_platform: one_string(config, "model_platform")?,
    })
}

fn version_policy(policy: &Message) -> std::result::Result<VersionPolicy, String> {
    only_fields(
        policy,
        "model_version_policy",
        &["latest", "all", "specific"],
    )?;
    match policy.fields.as_slice() {
        [(kind, value)] => {
            let body = message(value, kind)?;
            match kind.as_str() {
                "latest" => {
                    only_fields(body, "latest", &["num_versions"])?;
                    let n = one_number(body, "num_versions")?.unwrap_or(1);
                    Ok(VersionPolicy::Latest {
                        num_versions: n as usize,
                    })
                }
                "all" => {
                    only_fields(body, "all", &[])?;
                    Ok(VersionPolicy::All {})
                }
                _ => {
                    only_fields(body, "specific", &["versions"])?;
                    let versions = body
                        .all("versions")
                        .map(|v| number(v, "versions"))
                        .collect::<std::result::Result<_, _>>()?;
                    Ok(VersionPolicy::Specific { versions })
                }
            }
        }
        _ => Err("model_version_policy must hold exactly one of latest, all, specific".into()),
    }
}

fn only_fields(m: &Message, what: &str, known: &[&str]) -> std::result::Result<(), String> {
    match m.names().into_iter().find(|n| !known.contains(n)) {
        None => Ok(()),
        Some(unknown) => Err(format!(
            "{what} has no field `{unknown}`{}",
            if known.is_empty() {
                String::new()
            } else {
                format!(" (it has: {})", known.join(", "))
            }
        )),
    }
}

fn message<'m>(v: &'m Value, name: &str) -> std::result::Result<&'m Message, String> {
    match v {
        Value::Message(m) => Ok(m),
        Value::Scalar(_) => Err(format!("`{name}` must be a message (`{name} {{ ... }}`)")),
    }
}

fn one_string(m: &Message, name: &str) -> std::result::Result<Option<String>, String> {
    match m.all(name).last() {
        None => Ok(None),
        Some(Value::Scalar(Scalar::Str(s))) => Ok(Some(s.clone())),
        Some(_) => Err(format!("`{name}` must be a string in quotes")),
    }
}

fn one_number(m: &Message, name: &str) -> std::result::Result<Option<u64>, String> {
    m.all(name).last().map(|v| number(v, name)).transpose()
}

fn number(v: &Value, name: &str) -> std::result::Result<u64, String> {
    match v {
        Value::Scalar(Scalar::Word(w)) => w
            .parse()
            .map_err(|_| format!("`{name}`: `{w}` is not a whole number")),
        _ => Err(format!("`{name}` must be a whole number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("models.config");
        std::fs::write(&path, text).expect("write");
        (dir, path)
    }

    #[test]
    fn tf_servings_text_format_and_yaml_give_the_same_models() {
        let (dir, text) = write(
            r#"model_config_list {
  config {
    name: "iris"
    base_path: "iris"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 3 versions: 5 } }
    version_labels { key: "stable" value: 3 }
    version_labels { key: "canary" value: 5 }
  }
  config { name: "cancer" base_path: "/abs/cancer" }
}
"#,
        );
        let yaml = dir.path().join("models.yaml");
        std::fs::write(
            &yaml,
            "- name: iris\n  base_path: iris\n  model_platform: tensorflow\n  model_version_policy: {specific: {versions: [3, 5]}}\n  version_labels: {stable: 3, canary: 5}\n- name: cancer\n  base_path: /abs/cancer\n",
        )
        .expect("write");
        let from_text = read_model_config_file(&text).expect("valid");
        assert_eq!(from_text, read_model_config_file(&yaml).expect("valid"));
        assert_eq!(from_text[0].base_path, dir.path().join("iris"));
        assert_eq!(from_text[1].base_path, PathBuf::from("/abs/cancer"));
        assert_eq!(from_text[0].version_labels["canary"], 5);
        assert_eq!(from_text[1].model_version_policy, VersionPolicy::default());
    }

    #[test]
    fn a_bad_file_is_refused_naming_the_file_the_place_and_the_cause() {
        let cases = [
            ("model_config_list { config { name: \"a\" base_path: \"b\" nope: 1 } }", "config has no field `nope`"),
            ("model_config_list { config { base_path: \"b\" } }", "a config has no `name`"),
            ("model_config_list {\n config { name \"a\" } }", "models.config:2:16: expected `:` or `{` after `name`"),
            ("model_config_list { config { name: \"a\" base_path: \"b\" model_version_policy { latest {} all {} } } }", "exactly one of latest, all, specific"),
            ("model_config_list { config { name: \"a\" base_path: \"b\" model_platform: \"onnx\" } }", "model_platform `onnx` is not served here"),
            ("model_config_list { config { name: \"a\" base_path: \"b\" } config { name: \"a\" base_path: \"c\" } }", "model `a` is configured twice"),
        ];
        for (text, cause) in cases {
            let (_dir, path) = write(text);
            let e = read_model_config_file(&path)
                .expect_err("refused")
                .to_string();
            assert!(e.starts_with(&path.display().to_string()), "{e}");
            assert!(e.contains(cause), "{text}: {e}");
        }
    }
}

/// What changed between two readings of the config file.
#[derive(Debug, Default, PartialEq)]
pub struct ConfigChange {
    /// New models, and models whose base path or policy changed: loaded anew, then
    /// swapped in.
    pub load: Vec<ModelConfig>,
    /// Models no longer in the file: unloaded.
    pub remove: Vec<String>,
    /// Models whose labels alone changed: relabeled in place.
    pub relabel: Vec<ModelConfig>,
}

impl ConfigChange {
    pub fn between(old: &[ModelConfig], new: &[ModelConfig]) -> Self {
        let mut change = ConfigChange::default();
        for model in new {
            match old.iter().find(|o| o.name == model.name) {
                None => change.load.push(model.clone()),
                Some(o)
                    if o.base_path != model.base_path
                        || o.model_version_policy != model.model_version_policy =>
                {
                    change.load.push(model.clone())
                }
                Some(o) if o.version_labels != model.version_labels => {
                    change.relabel.push(model.clone())
                }
                Some(_) => {}
            }
        }
        change.remove = old
            .iter()
            .filter(|o| !new.iter().any(|m| m.name == o.name))
            .map(|o| o.name.clone())
            .collect();
        change
    }

    pub fn is_empty(&self) -> bool {
        self.load.is_empty() && self.remove.is_empty() && self.relabel.is_empty()
    }
}

#[cfg(test)]
mod change_tests {
    use super::*;

    fn model(name: &str, base: &str, labels: &[(&str, u64)]) -> ModelConfig {
        ModelConfig {
            name: name.into(),
            base_path: base.into(),
            model_version_policy: VersionPolicy::default(),
            version_labels: labels.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            model_platform: None,
        }
    }

    #[test]
    fn a_reload_loads_new_and_moved_models_relabels_in_place_and_removes_the_rest() {
        let old = [
            model("a", "a", &[]),
            model("b", "b", &[]),
            model("c", "c", &[]),
        ];
        let new = [
            model("a", "a", &[("stable", 1)]),
            model("b", "b2", &[]),
            model("d", "d", &[]),
        ];
        let change = ConfigChange::between(&old, &new);
        let names = |v: &[ModelConfig]| v.iter().map(|m| m.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&change.load), ["b", "d"]);
        assert_eq!(names(&change.relabel), ["a"]);
        assert_eq!(change.remove, ["c"]);
        assert!(ConfigChange::between(&new, &new).is_empty());
    }
}
