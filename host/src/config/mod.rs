//! The run's configuration as the manifest gives it.
//!
//! - `manifest`: the whole file, read, checked and printed back;
//! - `entries`: the model, inputs, metrics and `train:`/`eval:` sections;
//! - `run_config`: TF's RunConfig keys, resolved;
//! - `specs`: `train_spec:` and `eval_spec:`;
//! - `built_in`: a hook or optimizer a model asks for, read as its manifest entry;
//! - `overrides`: `--set` and `predict --input`;
//! - `yaml_errors`: parse errors as `file:line:column: message`.

pub mod built_in;
mod entries;
mod manifest;
mod overrides;
mod run_config;
mod specs;
mod yaml_errors;

pub use entries::Sha256Pin;
pub use manifest::{params_json, Manifest};
pub use run_config::CheckpointEvery;
pub use specs::ExporterConfig;
