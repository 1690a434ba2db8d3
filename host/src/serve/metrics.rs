//! What `--monitoring_config_file` exposes, in Prometheus' text format on the REST port:
//! TF Serving's metrics under TF Serving's names (its exporter turns `/tensorflow/serving/x`
//! into `:tensorflow:serving:x`), and this server's own, named `estimator_serving_*`.
//!
//! Counters and histograms are recorded as things happen; gauges (versions by state, the
//! batch queues, the process's memory) are read when scraped.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use prometheus::{
    exponential_buckets, Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use super::text_format::{self, Scalar, Value};
use super::versions::ModelVersions;
use crate::error::{Error, Result};

pub struct Metrics {
    registry: Registry,
    request_count: IntCounterVec,
    request_latency: HistogramVec,
    load_attempts: IntCounterVec,
    load_latency: IntCounterVec,
    unloads: IntCounterVec,
    batch_size: HistogramVec,
    queued: IntGaugeVec,
    versions: IntGaugeVec,
    resident: IntGauge,
    /// Held while the gauges are read and rendered, so that two scrapes at once never
    /// reset each other's gauges half-way.
    rendering: Mutex<()>,
}

/// The process's metrics: recorded whether or not they are exposed.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("registered once");
            c
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("registered once");
            g
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: Vec<f64>| {
            let opts = HistogramOpts::new(name, help).buckets(buckets);
            let h = HistogramVec::new(opts, labels).expect("a valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("registered once");
            h
        };
        // TF Serving's buckets for latencies in microseconds: 10 × 1.8^k, 33 of them.
        let latency_buckets = exponential_buckets(10.0, 1.8, 33).expect("valid buckets");
        let resident = IntGauge::new(
            "process_resident_memory_bytes",
            "Resident memory of the serving process, in bytes.",
        )
        .expect("a valid metric");
        registry
            .register(Box::new(resident.clone()))
            .expect("registered once");
        Metrics {
            request_count: counter(
                ":tensorflow:serving:request_count",
                "The total number of requests.",
                &["model_name", "status"],
            ),
            request_latency: histogram(
                ":tensorflow:serving:request_latency",
                "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
                &["model_name", "API", "entrypoint"],
                latency_buckets,
            ),
            load_attempts: counter(
                ":tensorflow:cc:saved_model:load_attempt_count",
                "The number of times a version was loaded, by outcome.",
                &["model_path", "status"],
            ),
            load_latency: counter(
                ":tensorflow:cc:saved_model:load_latency",
                "Latency in microseconds for versions that were successfully loaded.",
                &["model_path"],
            ),
            unloads: counter(
                "estimator_serving_unload_count",
                "The number of versions unloaded.",
                &["model_name"],
            ),
            batch_size: histogram(
                "estimator_serving_batch_size",
                "Examples in each batch that model_fn ran.",
                &["model_name"],
                exponential_buckets(1.0, 2.0, 14).expect("valid buckets"),
            ),
            queued: gauge(
                "estimator_serving_batch_queue_examples",
                "Examples waiting in a version's batch queue.",
                &["model_name", "version"],
            ),
            versions: gauge(
                "estimator_serving_versions",
                "Versions of each model, by state.",
                &["model_name", "state"],
            ),
            resident,
            rendering: Mutex::new(()),
            registry,
        }
    }

    /// One answered request: `status` is TF Serving's code name (`OK`, `INVALID_ARGUMENT`...).
    pub fn request(&self, model: &str, api: &str, status: &str, took: Duration) {
        self.request_count.with_label_values(&[model, status]).inc();
        self.request_latency
            .with_label_values(&[model, api, "REST"])
            .observe(took.as_micros() as f64);
    }

    pub fn load(&self, model_path: &str, ok: bool, took: Duration) {
        let status = if ok { "success" } else { "fail" };
        self.load_attempts
            .with_label_values(&[model_path, status])
            .inc();
        if ok {
            self.load_latency
                .with_label_values(&[model_path])
                .inc_by(took.as_micros() as u64);
        }
    }

    pub fn unload(&self, model: &str) {
        self.unloads.with_label_values(&[model]).inc();
    }

    pub fn batch(&self, model: &str, examples: usize) {
        self.batch_size
            .with_label_values(&[model])
            .observe(examples as f64);
    }

    /// Prometheus' text format, with the gauges read now from `models`.
    pub fn render(&self, models: &[Arc<ModelVersions>]) -> String {
        let _rendering = self
            .rendering
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.versions.reset();
        self.queued.reset();
        for model in models {
            let mut by_state: BTreeMap<&str, i64> = BTreeMap::new();
            for (_, state) in model.states() {
                *by_state.entry(state.tf_name()).or_default() += 1;
            }
            for (state, n) in by_state {
                self.versions
                    .with_label_values(&[model.name.as_str(), state])
                    .set(n);
            }
            for (version, waiting) in model.queued() {
                self.queued
                    .with_label_values(&[model.name.as_str(), &version.to_string()])
                    .set(waiting as i64);
            }
        }
        self.resident.set(resident_bytes() as i64);
        let mut out = Vec::new();
        // Encoding to memory fails only for a metric that breaks the format: none here.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// The process's resident memory, from /proc/self/statm (0 where there is none).
fn resident_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page.max(0) as u64
}

/// TF Serving's status code name for an HTTP status this server answers.
pub fn tf_status(code: u16) -> &'static str {
    match code {
        200..=299 => "OK",
        400 | 405 | 431 => "INVALID_ARGUMENT",
        404 => "NOT_FOUND",
        408 | 504 => "DEADLINE_EXCEEDED",
        413 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    }
}

/// `--monitoring_config_file`: TF Serving's `MonitoringConfig` text format. Returns the
/// path to serve Prometheus metrics on, when enabled.
pub fn read_monitoring_config(path: &std::path::Path) -> Result<Option<String>> {
    let bad = |m: String| Error::Usage(format!("{}: {m}", path.display()));
    let top = text_format::read_file(path)?;
    let mut enabled = None;
    for (name, value) in &top.fields {
        let Value::Message(config) = value else {
            return Err(bad(format!("`{name}` must be a message")));
        };
        if name != "prometheus_config" {
            return Err(bad(format!(
                "MonitoringConfig has no field `{name}` (it has: prometheus_config)"
            )));
        }
        let mut enable = false;
        let mut at = "/monitoring/prometheus/metrics".to_owned();
        for (field, value) in &config.fields {
            match (field.as_str(), value) {
                ("enable", Value::Scalar(Scalar::Word(w))) if w == "true" || w == "false" => {
                    enable = w == "true"
                }
                ("path", Value::Scalar(Scalar::Str(p))) if usable_path(p) => at = p.clone(),
                ("enable", _) => return Err(bad("`enable` must be true or false".into())),
                ("path", _) => {
                    return Err(bad(
                        "`path` must be a string starting with /, outside /v1/, without { } *"
                            .into(),
                    ))
                }
                (other, _) => {
                    return Err(bad(format!(
                        "prometheus_config has no field `{other}` (it has: enable, path)"
                    )))
                }
            }
        }
        enabled = enable.then_some(at);
    }
    Ok(enabled)
}

/// A path the router can serve beside the REST API's own.
fn usable_path(path: &str) -> bool {
    path.starts_with('/')
        && path.len() > 1
        && !path.starts_with("/v1/")
        && !path.contains(['{', '}', '*'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tf_servings_monitoring_config_is_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("monitoring.config");
        let read = |text: &str| {
            std::fs::write(&path, text).expect("write");
            read_monitoring_config(&path)
        };
        assert_eq!(
            read("prometheus_config {\n  enable: true,\n  path: \"/metrics\"\n}\n").expect("valid"),
            Some("/metrics".into())
        );
        assert_eq!(
            read("prometheus_config { enable: true }").expect("valid"),
            Some("/monitoring/prometheus/metrics".into())
        );
        assert_eq!(
            read("prometheus_config { enable: false }").expect("valid"),
            None
        );
        let e = read("prometheus_config { enable: yes }").expect_err("bad");
        assert!(
            e.to_string().ends_with("`enable` must be true or false"),
            "{e}"
        );
        for path in ["metrics", "/v1/models/x", "/m/{x}", "/"] {
            let e = read(&format!("prometheus_config {{ path: \"{path}\" }}")).expect_err("bad");
            assert!(e.to_string().contains("starting with /"), "{e}");
        }
    }

    #[test]
    fn recorded_requests_render_under_tf_servings_names() {
        let metrics = Metrics::new();
        metrics.request("iris", "predict", "OK", Duration::from_micros(150));
        metrics.request(
            "iris",
            "predict",
            "INVALID_ARGUMENT",
            Duration::from_micros(20),
        );
        metrics.batch("iris", 5);
        let text = metrics.render(&[]);
        assert!(
            text.contains(r#":tensorflow:serving:request_count{model_name="iris",status="OK"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#":tensorflow:serving:request_latency_count{API="predict",entrypoint="REST",model_name="iris"} 2"#), "{text}");
        assert!(
            text.contains(r#"estimator_serving_batch_size_sum{model_name="iris"} 5"#),
            "{text}"
        );
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
        assert_eq!(tf_status(504), "DEADLINE_EXCEEDED");
    }
}
