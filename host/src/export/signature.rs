//! Serving signatures: what an exported version answers, TF's `signature_def`s, resolved
//! from the model's `export_outputs` as TF's `export_saved_model` resolves them.

use std::collections::BTreeMap;

use estimator_plugin_api::abi::{DType, ExportMethod, ExportOutput};
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::error::Invalid;

/// An element type as the export and TF Serving's metadata name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DTypeName {
    Float32,
    Int64,
    String,
}

impl TensorInfo {
    /// The per-example type of a tensor whose first dimension is the batch.
    pub fn of_batch(dtype: DType, shape: &[usize]) -> Self {
        TensorInfo {
            dtype: DTypeName::of(dtype),
            shape: shape.get(1..).unwrap_or_default().to_vec(),
        }
    }
}

impl DTypeName {
    pub fn of(dtype: DType) -> Self {
        match dtype {
            DType::F32 => DTypeName::Float32,
            DType::I64 => DTypeName::Int64,
            DType::Str => DTypeName::String,
        }
    }

    /// TF's enum name (`DT_FLOAT`), for TF Serving's metadata.
    pub fn tf_name(self) -> &'static str {
        match self {
            DTypeName::Float32 => "DT_FLOAT",
            DTypeName::Int64 => "DT_INT64",
            DTypeName::String => "DT_STRING",
        }
    }
}

/// A tensor's element type and its shape per example (the batch dimension left out).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorInfo {
    pub dtype: DTypeName,
    pub shape: Vec<usize>,
}

/// What a signature answers: TF Serving's `:classify`, `:regress` or `:predict`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Classify,
    Regress,
    Predict,
}

impl Method {
    /// TF's `method_name`.
    pub fn tf_name(self) -> &'static str {
        match self {
            Method::Classify => "tensorflow/serving/classify",
            Method::Regress => "tensorflow/serving/regress",
            Method::Predict => "tensorflow/serving/predict",
        }
    }
}

/// One output of a signature: the prediction it serves, and that prediction's type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureOutputInfo {
    pub prediction: String,
    pub dtype: DTypeName,
    pub shape: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    pub method: Method,
    /// By output key (`scores`, `classes`, `outputs`, or a prediction's name).
    pub outputs: BTreeMap<String, SignatureOutputInfo>,
}

/// Signatures by name; `serving_default` is always one.
pub type Signatures = BTreeMap<String, Signature>;

pub const DEFAULT_SIGNATURE: &str = "serving_default";

/// The signatures of a model that declared `declared` and whose PREDICT spec returned
/// `predictions`, as TF resolves `export_outputs`: none declared gives `serving_default`
/// predicting everything; one alone is also `serving_default`; several need one named
/// `serving_default`. A classification or regression signature over predictions of the
/// wrong type is left out with a warning, as TF leaves it out.
pub fn resolve(
    declared: &[ExportOutput],
    predictions: &BTreeMap<String, TensorInfo>,
) -> Result<Signatures, Invalid> {
    let mut out = Signatures::new();
    if declared.is_empty() {
        out.insert(DEFAULT_SIGNATURE.to_owned(), predict_all(predictions));
        return Ok(out);
    }
    for output in declared {
        let name = output.signature.as_str();
        match signature(output, predictions)? {
            Some(signature) => {
                out.insert(name.to_owned(), signature);
            }
            None => warn!(
                "Signatures EXCLUDED from export: `{name}` (its outputs have the wrong types)"
            ),
        }
    }
    if !out.contains_key(DEFAULT_SIGNATURE) {
        match (declared.len(), out.values().next()) {
            (1, Some(only)) => {
                let only = only.clone();
                out.insert(DEFAULT_SIGNATURE.to_owned(), only);
            }
            _ => return Err(Invalid(
                "Multiple `export_outputs` were provided, but none of them are specified as the default. Use `serving_default` to specify a default.".into(),
            )),
        }
    }
    Ok(out)
}

fn predict_all(predictions: &BTreeMap<String, TensorInfo>) -> Signature {
    let outputs = predictions
        .iter()
        .map(|(name, info)| (name.clone(), output_info(name, info)))
        .collect();
    Signature {
        method: Method::Predict,
        outputs,
    }
}

fn output_info(prediction: &str, info: &TensorInfo) -> SignatureOutputInfo {
    SignatureOutputInfo {
        prediction: prediction.to_owned(),
        dtype: info.dtype,
        shape: info.shape.clone(),
    }
}

/// One declared signature; `None` when its outputs have the wrong types for its method.
fn signature(
    output: &ExportOutput,
    predictions: &BTreeMap<String, TensorInfo>,
) -> Result<Option<Signature>, Invalid> {
    let name = output.signature.as_str();
    let method = match output.method.as_enum() {
        Ok(ExportMethod::Classify) => Method::Classify,
        Ok(ExportMethod::Regress) => Method::Regress,
        Ok(ExportMethod::Predict) => Method::Predict,
        Err(_) => {
            return Err(Invalid(format!(
                "signature `{name}` has a method this host does not know (the plugin was built against a newer ABI 3.x)"
            )))
        }
    };
    if method == Method::Predict && output.outputs.is_empty() {
        return Ok(Some(predict_all(predictions)));
    }
    let mut outputs = BTreeMap::new();
    for o in output.outputs.iter() {
        let prediction = o.prediction.as_str();
        let info = predictions.get(prediction).ok_or_else(|| {
            let known: Vec<&str> = predictions.keys().map(String::as_str).collect();
            Invalid(format!(
                "signature `{name}` serves prediction `{prediction}`, which model_fn did not return in PREDICT (it returned: {})",
                known.join(", ")
            ))
        })?;
        let wanted = match (method, o.key.as_str()) {
            (Method::Classify, "classes") => Some(DTypeName::String),
            (Method::Classify, _) | (Method::Regress, _) => Some(DTypeName::Float32),
            (Method::Predict, _) => None,
        };
        if wanted.is_some_and(|d| d != info.dtype) {
            return Ok(None);
        }
        outputs.insert(o.key.to_string(), output_info(prediction, info));
    }
    Ok(Some(Signature { method, outputs }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classifier_predictions() -> BTreeMap<String, TensorInfo> {
        let t = |dtype, shape: &[usize]| TensorInfo {
            dtype,
            shape: shape.to_vec(),
        };
        BTreeMap::from([
            ("probabilities".to_owned(), t(DTypeName::Float32, &[3])),
            ("all_classes".to_owned(), t(DTypeName::String, &[3])),
            ("class_ids".to_owned(), t(DTypeName::Int64, &[1])),
        ])
    }

    #[test]
    fn without_export_outputs_serving_default_predicts_everything() {
        let s = resolve(&[], &classifier_predictions()).expect("valid");
        assert_eq!(s.keys().collect::<Vec<_>>(), ["serving_default"]);
        let default = &s["serving_default"];
        assert_eq!(default.method, Method::Predict);
        assert_eq!(
            default.outputs.keys().collect::<Vec<_>>(),
            ["all_classes", "class_ids", "probabilities"]
        );
    }

    #[test]
    fn one_signature_alone_is_also_the_default() {
        let declared = [ExportOutput::classification(
            "classification",
            "probabilities",
            "all_classes",
        )];
        let s = resolve(&declared, &classifier_predictions()).expect("valid");
        assert_eq!(
            s.keys().collect::<Vec<_>>(),
            ["classification", "serving_default"]
        );
        assert_eq!(s["serving_default"], s["classification"]);
        assert_eq!(
            s["serving_default"].outputs["scores"].prediction,
            "probabilities"
        );
    }

    #[test]
    fn several_without_a_default_are_refused_as_tf_refuses_them() {
        let declared = [
            ExportOutput::classification("classification", "probabilities", "all_classes"),
            ExportOutput::predict_all("predict"),
        ];
        let err = resolve(&declared, &classifier_predictions()).expect_err("no default");
        assert!(
            err.0.starts_with("Multiple `export_outputs` were provided"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_prediction_is_named_and_a_mistyped_signature_left_out() {
        let missing = [ExportOutput::regression("serving_default", "logistic")];
        let err = resolve(&missing, &classifier_predictions()).expect_err("missing");
        assert!(err.0.contains("prediction `logistic`"), "{err}");
        // Regression over int64 class ids: excluded, as TF excludes it.
        let declared = [
            ExportOutput::predict_all("serving_default"),
            ExportOutput::regression("regression", "class_ids"),
        ];
        let s = resolve(&declared, &classifier_predictions()).expect("valid");
        assert_eq!(s.keys().collect::<Vec<_>>(), ["serving_default"]);
    }
}
