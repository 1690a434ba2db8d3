//! Helpers for end-to-end tests: the real `estimator` binary, the real plugin dylibs, the
//! repository's configs rewritten to write into a temporary model_dir.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Once;

pub mod exports;
pub mod http;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where cargo put the `estimator` binary; the plugin dylibs are built beside it.
pub fn bin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_estimator"))
        .parent()
        .expect("binary has a folder")
        .to_path_buf()
}

/// `cargo test` builds the plugins' test harnesses, not their dylibs: build the dylibs
/// once per test process, into the same target folder as the binary.
pub fn ensure_plugins_built() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(repo_root()).args(["build", "--quiet"]);
        for p in [
            "iris-custom",
            "premade",
            "metrics",
            "csv",
            "faulty",
            "old-api",
            "regularized",
        ] {
            cmd.args(["-p", &format!("estimator-plugin-{p}")]);
        }
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("cargo runs");
        assert!(status.success(), "building the plugin dylibs failed");
    });
}

/// Copies `configs/<name>` into `dir` with its model_dir and data paths pointing into `dir`
/// and the repository, then applies `edit` to the text. Returns the manifest path.
pub fn config_in(dir: &Path, name: &str, edit: impl FnOnce(String) -> String) -> PathBuf {
    let text =
        std::fs::read_to_string(repo_root().join("configs").join(name)).expect("config exists");
    let data = repo_root().join("data");
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("model_dir:") {
            out.push_str("model_dir: model\n");
        } else {
            out.push_str(&line.replace("../data", &data.to_string_lossy()));
            out.push('\n');
        }
    }
    let path = dir.join("manifest.yaml");
    std::fs::write(&path, edit(out)).expect("write manifest");
    path
}

/// The faulty plugin's `staged` model with `params` (YAML), saving every step.
pub fn staged_manifest(dir: &Path, params: &str) -> PathBuf {
    config_in(dir, "iris_custom.yaml", |t| {
        let start = t.find("model:\n").expect("model section");
        let end = t.find("optimizer:").expect("optimizer section");
        format!(
            "{}model: {{ plugin: faulty, name: staged, params: {params} }}\n{}",
            &t[..start],
            &t[end..]
        )
        .replace("save_checkpoints_steps: 100", "save_checkpoints_steps: 1")
    })
}

pub fn estimator(args: &[&str]) -> Output {
    ensure_plugins_built();
    Command::new(env!("CARGO_BIN_EXE_estimator"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("estimator runs")
}

pub fn ok(args: &[&str]) -> String {
    let out = estimator(args);
    assert!(
        out.status.success(),
        "estimator {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs a command that must fail with exit code 2 and exactly one `error:` line, and
/// returns that line.
pub fn fails(args: &[&str]) -> String {
    let out = estimator(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(2),
        "estimator {args:?}: stderr {stderr}"
    );
    assert!(
        !stderr.contains("panicked at") && !stderr.contains("thread '"),
        "a panic reached the user: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line of error, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    lines[0].to_owned()
}

pub fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Every file under `dir`, relative, sorted; empty when `dir` does not exist.
pub fn files(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Starts `estimator` with `args` without waiting for it.
pub fn spawn(args: &[&str]) -> std::process::Child {
    ensure_plugins_built();
    Command::new(env!("CARGO_BIN_EXE_estimator"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("estimator starts")
}

/// Waits until `path` exists, for at most a minute.
pub fn wait_for(path: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} did not appear",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Runs a command that must succeed, with info logs on; returns its stderr.
pub fn ok_logs(args: &[&str]) -> String {
    ok_logs_at("info", args)
}

/// Runs a command that must succeed, with logs on at `level` (`RUST_LOG`); returns its
/// stderr.
pub fn ok_logs_at(level: &str, args: &[&str]) -> String {
    ensure_plugins_built();
    let out = Command::new(env!("CARGO_BIN_EXE_estimator"))
        .args(args)
        .env("RUST_LOG", level)
        .output()
        .expect("estimator runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "estimator {args:?} failed: {stderr}");
    stderr
}

/// A Python with TensorBoard installed: `$ESTIMATOR_TEST_PYTHON`, else a virtualenv in
/// `target/tensorboard-venv`, created with `pip install tensorboard` on first use.
pub fn python_with_tensorboard() -> PathBuf {
    static ONCE: Once = Once::new();
    if let Some(python) = std::env::var_os("ESTIMATOR_TEST_PYTHON") {
        return PathBuf::from(python);
    }
    let venv = repo_root().join("target").join("tensorboard-venv");
    let python = venv.join("bin").join("python");
    ONCE.call_once(|| {
        let has_tensorboard = |python: &Path| {
            Command::new(python)
                .args(["-c", "import tensorboard"])
                .status()
                .is_ok_and(|s| s.success())
        };
        if python.exists() && has_tensorboard(&python) {
            return;
        }
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 runs");
        assert!(status.success(), "python3 -m venv failed");
        let status = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "tensorboard"])
            .status()
            .expect("pip runs");
        assert!(status.success(), "pip install tensorboard failed");
    });
    python
}

/// Checks that model_dir's state file parses, that every checkpoint it lists is whole and
/// holds the step its name says, and that it lists its latest. Returns the latest step.
pub fn assert_model_dir_loads(model_dir: &Path) -> Option<i64> {
    use estimator_host::checkpoint;
    let state = checkpoint::read_state(model_dir).expect("state file readable")?;
    for (name, _) in &state.all {
        let ckpt = checkpoint::read(&model_dir.join(name))
            .unwrap_or_else(|e| panic!("listed checkpoint {name} is not whole: {e}"));
        assert_eq!(Some(ckpt.global_step), checkpoint::step_of(name));
        assert!(!ckpt.tensors.is_empty(), "{name} holds no tensor");
    }
    let latest = state
        .latest
        .expect("a state file names its latest checkpoint");
    assert!(state.all.iter().any(|(n, _)| n == &latest));
    checkpoint::step_of(&latest)
}

/// The step of the latest checkpoint the state file lists, read from the state file alone
/// (safe while a trainer writes and deletes checkpoints).
pub fn latest_listed(model_dir: &Path) -> Option<i64> {
    // A state file that cannot be read or names no checkpoint is a failure, never "no
    // checkpoint yet", which would make every comparison with it pass.
    let state = estimator_host::checkpoint::read_state(model_dir)
        .unwrap_or_else(|e| panic!("the state file cannot be read: {e}"))?;
    let latest = state.latest?;
    Some(
        estimator_host::checkpoint::step_of(&latest)
            .unwrap_or_else(|| panic!("the state file names `{latest}`, not a checkpoint")),
    )
}

/// Temporary files in `dir`: a write under way, or one a crash left.
pub fn temp_files(dir: &Path) -> Vec<String> {
    files(dir)
        .into_iter()
        .filter(|f| f.starts_with(".tmp-"))
        .collect()
}

/// Where the kills of [`kill_repeatedly`] landed.
#[derive(Debug, Default)]
pub struct Kills {
    pub total: usize,
    /// Kills after the run had committed a checkpoint past the one it started from.
    pub mid_run: usize,
    /// Kills inside a write: a temporary file in model_dir just before the kill, or one
    /// (or a checkpoint the state file does not list) left after it.
    pub during_a_write: usize,
}

/// Starts `args` `kills` times and SIGKILLs each run, checking after each that model_dir
/// loads and its latest step never goes back. One kill in four lands at a random moment
/// of start-up (0-50 ms); the others once the run has committed a checkpoint past where
/// it started: one in four as soon as a write is then seen under way, the rest 0-20 ms
/// later. Returns where the kills landed.
pub fn kill_repeatedly(args: &[&str], model_dir: &Path, kills: usize, seed: u64) -> Kills {
    let mut state = seed.max(1);
    let mut random = |below: u64| {
        // xorshift: random moments, the same on every run of the test.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % below
    };
    let mut record = Kills::default();
    let mut last = None;
    for kill in 0..kills {
        let started_from = assert_model_dir_loads(model_dir);
        let mut child = spawn(args);
        if kill % 4 == 3 {
            std::thread::sleep(std::time::Duration::from_millis(random(50)));
        } else {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while latest_listed(model_dir) <= started_from.max(Some(0)) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "kill {kill}: no progress"
                );
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            if kill % 4 == 1 {
                // Then until the next write is under way (its temporary file is there),
                // so that kills land during a write by an event, not by chance.
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
                while temp_files(model_dir).is_empty() && std::time::Instant::now() < deadline {
                    std::thread::sleep(std::time::Duration::from_micros(50));
                }
            } else {
                std::thread::sleep(std::time::Duration::from_millis(random(20)));
            }
        }
        let writing = !temp_files(model_dir).is_empty();
        let before = latest_listed(model_dir);
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        record.total += 1;
        record.mid_run += usize::from(before > started_from.max(Some(0)));
        let unlisted = files(model_dir).into_iter().any(|f| {
            estimator_host::checkpoint::step_of(&f)
                .is_some_and(|s| Some(s) > latest_listed(model_dir))
        });
        record.during_a_write +=
            usize::from(writing || unlisted || !temp_files(model_dir).is_empty());
        let step = assert_model_dir_loads(model_dir);
        assert!(
            step >= last,
            "kill {kill}: the latest checkpoint went back: {last:?} -> {step:?}"
        );
        assert!(
            step >= before,
            "kill {kill}: {before:?} was committed, then {step:?}"
        );
        last = step;
    }
    record
}

/// Whether two float32 values agree to `relative`, or to 1e-6 absolute near zero.
pub fn within(a: f32, b: f32, relative: f32) -> bool {
    let gap = (a - b).abs();
    gap <= relative * a.abs().max(b.abs()) || gap <= 1e-6
}
