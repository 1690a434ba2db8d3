//! `estimator serve` through the real binary on a loopback port: TF Serving's endpoints
//! and error codes, versions swapped in under load, a broken version that changes
//! nothing, SIGTERM, and a Python client speaking TF Serving's documented requests.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::exports::{exported, serve_iris, version_of, IRIS_ROW};
use common::http::{get, post, request_text, Serving};
use common::{ok, p};
use serde_json::{json, Value};

#[test]
fn every_endpoint_answers_as_tf_serving_does() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path().join("export");
    let (manifest, version) = exported(dir.path(), "iris_custom.yaml", "300", &base);
    let v = version_of(&version);
    let server = serve_iris(&base, &[]);
    let port = server.port;

    let (code, status) = get(port, "/v1/models/iris");
    assert_eq!(code, 200);
    assert_eq!(
        status,
        json!({"model_version_status": [{"version": v, "state": "AVAILABLE",
               "status": {"error_code": "OK", "error_message": ""}}]})
    );
    assert_eq!(
        get(port, &format!("/v1/models/iris/versions/{v}")),
        (200, status)
    );

    let (code, meta) = get(port, "/v1/models/iris/metadata");
    assert_eq!(code, 200);
    assert_eq!(meta["model_spec"]["version"], json!(v));
    let default = &meta["metadata"]["signature_def"]["signature_def"]["serving_default"];
    assert_eq!(default["method_name"], "tensorflow/serving/predict");
    assert_eq!(default["inputs"]["SepalLength"]["dtype"], "DT_FLOAT");
    assert_eq!(
        default["outputs"]["probabilities"]["tensor_shape"]["dim"][1]["size"],
        "3"
    );

    // Rows and columns give the predictions `estimator predict` writes for the same
    // examples (the manifest's predict input: the first two rows of iris_test.csv).
    let predicted: Vec<Value> = ok(&["predict", p(&manifest), "--quiet"])
        .lines()
        .take(2)
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let examples = iris_test_rows(2);
    let (code, rows) = post(
        port,
        "/v1/models/iris:predict",
        &format!(r#"{{"instances": [{}]}}"#, examples.join(",")),
    );
    assert_eq!(code, 200, "{rows}");
    assert_eq!(rows["predictions"], json!(predicted));
    assert_ne!(predicted[0], predicted[1], "two different examples");
    let column = |name: &str| {
        let values: Vec<Value> = examples
            .iter()
            .map(|e| serde_json::from_str::<Value>(e).expect("JSON")[name].clone())
            .collect();
        json!(values)
    };
    let columns = json!({"signature_name": "serving_default", "inputs": {
        "SepalLength": column("SepalLength"), "SepalWidth": column("SepalWidth"),
        "PetalLength": column("PetalLength"), "PetalWidth": column("PetalWidth")}});
    let (code, cols) = post(
        port,
        &format!("/v1/models/iris/versions/{v}:predict"),
        &columns.to_string(),
    );
    assert_eq!(code, 200, "{cols}");
    for key in ["class_ids", "logits", "probabilities"] {
        let by_row: Vec<Value> = predicted.iter().map(|p| p[key].clone()).collect();
        assert_eq!(cols["outputs"][key], json!(by_row), "{key}");
    }
}

/// The first `n` examples of data/iris_test.csv as TF Serving instances.
fn iris_test_rows(n: usize) -> Vec<String> {
    std::fs::read_to_string(common::repo_root().join("data/iris_test.csv"))
        .expect("data")
        .lines()
        .skip(1)
        .take(n)
        .map(|l| {
            let v: Vec<&str> = l.split(',').collect();
            format!(
                r#"{{"SepalLength": {}, "SepalWidth": {}, "PetalLength": {}, "PetalWidth": {}}}"#,
                v[0], v[1], v[2], v[3]
            )
        })
        .collect()
}

#[test]
fn classify_and_regress_answer_a_premade_classifiers_signatures() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path().join("export");
    let (manifest, _) = exported(dir.path(), "breast_cancer_dnn_classifier.yaml", "50", &base);
    let server = Serving::start(
        &["--model_name", "cancer", "--model_base_path", p(&base)],
        "cancer",
    );
    // One example from the manifest's own input, as `estimator predict` reads it.
    let predicted: Value = serde_json::from_str(
        ok(&["predict", p(&manifest), "--quiet"])
            .lines()
            .next()
            .expect("a prediction"),
    )
    .expect("JSON");
    let warmup: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(
            std::fs::read_dir(&base)
                .expect("base")
                .next()
                .expect("version")
                .expect("entry")
                .path()
                .join("warmup.json"),
        )
        .expect("warmup"),
    )
    .expect("JSON");
    let example = warmup[0].to_string();
    let (code, classified) = post(
        server.port,
        "/v1/models/cancer:classify",
        &format!(r#"{{"examples": [{example}]}}"#),
    );
    assert_eq!(code, 200, "{classified}");
    let pairs = classified["results"][0].as_array().expect("pairs");
    assert_eq!(pairs.len(), 2);
    assert_eq!(pairs[0][0], predicted["all_classes"][0]);
    assert_eq!(pairs[1][1], predicted["probabilities"][1]);
    // The same example with some features given once, as TF Serving's `context`.
    let mut own = warmup[0].as_object().expect("an object").clone();
    let shared: serde_json::Map<String, Value> = own
        .keys()
        .take(3)
        .cloned()
        .collect::<Vec<_>>()
        .into_iter()
        .filter_map(|k| own.remove_entry(&k))
        .collect();
    let with_context = json!({"context": shared, "examples": [own, own]});
    let (code, both) = post(
        server.port,
        "/v1/models/cancer:classify",
        &with_context.to_string(),
    );
    assert_eq!(code, 200, "{both}");
    assert_eq!(both["results"][0], classified["results"][0]);
    assert_eq!(both["results"][1], classified["results"][0]);
    let (code, unknown) = post(
        server.port,
        "/v1/models/cancer:classify",
        &json!({"context": {"nope": 1}, "examples": [own]}).to_string(),
    );
    assert_eq!(code, 400, "{unknown}");
    let (code, regressed) = post(
        server.port,
        "/v1/models/cancer:regress",
        &format!(r#"{{"signature_name": "regression", "examples": [{example}]}}"#),
    );
    assert_eq!(code, 200, "{regressed}");
    assert_eq!(regressed["results"][0], predicted["logistic"][0]);
    // :regress on the default (a classification) signature is TF Serving's 400.
    let (code, wrong) = post(
        server.port,
        "/v1/models/cancer:regress",
        &format!(r#"{{"examples": [{example}]}}"#),
    );
    assert_eq!(code, 400, "{wrong}");
}

#[test]
fn bad_requests_get_tf_servings_codes_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path().join("export");
    exported(dir.path(), "iris_custom.yaml", "10", &base);
    let server = serve_iris(&base, &["--max_request_bytes", "4096"]);
    let port = server.port;
    let predict = "/v1/models/iris:predict";
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("malformed JSON", predict.into(), 400, "{\"instances\": ["),
        (
            "both formats",
            predict.into(),
            400,
            r#"{"instances": [], "inputs": {}}"#,
        ),
        (
            "neither format",
            predict.into(),
            400,
            r#"{"signature_name": "serving_default"}"#,
        ),
        (
            "a missing feature",
            predict.into(),
            400,
            r#"{"instances": [{"SepalLength": 1}]}"#,
        ),
        (
            "a wrong type",
            predict.into(),
            400,
            r#"{"instances": [{"SepalLength": "long", "SepalWidth": 1, "PetalLength": 1, "PetalWidth": 1}]}"#,
        ),
        (
            "ragged columns",
            predict.into(),
            400,
            r#"{"inputs": {"SepalLength": [1, 2], "SepalWidth": [1], "PetalLength": [1], "PetalWidth": [1]}}"#,
        ),
        (
            "an input named twice in one instance",
            predict.into(),
            400,
            r#"{"instances": [{"SepalLength": 1, "SepalWidth": 1, "PetalLength": 1, "PetalLength": 2, "PetalWidth": 1}]}"#,
        ),
        (
            "an input named twice in columns",
            predict.into(),
            400,
            r#"{"inputs": {"SepalLength": [1], "SepalWidth": [1], "PetalLength": [1], "PetalLength": [1], "PetalWidth": [1]}}"#,
        ),
        (
            "a number that overflows float32",
            predict.into(),
            400,
            r#"{"instances": [{"SepalLength": 1e39, "SepalWidth": 1, "PetalLength": 1, "PetalWidth": 1}]}"#,
        ),
        (
            "an unknown model",
            "/v1/models/nope:predict".into(),
            404,
            r#"{"instances": []}"#,
        ),
        (
            "an unknown version",
            "/v1/models/iris/versions/7:predict".into(),
            404,
            r#"{"instances": []}"#,
        ),
        (
            "an unknown signature",
            predict.into(),
            404,
            r#"{"signature_name": "nope", "instances": []}"#,
        ),
    ];
    for (what, path, code, body) in &cases {
        let (got, answer) = post(port, path, body);
        assert_eq!(got, *code, "{what}: {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}: {answer}"
        );
    }
    let (_, twice) = post(port, predict, cases[6].3);
    assert_eq!(twice["error"], "instance 0 names input `PetalLength` twice");
    let (_, overflow) = post(port, predict, cases[8].3);
    assert_eq!(
        overflow["error"],
        "instance 0: input `SepalLength`: cannot convert JSON value 1e+39 to float without loss of precision"
    );
    let big = format!(r#"{{"instances": [{}]}}"#, vec![IRIS_ROW; 100].join(","));
    let (code, answer) = post(port, predict, &big);
    assert_eq!(code, 413, "{answer}");
    assert_eq!(get(port, "/v1/models/nope").0, 404);
    // Still serving.
    let (code, _) = post(port, predict, &format!(r#"{{"instances": [{IRIS_ROW}]}}"#));
    assert_eq!(code, 200);
    let (status, stderr) = server.terminate();
    assert!(status.success(), "SIGTERM exits 0: {status:?} {stderr}");
}

#[test]
fn a_new_version_swaps_in_under_load_with_no_failed_request() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path().join("export");
    let (_, old) = exported(dir.path(), "iris_custom.yaml", "50", &base);
    // The next version is another plugin: the premade DNN, trained in its own folder.
    let premade = tempfile::tempdir().expect("temp dir");
    let staging = premade.path().join("staging");
    let (_, new) = exported(premade.path(), "iris_dnn.yaml", "50", &staging);
    let server = serve_iris(&base, &["--file_system_poll_wait_seconds", "0.2"]);
    let port = server.port;
    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, done, failed) = (Arc::clone(&stop), Arc::clone(&done), Arc::clone(&failed));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let (code, _) = request_text(
                        port,
                        "POST",
                        "/v1/models/iris:predict",
                        &format!(r#"{{"instances": [{IRIS_ROW}]}}"#),
                    );
                    done.fetch_add(1, Ordering::Relaxed);
                    if code != 200 {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    // Requests flow before the swap, during it, and after it.
    let served_at_least = |n: usize| {
        server.wait_until(Duration::from_secs(30), || {
            done.load(Ordering::Relaxed) >= n
        });
    };
    served_at_least(50);
    // A newer version number than the one serving, renamed into place as an export is.
    let newer = base.join((version_of(&old).parse::<u64>().expect("number") + 1).to_string());
    std::fs::rename(&new, &newer).expect("rename");
    server.wait_until(Duration::from_secs(30), || {
        let (_, status) = get(port, "/v1/models/iris");
        status["model_version_status"][0]["version"] == json!(version_of(&newer))
            && status["model_version_status"][0]["state"] == "AVAILABLE"
    });
    served_at_least(done.load(Ordering::Relaxed) + 50);
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client");
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "no request failed during the swap"
    );
    // The premade model answers now: its predictions have `classes`.
    let (_, answer) = post(
        port,
        "/v1/models/iris:predict",
        &format!(r#"{{"signature_name": "predict", "instances": [{IRIS_ROW}]}}"#),
    );
    assert!(answer["predictions"][0]["classes"].is_array(), "{answer}");
    let (_, status) = get(port, "/v1/models/iris");
    assert_eq!(
        status["model_version_status"][1]["state"], "END",
        "the old version unloaded: {status}"
    );
    let (_, log) = server.terminate();
    let line = |what: &str, v: &str| format!("{what} servable version {{name: iris version: {v}}}");
    for expected in [
        line("Loading", &version_of(&old)),
        line("Successfully loaded", &version_of(&old)),
        line("Loading", &version_of(&newer)),
        line("Successfully loaded", &version_of(&newer)),
        line("Unloading", &version_of(&old)),
    ] {
        assert!(log.contains(&expected), "no `{expected}` in {log}");
    }
}

#[test]
fn a_broken_newer_version_is_retried_then_reported_and_the_old_one_keeps_serving() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path().join("export");
    let (_, old) = exported(dir.path(), "iris_custom.yaml", "10", &base);
    let server = serve_iris(
        &base,
        &[
            "--file_system_poll_wait_seconds",
            "0.1",
            "--max_num_load_retries",
            "2",
            "--load_retry_interval_micros",
            "300000",
        ],
    );
    let newer = common::exports::next_version(&old);
    std::fs::create_dir(&newer).expect("mkdir");
    std::fs::write(newer.join("export.yaml"), "format: 1\nglobal_step: [").expect("write");
    let state_of_newer = || common::exports::version_status(server.port, "iris", &newer);
    // Between tries: LOADING, with the last try's error; the old version serves.
    server.wait_until(Duration::from_secs(30), || {
        state_of_newer()
            .is_some_and(|s| s["state"] == "LOADING" && s["status"]["error_code"] == "UNKNOWN")
    });
    let (code, _) = post(
        server.port,
        "/v1/models/iris:predict",
        &common::exports::one_iris_instance(),
    );
    assert_eq!(code, 200);
    // Every retry spent: END, with the error.
    server.wait_until(Duration::from_secs(30), || {
        state_of_newer().is_some_and(|s| s["state"] == "END")
    });
    let broken = state_of_newer().expect("listed");
    assert_eq!(broken["status"]["error_code"], "UNKNOWN");
    assert!(
        broken["status"]["error_message"]
            .as_str()
            .is_some_and(|m| m.contains("export.yaml")),
        "{broken}"
    );
    let (_, status) = get(server.port, "/v1/models/iris");
    assert_eq!(status["model_version_status"][1]["state"], "AVAILABLE");
    let (code, _) = post(
        server.port,
        "/v1/models/iris:predict",
        &common::exports::one_iris_instance(),
    );
    assert_eq!(code, 200);
    let (_, log) = server.terminate();
    let tries = log
        .matches("INFO Loading servable version {name: iris")
        .count();
    assert_eq!(
        tries,
        1 + 3,
        "the old version once, the broken one three times: {log}"
    );
}

#[test]
fn a_python_client_gets_what_estimator_predict_writes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path().join("export");
    let (manifest, version) = exported(dir.path(), "iris_custom.yaml", "200", &base);
    // Moved elsewhere, the export still serves: it is self-contained.
    let moved = tempfile::tempdir().expect("temp dir");
    let moved_base = moved.path().join("models");
    std::fs::create_dir(&moved_base).expect("mkdir");
    std::fs::rename(&version, moved_base.join(version_of(&version))).expect("move");
    let server = serve_iris(&moved_base, &[]);
    let script = common::repo_root().join("scripts/tf_serving_client.py");
    let data = common::repo_root().join("data/iris_test.csv");
    let out = std::process::Command::new("python3")
        .args([
            p(&script),
            &format!("http://127.0.0.1:{}/v1/models/iris:predict", server.port),
            p(&data),
            "Species",
        ])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let served: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let predicted: Vec<Value> = ok(&["predict", p(&manifest), "--quiet"])
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(served.len(), 30);
    assert_eq!(served, predicted);
}

#[test]
fn batching_merges_concurrent_requests_and_answers_each_its_own_rows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path().join("export");
    let (manifest, _) = exported(dir.path(), "iris_custom.yaml", "200", &base);
    let expected: Vec<Value> = ok(&["predict", p(&manifest), "--quiet"])
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let rows: Vec<String> = iris_test_rows(usize::MAX);
    let server = Serving::start_logging(
        &[
            "--model_name",
            "iris",
            "--model_base_path",
            p(&base),
            "--enable_batching",
            "--max_batch_size",
            "8",
            "--batch_timeout_micros",
            "50000",
        ],
        "iris",
        "warn,estimator_host::serve=debug",
    );
    let port = server.port;
    // Every test example at once, each its own request: each must get its own answer.
    let answers: Vec<_> = rows
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, row)| {
            std::thread::spawn(move || {
                let (code, answer) = post(
                    port,
                    "/v1/models/iris:predict",
                    &format!(r#"{{"instances": [{row}]}}"#),
                );
                (i, code, answer)
            })
        })
        .collect();
    for handle in answers {
        let (i, code, answer) = handle.join().expect("client");
        assert_eq!(code, 200, "{answer}");
        assert_eq!(answer["predictions"][0], expected[i], "example {i}");
    }
    let (_, log) = server.terminate();
    let merged = log
        .lines()
        .filter_map(|l| {
            l.split("from ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .filter(|&requests| requests > 1)
        .count();
    assert!(merged > 0, "some batch held several requests: {log}");
}

#[test]
fn a_model_config_file_serves_several_models_with_their_policies() {
    let dir = tempfile::tempdir().expect("temp dir");
    let iris_base = dir.path().join("iris");
    let (manifest, first) = exported(dir.path(), "iris_custom.yaml", "10", &iris_base);
    let out = ok(&[
        "export",
        p(&manifest),
        "--export-dir",
        p(&iris_base),
        "--quiet",
    ]);
    let second = PathBuf::from(out.lines().last().expect("path").trim());
    let cancer = tempfile::tempdir().expect("temp dir");
    let cancer_base = dir.path().join("cancer");
    exported(
        cancer.path(),
        "breast_cancer_linear_classifier.yaml",
        "10",
        &cancer_base,
    );
    let config = dir.path().join("models.yaml");
    std::fs::write(
        &config,
        "- name: iris\n  base_path: iris\n  model_version_policy: {all: {}}\n- name: cancer\n  base_path: cancer\n",
    )
    .expect("write");
    let server = Serving::start(&["--model_config_file", p(&config)], "cancer");
    let (_, status) = get(server.port, "/v1/models/iris");
    let versions: Vec<&str> = status["model_version_status"]
        .as_array()
        .expect("list")
        .iter()
        .filter(|s| s["state"] == "AVAILABLE")
        .filter_map(|s| s["version"].as_str())
        .collect();
    assert_eq!(
        versions,
        [version_of(&second), version_of(&first)],
        "all: both versions serve"
    );
    for v in [version_of(&first), version_of(&second)] {
        let (code, _) = post(
            server.port,
            &format!("/v1/models/iris/versions/{v}:predict"),
            &format!(r#"{{"instances": [{IRIS_ROW}]}}"#),
        );
        assert_eq!(code, 200, "version {v}");
    }
    assert_eq!(get(server.port, "/v1/models/cancer/metadata").0, 200);
    // A bad config file is refused at start, naming the file and the cause.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "- name: iris\n  base_path: iris\n  model_version_policy: {newest: {}}\n",
    )
    .expect("write");
    let line = common::fails(&["serve", "--model_config_file", p(&bad)]);
    assert!(
        line.contains("bad.yaml") && line.contains("unknown variant `newest`"),
        "{line}"
    );
}

#[test]
fn a_request_not_answered_in_time_gets_408_and_the_server_goes_on() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path().join("export");
    exported(dir.path(), "iris_custom.yaml", "10", &base);
    let server = serve_iris(&base, &["--rest_api_timeout_in_ms", "300"]);
    // A client that announces a body and never finishes sending it.
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connects");
    write!(
        slow,
        "POST /v1/models/iris:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{\"inst"
    )
    .expect("sends");
    let mut answer = String::new();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    let n = slow.read(&mut buf).expect("an answer");
    answer.push_str(&String::from_utf8_lossy(&buf[..n]));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("rest_api_timeout_in_ms"), "{answer}");
    let (code, _) = post(
        server.port,
        "/v1/models/iris:predict",
        &format!(r#"{{"instances": [{IRIS_ROW}]}}"#),
    );
    assert_eq!(code, 200);
}

#[test]
fn a_large_request_is_predicted_in_parts_and_answered_in_slices_that_join_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path().join("export");
    exported(dir.path(), "iris_custom.yaml", "100", &base);
    let server = serve_iris(&base, &[]);
    let rows = [
        IRIS_ROW,
        r#"{"SepalLength": 5.0, "SepalWidth": 3.4, "PetalLength": 1.5, "PetalWidth": 0.2}"#,
        r#"{"SepalLength": 6.9, "SepalWidth": 3.1, "PetalLength": 5.4, "PetalWidth": 2.1}"#,
    ];
    let each: Vec<Value> = rows
        .iter()
        .map(|r| {
            let (code, answer) = post(
                server.port,
                "/v1/models/iris:predict",
                &format!(r#"{{"instances": [{r}]}}"#),
            );
            assert_eq!(code, 200);
            answer["predictions"][0].clone()
        })
        .collect();
    // 10,000 examples: more than one model_fn call takes, and an answer of many slices.
    let n = 10_000;
    let many: Vec<&str> = (0..n).map(|i| rows[i % 3]).collect();
    let body = format!(r#"{{"instances": [{}]}}"#, many.join(","));
    let (code, text) = request_text(server.port, "POST", "/v1/models/iris:predict", &body);
    assert_eq!(code, 200);
    assert!(text.len() > 64 << 10, "an answer of several slices");
    let answer: Value = serde_json::from_str(&text).expect("JSON");
    let predictions = answer["predictions"].as_array().expect("a list");
    assert_eq!(predictions.len(), n);
    for (i, p) in predictions.iter().enumerate() {
        assert_eq!(p, &each[i % 3], "example {i}");
    }
}
