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

use super::versions::{ModelVersions, Version};
use crate::estimator::predictions::row_json;
use crate::export::{
    columns_from_inputs, columns_from_instances, columns_from_instances_json, Method, Signature,
    TensorInfo,
};
use estimator_plugin_api::abi::{ErrorKind, EstimatorSpec, Tensor};

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

type Answer = Result<Json<Value>, ApiError>;

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
    Ok(Json(json!({ "model_version_status": listed })))
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
    })))
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
    match (request.instances, request.inputs) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "Not formatted correctly expecting only one of 'inputs' or 'instances' keys exists",
        )),
        (None, None) => Err(ApiError::bad_request("Missing 'inputs' or 'instances' key")),
        (Some(instances), None) => {
            let index = &served.servable.input_index;
            let (columns, rows) = columns_from_instances_json(inputs, index, instances.get())
                .map_err(|m| ApiError::bad_request(m.0))?;
            let spec = run(served, signature, columns, rows).await?;
            let rows: Vec<Value> = (0..rows)
                .map(|row| output_row(signature, &spec, row))
                .collect();
            Ok(Json(json!({ "predictions": rows })))
        }
        (None, Some(given)) => {
            let given: Map<String, Value> = serde_json::from_str(given.get())
                .map_err(|_| ApiError::bad_request("'inputs' must be an object of named inputs"))?;
            let (columns, rows) =
                columns_from_inputs(inputs, &given).map_err(|m| ApiError::bad_request(m.0))?;
            let spec = run(served, signature, columns, rows).await?;
            let mut outputs = Map::new();
            for (key, o) in &signature.outputs {
                let tensor = prediction(&spec, &o.prediction)?;
                outputs.insert(
                    key.clone(),
                    (0..rows).map(|r| row_json(&tensor.view(), r)).collect(),
                );
            }
            let outputs = match outputs.len() {
                1 => outputs
                    .into_iter()
                    .next()
                    .map(|(_, v)| v)
                    .unwrap_or(Value::Null),
                _ => Value::Object(outputs),
            };
            Ok(Json(json!({ "outputs": outputs })))
        }
    }
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

/// One example's outputs: the value itself when the signature has one output.
fn output_row(signature: &Signature, spec: &EstimatorSpec, row: usize) -> Value {
    let mut values = Map::new();
    for (key, o) in &signature.outputs {
        if let Ok(tensor) = prediction(spec, &o.prediction) {
            values.insert(key.clone(), row_json(&tensor.view(), row));
        }
    }
    match values.len() {
        1 => values
            .into_iter()
            .next()
            .map(|(_, v)| v)
            .unwrap_or(Value::Null),
        _ => Value::Object(values),
    }
}

async fn classify_or_regress(
    served: &Version,
    signature: &Signature,
    method: Method,
    request: &Request<'_>,
) -> Answer {
    let missing = || ApiError::bad_request("Missing 'examples' key (a list of examples)");
    let examples = request.examples.ok_or_else(missing)?;
    let mut examples: Vec<Value> = serde_json::from_str(examples.get()).map_err(|_| missing())?;
    let context: Option<Map<String, Value>> = request
        .context
        .map(|c| serde_json::from_str(c.get()))
        .transpose()
        .map_err(|_| ApiError::bad_request("'context' must be an object of named inputs"))?;
    // TF Serving's `context`: features shared by every example.
    if let Some(context) = context {
        for example in &mut examples {
            if let Value::Object(features) = example {
                for (k, v) in &context {
                    features.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
    }
    let columns = columns_from_instances(&served.servable.meta.inputs, &examples)
        .map_err(|m| ApiError::bad_request(m.0))?;
    let spec = run(served, signature, columns, examples.len()).await?;
    let output = |key: &str| {
        signature
            .outputs
            .get(key)
            .map(|o| prediction(&spec, &o.prediction))
            .transpose()
    };
    let results: Vec<Value> = match method {
        Method::Regress => {
            let values = output("outputs")?
                .ok_or_else(|| ApiError::bad_request("the signature has no `outputs`"))?;
            (0..examples.len())
                .map(|r| scalar_or_row(values, r))
                .collect()
        }
        _ => {
            let scores = output("scores")?;
            let classes = output("classes")?;
            (0..examples.len())
                .map(|r| class_scores(scores, classes, r))
                .collect()
        }
    };
    Ok(Json(json!({ "results": results })))
}

/// `[[class, score], ...]` for one example.
fn class_scores(scores: Option<&Tensor>, classes: Option<&Tensor>, row: usize) -> Value {
    let as_list = |t: Option<&Tensor>| match t.map(|t| row_json(&t.view(), row)) {
        Some(Value::Array(items)) => items,
        Some(one) => vec![one],
        None => Vec::new(),
    };
    let (scores, classes) = (as_list(scores), as_list(classes));
    let n = scores.len().max(classes.len());
    (0..n)
        .map(|i| {
            let class = classes
                .get(i)
                .cloned()
                .unwrap_or_else(|| Value::from(i.to_string()));
            let score = scores.get(i).cloned().unwrap_or(Value::Null);
            json!([class, score])
        })
        .collect()
}

fn scalar_or_row(t: &Tensor, row: usize) -> Value {
    match row_json(&t.view(), row) {
        Value::Array(items) if items.len() == 1 => items.into_iter().next().unwrap_or(Value::Null),
        other => other,
    }
}

fn prediction<'s>(spec: &'s EstimatorSpec, name: &str) -> Result<&'s Tensor, ApiError> {
    spec.prediction(name).ok_or_else(|| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("model_fn did not return prediction `{name}`"),
        )
    })
}

/// Predicts with `served`, in a batch when batching is on; bad data the model refuses is
/// the client's error (400), anything else the server's (500).
async fn run(
    served: &Version,
    signature: &Signature,
    columns: Vec<Tensor>,
    rows: usize,
) -> Result<EstimatorSpec, ApiError> {
    if rows == 0 {
        return Err(ApiError::bad_request("no examples to predict"));
    }
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
    predicted.map_err(|e| match &e {
        crate::Error::PluginCall { source, .. } if source.kind() == ErrorKind::BadData => {
            ApiError::bad_request(e.to_string())
        }
        _ => ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    })
}
