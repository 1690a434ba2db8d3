//! `estimator serve`: TF Serving's REST API over exported versions, polled from disk and
//! swapped in without a restart.
//!
//! - `policy`: which versions serve (pure);
//! - `versions`: one model's versions, their states, and the poll that loads and unloads;
//! - `rest`: the HTTP endpoints (axum on tokio).
//!
//! - `call`: one request's stages (parse, predict, write), run on `pool`, a bounded set of
//!   threads off the async runtime, within the request's deadline;
//! - `response`: answers written straight from the predictions.
//!
//! A request holds its version until it is answered. SIGTERM or SIGINT stops accepting
//! connections, lets in-flight requests finish, and exits 0.

mod batching;
mod call;
mod listen;
mod policy;
mod pool;
mod response;
mod rest;
mod retry;
mod versions;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tracing::info;

pub use batching::BatchingOptions;
pub use listen::ConnectionLimits;
pub use policy::VersionPolicy;
use pool::Pool;
use rest::Server;
pub use retry::LoadRetries;
use versions::ModelVersions;

use crate::error::{Error, Result};
use crate::plugins::PluginRegistry;

/// One served model, as `--model_name`/`--model_base_path` or an entry of
/// `--model_config_file` gives it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub name: String,
    pub base_path: PathBuf,
    #[serde(default)]
    pub model_version_policy: VersionPolicy,
}

/// What `estimator serve` was asked to do.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub models: Vec<ModelConfig>,
    pub address: SocketAddr,
    pub poll_wait: Duration,
    pub max_request_bytes: usize,
    /// A request not answered in this time gets 408.
    pub request_timeout: Duration,
    /// Server-side batching, when on.
    pub batching: Option<BatchingOptions>,
    /// How a failed load is retried.
    pub load_retries: LoadRetries,
    /// Requests parsed, predicted and written at once, off the async runtime.
    pub model_threads: usize,
    pub connections: ConnectionLimits,
}

/// Reads `--model_config_file`: a YAML list of models.
pub fn read_model_config_file(path: &std::path::Path) -> Result<Vec<ModelConfig>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("{}: cannot read: {e}", path.display())))?;
    let bad = |e: &dyn std::fmt::Display| Error::Usage(format!("{}: {e}", path.display()));
    // Through JSON, so that a policy is written as TF Serving writes it, `{latest: {...}}`
    // (serde_yaml reads enums from YAML tags only).
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| bad(&e))?;
    let json = serde_json::to_value(yaml).map_err(|e| bad(&e))?;
    let models: Vec<ModelConfig> = serde_json::from_value(json).map_err(|e| bad(&e))?;
    let base = path.parent().unwrap_or(std::path::Path::new("."));
    Ok(models
        .into_iter()
        .map(|mut m| {
            m.base_path = base.join(&m.base_path);
            m
        })
        .collect())
}

/// Serves until SIGTERM or SIGINT.
pub fn run(config: ServeConfig) -> Result<()> {
    let mut models = BTreeMap::new();
    for m in &config.models {
        let versions = ModelVersions::new(
            m.name.clone(),
            m.base_path.clone(),
            m.model_version_policy.clone(),
            config.batching,
            config.load_retries,
        );
        if models.insert(m.name.clone(), Arc::new(versions)).is_some() {
            return Err(Error::Usage(format!(
                "model `{}` is configured twice",
                m.name
            )));
        }
    }
    let registry = Arc::new(Mutex::new(PluginRegistry::from_env()));
    for versions in models.values() {
        poll_supervised(versions, &registry);
    }
    let server = Arc::new(Server {
        models,
        max_request_bytes: config.max_request_bytes,
        max_header_bytes: config.connections.max_header_bytes,
        request_timeout: config.request_timeout,
        pool: Pool::new(config.model_threads),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let poller = spawn_poller(
        Arc::clone(&server),
        registry,
        config.poll_wait,
        Arc::clone(&stop),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the server's runtime", e))?;
    let served = runtime.block_on(serve(
        Arc::clone(&server),
        config.address,
        config.connections,
    ));
    // A model call still running after the drain is not waited for.
    runtime.shutdown_timeout(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let _ = poller.join();
    served
}

async fn serve(server: Arc<Server>, address: SocketAddr, limits: ConnectionLimits) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| Error::Usage(format!("cannot listen on {address}: {e}")))?;
    // With port 0 the system picks the port: the log names the one bound.
    let bound = listener
        .local_addr()
        .map_err(|e| Error::io("cannot read the bound address", e))?;
    info!("Exporting HTTP/REST API at:{bound} ...");
    listen::serve(listener, rest::router(server), limits, shutdown_signal()).await;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: draining in-flight requests"),
        _ = int.recv() => info!("SIGINT: draining in-flight requests"),
    }
}

/// Polls every model's base path every `wait` until `stop`. A panic in one poll (a bug,
/// or a plugin that panics while it loads) is logged and the next poll goes on: the
/// poller never dies silently, leaving versions that are never updated.
fn spawn_poller(
    server: Arc<Server>,
    registry: Arc<Mutex<PluginRegistry>>,
    wait: Duration,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let tick = Duration::from_millis(50).min(wait);
        let mut waited = Duration::ZERO;
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(tick);
            waited += tick;
            if waited >= wait {
                waited = Duration::ZERO;
                for versions in server.models.values() {
                    poll_supervised(versions, &registry);
                }
            }
        }
    })
}

fn poll_supervised(versions: &ModelVersions, registry: &Mutex<PluginRegistry>) {
    let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        versions.poll(registry);
    }));
    if let Err(panic) = polled {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(
            "Polling the versions of `{}` panicked (a bug): {why}; polling goes on",
            versions.name
        );
    }
}
