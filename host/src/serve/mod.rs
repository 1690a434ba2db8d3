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
mod metrics;
mod model_config;
mod once_per_cause;
mod policy;
mod poller;
mod pool;
mod response;
mod rest;
mod retry;
mod text_format;
mod versions;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tracing::info;

pub use batching::BatchingOptions;
pub use listen::ConnectionLimits;
pub use metrics::read_monitoring_config;
pub use model_config::{read_model_config_file, ModelConfig};
pub use policy::VersionPolicy;
use poller::{poll_supervised, ConfigReload, ModelSettings, Poller};
use pool::Pool;
use rest::Server;
pub use retry::LoadRetries;

use crate::error::{Error, Result};
use crate::plugins::PluginRegistry;

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
    /// Where Prometheus metrics are served, when `--monitoring_config_file` enables them.
    pub metrics_path: Option<String>,
    /// `--model_config_file` and how often to read it again, when it is read again.
    pub config_reload: Option<(PathBuf, Duration)>,
}

/// Serves until SIGTERM or SIGINT.
pub fn run(config: ServeConfig) -> Result<()> {
    let settings = ModelSettings {
        batching: config.batching,
        retries: config.load_retries,
    };
    let registry = Arc::new(Mutex::new(PluginRegistry::from_env()));
    let mut models = BTreeMap::new();
    for m in &config.models {
        let versions = Arc::new(settings.model(m));
        if models
            .insert(m.name.clone(), Arc::clone(&versions))
            .is_some()
        {
            return Err(Error::Usage(format!(
                "model `{}` is configured twice",
                m.name
            )));
        }
        poll_supervised(&versions, &registry);
    }
    let server = Arc::new(Server {
        models: RwLock::new(models),
        max_request_bytes: config.max_request_bytes,
        max_header_bytes: config.connections.max_header_bytes,
        request_timeout: config.request_timeout,
        pool: Pool::new(config.model_threads),
        metrics_path: config.metrics_path.clone(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let poller = Poller {
        server: Arc::clone(&server),
        registry,
        settings,
        poll_wait: config.poll_wait,
        reload: config.config_reload.map(|(path, wait)| ConfigReload {
            path,
            wait,
            current: config.models.clone(),
            fault: Default::default(),
        }),
    }
    .spawn(Arc::clone(&stop));
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
