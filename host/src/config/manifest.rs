//! The YAML manifest: which plugins to load and how to run them.
//!
//! Unknown keys are errors. Parse errors carry `file:line:column`; checks made after
//! parsing name the file and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::entries::{
    EvalSection, InputEntry, InputSection, MetricEntry, ModelEntry, TrainSection,
};
use super::overrides::set;
use super::run_config::RunConfig;
use super::specs::{EvalSpec, TrainSpec};
use super::yaml_errors::yaml_error;
use crate::error::{Error, Result};
use crate::hooks::HooksSection;
use crate::optimizer::OptimizerSection;
use crate::warm_start::WarmStartFrom;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Where checkpoints go, relative to the manifest's folder.
    pub model_dir: PathBuf,
    pub model: ModelEntry,
    /// The optimizers; absent, each of the model's parts gets TF's default for it.
    #[serde(
        default,
        deserialize_with = "optimizer_in_context",
        skip_serializing_if = "OptimizerSection::is_model_default"
    )]
    pub optimizer: OptimizerSection,
    #[serde(default)]
    pub input: InputSection,
    /// Metrics computed by metric plugins during evaluation, by the name they report under.
    #[serde(default)]
    pub metrics: BTreeMap<String, MetricEntry>,
    #[serde(default)]
    pub run_config: RunConfig,
    #[serde(default)]
    pub train: TrainSection,
    #[serde(default)]
    pub eval: EvalSection,
    /// Built-in hooks for the train, eval and predict loops.
    #[serde(default, skip_serializing_if = "HooksSection::is_empty")]
    pub hooks: HooksSection,
    /// `train-and-evaluate`'s training: TF's `TrainSpec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_spec: Option<TrainSpec>,
    /// `train-and-evaluate`'s evaluations: TF's `EvalSpec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_spec: Option<EvalSpec>,
    /// Initialise variables from another checkpoint when model_dir has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_start_from: Option<WarmStartFrom>,

    /// The manifest file itself, for error messages.
    #[serde(skip)]
    pub file: PathBuf,
    /// The manifest's folder: relative paths resolve against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// SHA-256 of the manifest text, recorded in checkpoints.
    #[serde(skip)]
    pub sha256: String,
}

impl Manifest {
    /// Reads, parses and checks a manifest file.
    pub fn load(path: &Path) -> Result<Manifest> {
        Self::load_with(path, &[])
    }

    /// Reads a manifest file, applies `--set key.path=value` overrides, parses and checks.
    pub fn load_with(path: &Path, overrides: &[String]) -> Result<Manifest> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Manifest(format!("{}: cannot read manifest: {e}", path.display()))
        })?;
        if overrides.is_empty() {
            return Self::parse(&text, path);
        }
        let mut tree: serde_yaml::Value =
            serde_yaml::from_str(&text).map_err(|e| yaml_error(path, &text, &e))?;
        for o in overrides {
            set(&mut tree, o)
                .map_err(|m| Error::Manifest(format!("{}: --set {o}: {m}", path.display())))?;
        }
        let mut manifest: Manifest = serde_yaml::from_value(tree)
            .map_err(|e| Error::Manifest(format!("{} (with --set): {e}", path.display())))?;
        manifest.finish(path, &text)?;
        Ok(manifest)
    }

    /// Parses manifest text; `path` names it in errors and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest> {
        let mut manifest: Manifest =
            serde_yaml::from_str(text).map_err(|e| yaml_error(path, text, &e))?;
        manifest.finish(path, text)?;
        Ok(manifest)
    }

    /// Records where the manifest came from, then checks it.
    fn finish(&mut self, path: &Path, text: &str) -> Result<()> {
        let manifest = self;
        manifest.file = path.to_path_buf();
        manifest.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        if manifest.base_dir.as_os_str().is_empty() {
            manifest.base_dir = PathBuf::from(".");
        }
        manifest.sha256 = crate::fingerprint::sha256_hex(text.as_bytes());
        manifest.check()
    }

    fn check(&self) -> Result<()> {
        let no_hooks = Vec::new();
        let train_spec_hooks = self.train_spec.as_ref().map_or(&no_hooks, |t| &t.hooks);
        let eval_spec_hooks = self.eval_spec.as_ref().map_or(&no_hooks, |e| &e.hooks);
        let sections = [
            ("hooks.train", &self.hooks.train),
            ("hooks.eval", &self.hooks.eval),
            ("hooks.predict", &self.hooks.predict),
            ("train_spec.hooks", train_spec_hooks),
            ("eval_spec.hooks", eval_spec_hooks),
        ];
        for (loop_name, configs) in sections {
            let hooks_model_dir = self.model_dir();
            let summaries = crate::events::SummaryWriter::new(Path::new("."));
            for config in configs {
                config
                    .build(&summaries, &hooks_model_dir)
                    .map_err(|m| self.error(format!("{loop_name}: {m}")))?;
            }
        }
        self.optimizer.validate().map_err(|m| self.error(m))?;
        if let Some(spec) = &self.eval_spec {
            spec.validate().map_err(|m| self.error(m))?;
        }
        if self.train_spec.as_ref().and_then(|t| t.max_steps) == Some(0) {
            return Err(self.error("train_spec: max_steps must be > 0"));
        }
        if let (Some(_), Some(_)) = (self.train.steps, self.train.max_steps) {
            return Err(self.error("train: steps and max_steps cannot be both set"));
        }
        if self.train.steps == Some(0) || self.train.max_steps == Some(0) {
            return Err(self.error("train: steps and max_steps must be > 0"));
        }
        if self.model_dir.as_os_str().is_empty() {
            return Err(self.error("model_dir should be non-empty"));
        }
        for reserved in ["loss", "global_step"] {
            if self.metrics.contains_key(reserved) {
                return Err(self.error(format!(
                    "metrics: `{reserved}` is reserved: the estimator reports it itself"
                )));
            }
        }
        Ok(())
    }

    /// The manifest as YAML, with every default filled in.
    pub fn to_yaml(&self) -> Result<String> {
        serde_yaml::to_string(self)
            .map_err(|e| self.error(format!("cannot write the resolved configuration: {e}")))
    }

    /// An error about this manifest, naming its file.
    pub fn error(&self, message: impl std::fmt::Display) -> Error {
        Error::Manifest(format!("{}: {message}", self.file.display()))
    }

    pub fn model_dir(&self) -> PathBuf {
        self.base_dir.join(&self.model_dir)
    }

    /// The input for a mode, or an error naming the missing key.
    pub fn input(&self, key: &str) -> Result<&InputEntry> {
        let entry = match key {
            "train" => self.input.train.as_ref(),
            "eval" => self.input.eval.as_ref(),
            _ => self.input.predict.as_ref().or(self.input.eval.as_ref()),
        };
        entry.ok_or_else(|| self.error(format!("input.{key} is required for this command")))
    }
}

/// `optimizer:` holds internally tagged enums, which serde reads from a buffer that has
/// lost positions and key paths; reading it from a YAML value and failing here puts the
/// key, and the position serde_yaml has for the whole mapping, back into the message.
fn optimizer_in_context<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<OptimizerSection, D::Error> {
    let value = serde_yaml::Value::deserialize(d)?;
    OptimizerSection::from_yaml(value).map_err(serde::de::Error::custom)
}

/// A params subtree as the JSON text plugins receive.
pub fn params_json(params: &serde_yaml::Value) -> String {
    match params {
        serde_yaml::Value::Null => "{}".to_owned(),
        other => serde_json::to_string(other).unwrap_or_else(|_| "{}".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Sha256Pin;

    const MINIMAL: &str = "model_dir: runs/x\nmodel: { plugin: iris_custom }\n";

    #[test]
    fn minimal_manifest_gets_tf_defaults() {
        let m = Manifest::parse(MINIMAL, Path::new("configs/m.yaml")).expect("valid");
        assert_eq!(m.model_dir(), PathBuf::from("configs/runs/x"));
        assert_eq!(m.run_config, RunConfig::default());
    }

    #[test]
    fn unknown_key_names_file_line_and_column() {
        let text = format!("{MINIMAL}run_config:\n  random_sed: 1\n");
        let err = Manifest::parse(&text, Path::new("m.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("m.yaml:4:3: run_config: unknown field `random_sed`"),
            "{err}"
        );
    }

    #[test]
    fn zero_batch_size_is_refused_with_position() {
        let text = format!("{MINIMAL}input:\n  train: {{ plugin: csv, batch_size: 0 }}\n");
        let err = Manifest::parse(&text, Path::new("m.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("m.yaml:4:"), "{err}");
        assert!(err.contains("nonzero"), "{err}");
    }

    #[test]
    fn reserved_metric_names_are_refused() {
        let text = format!("{MINIMAL}metrics:\n  loss: {{ plugin: metrics, kind: mean }}\n");
        let err = Manifest::parse(&text, Path::new("m.yaml"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "m.yaml: metrics: `loss` is reserved: the estimator reports it itself"
        );
    }

    #[test]
    fn a_malformed_sha256_pin_is_refused_with_position() {
        let text = "model_dir: x\nmodel:\n  plugin: iris_custom\n  sha256: abc\n";
        let err = Manifest::parse(text, Path::new("m.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("m.yaml:4:") && err.contains("sha256 must be 64 hex digits"),
            "{err}"
        );
        let pin = "AB".repeat(32);
        let text = format!("model_dir: x\nmodel: {{ plugin: iris_custom, sha256: {pin} }}\n");
        let m = Manifest::parse(&text, Path::new("m.yaml")).expect("valid");
        let expected = "ab".repeat(32);
        assert_eq!(
            m.model.sha256.as_ref().map(Sha256Pin::as_str),
            Some(expected.as_str())
        );
    }

    #[test]
    fn set_overrides_nested_keys_and_creates_missing_ones() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("m.yaml");
        std::fs::write(
            &path,
            format!("{MINIMAL}run_config: {{ random_seed: 1 }}\n"),
        )
        .expect("write");
        let sets = [
            "run_config.random_seed=7".to_owned(),
            "model.params.hidden_units=[20, 20]".to_owned(),
            "train.max_steps=50".to_owned(),
        ];
        let m = Manifest::load_with(&path, &sets).expect("valid");
        assert_eq!(m.run_config.random_seed, Some(7));
        assert_eq!(params_json(&m.model.params), r#"{"hidden_units":[20,20]}"#);
        assert_eq!(m.train.max_steps, Some(50));
        let err = Manifest::load_with(&path, &["run_config.random_sed=1".to_owned()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `random_sed`"), "{err}");
        let err = Manifest::load_with(&path, &["model_dir".to_owned()])
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("m.yaml: --set model_dir: expected key.path=value"),
            "{err}"
        );
    }

    #[test]
    fn the_resolved_manifest_parses_back_to_the_same_settings() {
        let text = format!(
            "{MINIMAL}run_config: {{ save_checkpoints_steps: 10, keep_checkpoint_max: null }}\n"
        );
        let m = Manifest::parse(&text, Path::new("m.yaml")).expect("valid");
        let again =
            Manifest::parse(&m.to_yaml().expect("yaml"), Path::new("m.yaml")).expect("reads back");
        assert_eq!(again.run_config, m.run_config);
        assert_eq!(again.optimizer, m.optimizer);
    }

    #[test]
    fn params_become_json() {
        let v: serde_yaml::Value =
            serde_yaml::from_str("{hidden_units: [10, 10], n: 3}").expect("yaml");
        assert_eq!(params_json(&v), r#"{"hidden_units":[10,10],"n":3}"#);
        assert_eq!(params_json(&serde_yaml::Value::Null), "{}");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        const VALID: &str = include_str!("../../../configs/iris_custom.yaml");

        /// Any parse error names the file, and none panics.
        fn parsed_or_refused(text: &str) -> std::result::Result<(), TestCaseError> {
            if let Err(e) = Manifest::parse(text, Path::new("m.yaml")) {
                let message = e.to_string();
                prop_assert!(message.starts_with("m.yaml"), "{message}");
            }
            Ok(())
        }

        /// The nearest char boundary at or below `at`.
        fn boundary(text: &str, mut at: usize) -> usize {
            at = at.min(text.len());
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            at
        }

        proptest! {
            #[test]
            fn any_text_is_parsed_or_refused_naming_the_file(text in any::<String>()) {
                parsed_or_refused(&text)?;
            }

            #[test]
            fn a_damaged_manifest_is_parsed_or_refused_naming_the_file(
                at in 0usize..1200,
                cut in 0usize..24,
                insert in "[ -~\n\t]{0,16}",
            ) {
                let start = boundary(VALID, at);
                let end = boundary(VALID, start + cut);
                let damaged = format!("{}{insert}{}", &VALID[..start], &VALID[end..]);
                parsed_or_refused(&damaged)?;
            }
        }
    }
}
