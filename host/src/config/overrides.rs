//! Changing a manifest from the command line: `--set key.path=value`, and `predict
//! --input FILE`.

use crate::error::Invalid;
use std::path::Path;

use super::manifest::Manifest;
use crate::error::Result;

impl Manifest {
    /// Points the predict input at another file: `params.path` of `input.predict` (or of a
    /// copy of `input.eval`) becomes `path`, resolved against the current directory.
    pub fn override_predict_path(&mut self, path: &Path) -> Result<()> {
        let mut entry = self.input("predict")?.clone();
        let absolute = std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf());
        if !entry.params.is_mapping() {
            entry.params = serde_yaml::Value::Mapping(Default::default());
        }
        if let serde_yaml::Value::Mapping(map) = &mut entry.params {
            map.insert(
                "path".into(),
                absolute.to_string_lossy().into_owned().into(),
            );
        }
        self.input.predict = Some(entry);
        Ok(())
    }
}

/// Applies one `key.path=value` override to the manifest's YAML tree; the value is read
/// as YAML (`7`, `null`, `[10, 10]`, `{name: sgd}`), and missing mappings are created.
pub(super) fn set(
    tree: &mut serde_yaml::Value,
    assignment: &str,
) -> std::result::Result<(), Invalid> {
    let (path, value) = assignment
        .split_once('=')
        .ok_or("expected key.path=value")?;
    let value: serde_yaml::Value =
        serde_yaml::from_str(value).map_err(|e| format!("the value is not YAML: {e}"))?;
    let mut node = tree;
    for key in path.split('.') {
        if key.is_empty() {
            return Err(Invalid(format!("`{path}` has an empty key")));
        }
        if node.is_null() {
            *node = serde_yaml::Value::Mapping(Default::default());
        }
        let serde_yaml::Value::Mapping(map) = node else {
            return Err(Invalid(format!(
                "`{key}` is inside a value that is not a mapping"
            )));
        };
        node = map
            .entry(serde_yaml::Value::String(key.to_owned()))
            .or_insert(serde_yaml::Value::Null);
    }
    *node = value;
    Ok(())
}
