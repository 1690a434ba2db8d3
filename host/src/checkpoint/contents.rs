//! What a training checkpoint holds besides its tensors, in its metadata: where the model
//! came from, where the training input stopped and which input that was, and the hooks'
//! states, so a resumed run continues as if never stopped.

use std::collections::BTreeMap;

use super::format::{encode, Checkpoint, SavedTensor};
use crate::error::{Error, Result};
use crate::input::PipelinePosition;

/// Where the training input stopped, and which input that was.
const INPUT_POSITION: &str = "input.train.position";
const INPUT_FINGERPRINT: &str = "input.train.fingerprint";
/// The training hooks' states, by hook name.
const HOOK_STATES: &str = "hooks.train";
/// The optimizers' update counters by TF's name (`training/Adam/iter`); a TF checkpoint's
/// int64 `.../iter` scalars are read into the same key.
pub const OPTIMIZER_ITERATIONS: &str = "optimizer.iterations";

/// The plugin and manifest a checkpoint was trained with.
pub struct Provenance<'a> {
    pub plugin: &'a str,
    pub package: &'a str,
    pub version: &'a str,
    pub manifest_sha256: &'a str,
}

/// Everything a training checkpoint records, borrowed from the run.
pub struct TrainingState<'a> {
    pub global_step: i64,
    /// The variables, then the optimizers' slots.
    pub tensors: Vec<SavedTensor<'a>>,
    pub provenance: Provenance<'a>,
    pub input_position: &'a PipelinePosition,
    pub input_fingerprint: &'a str,
    pub hook_states: serde_json::Map<String, serde_json::Value>,
    pub optimizer_iterations: BTreeMap<String, i64>,
}

impl TrainingState<'_> {
    /// The checkpoint file's bytes.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let p = &self.provenance;
        let position = serde_json::to_string(self.input_position)
            .map_err(|e| Error::Internal(format!("encoding the input position: {e}")))?;
        let metadata = BTreeMap::from([
            ("format".to_owned(), "estimator-checkpoint/1".to_owned()),
            ("plugin".to_owned(), p.plugin.to_owned()),
            ("plugin_package".to_owned(), p.package.to_owned()),
            ("plugin_version".to_owned(), p.version.to_owned()),
            ("manifest_sha256".to_owned(), p.manifest_sha256.to_owned()),
            (INPUT_POSITION.to_owned(), position),
            (
                INPUT_FINGERPRINT.to_owned(),
                self.input_fingerprint.to_owned(),
            ),
            (
                HOOK_STATES.to_owned(),
                serde_json::Value::Object(self.hook_states.clone()).to_string(),
            ),
            (
                OPTIMIZER_ITERATIONS.to_owned(),
                serde_json::json!(self.optimizer_iterations).to_string(),
            ),
        ]);
        encode(&self.tensors, self.global_step, &metadata)
    }
}

/// Where the training input resumes from a checkpoint.
#[derive(Debug, PartialEq)]
pub enum SavedInput {
    /// The same input stopped here.
    Resume(PipelinePosition),
    /// The checkpoint was trained on another input: it starts over, as in TF.
    Changed,
    /// The checkpoint records no position.
    Unknown,
}

/// Where `ckpt` left the input whose fingerprint is `fingerprint`.
pub fn saved_input(ckpt: &Checkpoint, fingerprint: &str) -> Result<SavedInput> {
    let saved = ckpt.metadata.get(INPUT_POSITION);
    match (saved, ckpt.metadata.get(INPUT_FINGERPRINT)) {
        (Some(position), Some(saved)) if saved == fingerprint => serde_json::from_str(position)
            .map(SavedInput::Resume)
            .map_err(|e| Error::Checkpoint {
                path: ckpt.path.clone(),
                message: format!("{INPUT_POSITION}: {e}"),
            }),
        (Some(_), Some(_)) => Ok(SavedInput::Changed),
        _ => Ok(SavedInput::Unknown),
    }
}

/// The hooks' states a checkpoint holds; none for checkpoints written before hooks had any.
pub fn saved_hook_states(ckpt: &Checkpoint) -> Result<serde_json::Map<String, serde_json::Value>> {
    match ckpt.metadata.get(HOOK_STATES) {
        None => Ok(serde_json::Map::new()),
        Some(text) => serde_json::from_str(text).map_err(|e| Error::Checkpoint {
            path: ckpt.path.clone(),
            message: format!("{HOOK_STATES}: {e}"),
        }),
    }
}

/// The optimizers' update counters a checkpoint holds; none for checkpoints written
/// before counters were saved.
pub fn saved_iterations(ckpt: &Checkpoint) -> Result<BTreeMap<String, i64>> {
    match ckpt.metadata.get(OPTIMIZER_ITERATIONS) {
        None => Ok(BTreeMap::new()),
        Some(text) => serde_json::from_str(text).map_err(|e| Error::Checkpoint {
            path: ckpt.path.clone(),
            message: format!("{OPTIMIZER_ITERATIONS}: {e}"),
        }),
    }
}
