//! The progress bar: drawn on a terminal (a pseudo-terminal from `script`), absent when
//! stderr is a pipe or with --quiet.

mod common;

use common::{config_in, ensure_plugins_built, ok_logs, p};

/// Runs the estimator on a pseudo-terminal; returns what the terminal showed.
fn on_a_terminal(args: &[&str]) -> String {
    ensure_plugins_built();
    let command = std::iter::once(env!("CARGO_BIN_EXE_estimator"))
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("RUST_LOG", "info")
        .output()
        .expect("script runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_terminal_gets_a_bar_with_steps_rate_and_loss() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| t);
    let screen = on_a_terminal(&["train", p(&manifest), "--max-steps", "3000"]);
    assert!(screen.contains("3000/3000 steps"), "{screen}");
    assert!(screen.contains("loss 0."), "{screen}");
    // The rate is a whole number of steps per second past 100, with thousands grouped.
    let rate = regex::Regex::new(r"· ([0-9][0-9,]*)/s ·").expect("regex");
    assert!(rate.is_match(&screen), "no readable rate: {screen}");
    assert!(
        !regex::Regex::new(r"[0-9]\.[0-9]{3,}/s")
            .expect("regex")
            .is_match(&screen),
        "{screen}"
    );
    assert!(
        screen.contains("Saving checkpoints for 3000"),
        "logs still show: {screen}"
    );
    let screen = on_a_terminal(&["evaluate", p(&manifest), "--set", "eval.steps=1"]);
    assert!(screen.contains("1/1 batches"), "{screen}");
}

#[test]
fn a_pipe_or_quiet_gets_no_bar() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| t);
    let logs = ok_logs(&["train", p(&manifest), "--max-steps", "300"]);
    assert!(!logs.contains(" steps ·"), "{logs}");
    assert!(
        !logs.contains('\u{1b}'),
        "colour codes in piped logs: {logs:?}"
    );
    assert!(logs.contains("Saving checkpoints for 300"), "{logs}");
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| t);
    let screen = std::process::Command::new("script")
        .args([
            "-qec",
            &format!(
                "{} train {} --max-steps 300 --quiet",
                env!("CARGO_BIN_EXE_estimator"),
                p(&manifest)
            ),
            "/dev/null",
        ])
        .env_remove("RUST_LOG")
        .output()
        .expect("script runs");
    let text = String::from_utf8_lossy(&screen.stdout);
    assert!(screen.status.success(), "--quiet run failed: {text}");
    // It trained: the quiet run still wrote its checkpoint.
    assert!(
        dir.path()
            .join("model")
            .join("model.ckpt-300.safetensors")
            .exists(),
        "--quiet: no checkpoint; {text}"
    );
    assert!(!text.contains("steps"), "--quiet: {text}");
    assert!(!text.contains("INFO"), "--quiet: {text}");
}
