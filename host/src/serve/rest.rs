//! TF Serving's REST API (`api_rest.md`): model status, metadata, and `:predict`,
//! `:classify` and `:regress`, with TF Serving's bodies and HTTP codes. Every error is
//! `{"error": "..."}`; a bad request never stops the server.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::batching::BatchError;
use super::call;
use super::metrics::{tf_status, METRICS};
use super::pool::{Lane, NotRun, Pool, STALL};
use super::response;
use super::versions::{ModelVersions, Version};
use crate::export::{Method, Signature, TensorInfo};

/// What every handler reads.
pub struct Server {
    /// The models served, by name; `--model_config_file_poll_wait_seconds` changes them.
    pub models: RwLock<BTreeMap<String, Arc<ModelVersions>>>,
    pub max_request_bytes: usize,
    pub max_header_bytes: usize,
    pub request_timeout: std::time::Duration,
    /// Where requests are parsed, predicted and written, off the async runtime.
    pub pool: Pool,
    /// Where Prometheus metrics are served (`--monitoring_config_file`), when they are.
    pub metrics_path: Option<String>,
}

pub fn router(server: Arc<Server>) -> Router {
    let mut router = Router::new();
    if let Some(path) = &server.metrics_path {
        router = router.route(path, get(metrics));
    }
    router
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
        .route(
            "/v1/models/{model}/labels/{label}",
            get(status_of_label).post(call_label),
        )
        .route(
            "/v1/models/{model}/labels/{label}/metadata",
            get(metadata_of_label),
        )
        .fallback(|| async { ApiError::not_found("no such endpoint (see TF Serving's REST API)") })
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&server),
            errors_as_json,
        ))
        .with_state(server)
}

/// Refuses a request head over `--max_header_bytes` with 431, and gives every error that
/// the routing itself answers (405, a path it cannot read) the `{"error": ...}` body that
/// the handlers' own errors have.
async fn errors_as_json(
    State(server): State<Arc<Server>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let head = head_bytes(&request);
    if head > server.max_header_bytes {
        return ApiError(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "the request head takes {head} bytes, over the limit of {} (--max_header_bytes)",
                server.max_header_bytes
            ),
        )
        .into_response();
    }
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    if (status.is_client_error() || status.is_server_error()) && !is_json {
        let reason = status.canonical_reason().unwrap_or("error");
        return ApiError(status, reason.to_owned()).into_response();
    }
    response
}

/// About the bytes a request's line and headers took on the wire.
fn head_bytes(request: &axum::extract::Request) -> usize {
    let uri = request.uri();
    let query = uri.query().map_or(0, |q| q.len() + 1);
    let line = request.method().as_str().len() + uri.path().len() + query + 12;
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    line + headers
}

/// An error answer: an HTTP code and `{"error": message}`.
pub struct ApiError(pub StatusCode, pub String);

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError(StatusCode::BAD_REQUEST, message.into())
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError(StatusCode::NOT_FOUND, message.into())
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, message.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

type Answer = Result<Response, ApiError>;

async fn metrics(State(server): State<Arc<Server>>) -> Response {
    let text = METRICS.render(&server.served_models());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Which version of a model a request names: TF Serving's `ModelSpec` choice.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    Latest,
    Version(u64),
    Label(String),
}

async fn status(State(server): State<Arc<Server>>, Path(model): Path<String>) -> Answer {
    version_status(&server, &model, &Target::Latest)
}

async fn status_of_version(
    State(server): State<Arc<Server>>,
    Path((model, version)): Path<(String, String)>,
) -> Answer {
    version_status(&server, &model, &Target::Version(parse_version(&version)?))
}

async fn status_of_label(
    State(server): State<Arc<Server>>,
    Path((model, label)): Path<(String, String)>,
) -> Answer {
    version_status(&server, &model, &Target::Label(label))
}

async fn metadata_latest(State(server): State<Arc<Server>>, Path(model): Path<String>) -> Answer {
    metadata(&server, &model, &Target::Latest)
}

async fn metadata_of_version(
    State(server): State<Arc<Server>>,
    Path((model, version)): Path<(String, String)>,
) -> Answer {
    metadata(&server, &model, &Target::Version(parse_version(&version)?))
}

async fn metadata_of_label(
    State(server): State<Arc<Server>>,
    Path((model, label)): Path<(String, String)>,
) -> Answer {
    metadata(&server, &model, &Target::Label(label))
}

async fn call_latest(
    State(server): State<Arc<Server>>,
    Path(target): Path<String>,
    body: Body,
) -> Answer {
    let (model, verb) = split_verb(&target)?;
    call(&server, model, &Target::Latest, verb, body).await
}

async fn call_version(
    State(server): State<Arc<Server>>,
    Path((model, target)): Path<(String, String)>,
    body: Body,
) -> Answer {
    let (version, verb) = split_verb(&target)?;
    let target = Target::Version(parse_version(version)?);
    call(&server, &model, &target, verb, body).await
}

async fn call_label(
    State(server): State<Arc<Server>>,
    Path((model, target)): Path<(String, String)>,
    body: Body,
) -> Answer {
    let (label, verb) = split_verb(&target)?;
    call(
        &server,
        &model,
        &Target::Label(label.to_owned()),
        verb,
        body,
    )
    .await
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

/// The model `name`, and the version `target` names (`None`: the latest).
fn resolve(
    server: &Server,
    name: &str,
    target: &Target,
) -> Result<(Arc<ModelVersions>, Option<u64>), ApiError> {
    let model = server
        .models
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(name)
        .cloned();
    let model = model.ok_or_else(|| not_found(name, target))?;
    let version = match target {
        Target::Latest => None,
        Target::Version(v) => Some(*v),
        Target::Label(label) => Some(model.label(label).ok_or_else(|| {
            ApiError::not_found(format!("Unrecognized servable version label: {label}"))
        })?),
    };
    Ok((model, version))
}

fn not_found(name: &str, target: &Target) -> ApiError {
    ApiError::not_found(match target {
        Target::Version(v) => format!("Servable not found for request: Specific({name}, {v})"),
        Target::Label(l) => format!("Servable not found for request: Label({name}, {l})"),
        Target::Latest => format!("Servable not found for request: Latest({name})"),
    })
}

fn servable(server: &Server, name: &str, target: &Target) -> Result<(u64, Arc<Version>), ApiError> {
    let (model, version) = resolve(server, name, target)?;
    model
        .servable(version)
        .ok_or_else(|| not_found(name, target))
}

fn version_status(server: &Server, name: &str, target: &Target) -> Answer {
    let (model, version) = resolve(server, name, target)?;
    let listed: Vec<Value> = model
        .states()
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
        return Err(not_found(name, target));
    }
    Ok(Json(json!({ "model_version_status": listed })).into_response())
}

fn metadata(server: &Server, name: &str, target: &Target) -> Answer {
    let (version, served) = servable(server, name, target)?;
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

/// Answers a `:predict`, `:classify` or `:regress` within the request's deadline: 408
/// when the body has not arrived by then, 504 when the answer has not.
async fn call(server: &Server, name: &str, target: &Target, verb: &str, body: Body) -> Answer {
    let started = Instant::now();
    let answer = answer_call(server, name, target, verb, body).await;
    let code = match &answer {
        Ok(response) => response.status(),
        Err(e) => e.0,
    };
    // Only configured models are counted: a client naming random models must not grow
    // the metrics without bound.
    if server.is_served(name) {
        let api = match verb {
            "predict" | "classify" | "regress" => verb,
            _ => "unknown",
        };
        METRICS.request(name, api, tf_status(code.as_u16()), started.elapsed());
    }
    answer
}

async fn answer_call(
    server: &Server,
    name: &str,
    target: &Target,
    verb: &str,
    body: Body,
) -> Answer {
    let deadline = Instant::now() + server.request_timeout;
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
    let body = tokio::time::timeout_at(deadline.into(), read_body(server, body))
        .await
        .map_err(|_| server.timed_out(StatusCode::REQUEST_TIMEOUT, "the body did not arrive"))??;
    let (_, served) = servable(server, name, target)?;
    let pool = &server.pool;
    let lane = Lane::of(body.len(), served.fast.load(Ordering::Relaxed));
    let expired = |e: NotRun| match e {
        NotRun::DeadlineExceeded => {
            server.timed_out(StatusCode::GATEWAY_TIMEOUT, "DEADLINE_EXCEEDED")
        }
        NotRun::Panicked => {
            ApiError::internal("internal error: answering the request panicked (a bug)")
        }
    };
    let answer = match served.batcher.as_ref() {
        None => {
            let served = Arc::clone(&served);
            pool.run(lane, deadline, move || {
                let parsed = call::parse(&served, method, &body)?;
                let started = Instant::now();
                let spec = call::predict_alone(&served, &parsed);
                if lane == Lane::Inline && started.elapsed() >= STALL {
                    // Slower than its warm-up said: from now on, off the network threads.
                    served.fast.store(false, Ordering::Relaxed);
                }
                call::answer(&served, &parsed, spec?)
            })
            .await
            .map_err(expired)??
        }
        Some(batcher) => {
            let mut parsed = {
                let served = Arc::clone(&served);
                pool.run(lane, deadline, move || call::parse(&served, method, &body))
                    .await
                    .map_err(expired)??
            };
            let wanted = parsed.wanted(&served);
            let columns = std::mem::take(&mut parsed.columns);
            let predicted = batcher.predict(columns, parsed.rows, wanted, deadline);
            let spec = tokio::time::timeout_at(deadline.into(), predicted)
                .await
                .map_err(|_| expired(NotRun::DeadlineExceeded))?
                .map_err(|e| match e {
                    BatchError::DeadlineExceeded => expired(NotRun::DeadlineExceeded),
                    other => other.into_api_error(),
                })?;
            call::answer(&served, &parsed, spec)?
        }
    };
    Ok(json_body(answer))
}

/// The body, up to `--max_request_bytes` (413 past it), read into one buffer sized by
/// its `Content-Length`: a body costs its own size once, never a list of chunks and a copy.
async fn read_body(server: &Server, body: Body) -> Result<axum::body::Bytes, ApiError> {
    use http_body::Body as _;
    use http_body_util::BodyExt;
    let limit = server.max_request_bytes;
    let too_large = || {
        ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is over the limit of {limit} bytes (--max_request_bytes)"),
        )
    };
    let announced = body.size_hint().exact().unwrap_or(0);
    if announced > limit as u64 {
        return Err(too_large());
    }
    let mut buffer = Vec::with_capacity(announced as usize);
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if buffer.len() + data.len() > limit {
                return Err(too_large());
            }
            buffer.extend_from_slice(&data);
        }
    }
    Ok(buffer.into())
}

impl Server {
    /// The models served now, each held for as long as the caller keeps it.
    pub fn served_models(&self) -> Vec<Arc<ModelVersions>> {
        let models = self.models.read().unwrap_or_else(PoisonError::into_inner);
        models.values().cloned().collect()
    }

    fn is_served(&self, name: &str) -> bool {
        let models = self.models.read().unwrap_or_else(PoisonError::into_inner);
        models.contains_key(name)
    }

    fn timed_out(&self, code: StatusCode, what: &str) -> ApiError {
        ApiError(
            code,
            format!(
                "{what}: the request was not answered within {} ms (--rest_api_timeout_in_ms)",
                self.request_timeout.as_millis()
            ),
        )
    }
}

/// A 200 answer. One that fits in a slice is sent whole, with its length; a larger one is
/// written a slice at a time as the client reads it.
fn json_body(mut answer: response::Answer) -> Response {
    let mut first = Vec::new();
    answer.next_slice(&mut first);
    let body = if answer.is_done() {
        Body::from(first)
    } else {
        Body::new(AnswerBody {
            first: Some(first),
            rest: answer,
            turn: None,
        })
    };
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// An answer as an HTTP body: each frame is the next slice of its JSON. The task yields
/// to the runtime before each slice after the first, so that writing a large answer to a
/// fast client never keeps one of the network threads from the other connections.
struct AnswerBody {
    first: Option<Vec<u8>>,
    rest: response::Answer,
    turn: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
}

impl http_body::Body for AnswerBody {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(http_body::Frame::data(first.into()))));
        }
        let turn = self
            .turn
            .get_or_insert_with(|| Box::pin(tokio::task::yield_now()));
        if turn.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.turn = None;
        let mut slice = Vec::with_capacity(response::SLICE_BYTES + 1024);
        let more = self.rest.next_slice(&mut slice);
        Poll::Ready(more.then(|| Ok(http_body::Frame::data(slice.into()))))
    }
}
