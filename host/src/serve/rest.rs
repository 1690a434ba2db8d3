//! TF Serving's REST API (`api_rest.md`): model status, metadata, and `:predict`,
//! `:classify` and `:regress`, with TF Serving's bodies and HTTP codes. Every error is
//! `{"error": "..."}`; a bad request never stops the server.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use super::batching::is_bad_data;
use super::response::{self, MissingPrediction, Outputs};
use super::versions::{ModelVersions, Version};
use crate::export::{
    columns_from_examples_json, columns_from_inputs_json, columns_from_instances_json, Method,
    Signature, TensorInfo,
};
use estimator_plugin_api::abi::{EstimatorSpec, Tensor};

/// What every handler reads.
pub struct Server {
    pub models: BTreeMap<String, Arc<ModelVersions>>,
    pub max_request_bytes: usize,
    pub request_timeout: std::time::Duration,
}

pub fn router(server: Arc<Server>) -> Router {
    Router::new()
        .route("/v1/models/{model}", get(status).post(call_latest))
        .route("/v1/models/{model}/metadata", get(metadata_latest))
        .route(
            "/v1/models/{model}/versions/{version}",
            get(status_of_version).post(call_version),
        )
        .route(
            "/v1/models/{model}/versions/{version}/metadata",
            get(metadata_of_version),
        )
        .fallback(|| async { ApiError::not_found("no such endpoint (see TF Serving's REST API)") })
        .with_state(server)
}

/// An error answer: an HTTP code and `{"error": message}`.
pub struct ApiError(StatusCode, String);

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        ApiError(StatusCode::BAD_REQUEST, message.into())
    }

    fn not_found(message: impl Into<String>) -> Self {
        ApiError(StatusCode::NOT_FOUND, message.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

type Answer = Result<Response, ApiError>;

async fn status(State(server): State<Arc<Server>>, Path(model): Path<String>) -> Answer {
    version_status(&server, &model, None)
}

async fn status_of_version(
    State(server): State<Arc<Server>>,
    Path((model, version)): Path<(String, String)>,
) -> Answer {
    version_status(&server, &model, Some(parse_version(&version)?))
}

async fn metadata_latest(State(server): State<Arc<Server>>, Path(model): Path<String>) -> Answer {
    metadata(&server, &model, None)
}

async fn metadata_of_version(
    State(server): State<Arc<Server>>,
    Path((model, version)): Path<(String, String)>,
) -> Answer {
    metadata(&server, &model, Some(parse_version(&version)?))
}

async fn call_latest(
    State(server): State<Arc<Server>>,
    Path(target): Path<String>,
    body: Body,
) -> Answer {
    let (model, verb) = split_verb(&target)?;
    call(&server, model, None, verb, body).await
}

async fn call_version(
    State(server): State<Arc<Server>>,
    Path((model, target)): Path<(String, String)>,
    body: Body,
) -> Answer {
    let (version, verb) = split_verb(&target)?;
    call(&server, &model, Some(parse_version(version)?), verb, body).await
}

/// `iris:predict` → (`iris`, `predict`).
fn split_verb(target: &str) -> Result<(&str, &str), ApiError> {
    target.rsplit_once(':').ok_or_else(|| {
        ApiError::not_found(format!(
            "`{target}`: expected <model>:predict, :classify or :regress"
        ))
    })
}

fn parse_version(text: &str) -> Result<u64, ApiError> {
    text.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "Could not parse version `{text}`: not a whole number"
        ))
    })
}

fn model<'s>(
    server: &'s Server,
    name: &str,
    version: Option<u64>,
) -> Result<&'s ModelVersions, ApiError> {
    server
        .models
        .get(name)
        .map(Arc::as_ref)
        .ok_or_else(|| not_found(name, version))
}

fn not_found(name: &str, version: Option<u64>) -> ApiError {
    ApiError::not_found(match version {
        Some(v) => format!("Servable not found for request: Specific({name}, {v})"),
        None => format!("Servable not found for request: Latest({name})"),
    })
}

fn servable(
    server: &Server,
    name: &str,
    version: Option<u64>,
) -> Result<(u64, Arc<Version>), ApiError> {
    model(server, name, version)?
        .servable(version)
        .ok_or_else(|| not_found(name, version))
}

fn version_status(server: &Server, name: &str, version: Option<u64>) -> Answer {
    let states = model(server, name, version)?.states();
    let listed: Vec<Value> = states
        .iter()
        .rev()
        .filter(|(v, _)| version.is_none_or(|wanted| wanted == *v))
        .map(|(v, state)| {
            let (code, message) = match state.error() {
                Some(error) => ("UNKNOWN", error),
                None => ("OK", ""),
            };
            json!({
                "version": v.to_string(),
                "state": state.tf_name(),
                "status": { "error_code": code, "error_message": message },
            })
        })
        .collect();
    if listed.is_empty() {
        return Err(not_found(name, version));
    }
    Ok(Json(json!({ "model_version_status": listed })).into_response())
}

fn metadata(server: &Server, name: &str, version: Option<u64>) -> Answer {
    let (version, served) = servable(server, name, version)?;
    let meta = &served.servable.meta;
    let signatures: Map<String, Value> = meta
        .signatures
        .iter()
        .map(|(key, sig)| (key.clone(), signature_def(&meta.inputs, sig)))
        .collect();
    Ok(Json(json!({
        "model_spec": { "name": name, "signature_name": "", "version": version.to_string() },
        "metadata": { "signature_def": { "signature_def": signatures } },
    }))
    .into_response())
}

/// A signature as TF Serving's metadata shows it.
fn signature_def(inputs: &BTreeMap<String, TensorInfo>, sig: &Signature) -> Value {
    let tensor = |name: &str, dtype: &str, shape: &[usize]| {
        let mut dim = vec![json!({ "size": "-1", "name": "" })];
        dim.extend(
            shape
                .iter()
                .map(|d| json!({ "size": d.to_string(), "name": "" })),
        );
        json!({ "dtype": dtype, "tensor_shape": { "dim": dim, "unknown_rank": false }, "name": format!("{name}:0") })
    };
    let inputs: Map<String, Value> = inputs
        .iter()
        .map(|(n, i)| (n.clone(), tensor(n, i.dtype.tf_name(), &i.shape)))
        .collect();
    let outputs: Map<String, Value> = sig
        .outputs
        .iter()
        .map(|(k, o)| {
            (
                k.clone(),
                tensor(&o.prediction, o.dtype.tf_name(), &o.shape),
            )
        })
        .collect();
    json!({ "inputs": inputs, "outputs": outputs, "method_name": sig.method.tf_name() })
}

/// Answers a `:predict`, `:classify` or `:regress`, or 408 past the request timeout.
async fn call(server: &Server, name: &str, version: Option<u64>, verb: &str, body: Body) -> Answer {
    let timeout = server.request_timeout;
    tokio::time::timeout(timeout, answer_call(server, name, version, verb, body))
        .await
        .unwrap_or_else(|_| {
            Err(ApiError(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request was not answered within {} ms (--rest_api_timeout_in_ms)",
                    timeout.as_millis()
                ),
            ))
        })
}

async fn answer_call(
    server: &Server,
    name: &str,
    version: Option<u64>,
    verb: &str,
    body: Body,
) -> Answer {
    let method = match verb {
        "predict" => Method::Predict,
        "classify" => Method::Classify,
        "regress" => Method::Regress,
        other => {
            return Err(ApiError::not_found(format!(
                "unknown method `:{other}` (predict, classify, regress)"
            )))
        }
    };
    let bytes = axum::body::to_bytes(body, server.max_request_bytes)
        .await
        .map_err(|e| {
            if over_limit(&e) {
                ApiError(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "the request body is over the limit of {} bytes (--max_request_bytes)",
                        server.max_request_bytes
                    ),
                )
            } else {
                ApiError::bad_request(format!("cannot read the request body: {e}"))
            }
        })?;
    let request: Request<'_> = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("JSON Parse error: {e}")))?;
    let (_, served) = servable(server, name, version)?;
    let signature_name = request
        .signature_name
        .as_deref()
        .unwrap_or("serving_default");
    let signature = served
        .servable
        .meta
        .signatures
        .get(signature_name)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "Serving signature name: \"{signature_name}\" not found in signature def"
            ))
        })?;
    match method {
        Method::Predict => predict(&served, signature, &request).await,
        Method::Classify | Method::Regress => {
            if signature.method != method {
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
            classify_or_regress(&served, signature, method, &request).await
        }
    }
}

async fn predict(served: &Version, signature: &Signature, request: &Request<'_>) -> Answer {
    let inputs = &served.servable.meta.inputs;
    let index = &served.servable.input_index;
    let (columns, rows, columnar) = match (request.instances, request.inputs) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "Not formatted correctly expecting only one of 'inputs' or 'instances' keys exists",
            ))
        }
        (None, None) => return Err(ApiError::bad_request("Missing 'inputs' or 'instances' key")),
        (Some(instances), None) => {
            let (columns, rows) = columns_from_instances_json(inputs, index, instances.get())
                .map_err(|m| ApiError::bad_request(m.0))?;
            (columns, rows, false)
        }
        (None, Some(given)) => {
            let (columns, rows) = columns_from_inputs_json(inputs, index, given.get())
                .map_err(|m| ApiError::bad_request(m.0))?;
            (columns, rows, true)
        }
    };
    let spec = run(served, signature, columns, rows).await?;
    let outputs = Outputs::of(signature, &spec).map_err(missing_prediction)?;
    Ok(json_body(if columnar {
        response::outputs(&outputs, rows)
    } else {
        response::predictions(&outputs, rows)
    }))
}

/// A 200 answer whose JSON is already written.
fn json_body(bytes: Vec<u8>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        bytes,
    )
        .into_response()
}

fn missing_prediction(missing: MissingPrediction) -> ApiError {
    ApiError(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("model_fn did not return prediction `{}`", missing.0),
    )
}

/// Whether reading a body failed because it was over the size limit.
fn over_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(error) = source {
        if error.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = error.source();
    }
    false
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

async fn classify_or_regress(
    served: &Version,
    signature: &Signature,
    method: Method,
    request: &Request<'_>,
) -> Answer {
    let examples = request
        .examples
        .ok_or_else(|| ApiError::bad_request("Missing 'examples' key (a list of examples)"))?;
    let (columns, rows) = columns_from_examples_json(
        &served.servable.meta.inputs,
        &served.servable.input_index,
        examples.get(),
        request.context.map(RawValue::get),
    )
    .map_err(|m| ApiError::bad_request(m.0))?;
    let spec = run(served, signature, columns, rows).await?;
    let outputs = Outputs::of(signature, &spec).map_err(missing_prediction)?;
    Ok(json_body(match method {
        Method::Regress => {
            let values = outputs
                .get("outputs")
                .ok_or_else(|| ApiError::bad_request("the signature has no `outputs`"))?;
            response::regressions(values, rows)
        }
        _ => response::classifications(&outputs, rows),
    }))
}

/// Predicts with `served`, in a batch when batching is on; bad data the model refuses is
/// the client's error (400), anything else the server's (500). The columns are checked
/// against the row count first: only a request whose columns are whole joins a batch.
async fn run(
    served: &Version,
    signature: &Signature,
    columns: Vec<Tensor>,
    rows: usize,
) -> Result<EstimatorSpec, ApiError> {
    if rows == 0 {
        return Err(ApiError::bad_request("no examples to predict"));
    }
    check_columns(&served.servable.meta.inputs, &columns, rows)?;
    let predicted = match &served.batcher {
        Some(batcher) => {
            let wanted = signature
                .outputs
                .values()
                .map(|o| o.prediction.clone())
                .collect();
            batcher.predict(columns, rows, wanted).await
        }
        None => served.servable.predict(&columns, rows),
    };
    predicted.map_err(|e| {
        if is_bad_data(&e) {
            ApiError::bad_request(e.to_string())
        } else {
            ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    })
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
        Err(ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error: a request's columns do not match its examples (a bug)".into(),
        ))
    }
}
