//! A minimal HTTP/1.1 client for the serving tests (one connection per request), and a
//! running `estimator serve` that is stopped when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
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
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

/// A chunked body's data (large answers are sent a slice at a time).
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

pub fn get(port: u16, path: &str) -> (u16, serde_json::Value) {
    request(port, "GET", path, "")
}

pub fn post(port: u16, path: &str, body: &str) -> (u16, serde_json::Value) {
    request(port, "POST", path, body)
}

/// `estimator serve` with `args` on a port it picks itself (`--rest_api_port 0`), ready to
/// answer. Its log is gathered as it is written.
pub struct Serving {
    pub child: Child,
    pub port: u16,
    log: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Serving {
    /// Starts the server and waits until `model` answers its status (a version serves).
    pub fn start(args: &[&str], model: &str) -> Self {
        Self::start_logging(args, model, "warn")
    }

    /// [`Serving::start`] with `RUST_LOG` set to `filter` (the port's line is logged at
    /// info, and always read).
    pub fn start_logging(args: &[&str], model: &str, filter: &str) -> Self {
        let serving = Self::spawn(args, filter);
        serving.wait_until(Duration::from_secs(60), || {
            request_text(serving.port, "GET", &format!("/v1/models/{model}"), "").0 == 200
        });
        serving
    }

    /// Starts the server and returns once it listens, whatever its models' states.
    pub fn spawn(args: &[&str], filter: &str) -> Self {
        super::ensure_plugins_built();
        let mut child = Command::new(env!("CARGO_BIN_EXE_estimator"))
            .arg("serve")
            .args(args)
            .args(["--rest_api_port", "0"])
            .env("RUST_LOG", with_serve_info(filter))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("estimator serve starts");
        let log = Arc::new(Mutex::new(String::new()));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("piped stderr");
        let reader = {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(port) = bound_port(&line) {
                        let _ = port_tx.send(port);
                    }
                    let mut log = log.lock().expect("log");
                    log.push_str(&line);
                    log.push('\n');
                }
            })
        };
        let port = port_rx.recv_timeout(Duration::from_secs(60));
        let mut serving = Serving {
            child,
            port: 0,
            log,
            reader: Some(reader),
        };
        match port {
            Ok(port) => serving.port = port,
            Err(_) => {
                let status = serving.child.try_wait();
                panic!(
                    "estimator serve never said its port ({status:?}): {}",
                    serving.log()
                );
            }
        }
        serving
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }

    /// Polls `done` every 20 ms until it holds; panics with the log after `limit`.
    pub fn wait_until(&self, limit: Duration, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !done() {
            assert!(
                Instant::now() < deadline,
                "waited {limit:?} in vain; the server's log: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits; returns the exit status and the whole log.
    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        let status = self.child.wait().expect("exits");
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        (status, self.log())
    }
}

/// `filter` with the serving module at info at least, so that the port's line is logged.
fn with_serve_info(filter: &str) -> String {
    if filter.contains("estimator_host::serve=") {
        filter.to_owned()
    } else {
        format!("{filter},estimator_host::serve=info")
    }
}

/// The port in the server's `Exporting HTTP/REST API at:HOST:PORT ...` line.
fn bound_port(line: &str) -> Option<u16> {
    let at = line.split("Exporting HTTP/REST API at:").nth(1)?;
    at.split_whitespace()
        .next()?
        .rsplit(':')
        .next()?
        .parse()
        .ok()
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
