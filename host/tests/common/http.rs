//! A minimal HTTP/1.1 client for the serving tests (one connection per request), and a
//! running `estimator serve` that is stopped when dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Sends one request; returns the status code and the body parsed as JSON.
pub fn request(port: u16, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let (status, text) = request_text(port, method, path, body);
    let json =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"));
    (status, json)
}

/// Sends one request; returns the status code and the body as text.
pub fn request_text(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("sends");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("reads");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

pub fn get(port: u16, path: &str) -> (u16, serde_json::Value) {
    request(port, "GET", path, "")
}

pub fn post(port: u16, path: &str, body: &str) -> (u16, serde_json::Value) {
    request(port, "POST", path, body)
}

/// A free loopback port (the OS picks it; it is released for the server to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `estimator serve` with `args` on a free port, ready to answer.
pub struct Serving {
    pub child: Child,
    pub port: u16,
}

impl Serving {
    /// Starts the server and waits until `model` answers its status (a version serves).
    pub fn start(args: &[&str], model: &str) -> Self {
        Self::start_logging(args, model, "warn")
    }

    /// [`Serving::start`] with `RUST_LOG` set to `filter`.
    pub fn start_logging(args: &[&str], model: &str, filter: &str) -> Self {
        super::ensure_plugins_built();
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_estimator"))
            .arg("serve")
            .args(args)
            .args(["--rest_api_port", &port.to_string()])
            .env("RUST_LOG", filter)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("estimator serve starts");
        let mut serving = Serving { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = serving.child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut err) = serving.child.stderr.take() {
                    let _ = err.read_to_string(&mut stderr);
                }
                panic!("estimator serve exited ({status}): {stderr}");
            }
            let up = TcpStream::connect(("127.0.0.1", port)).is_ok()
                && request_text(port, "GET", &format!("/v1/models/{model}"), "").0 == 200;
            if up {
                return serving;
            }
            assert!(Instant::now() < deadline, "the server did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits; returns the exit status and stderr.
    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        let status = self.child.wait().expect("exits");
        let mut stderr = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = err.read_to_string(&mut stderr);
        }
        (status, stderr)
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
