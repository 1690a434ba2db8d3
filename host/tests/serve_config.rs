//! `--model_config_file` in TF Serving's own text format, version labels, and the file read
//! again while serving: models added, relabeled and removed without a restart.

mod common;

use std::path::Path;
use std::time::Duration;

use common::exports::{exported, one_iris_instance, version_of};
use common::http::{get, post, Serving};
use common::{ok, p};
use serde_json::json;

fn tf_config(models: &[(&str, &str, &str)]) -> String {
    let configs: String = models
        .iter()
        .map(|(name, base, extra)| {
            format!("  config {{\n    name: \"{name}\"\n    base_path: \"{base}\"\n    model_platform: \"tensorflow\"\n{extra}  }}\n")
        })
        .collect();
    format!("# TF Serving's ModelServerConfig\nmodel_config_list {{\n{configs}}}\n")
}

fn write(path: &Path, text: &str) {
    // Written aside and renamed, so the server never reads half a file.
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, text).expect("write");
    std::fs::rename(&temp, path).expect("rename");
}

#[test]
fn tf_servings_config_file_serves_labels_and_is_read_again_while_serving() {
    let dir = tempfile::tempdir().expect("temp dir");
    let iris = dir.path().join("iris");
    let (manifest, first) = exported(dir.path(), "iris_custom.yaml", "10", &iris);
    let out = ok(&["export", p(&manifest), "--export-dir", p(&iris), "--quiet"]);
    let second = std::path::PathBuf::from(out.lines().last().expect("path").trim());
    let (v1, v2) = (version_of(&first), version_of(&second));
    let labels = |stable: &str, canary: &str| {
        format!(
            "    model_version_policy {{ all {{}} }}\n    version_labels {{ key: \"stable\" value: {stable} }}\n    version_labels {{ key: \"canary\" value: {canary} }}\n"
        )
    };
    let config = dir.path().join("models.config");
    write(&config, &tf_config(&[("iris", "iris", &labels(&v1, &v2))]));
    let server = Serving::start(
        &[
            "--model_config_file",
            p(&config),
            "--model_config_file_poll_wait_seconds",
            "0.1",
        ],
        "iris",
    );
    let port = server.port;
    let (code, stable) = get(port, "/v1/models/iris/labels/stable");
    assert_eq!(code, 200, "{stable}");
    assert_eq!(stable["model_version_status"][0]["version"], json!(v1));
    let (code, meta) = get(port, "/v1/models/iris/labels/canary/metadata");
    assert_eq!(code, 200, "{meta}");
    assert_eq!(meta["model_spec"]["version"], json!(v2));
    let (code, by_label) = post(
        port,
        "/v1/models/iris/labels/canary:predict",
        &one_iris_instance(),
    );
    assert_eq!(code, 200, "{by_label}");
    let (_, by_version) = post(
        port,
        &format!("/v1/models/iris/versions/{v2}:predict"),
        &one_iris_instance(),
    );
    assert_eq!(by_label, by_version);
    let (code, unknown) = get(port, "/v1/models/iris/labels/nope");
    assert_eq!(code, 404, "{unknown}");
    assert_eq!(
        unknown["error"],
        "Unrecognized servable version label: nope"
    );

    // Read again: a model added, a label moved.
    let cancer = dir.path().join("cancer");
    let other = tempfile::tempdir().expect("temp dir");
    exported(
        other.path(),
        "breast_cancer_linear_classifier.yaml",
        "10",
        &cancer,
    );
    write(
        &config,
        &tf_config(&[
            ("iris", "iris", &labels(&v2, &v2)),
            ("cancer", "cancer", ""),
        ]),
    );
    server.wait_until(Duration::from_secs(60), || {
        get(port, "/v1/models/cancer").0 == 200
            && get(port, "/v1/models/iris/labels/stable").1["model_version_status"][0]["version"]
                == json!(v2)
    });
    // A broken file changes nothing.
    write(&config, "model_config_list { config { name: ");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(get(port, "/v1/models/cancer").0, 200);
    // A model removed: its versions go, the other stays.
    write(&config, &tf_config(&[("cancer", "cancer", "")]));
    server.wait_until(Duration::from_secs(30), || {
        get(port, "/v1/models/iris").0 == 404
    });
    assert_eq!(get(port, "/v1/models/cancer").0, 200);
    let (_, log) = server.terminate();
    assert_eq!(
        log.matches("the models served are unchanged").count(),
        1,
        "{log}"
    );
}

/// The value of the Prometheus sample whose line starts with `prefix`.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn tf_servings_monitoring_config_serves_prometheus_metrics() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path().join("export");
    let (_, version) = exported(dir.path(), "iris_custom.yaml", "10", &base);
    let monitoring = dir.path().join("monitoring.config");
    std::fs::write(
        &monitoring,
        "prometheus_config {\n  enable: true,\n  path: \"/monitoring/prometheus/metrics\"\n}\n",
    )
    .expect("write");
    let server = common::exports::serve_iris(
        &base,
        &[
            "--monitoring_config_file",
            p(&monitoring),
            "--enable_batching",
        ],
    );
    let port = server.port;
    for _ in 0..3 {
        assert_eq!(
            post(port, "/v1/models/iris:predict", &one_iris_instance()).0,
            200
        );
    }
    assert_eq!(post(port, "/v1/models/iris:predict", "{}").0, 400);
    assert_eq!(post(port, "/v1/models/nope:predict", "{}").0, 404);
    let (code, text) =
        common::http::request_text(port, "GET", "/monitoring/prometheus/metrics", "");
    assert_eq!(code, 200, "{text}");
    let count = |status: &str| {
        sample(
            &text,
            &format!(
                ":tensorflow:serving:request_count{{model_name=\"iris\",status=\"{status}\"}}"
            ),
        )
    };
    assert_eq!(count("OK"), Some(3.0), "{text}");
    assert_eq!(count("INVALID_ARGUMENT"), Some(1.0), "{text}");
    assert!(
        !text.contains("model_name=\"nope\""),
        "unknown models are not counted"
    );
    assert_eq!(
        sample(&text, ":tensorflow:serving:request_latency_count{API=\"predict\",entrypoint=\"REST\",model_name=\"iris\"}"),
        Some(4.0),
        "{text}"
    );
    let path = version.to_string_lossy();
    assert_eq!(
        sample(&text, &format!(":tensorflow:cc:saved_model:load_attempt_count{{model_path=\"{path}\",status=\"success\"}}")),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "estimator_serving_versions{model_name=\"iris\",state=\"AVAILABLE\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "estimator_serving_batch_size_sum{model_name=\"iris\"}"
        ),
        Some(3.0),
        "{text}"
    );
    assert!(
        sample(&text, "process_resident_memory_bytes").is_some_and(|b| b > 1e6),
        "{text}"
    );
    // Without the config, there is no such endpoint.
    drop(server);
    let plain = common::exports::serve_iris(&base, &[]);
    assert_eq!(
        common::http::request_text(plain.port, "GET", "/monitoring/prometheus/metrics", "").0,
        404
    );
}

#[test]
fn latest_n_and_specific_policies_choose_their_versions() {
    let dir = tempfile::tempdir().expect("temp dir");
    let iris = dir.path().join("iris");
    let (manifest, first) = exported(dir.path(), "iris_custom.yaml", "10", &iris);
    let mut versions = vec![version_of(&first)];
    for _ in 0..2 {
        let out = ok(&["export", p(&manifest), "--export-dir", p(&iris), "--quiet"]);
        versions.push(version_of(Path::new(
            out.lines().last().expect("path").trim(),
        )));
    }
    let config = dir.path().join("models.config");
    write(
        &config,
        &tf_config(&[
            (
                "two",
                "iris",
                "    model_version_policy { latest { num_versions: 2 } }\n",
            ),
            (
                "first",
                "iris",
                &format!(
                    "    model_version_policy {{ specific {{ versions: {} }} }}\n",
                    versions[0]
                ),
            ),
        ]),
    );
    let server = Serving::start(&["--model_config_file", p(&config)], "first");
    let available = |model: &str| {
        let (_, status) = get(server.port, &format!("/v1/models/{model}"));
        let mut listed: Vec<String> = status["model_version_status"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s["state"] == "AVAILABLE")
            .filter_map(|s| s["version"].as_str().map(str::to_owned))
            .collect();
        listed.sort();
        listed
    };
    server.wait_until(Duration::from_secs(30), || available("two").len() == 2);
    assert_eq!(available("two"), versions[1..]);
    assert_eq!(available("first"), versions[..1]);
}
