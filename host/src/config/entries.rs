//! The manifest's entries: the model, the inputs, the metrics, and the `train:` and
//! `eval:` sections.

use std::num::NonZeroUsize;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// Library name (searched next to the binary, then on `ESTIMATOR_PLUGIN_PATH`) or path.
    pub plugin: String,
    /// Pins the library file: it is refused unless its SHA-256 is this (64 hex digits).
    #[serde(default)]
    pub sha256: Option<Sha256Pin>,
    /// The model's name in the library; optional when the library exports one model.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub params: serde_yaml::Value,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InputSection {
    pub train: Option<InputEntry>,
    pub eval: Option<InputEntry>,
    /// Defaults to `eval` with its labels dropped.
    pub predict: Option<InputEntry>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InputEntry {
    pub plugin: String,
    /// Pins the library file: it is refused unless its SHA-256 is this (64 hex digits).
    #[serde(default)]
    pub sha256: Option<Sha256Pin>,
    /// The input's name in the library; optional when the library exports one input.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub params: serde_yaml::Value,
    /// Shuffle buffer size in examples; absent means no shuffling.
    #[serde(default)]
    pub shuffle: Option<NonZeroUsize>,
    /// Start over at the end of the data, forever.
    #[serde(default)]
    pub repeat: bool,
    pub batch_size: NonZeroUsize,
    /// Drop a last batch smaller than `batch_size`.
    #[serde(default)]
    pub drop_remainder: bool,
    /// Keep the first pass in memory so later passes do not re-read the source.
    #[serde(default = "yes")]
    pub cache: bool,
}

/// A library's expected SHA-256, as 64 hex digits (stored lower-case).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Sha256Pin(String);

impl Sha256Pin {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Sha256Pin {
    // A visitor rather than `try_from`, so that errors point at the value's line.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Hex;
        impl serde::de::Visitor<'_> for Hex {
            type Value = Sha256Pin;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("64 hex digits")
            }
            fn visit_str<E: serde::de::Error>(
                self,
                text: &str,
            ) -> std::result::Result<Sha256Pin, E> {
                if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
                    Ok(Sha256Pin(text.to_ascii_lowercase()))
                } else {
                    Err(E::custom(format!(
                        "sha256 must be 64 hex digits (as `sha256sum` prints), got `{text}`"
                    )))
                }
            }
        }
        d.deserialize_str(Hex)
    }
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricEntry {
    pub plugin: String,
    /// Pins the library file: it is refused unless its SHA-256 is this (64 hex digits).
    #[serde(default)]
    pub sha256: Option<Sha256Pin>,
    /// The metric's kind in the library (`accuracy`, `mean`, ...).
    pub kind: String,
    /// The prediction tensor the metric reads; defaults to `class_ids`.
    #[serde(default = "default_prediction_key")]
    pub predictions: String,
    #[serde(default)]
    pub params: serde_yaml::Value,
}

fn default_prediction_key() -> String {
    "class_ids".to_owned()
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    /// Train until the global step reaches this value.
    #[serde(default)]
    pub max_steps: Option<u64>,
    /// Train this many steps more than the checkpoint has.
    #[serde(default)]
    pub steps: Option<u64>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSection {
    /// Evaluate at most this many batches; absent means until the input ends.
    #[serde(default)]
    pub steps: Option<u64>,
    /// Names the evaluation: its summaries go to `eval_<name>/` instead of `eval/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}
