//! `estimator serve`'s flags, named as TF Serving's `tensorflow_model_server` names them,
//! and the [`ServeConfig`] they make.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::serve::{
    self, BatchingOptions, ConnectionLimits, LoadRetries, ModelConfig, ServeConfig, VersionPolicy,
};
use crate::threads;

#[derive(Clone, Debug, clap::Args)]
pub struct ServeFlags {
    /// The model's name in request paths (/v1/models/NAME).
    #[arg(long = "model_name", requires = "model_base_path")]
    pub model_name: Option<String>,
    /// The directory `estimator export --export-dir` writes versions into.
    #[arg(long = "model_base_path", requires = "model_name")]
    pub model_base_path: Option<PathBuf>,
    /// A YAML list of models: `- {name, base_path, model_version_policy}`.
    #[arg(long = "model_config_file", conflicts_with_all = ["model_name", "model_base_path"])]
    pub model_config_file: Option<PathBuf>,
    /// Read --model_config_file again this often (seconds) to add, change and remove
    /// models without a restart; 0 reads it once.
    #[arg(long = "model_config_file_poll_wait_seconds", default_value_t = 0.0)]
    pub model_config_file_poll_wait_seconds: f64,
    /// TF Serving's MonitoringConfig (text format): `prometheus_config { enable: true, path:
    /// "/monitoring/prometheus/metrics" }` serves Prometheus metrics on the REST port.
    #[arg(long = "monitoring_config_file")]
    pub monitoring_config_file: Option<PathBuf>,
    /// The REST port; 0 picks a free one (the log line `Exporting HTTP/REST API at:` names it).
    #[arg(long = "rest_api_port", default_value_t = 8501)]
    pub rest_api_port: u16,
    #[arg(long = "rest_api_host", default_value = "127.0.0.1")]
    pub rest_api_host: IpAddr,
    /// How often the base paths are polled for new versions.
    #[arg(long = "file_system_poll_wait_seconds", default_value_t = 1.0)]
    pub file_system_poll_wait_seconds: f64,
    /// How many times a version that failed to load is tried again.
    #[arg(long = "max_num_load_retries", default_value_t = 5)]
    pub max_num_load_retries: u32,
    /// The wait before each retry of a failed load.
    #[arg(long = "load_retry_interval_micros", default_value_t = 60_000_000)]
    pub load_retry_interval_micros: u64,
    /// Requests with a larger body are refused with 413.
    #[arg(long = "max_request_bytes", default_value_t = 32 << 20)]
    pub max_request_bytes: usize,
    /// A request not answered in this time gets 408 (body not received) or 504.
    #[arg(long = "rest_api_timeout_in_ms", default_value_t = 30_000)]
    pub rest_api_timeout_in_ms: u64,
    /// Merge concurrent requests into one model_fn call (TF Serving's batching).
    #[arg(long = "enable_batching")]
    pub enable_batching: bool,
    /// The most examples in one batch.
    #[arg(long = "max_batch_size", default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_batch_size: u64,
    /// How long a request waits for others to fill its batch.
    #[arg(long = "batch_timeout_micros", default_value_t = 1000)]
    pub batch_timeout_micros: u64,
    /// Batches that may wait in a version's queue; past them a request gets 503.
    #[arg(long = "max_enqueued_batches", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_enqueued_batches: u64,
    /// Split a request larger than --max_batch_size into batches rather than refuse it.
    #[arg(long = "enable_large_batch_splitting")]
    pub enable_large_batch_splitting: bool,
    /// Threads that gather and predict each version's batches; 0 uses the machine's cores.
    #[arg(long = "num_batch_threads", default_value_t = 0)]
    pub num_batch_threads: usize,
    /// Requests parsed and predicted at once, off the network threads; 0 uses the
    /// machine's cores.
    #[arg(long = "tensorflow_inter_op_parallelism", default_value_t = 0)]
    pub tensorflow_inter_op_parallelism: usize,
    /// A request head must arrive within this, and an idle keep-alive connection is
    /// closed after it.
    #[arg(long = "http_header_read_timeout_ms", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub http_header_read_timeout_ms: u64,
    /// Connections open at once; past it, new ones wait to be accepted.
    #[arg(long = "max_connections", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
    /// The most a request's head (request line and headers) may take; more gets 431.
    #[arg(long = "max_header_bytes", default_value_t = 64 << 10)]
    pub max_header_bytes: usize,
    /// On SIGTERM, how long in-flight requests may take to finish before the server exits.
    #[arg(long = "shutdown_drain_timeout_ms", default_value_t = 30_000)]
    pub shutdown_drain_timeout_ms: u64,
    /// Threads for one op (matmuls); 0 uses the machine's cores.
    #[arg(long = "tensorflow_intra_op_parallelism", default_value_t = 0)]
    pub tensorflow_intra_op_parallelism: usize,
}

impl ServeFlags {
    /// The server these flags ask for; sets the process's op threads.
    pub fn into_config(self) -> Result<ServeConfig> {
        let requested = Some(self.tensorflow_intra_op_parallelism).filter(|&n| n > 0);
        threads::configure(threads::intra_op_threads(requested, 1));
        let reload_wait = self.model_config_file_poll_wait_seconds;
        if !(reload_wait >= 0.0 && reload_wait.is_finite()) {
            return Err(Error::Usage(
                "--model_config_file_poll_wait_seconds must be 0 or more".into(),
            ));
        }
        let config_reload = match &self.model_config_file {
            Some(file) if reload_wait > 0.0 => {
                Some((file.clone(), Duration::from_secs_f64(reload_wait)))
            }
            _ => None,
        };
        let models = match (
            self.model_config_file,
            self.model_name,
            self.model_base_path,
        ) {
            (Some(file), _, _) => serve::read_model_config_file(&file)?,
            (None, Some(name), Some(base_path)) => vec![ModelConfig {
                name,
                base_path,
                model_version_policy: VersionPolicy::default(),
                version_labels: Default::default(),
                model_platform: None,
            }],
            _ => {
                return Err(Error::Usage(
                    "serve needs --model_name and --model_base_path, or --model_config_file".into(),
                ))
            }
        };
        let poll = self.file_system_poll_wait_seconds;
        if !(poll > 0.0 && poll.is_finite()) {
            return Err(Error::Usage(
                "--file_system_poll_wait_seconds must be > 0".into(),
            ));
        }
        Ok(ServeConfig {
            models,
            address: SocketAddr::new(self.rest_api_host, self.rest_api_port),
            poll_wait: Duration::from_secs_f64(poll),
            max_request_bytes: self.max_request_bytes,
            request_timeout: Duration::from_millis(self.rest_api_timeout_in_ms),
            batching: self.enable_batching.then(|| BatchingOptions {
                max_batch_size: self.max_batch_size as usize,
                batch_timeout: Duration::from_micros(self.batch_timeout_micros),
                max_enqueued_batches: self.max_enqueued_batches as usize,
                split_large_batches: self.enable_large_batch_splitting,
                threads: match self.num_batch_threads {
                    0 => cores(),
                    n => n,
                },
            }),
            config_reload,
            metrics_path: match &self.monitoring_config_file {
                Some(file) => serve::read_monitoring_config(file)?,
                None => None,
            },
            connections: ConnectionLimits {
                header_read_timeout: Duration::from_millis(self.http_header_read_timeout_ms),
                max_connections: self.max_connections as usize,
                max_header_bytes: self.max_header_bytes,
                drain_timeout: Duration::from_millis(self.shutdown_drain_timeout_ms),
            },
            model_threads: match self.tensorflow_inter_op_parallelism {
                0 => cores(),
                n => n,
            },
            load_retries: LoadRetries {
                max_retries: self.max_num_load_retries,
                interval: Duration::from_micros(self.load_retry_interval_micros),
            },
        })
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
