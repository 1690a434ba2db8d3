//! One `:predict`, `:classify` or `:regress`, in the stages the REST handler runs on the
//! pool: [`parse`] the body into feature columns (every check a request can fail, made on
//! this request alone), predict (alone, or in a batch), then [`answer`] it (the JSON is written as the client reads it). Each
//! stage is plain synchronous code over owned data.

use std::collections::BTreeMap;

use estimator_plugin_api::abi::{EstimatorSpec, Tensor};
use serde_json::value::RawValue;

use super::batching::{is_bad_data, join_parts, row_parts};
use super::response::{Answer, MissingPrediction, Shape};
use super::rest::ApiError;
use super::versions::Version;
use crate::export::{
    columns_from_examples_json, columns_from_inputs_json, columns_from_instances_json, Method,
    Signature, TensorInfo,
};

/// A request read into columns, with what its answer needs.
pub struct Parsed {
    pub columns: Vec<Tensor>,
    pub rows: usize,
    /// The signature's name among the version's signatures.
    pub signature: String,
    pub method: Method,
    /// Whether the request used the columnar format (`inputs`), answered as `outputs`.
    pub columnar: bool,
}

impl Parsed {
    /// The predictions the answer reads: only these are copied out of a batch.
    pub fn wanted(&self, served: &Version) -> Vec<String> {
        signature_of(served, &self.signature)
            .map(|s| s.outputs.values().map(|o| o.prediction.clone()).collect())
            .unwrap_or_default()
    }
}

/// A request body as TF Serving's REST API shapes it. The examples stay JSON text until
/// the version's inputs are known, then go straight into columns.
#[derive(serde::Deserialize)]
struct Request<'a> {
    signature_name: Option<String>,
    #[serde(borrow)]
    instances: Option<&'a RawValue>,
    #[serde(borrow)]
    inputs: Option<&'a RawValue>,
    #[serde(borrow)]
    examples: Option<&'a RawValue>,
    #[serde(borrow)]
    context: Option<&'a RawValue>,
}

/// Reads `body` against `served`'s inputs and signature.
pub fn parse(served: &Version, method: Method, body: &[u8]) -> Result<Parsed, ApiError> {
    let request: Request<'_> = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("JSON Parse error: {e}")))?;
    let name = request
        .signature_name
        .unwrap_or_else(|| "serving_default".into());
    let signature = signature_of(served, &name).ok_or_else(|| {
        ApiError::not_found(format!(
            "Serving signature name: \"{name}\" not found in signature def"
        ))
    })?;
    if method != Method::Predict && signature.method != method {
        return Err(ApiError::bad_request(format!(
            "Expected {} signature method_name to be {}. Was: {}",
            if method == Method::Classify {
                "classification"
            } else {
                "regression"
            },
            method.tf_name(),
            signature.method.tf_name()
        )));
    }
    let inputs = &served.servable.meta.inputs;
    let index = &served.servable.input_index;
    let bad = |m: crate::error::Invalid| ApiError::bad_request(m.0);
    let (columns, rows, columnar) = match method {
        Method::Predict => match (request.instances, request.inputs) {
            (Some(_), Some(_)) => return Err(ApiError::bad_request(
                "Not formatted correctly expecting only one of 'inputs' or 'instances' keys exists",
            )),
            (None, None) => {
                return Err(ApiError::bad_request("Missing 'inputs' or 'instances' key"))
            }
            (Some(instances), None) => {
                let (c, r) =
                    columns_from_instances_json(inputs, index, instances.get()).map_err(bad)?;
                (c, r, false)
            }
            (None, Some(given)) => {
                let (c, r) = columns_from_inputs_json(inputs, index, given.get()).map_err(bad)?;
                (c, r, true)
            }
        },
        Method::Classify | Method::Regress => {
            let examples = request.examples.ok_or_else(|| {
                ApiError::bad_request("Missing 'examples' key (a list of examples)")
            })?;
            let context = request.context.map(RawValue::get);
            let (c, r) =
                columns_from_examples_json(inputs, index, examples.get(), context).map_err(bad)?;
            (c, r, false)
        }
    };
    if rows == 0 {
        return Err(ApiError::bad_request("no examples to predict"));
    }
    check_columns(inputs, &columns, rows)?;
    Ok(Parsed {
        columns,
        rows,
        signature: name,
        method,
        columnar,
    })
}

fn signature_of<'v>(served: &'v Version, name: &str) -> Option<&'v Signature> {
    served.servable.meta.signatures.get(name)
}

/// Every input's column holds `rows` examples of its shape. The readers make them so; a
/// column that is not is the host's bug, refused here rather than in a shared batch.
fn check_columns(
    inputs: &BTreeMap<String, TensorInfo>,
    columns: &[Tensor],
    rows: usize,
) -> Result<(), ApiError> {
    let whole = columns.len() == inputs.len()
        && inputs.values().zip(columns).all(|(info, column)| {
            let width: usize = info.shape.iter().product();
            column.shape.first() == Some(&rows) && column.data.len() == rows * width
        });
    if whole {
        Ok(())
    } else {
        Err(ApiError::internal(
            "internal error: a request's columns do not match its examples (a bug)",
        ))
    }
}

/// The most examples one model_fn call predicts: a larger request is predicted in parts,
/// so that the model's own working memory stays bounded whatever the request's size.
pub const MAX_ROWS_PER_CALL: usize = 4096;

/// Predicts a parsed request with `served` by itself (no batch), in parts of at most
/// [`MAX_ROWS_PER_CALL`] examples.
pub fn predict_alone(served: &Version, parsed: &Parsed) -> Result<EstimatorSpec, ApiError> {
    let predict = |columns: &[Tensor], rows| {
        served
            .servable
            .predict(columns, rows)
            .map_err(|e| model_error(&e))
    };
    if parsed.rows <= MAX_ROWS_PER_CALL {
        return predict(&parsed.columns, parsed.rows);
    }
    // join_parts keeps only the wanted predictions, copying each once.
    let parts = row_parts(&parsed.columns, parsed.rows, MAX_ROWS_PER_CALL)
        .map(|(columns, rows)| predict(&columns, rows))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(join_parts(parts, &parsed.wanted(served)))
}

/// Bad data the model refuses is the client's error (400), anything else the server's.
pub fn model_error(e: &crate::Error) -> ApiError {
    if is_bad_data(e) {
        ApiError::bad_request(e.to_string())
    } else {
        ApiError::internal(e.to_string())
    }
}

/// The answer, in the shape the request's method and format ask for; its JSON is written
/// as the client reads it.
pub fn answer(served: &Version, parsed: &Parsed, spec: EstimatorSpec) -> Result<Answer, ApiError> {
    let signature = signature_of(served, &parsed.signature)
        .ok_or_else(|| ApiError::internal("the signature went away (a bug)"))?;
    let shape = match parsed.method {
        Method::Predict if parsed.columnar => Shape::Outputs,
        Method::Predict => Shape::Predictions,
        Method::Regress => {
            if !signature.outputs.contains_key("outputs") {
                return Err(ApiError::bad_request("the signature has no `outputs`"));
            }
            Shape::Regressions
        }
        Method::Classify => Shape::Classifications,
    };
    Answer::new(signature, spec, parsed.rows, shape).map_err(|MissingPrediction(name)| {
        ApiError::internal(format!("model_fn did not return prediction `{name}`"))
    })
}
