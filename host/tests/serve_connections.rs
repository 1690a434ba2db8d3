//! `estimator serve` against slow, idle and greedy clients, over real connections on
//! loopback: heads that never finish, idle keep-alive connections, more connections than
//! the cap, oversized heads, wrong methods, and a SIGTERM with a request still running.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::exports::{exported, one_iris_instance, serve_iris};
use common::http::{post, request_text};

/// Reads until the server closes the connection (or 30 s pass); returns what it sent.
fn read_until_closed(stream: &mut TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return String::from_utf8_lossy(&got).into_owned(),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return String::from_utf8_lossy(&got).into_owned()
            }
            Err(e) => panic!("the server held the connection open: {e}"),
        }
    }
}

#[test]
fn a_head_that_never_finishes_and_an_idle_connection_are_closed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path().join("export");
    exported(dir.path(), "iris_custom.yaml", "10", &base);
    let server = serve_iris(&base, &["--http_header_read_timeout_ms", "300"]);
    let mut slow = TcpStream::connect(("127.0.0.1", server.port)).expect("connects");
    write!(
        slow,
        "POST /v1/models/iris:predict HTTP/1.1\r\nHost: x\r\nX-Slow: aaaa"
    )
    .expect("sends");
    read_until_closed(&mut slow);
    // A keep-alive connection, answered once, then left idle.
    let mut idle = TcpStream::connect(("127.0.0.1", server.port)).expect("connects");
    write!(idle, "GET /v1/models/iris HTTP/1.1\r\nHost: x\r\n\r\n").expect("sends");
    let answered = read_until_closed(&mut idle);
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    let (code, _) = post(server.port, "/v1/models/iris:predict", &one_iris_instance());
    assert_eq!(code, 200, "still serving");
}

#[test]
fn connections_past_the_cap_wait_until_one_closes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path().join("export");
    exported(dir.path(), "iris_custom.yaml", "10", &base);
    let server = serve_iris(&base, &["--max_connections", "2"]);
    let held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(("127.0.0.1", server.port)).expect("connects"))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut third = TcpStream::connect(("127.0.0.1", server.port)).expect("the kernel queues it");
    write!(
        third,
        "GET /v1/models/iris HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("sends");
    third
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut buf = [0u8; 64];
    let waited = third.read(&mut buf);
    assert!(waited.is_err(), "answered past the cap: {waited:?}");
    drop(held);
    let answered = read_until_closed(&mut third);
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
}

#[test]
fn routing_errors_and_oversized_heads_answer_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path().join("export");
    exported(dir.path(), "iris_custom.yaml", "10", &base);
    let server = serve_iris(&base, &["--max_header_bytes", "16384"]);
    let port = server.port;
    for (method, path, code) in [
        ("DELETE", "/v1/models/iris", 405),
        ("GET", "/v2/nothing", 404),
        ("PUT", "/v1/models/iris:predict", 405),
    ] {
        let (got, body) = request_text(port, method, path, "");
        assert_eq!(got, code, "{method} {path}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("a JSON body");
        assert!(json["error"].is_string(), "{body}");
    }
    // A head over the limit: 431 with a JSON error, and the server goes on.
    let mut big = TcpStream::connect(("127.0.0.1", port)).expect("connects");
    write!(
        big,
        "GET /v1/models/iris HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(20_000)
    )
    .expect("sends");
    let answer = read_until_closed(&mut big);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert!(
        answer.contains(r#""error":"the request head takes"#),
        "{answer}"
    );
    // Far over it: refused before it is read in full.
    let mut huge = TcpStream::connect(("127.0.0.1", port)).expect("connects");
    let _ = write!(
        huge,
        "GET /v1/models/iris HTTP/1.1\r\nHost: x\r\nX-Huge: {}\r\n\r\n",
        "a".repeat(300_000)
    );
    let answer = read_until_closed(&mut huge);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    let (code, _) = post(port, "/v1/models/iris:predict", &one_iris_instance());
    assert_eq!(code, 200, "still serving");
}

/// SIGTERM with one request 0.5 s into a model_fn of `sleep_ms`, under `flags`; returns
/// the exit status, the log and what the client got.
fn sigterm_during_a_request(
    sleep_ms: u64,
    flags: &[&str],
) -> (std::process::ExitStatus, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = common::exports::staged_export(
        dir.path(),
        &format!("{{sleep_from_step: 3, sleep_ms: {sleep_ms}}}"),
        "3",
    );
    let mut args = vec![
        "--model_name",
        "slow",
        "--model_base_path",
        common::p(&base),
    ];
    args.extend_from_slice(flags);
    let server = common::http::Serving::start(&args, "slow");
    let port = server.port;
    let body = common::exports::one_iris_instance();
    let client = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connects");
        write!(
            stream,
            "POST /v1/models/slow:predict HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("sends");
        read_until_closed(&mut stream)
    });
    // Time for the request to reach model_fn, where it stays for `sleep_ms`.
    std::thread::sleep(Duration::from_millis(500));
    let (status, log) = server.terminate();
    (status, log, client.join().expect("client"))
}

#[test]
fn sigterm_lets_a_request_in_flight_finish_and_exits_0() {
    let (status, log, answer) = sigterm_during_a_request(1500, &[]);
    assert!(status.success(), "{status:?} {log}");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        log.contains("every in-flight request was answered"),
        "{log}"
    );
}

#[test]
fn sigterm_drains_in_flight_requests_up_to_a_bound_and_exits_0() {
    let (status, log, answer) =
        sigterm_during_a_request(4000, &["--shutdown_drain_timeout_ms", "300"]);
    assert!(status.success(), "{status:?} {log}");
    assert!(log.contains("were cut"), "the drain had a bound: {log}");
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn two_hundred_slow_heads_leave_status_and_predict_answering() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path().join("export");
    exported(dir.path(), "iris_custom.yaml", "10", &base);
    let server = serve_iris(&base, &[]);
    let port = server.port;
    // Each sends part of a large head, and then nothing.
    let chunk = format!("X-Slow: {}\r\n", "a".repeat(16_000));
    let slow: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connects");
            write!(
                s,
                "POST /v1/models/iris:predict HTTP/1.1\r\nHost: x\r\n{chunk}"
            )
            .expect("sends");
            s
        })
        .collect();
    for _ in 0..20 {
        assert_eq!(request_text(port, "GET", "/v1/models/iris", "").0, 200);
        let (code, _) = post(port, "/v1/models/iris:predict", &one_iris_instance());
        assert_eq!(code, 200);
    }
    drop(slow);
}
