//! `estimator new-plugin DIR`: a plugin crate that builds on its own, with a working model,
//! metric or input, a manifest at its root that trains with it, data, and a test.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// What the new crate exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PluginKind {
    Model,
    Metric,
    Input,
}

/// The plugin-api this host was built from, which the new crate depends on by path.
pub fn default_plugin_api() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-api")
}

/// Writes the crate into `dir` (new, or an empty folder); returns the plugin's name.
pub fn new_plugin(dir: &Path, kind: PluginKind, plugin_api: &Path) -> Result<String> {
    if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(Error::Usage(format!(
            "{}: the folder is not empty; new-plugin writes a new crate",
            dir.display()
        )));
    }
    let name = plugin_name(dir)?;
    let api = plugin_api.canonicalize().map_err(|e| {
        Error::Usage(format!(
            "--plugin-api {}: {e} (the plugin-api crate the new plugin depends on)",
            plugin_api.display()
        ))
    })?;
    let fill = |text: &str| {
        text.replace("{{name}}", &name)
            .replace("{{Type}}", &type_name(&name))
            .replace("{{dash}}", &name.replace('_', "-"))
            .replace("{{api}}", &api.display().to_string())
    };
    let source = match kind {
        PluginKind::Model => include_str!("templates/model.rs.txt"),
        PluginKind::Metric => include_str!("templates/metric.rs.txt"),
        PluginKind::Input => include_str!("templates/input.rs.txt"),
    };
    let mut files = vec![
        ("Cargo.toml".to_owned(), fill(CARGO_TOML)),
        ("src/lib.rs".to_owned(), fill(source)),
        ("manifest.yaml".to_owned(), fill(manifest(kind))),
        ("README.md".to_owned(), fill(README)),
        (".gitignore".to_owned(), "/target\n/runs\n".to_owned()),
    ];
    if kind != PluginKind::Input {
        files.push(("data/train.csv".to_owned(), separable_csv(1000, 1)));
        files.push(("data/eval.csv".to_owned(), separable_csv(200, 2)));
    }
    for (path, text) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("{}: cannot create", parent.display()), e))?;
        }
        std::fs::write(&path, text)
            .map_err(|e| Error::io(format!("{}: cannot write", path.display()), e))?;
    }
    Ok(name)
}

/// The plugin's name from its folder's: lower case, `_` for anything but letters and digits.
fn plugin_name(dir: &Path) -> Result<String> {
    let folder = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name: String = folder
        .strip_prefix("estimator-plugin-")
        .unwrap_or(&folder)
        .chars()
        .map(|c| match c.is_ascii_alphanumeric() {
            true => c.to_ascii_lowercase(),
            false => '_',
        })
        .collect();
    match name.chars().next() {
        Some(c) if c.is_ascii_lowercase() => Ok(name),
        _ => Err(Error::Usage(format!(
            "{}: a plugin's folder name must start with a letter (it names the plugin)",
            dir.display()
        ))),
    }
}

/// `my_model` → `MyModel`.
fn type_name(name: &str) -> String {
    name.split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// `rows` examples of two features uniform in [-1, 1) and the label `x0 + 2·x1 > 0`.
fn separable_csv(rows: usize, seed: u64) -> String {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let mut out = String::from("x0,x1,label\n");
    for _ in 0..rows {
        let (a, b) = (next(), next());
        out.push_str(&format!("{a},{b},{}\n", u8::from(a + 2.0 * b > 0.0)));
    }
    out
}

const CARGO_TOML: &str = r#"[package]
name = "estimator-plugin-{{dash}}"
version = "0.1.0"
edition = "2021"
publish = false

[lib]
# cdylib for the estimator to load; rlib to test the plugin in-process.
crate-type = ["cdylib", "rlib"]

[dependencies]
estimator-plugin-api = { path = "{{api}}" }
serde = { version = "1", features = ["derive"] }

[dev-dependencies]
serde_json = "1"

# A crate of its own, even inside another workspace's folder.
[workspace]
"#;

const README: &str = r#"# estimator-plugin-{{dash}}

```sh
cargo test
cargo build --release
ESTIMATOR_PLUGIN_PATH=target/release estimator train manifest.yaml
ESTIMATOR_PLUGIN_PATH=target/release estimator evaluate manifest.yaml
```

`src/lib.rs` is the plugin; `manifest.yaml` trains with it. The estimator finds the other
plugins the manifest names (`csv`, `metrics`, `premade`) next to its binary.
"#;

fn manifest(kind: PluginKind) -> &'static str {
    match kind {
        PluginKind::Model => {
            r#"# Trains the {{name}} model on data/train.csv, evaluates on data/eval.csv.
model_dir: runs/{{name}}
model:
  plugin: {{name}}
  params:
    hidden_units: 8
    feature_columns: [{ numeric: x0 }, { numeric: x1 }]
optimizer: { name: adam, learning_rate: 0.05 }
input:
  train: { plugin: csv, params: { path: data/train.csv, label: label }, shuffle: 1000, repeat: true, batch_size: 50 }
  eval: { plugin: csv, params: { path: data/eval.csv, label: label }, batch_size: 200 }
run_config: { random_seed: 42 }
train: { max_steps: 500 }
"#
        }
        PluginKind::Metric => {
            r#"# A premade linear classifier on data/train.csv, evaluated with the {{name}} metric.
model_dir: runs/{{name}}
model:
  plugin: premade
  name: linear_classifier
  params: { feature_columns: [{ numeric: x0 }, { numeric: x1 }] }
optimizer: { name: ftrl, learning_rate: 0.5 }
input:
  train: { plugin: csv, params: { path: data/train.csv, label: label }, shuffle: 1000, repeat: true, batch_size: 50 }
  eval: { plugin: csv, params: { path: data/eval.csv, label: label }, batch_size: 200 }
metrics:
  error_rate: { plugin: {{name}}, kind: {{name}}, predictions: class_ids }
run_config: { random_seed: 42 }
train: { max_steps: 500 }
"#
        }
        PluginKind::Input => {
            r#"# A premade linear classifier on examples the {{name}} input generates.
model_dir: runs/{{name}}
model:
  plugin: premade
  name: linear_classifier
  params: { feature_columns: [{ numeric: x0 }, { numeric: x1 }] }
optimizer: { name: ftrl, learning_rate: 0.5 }
input:
  train: { plugin: {{name}}, params: { rows: 1000, seed: 1 }, shuffle: 1000, repeat: true, batch_size: 50 }
  eval: { plugin: {{name}}, params: { rows: 200, seed: 2 }, batch_size: 200 }
run_config: { random_seed: 42 }
train: { max_steps: 500 }
"#
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_folder() {
        assert_eq!(
            plugin_name(Path::new("/x/My-Model")).expect("valid"),
            "my_model"
        );
        assert_eq!(
            plugin_name(Path::new("estimator-plugin-wide")).expect("valid"),
            "wide"
        );
        assert!(plugin_name(Path::new("/x/2fast")).is_err());
        assert_eq!(type_name("my_model"), "MyModel");
    }

    #[test]
    fn a_folder_with_files_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("x"), "").expect("write");
        let err = new_plugin(dir.path(), PluginKind::Model, &default_plugin_api()).unwrap_err();
        assert!(err.to_string().contains("the folder is not empty"), "{err}");
    }
}
