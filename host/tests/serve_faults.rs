//! `estimator serve` on its bad days, made for real on a loopback server: a base path
//! renamed away or emptied, a version copied in file by file, a model that panics.

mod common;

use std::time::Duration;

use common::exports::{copy_version, exported, next_version, one_iris_instance, serve_iris};
use common::http::{get, post};
use serde_json::json;

const FAST_POLL: [&str; 2] = ["--file_system_poll_wait_seconds", "0.05"];

#[test]
fn a_base_path_that_cannot_be_listed_or_is_empty_keeps_every_version_serving() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path().join("export");
    let (_, version) = exported(dir.path(), "iris_custom.yaml", "10", &base);
    let server = serve_iris(&base, &FAST_POLL);
    let away = dir.path().join("away");
    std::fs::rename(&base, &away).expect("rename the base path away");
    server.wait_until(Duration::from_secs(30), || {
        server.log().contains("cannot list the versions of `iris`")
    });
    // Many polls later, the version still serves.
    std::thread::sleep(Duration::from_millis(500));
    let (code, answer) = post(server.port, "/v1/models/iris:predict", &one_iris_instance());
    assert_eq!(code, 200, "{answer}");
    let (_, status) = get(server.port, "/v1/models/iris");
    assert_eq!(status["model_version_status"][0]["state"], "AVAILABLE");
    // Back, then emptied: a base path with no version changes nothing either.
    std::fs::rename(&away, &base).expect("rename back");
    server.wait_until(Duration::from_secs(30), || {
        server.log().contains("can be read again")
    });
    std::fs::rename(&version, dir.path().join("moved")).expect("move the version out");
    server.wait_until(Duration::from_secs(30), || {
        server.log().contains("No versions of `iris` found")
    });
    std::thread::sleep(Duration::from_millis(300));
    let (code, _) = post(server.port, "/v1/models/iris:predict", &one_iris_instance());
    assert_eq!(code, 200);
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    assert_eq!(
        log.matches("cannot list the versions").count(),
        1,
        "logged once per cause, not once per poll: {log}"
    );
    assert_eq!(
        log.matches("No versions of `iris` found").count(),
        1,
        "{log}"
    );
    assert!(!log.contains("Unloading"), "{log}");
}

#[test]
fn a_version_copied_in_file_by_file_loads_once_complete() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path().join("export");
    let (manifest, old) = exported(dir.path(), "iris_custom.yaml", "10", &base);
    // A second version, trained further, staged outside the base path.
    common::ok(&[
        "train",
        common::p(&manifest),
        "--max-steps",
        "200",
        "--quiet",
    ]);
    let staging = dir.path().join("staging");
    let out = common::ok(&[
        "export",
        common::p(&manifest),
        "--export-dir",
        common::p(&staging),
        "--quiet",
    ]);
    let staged = std::path::PathBuf::from(out.lines().last().expect("path").trim());
    let server = serve_iris(
        &base,
        &[
            FAST_POLL[0],
            FAST_POLL[1],
            "--load_retry_interval_micros",
            "100000",
        ],
    );
    let newer = next_version(&old);
    // The directory first, empty for a while: not ready, not failed.
    std::fs::create_dir(&newer).expect("mkdir");
    server.wait_until(Duration::from_secs(30), || {
        server.log().contains("has no export.yaml yet")
    });
    std::thread::sleep(Duration::from_millis(300));
    // Then export.yaml before the rest, as `cp -r` may write it: that try fails and is
    // retried, and the copy completes in between.
    std::fs::copy(staged.join("export.yaml"), newer.join("export.yaml")).expect("copy");
    server.wait_until(Duration::from_secs(30), || {
        server.log().contains("retrying in")
    });
    std::fs::remove_file(newer.join("export.yaml")).expect("remove");
    copy_version(&staged, &newer);
    let number = common::exports::version_of(&newer);
    server.wait_until(Duration::from_secs(30), || {
        let (_, status) = get(server.port, "/v1/models/iris");
        status["model_version_status"][0]
            == json!({"version": number, "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""}})
    });
    let (code, answer) = post(server.port, "/v1/models/iris:predict", &one_iris_instance());
    assert_eq!(code, 200, "{answer}");
    let (_, log) = server.terminate();
    assert_eq!(log.matches("has no export.yaml yet").count(), 1, "{log}");
}

#[test]
fn a_bad_request_never_fails_the_requests_batched_with_it() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path().join("export");
    exported(dir.path(), "iris_custom.yaml", "10", &base);
    let server = serve_iris(
        &base,
        &[
            "--enable_batching",
            "--max_batch_size",
            "16",
            "--batch_timeout_micros",
            "2000",
        ],
    );
    let port = server.port;
    let twice = r#"{"instances": [{"SepalLength": 1, "SepalWidth": 1, "PetalLength": 1, "PetalLength": 2, "PetalWidth": 1}]}"#;
    let stop = Arc::new(AtomicBool::new(false));
    let counts: Arc<[AtomicUsize; 4]> = Arc::new(Default::default());
    // Three clients send the bad request, three the good one, all at once.
    let clients: Vec<_> = (0..6)
        .map(|i| {
            let (stop, counts) = (Arc::clone(&stop), Arc::clone(&counts));
            let body = if i < 3 {
                twice.to_owned()
            } else {
                one_iris_instance()
            };
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let (code, _) =
                        common::http::request_text(port, "POST", "/v1/models/iris:predict", &body);
                    let slot = match (i < 3, code) {
                        (true, 400) => 0,
                        (true, _) => 1,
                        (false, 200) => 2,
                        (false, _) => 3,
                    };
                    counts[slot].fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client");
    }
    let [bad_refused, bad_other, good_ok, good_failed] =
        [0, 1, 2, 3].map(|i| counts[i].load(Ordering::Relaxed));
    assert!(
        bad_refused > 20 && good_ok > 20,
        "load ran: {bad_refused} {good_ok}"
    );
    assert_eq!(
        (bad_other, good_failed),
        (0, 0),
        "each request got its own answer"
    );
}

/// An export of the faulty plugin's `staged` model whose every prediction takes
/// `sleep_ms`; returns its base path.
fn slow_export(dir: &std::path::Path, sleep_ms: u64) -> std::path::PathBuf {
    common::exports::staged_export(
        dir,
        &format!("{{sleep_from_step: 3, sleep_ms: {sleep_ms}}}"),
        "3",
    )
}

const STAGED_ROW: &str = r#"{"instances": [{"SepalLength": 5.9, "SepalWidth": 3.0, "PetalLength": 4.2, "PetalWidth": 1.5}]}"#;

/// Posts `STAGED_ROW` from `n` threads at once; returns each answer's code and body.
fn post_at_once(port: u16, n: usize) -> Vec<(u16, String)> {
    let clients: Vec<_> = (0..n)
        .map(|_| {
            std::thread::spawn(move || {
                common::http::request_text(port, "POST", "/v1/models/slow:predict", STAGED_ROW)
            })
        })
        .collect();
    clients
        .into_iter()
        .map(|c| c.join().expect("client"))
        .collect()
}

fn deadline_case(batching: bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = slow_export(dir.path(), 1500);
    let mut args = vec![
        "--model_name",
        "slow",
        "--model_base_path",
        common::p(&base),
        "--rest_api_timeout_in_ms",
        "300",
        "--tensorflow_inter_op_parallelism",
        "1",
    ];
    if batching {
        args.extend([
            "--enable_batching",
            "--max_batch_size",
            "1",
            "--num_batch_threads",
            "1",
        ]);
    }
    let server =
        common::http::Serving::start_logging(&args, "slow", "warn,estimator_host::serve=debug");
    let answers = post_at_once(server.port, 3);
    for (code, body) in &answers {
        assert_eq!(*code, 504, "{body}");
        let error: serde_json::Value = serde_json::from_str(body).expect("JSON");
        assert!(
            error["error"]
                .as_str()
                .is_some_and(|e| e.contains("DEADLINE_EXCEEDED")),
            "{body}"
        );
    }
    // While the model is busy, status still answers.
    let (code, _) = get(server.port, "/v1/models/slow");
    assert_eq!(code, 200);
    // The first request ran past its deadline; the two queued behind it never ran.
    server.wait_until(Duration::from_secs(30), || {
        server
            .log()
            .matches("whose deadline passed before it could run")
            .count()
            >= 2
    });
}

#[test]
fn the_deadline_covers_the_model_and_queued_work_past_it_never_runs() {
    deadline_case(false);
}

#[test]
fn batched_work_past_its_deadline_never_runs() {
    deadline_case(true);
}

#[test]
fn a_full_batch_queue_answers_503_and_the_requests_it_took_are_answered() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = slow_export(dir.path(), 1000);
    let args = [
        "--model_name",
        "slow",
        "--model_base_path",
        common::p(&base),
        "--enable_batching",
        "--max_batch_size",
        "1",
        "--num_batch_threads",
        "1",
        "--max_enqueued_batches",
        "1",
    ];
    let server = common::http::Serving::start(&args, "slow");
    let answers = post_at_once(server.port, 5);
    let codes: Vec<u16> = answers.iter().map(|(c, _)| *c).collect();
    let unavailable = codes.iter().filter(|&&c| c == 503).count();
    let ok = codes.iter().filter(|&&c| c == 200).count();
    assert_eq!(ok + unavailable, 5, "{answers:?}");
    assert!(ok >= 1 && unavailable >= 3, "{answers:?}");
    let refused = answers.iter().find(|(c, _)| *c == 503).expect("a 503");
    assert!(refused.1.contains("max_enqueued_batches"), "{refused:?}");
}

#[test]
fn a_request_larger_than_a_batch_is_refused_or_split_as_tf_serving_does() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path().join("export");
    exported(dir.path(), "iris_custom.yaml", "100", &base);
    let five = format!(
        r#"{{"instances": [{}]}}"#,
        [common::exports::IRIS_ROW; 5].join(",")
    );
    let plain = serve_iris(&base, &[]);
    let (code, expected) = post(plain.port, "/v1/models/iris:predict", &five);
    assert_eq!(code, 200);
    drop(plain);
    let batching = ["--enable_batching", "--max_batch_size", "2"];
    let refusing = serve_iris(&base, &batching);
    let (code, refused) = post(refusing.port, "/v1/models/iris:predict", &five);
    assert_eq!(code, 400, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("Task size 5 is larger than maximum input batch size 2")),
        "{refused}"
    );
    drop(refusing);
    let mut splitting = batching.to_vec();
    splitting.push("--enable_large_batch_splitting");
    let server = serve_iris(&base, &splitting);
    let (code, split) = post(server.port, "/v1/models/iris:predict", &five);
    assert_eq!(code, 200, "{split}");
    assert_eq!(split, expected);
}

#[test]
fn an_export_reaching_out_of_its_base_path_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path().join("export");
    let (_, old) = exported(dir.path(), "iris_custom.yaml", "10", &base);
    let server = serve_iris(
        &base,
        &[FAST_POLL[0], FAST_POLL[1], "--max_num_load_retries", "0"],
    );
    // A version that is a link to a directory outside the base path.
    let outside = dir.path().join("outside");
    copy_version(&old, &outside);
    let linked = next_version(&old);
    std::os::unix::fs::symlink(&outside, &linked).expect("symlink");
    // A version whose export.yaml names a library outside its own plugin/ folder.
    let escaping = next_version(&linked);
    copy_version(&old, &escaping);
    let yaml = std::fs::read_to_string(escaping.join("export.yaml")).expect("read");
    let plugin_line = yaml
        .lines()
        .find(|l| l.trim_start().starts_with("plugin:"))
        .expect("a plugin line");
    let edited = yaml.replace(plugin_line, "  plugin: ../../outside/plugin/lib.so");
    std::fs::write(escaping.join("export.yaml"), edited).expect("write");
    let status_of = |v: &std::path::Path| common::exports::version_status(server.port, "iris", v);
    server.wait_until(Duration::from_secs(30), || {
        [&linked, &escaping]
            .iter()
            .all(|v| status_of(v).is_some_and(|s| s["state"] == "END"))
    });
    let message = |v: &std::path::Path| {
        status_of(v).expect("listed")["status"]["error_message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        message(&linked).contains("a link out of the base path"),
        "{}",
        message(&linked)
    );
    assert!(
        message(&escaping).contains("must be a file name in the version's plugin/ folder"),
        "{}",
        message(&escaping)
    );
    let (code, _) = post(server.port, "/v1/models/iris:predict", &one_iris_instance());
    assert_eq!(code, 200, "the old version serves");
}

#[test]
fn a_model_that_panics_fails_that_request_alone_and_its_instance_is_dropped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = common::exports::staged_export(dir.path(), "{panic_above: 100.0}", "2");
    let server = common::http::Serving::start(
        &[
            "--model_name",
            "staged",
            "--model_base_path",
            common::p(&base),
        ],
        "staged",
    );
    let boom = r#"{"instances": [{"SepalLength": 1000, "SepalWidth": 1000, "PetalLength": 1000, "PetalWidth": 1000}]}"#;
    let (code, answer) = post(server.port, "/v1/models/staged:predict", boom);
    assert_eq!(code, 500, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("panicked")),
        "{answer}"
    );
    for _ in 0..3 {
        let (code, _) = post(server.port, "/v1/models/staged:predict", STAGED_ROW);
        assert_eq!(code, 200, "the server goes on");
    }
    let (_, log) = server.terminate();
    assert_eq!(
        log.matches("that model instance is dropped").count(),
        1,
        "{log}"
    );
}

#[test]
fn a_tampered_library_or_a_failing_warm_up_never_replaces_the_serving_version() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path().join("export");
    let (_, old) = exported(dir.path(), "iris_custom.yaml", "10", &base);
    let server = serve_iris(
        &base,
        &[FAST_POLL[0], FAST_POLL[1], "--max_num_load_retries", "0"],
    );
    // A copy whose library has one byte more than export.yaml's SHA-256 says.
    let tampered = next_version(&old);
    copy_version(&old, &tampered);
    let library = std::fs::read_dir(tampered.join("plugin"))
        .expect("plugin dir")
        .next()
        .expect("a library")
        .expect("entry")
        .path();
    let mut bytes = std::fs::read(&library).expect("read");
    bytes.push(0);
    std::fs::write(&library, bytes).expect("write");
    // A copy whose warm-up examples lack an input.
    let warm_up_fails = next_version(&tampered);
    copy_version(&old, &warm_up_fails);
    std::fs::write(
        warm_up_fails.join("warmup.json"),
        r#"[{"SepalLength": 1.0, "SepalWidth": 1.0, "PetalLength": 1.0}]"#,
    )
    .expect("write");
    let message_of = |v: &std::path::Path| {
        let status = common::exports::version_status(server.port, "iris", v)?;
        let ended = status["state"] == "END";
        ended.then(|| {
            status["status"]["error_message"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
    };
    server.wait_until(Duration::from_secs(30), || {
        message_of(&tampered).is_some() && message_of(&warm_up_fails).is_some()
    });
    let tampered_message = message_of(&tampered).expect("reported");
    assert!(
        tampered_message.contains("not the pinned"),
        "{tampered_message}"
    );
    let warm_up_message = message_of(&warm_up_fails).expect("reported");
    assert!(
        warm_up_message.contains("warmup.json") && warm_up_message.contains("PetalWidth"),
        "{warm_up_message}"
    );
    let (_, status) = get(server.port, "/v1/models/iris");
    let available: Vec<&serde_json::Value> = status["model_version_status"]
        .as_array()
        .expect("a list")
        .iter()
        .filter(|s| s["state"] == "AVAILABLE")
        .collect();
    assert_eq!(available.len(), 1, "{status}");
    assert_eq!(
        available[0]["version"],
        json!(common::exports::version_of(&old))
    );
    assert_eq!(
        post(server.port, "/v1/models/iris:predict", &one_iris_instance()).0,
        200
    );
}
