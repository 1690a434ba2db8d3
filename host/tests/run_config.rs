//! RunConfig rules and the CLI around them, through the real binary: signals, checkpoint
//! frequency and retention, `--set`, `--print-config` and the resolved configuration.

mod common;

use common::{
    assert_model_dir_loads, config_in, estimator, files, ok, ok_logs, p, spawn, temp_files,
    wait_for,
};
use estimator_host::checkpoint;

fn checkpoints_on_disk(model_dir: &std::path::Path) -> Vec<i64> {
    let mut steps: Vec<i64> = files(model_dir)
        .iter()
        .filter_map(|f| checkpoint::step_of(f))
        .collect();
    steps.sort();
    steps
}

/// Sends `signal` to a long training run once it has saved, and checks that it saves
/// the step it reached and exits with 128 + the signal's number.
fn stop_with(signal: &str, number: i32) {
    let dir = tempfile::tempdir().expect("temp dir");
    let model_dir = dir.path().join("model");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| {
        t.replace("max_steps: 1000", "max_steps: 100000000")
    });
    common::ensure_plugins_built();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_estimator"))
        .args(["train", p(&manifest)])
        .env("RUST_LOG", "warn,estimator_host::estimator=info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("estimator starts");
    wait_for(&model_dir.join("checkpoint"));
    let status = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let out = child.wait_with_output().expect("reaped");
    assert_eq!(out.status.code(), Some(128 + number), "{signal}");
    let log = String::from_utf8_lossy(&out.stderr);
    let reached: i64 = log
        .split("Stopped by a signal at step ")
        .nth(1)
        .and_then(|rest| rest.split(':').next()?.parse().ok())
        .unwrap_or_else(|| panic!("the step the signal stopped at is logged: {log}"));
    let latest = checkpoint::latest(&model_dir)
        .expect("state")
        .expect("a checkpoint");
    let step = checkpoint::read(&latest).expect("whole").global_step;
    assert_eq!(
        step, reached,
        "the step reached is saved, not only an earlier checkpoint"
    );
    // It resumes from there.
    ok(&["train", p(&manifest), "--steps", "5"]);
    let latest = checkpoint::latest(&model_dir)
        .expect("state")
        .expect("a checkpoint");
    assert_eq!(
        checkpoint::read(&latest).expect("whole").global_step,
        step + 5
    );
}

#[test]
fn sigint_saves_a_checkpoint_and_exits_130() {
    stop_with("-INT", 2);
}

#[test]
fn sigterm_saves_a_checkpoint_and_exits_143() {
    stop_with("-TERM", 15);
}

#[test]
fn null_checkpoint_frequency_turns_checkpoints_off() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| t);
    ok(&[
        "train",
        p(&manifest),
        "--max-steps",
        "50",
        "--set",
        "run_config.save_checkpoints_steps=null",
    ]);
    let model_dir = dir.path().join("model");
    // As TF: only the event file, and our resolved configuration.
    let written = files(&model_dir);
    assert_eq!(written.len(), 2, "{written:?}");
    assert!(
        written[0].starts_with("events.out.tfevents."),
        "{written:?}"
    );
    assert_eq!(written[1], "resolved_config.yaml");
    // As TF: evaluate then starts from fresh variables, at global step 0.
    let out = ok(&["evaluate", p(&manifest), "--json"]);
    let metrics: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(metrics["global_step"], 0);
}

#[test]
fn keep_checkpoint_max_null_keeps_every_file_and_lists_the_latest() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| {
        t.replace("keep_checkpoint_max: 5", "keep_checkpoint_max: null")
    });
    ok(&["train", p(&manifest), "--max-steps", "700"]);
    let model_dir = dir.path().join("model");
    assert_eq!(
        checkpoints_on_disk(&model_dir),
        (0..=7).map(|k| k * 100).collect::<Vec<_>>()
    );
    let state = checkpoint::read_state(&model_dir)
        .expect("ok")
        .expect("state");
    assert_eq!(state.all.len(), 1);
    assert_eq!(state.latest.as_deref(), Some("model.ckpt-700.safetensors"));
}

#[test]
fn set_overrides_the_manifest_for_any_command() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| t);
    ok(&[
        "train",
        p(&manifest),
        "--set",
        "train.max_steps=30",
        "--set",
        "run_config.save_checkpoints_steps=10",
    ]);
    assert_eq!(
        checkpoints_on_disk(&dir.path().join("model")),
        vec![0, 10, 20, 30]
    );
    let out = estimator(&["train", p(&manifest), "--set", "run_config.random_sed=1"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown field `random_sed`"), "{stderr}");
}

#[test]
fn print_config_shows_the_resolved_manifest_that_train_writes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| t);
    let printed = ok(&["train", p(&manifest), "--print-config"]);
    assert!(
        !dir.path().join("model").exists(),
        "--print-config runs nothing"
    );
    for default in [
        "keep_checkpoint_every_n_hours: 10000.0",
        "initial_accumulator_value: 0.1",
        "cache: true",
        "random_seed: 42",
    ] {
        assert!(
            printed.contains(default),
            "{default} missing from:\n{printed}"
        );
    }
    ok(&["train", p(&manifest), "--max-steps", "5"]);
    let written =
        std::fs::read_to_string(dir.path().join("model/resolved_config.yaml")).expect("written");
    assert_eq!(written, printed);
    // It is itself a manifest that means the same thing.
    let copy = dir.path().join("resolved.yaml");
    std::fs::write(&copy, &written).expect("write");
    assert_eq!(ok(&["train", p(&copy), "--print-config"]), printed);
}

#[test]
fn warm_start_initialises_the_variables_a_regex_selects() {
    let source_dir = tempfile::tempdir().expect("temp dir");
    let source = config_in(source_dir.path(), "iris_custom.yaml", |t| t);
    ok(&["train", p(&source), "--max-steps", "100"]);
    let trained = checkpoint::read(
        &source_dir
            .path()
            .join("model")
            .join(checkpoint::file_name(100)),
    )
    .expect("source checkpoint");

    let dir = tempfile::tempdir().expect("temp dir");
    let from = source_dir.path().join("model");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| {
        format!(
            "{t}warm_start_from:\n  ckpt_to_initialize_from: {}\n  vars_to_warm_start: dense_1/.*\n",
            from.display()
        )
    });
    ok(&["train", p(&manifest), "--max-steps", "1"]);
    // The first checkpoint holds the variables as they were before the first update.
    let start = checkpoint::read(&dir.path().join("model").join(checkpoint::file_name(0)))
        .expect("first checkpoint");
    assert_eq!(
        start.tensors["dense_1/kernel"],
        trained.tensors["dense_1/kernel"]
    );
    assert_eq!(
        start.tensors["dense_1/bias"],
        trained.tensors["dense_1/bias"]
    );
    assert_ne!(
        start.tensors["dense/kernel"], trained.tensors["dense/kernel"],
        "not selected"
    );
    assert_ne!(
        start.tensors["training/Adagrad/dense_1/kernel/accumulator"],
        trained.tensors["training/Adagrad/dense_1/kernel/accumulator"],
        "a single regex selects trainable variables only, as TF"
    );
    assert_eq!(start.global_step, 0);
    // A model_dir with a checkpoint is not warm-started again: it resumes, and ends where
    // a run that went to step 2 at once ends.
    let logs = ok_logs(&["train", p(&manifest), "--max-steps", "2"]);
    assert!(
        !logs.contains("Warm-starting"),
        "warm-started again: {logs}"
    );
    let straight_dir = tempfile::tempdir().expect("temp dir");
    let straight = straight_dir.path().join("manifest.yaml");
    std::fs::write(
        &straight,
        std::fs::read_to_string(&manifest).expect("manifest"),
    )
    .expect("copy manifest");
    let logs = ok_logs(&["train", p(&straight), "--max-steps", "2"]);
    assert!(logs.contains("Warm-starting from:"), "{logs}");
    let resumed = checkpoint::read(&dir.path().join("model").join(checkpoint::file_name(2)))
        .expect("resumed run's step 2");
    let expected = checkpoint::read(
        &straight_dir
            .path()
            .join("model")
            .join(checkpoint::file_name(2)),
    )
    .expect("straight run's step 2");
    assert_eq!(resumed.tensors, expected.tensors);
}

#[test]
fn a_damaged_latest_checkpoint_is_skipped_with_a_warning_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| t);
    ok(&["train", p(&manifest), "--max-steps", "300"]);
    let damaged = dir.path().join("model").join(checkpoint::file_name(300));
    std::fs::write(&damaged, b"\x08\x00\x00\x00").expect("damage");
    let out = estimator(&["evaluate", p(&manifest), "--json"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}: not a valid checkpoint", damaged.display())),
        "{stderr}"
    );
    let metrics: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(metrics["global_step"], 200);
    // Training resumes from the whole one, and rewrites the damaged step.
    ok(&["train", p(&manifest), "--max-steps", "400"]);
    assert_eq!(
        checkpoint::read(&damaged).expect("rewritten").global_step,
        300
    );
}

#[test]
fn a_flipped_bit_in_a_checkpoints_tensor_is_caught_and_the_one_before_is_used() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| t);
    ok(&["train", p(&manifest), "--max-steps", "300"]);
    let model_dir = dir.path().join("model");
    let damaged = model_dir.join(checkpoint::file_name(300));
    let mut bytes = std::fs::read(&damaged).expect("read");
    // The last byte is the last tensor's data, which is never a header's padding.
    *bytes.last_mut().expect("data") ^= 0x04;
    std::fs::write(&damaged, bytes).expect("damage");
    let out = estimator(&["evaluate", p(&manifest), "--json"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}: tensor `", damaged.display()))
            && stderr.contains(
                "` fails its crc32c check: the file is damaged; using the checkpoint before it"
            ),
        "{stderr}"
    );
    let metrics: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(metrics["global_step"], 200);
    let listing = ok(&["checkpoints", p(&model_dir)]);
    let marked: Vec<&str> = listing.lines().filter(|l| l.contains("DAMAGED")).collect();
    assert_eq!(marked.len(), 1, "{listing}");
    assert!(
        marked[0].starts_with("model.ckpt-300.safetensors  step 300"),
        "{listing}"
    );
}

#[test]
fn checkpoints_lists_a_model_dir_and_shows_variables_and_values() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| t);
    ok(&["train", p(&manifest), "--max-steps", "200"]);
    let model_dir = dir.path().join("model");
    let listing = ok(&["checkpoints", p(&model_dir)]);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 3, "{listing}");
    assert!(
        lines[0].starts_with("model.ckpt-0.safetensors  step 0  written 20"),
        "{listing}"
    );
    assert!(
        lines[2].ends_with("(latest)") && lines[2].contains("step 200"),
        "{listing}"
    );
    let vars = ok(&["checkpoints", p(&model_dir), "--variables"]);
    assert!(
        vars.starts_with("global_step  []  200\ndense/bias  [10]\ndense/kernel  [4, 10]\n"),
        "{vars}"
    );
    let value = ok(&["checkpoints", p(&model_dir), "--value", "dense_2/bias"]);
    let bias: Vec<f32> = serde_json::from_str(&value).expect("JSON list");
    let saved = checkpoint::read(&model_dir.join(checkpoint::file_name(200))).expect("reads");
    assert_eq!(bias, saved.tensors["dense_2/bias"].1);
}

/// The global step of the latest checkpoint the state file lists, once it lists one.
fn latest_step(model_dir: &std::path::Path) -> Option<i64> {
    let latest = checkpoint::latest(model_dir).ok().flatten()?;
    Some(checkpoint::read(&latest).ok()?.global_step)
}

#[test]
fn a_second_signal_ends_the_process_without_finishing_the_step() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model_dir = dir.path().join("model");
    // From step 2 on every step takes a minute: the first SIGINT waits for it to end.
    let manifest = common::staged_manifest(dir.path(), "{ sleep_from_step: 2, sleep_ms: 60000 }");
    let mut child = spawn(&["train", p(&manifest)]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while latest_step(&model_dir) != Some(2) {
        assert!(std::time::Instant::now() < deadline, "no checkpoint 2");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let kill = || {
        let status = std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    };
    kill();
    std::thread::sleep(std::time::Duration::from_millis(200));
    kill();
    let exit = child.wait().expect("reaped");
    assert_eq!(exit.code(), Some(130));
    // The step in progress never finished: a graceful stop would have saved step 3.
    assert_eq!(latest_step(&model_dir), Some(2));
    assert!(!model_dir.join(checkpoint::file_name(3)).exists());
}

#[test]
fn an_error_mid_training_first_finishes_the_write_in_flight() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model_dir = dir.path().join("model");
    // 32M values: each checkpoint is 128 MiB, so step 1's write is still going when
    // step 2 fails at once.
    let manifest = common::staged_manifest(dir.path(), "{ size: 33554432, fail_at_step: 2 }");
    let out = estimator(&["train", p(&manifest)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("failing at step 2 on purpose"), "{stderr}");
    // model_fn fails at global step 2, right after the step that reached it asked for
    // model.ckpt-2: that write, in flight, was completed and committed, and no temporary
    // file is left.
    assert_eq!(latest_step(&model_dir), Some(2));
    let left = temp_files(&model_dir);
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_signal_during_a_write_finishes_it_then_saves_the_step_reached() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model_dir = dir.path().join("model");
    // 128 MiB checkpoints every step: a write is under way whenever the signal lands.
    let manifest = common::staged_manifest(dir.path(), "{ size: 33554432 }");
    let mut child = spawn(&["train", p(&manifest)]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while latest_step(&model_dir).is_none_or(|s| s < 1) {
        assert!(std::time::Instant::now() < deadline, "no checkpoint 1");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let exit = child.wait().expect("reaped");
    assert_eq!(exit.code(), Some(143));
    // Every listed checkpoint reads back whole, the latest holds the step reached, and
    // nothing half-written is left.
    let step = assert_model_dir_loads(&model_dir).expect("a checkpoint");
    assert!(step >= 1, "{step}");
    let left = temp_files(&model_dir);
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn warm_start_refuses_a_variable_whose_shape_changed() {
    let source_dir = tempfile::tempdir().expect("temp dir");
    let source = config_in(source_dir.path(), "iris_custom.yaml", |t| t);
    ok(&["train", p(&source), "--max-steps", "1"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let from = source_dir.path().join("model");
    // The first hidden layer grows from 10 to 12 units.
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| {
        format!(
            "{}warm_start_from: {}\n",
            t.replace("hidden_units: [10, 10]", "hidden_units: [12, 10]"),
            from.display()
        )
    });
    let line = common::fails(&["train", p(&manifest)]);
    assert!(
        line.contains(&format!(
            "{}",
            from.join(checkpoint::file_name(1)).display()
        )) && line.contains("tensor `dense/kernel` has shape [4, 10], the model needs [4, 12]"),
        "{line}"
    );
    assert!(!dir.path().join("model").exists(), "nothing written");
}

#[test]
fn warm_start_takes_a_file_of_weights_alone_as_python_writes_it() {
    // What `safetensors.numpy.save_file` writes from a dict of arrays: no global_step, no
    // optimizer slots, no metadata; numpy's float64 for the biases.
    let shapes: [(&str, &[usize]); 6] = [
        ("dense/kernel", &[4, 10]),
        ("dense/bias", &[10]),
        ("dense_1/kernel", &[10, 10]),
        ("dense_1/bias", &[10]),
        ("dense_2/kernel", &[10, 3]),
        ("dense_2/bias", &[3]),
    ];
    let value = |name: &str, i: usize| (name.len() as f64 + i as f64) * 0.001;
    let bytes: Vec<(String, Vec<u8>, Vec<usize>, safetensors::Dtype)> = shapes
        .iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            match name.ends_with("bias") {
                true => (
                    name.to_string(),
                    (0..n).flat_map(|i| value(name, i).to_le_bytes()).collect(),
                    shape.to_vec(),
                    safetensors::Dtype::F64,
                ),
                false => (
                    name.to_string(),
                    (0..n)
                        .flat_map(|i| (value(name, i) as f32).to_le_bytes())
                        .collect(),
                    shape.to_vec(),
                    safetensors::Dtype::F32,
                ),
            }
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
        .iter()
        .map(|(name, data, shape, dtype)| {
            let view = safetensors::tensor::TensorView::new(*dtype, shape.clone(), data)
                .expect("valid tensor");
            (name.clone(), view)
        })
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let weights = dir.path().join("weights.safetensors");
    safetensors::serialize_to_file(views, &None, &weights).expect("write weights");

    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| {
        format!(
            "{t}warm_start_from: {{ ckpt_to_initialize_from: {}, vars_to_warm_start: '.*' }}\n",
            weights.display()
        )
    });
    ok(&["train", p(&manifest), "--max-steps", "1"]);
    // The first checkpoint holds the variables before the first update: the file's.
    let start = checkpoint::read(&dir.path().join("model").join(checkpoint::file_name(0)))
        .expect("first checkpoint");
    for (name, shape) in shapes {
        let n: usize = shape.iter().product();
        let expected: Vec<f32> = (0..n).map(|i| value(name, i) as f32).collect();
        assert_eq!(start.tensors[name], (shape.to_vec(), expected), "{name}");
    }
    assert_eq!(start.global_step, 0);
}
