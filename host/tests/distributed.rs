//! Data-parallel training under `mpirun -np 2 --oversubscribe` on loopback, through the
//! real binary built with `--features mpi` and the real plugins. Needs OpenMPI's `mpirun`
//! (Debian's `openmpi-bin`); `.ci/run` installs it.

#![cfg(feature = "mpi")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use common::{config_in, ensure_plugins_built, ok, p};
use estimator_host::checkpoint;

/// `mpirun -np <ranks> estimator <args>`, allowed to run as root (CI's containers do).
fn mpirun(ranks: usize, args: &[&str]) -> Command {
    mpirun_apps(|cmd| {
        cmd.args(["-np", &ranks.to_string()])
            .arg(env!("CARGO_BIN_EXE_estimator"))
            .args(args);
    })
}

/// `mpirun` with the applications `apps` adds (`-np N program args [: -np M ...]`),
/// allowed to run as root.
fn mpirun_apps(apps: impl FnOnce(&mut Command)) -> Command {
    ensure_plugins_built();
    let mut cmd = Command::new("mpirun");
    cmd.arg("--oversubscribe");
    apps(&mut cmd);
    cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("RUST_LOG", "warn");
    cmd
}

fn run_ranks(ranks: usize, args: &[&str]) -> Output {
    mpirun(ranks, args).output().expect("mpirun runs")
}

fn ok_ranks(ranks: usize, args: &[&str]) {
    let out = run_ranks(ranks, args);
    assert!(
        out.status.success(),
        "mpirun -np {ranks} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// iris_custom in `dir`, a checkpoint every 25 steps.
fn manifest(dir: &Path) -> PathBuf {
    config_in(dir, "iris_custom.yaml", |t| {
        t.replace("save_checkpoints_steps: 100", "save_checkpoints_steps: 25")
    })
}

/// A folder holding `manifest` trained by one process for 100 steps: the reference the
/// ranks are held to.
fn trained_by_one_process() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    ok(&[
        "train",
        p(&manifest(dir.path())),
        "--max-steps",
        "100",
        "--quiet",
    ]);
    dir
}

fn state(dir: &Path, step: i64) -> checkpoint::Checkpoint {
    checkpoint::read(&dir.join("model").join(checkpoint::file_name(step))).expect("checkpoint")
}

/// Every variable and slot of `a` within `tolerance` (relative, or 1e-6 absolute) of `b`'s.
fn assert_close(a: &checkpoint::Checkpoint, b: &checkpoint::Checkpoint, tolerance: f32) {
    assert_eq!(a.global_step, b.global_step);
    assert_eq!(a.tensors.len(), b.tensors.len());
    for (name, (_, x)) in &a.tensors {
        let y = &b.tensors[name].1;
        for (i, (u, v)) in x.iter().zip(y).enumerate() {
            assert!(
                common::within(*u, *v, tolerance),
                "{name}[{i}]: {u} against {v}"
            );
        }
    }
}

#[test]
fn two_ranks_train_as_one_within_summation_order_and_repeat_byte_for_byte() {
    let (one, two) = (trained_by_one_process(), tempfile::tempdir().expect("dir"));
    let two_manifest = manifest(two.path());
    ok_ranks(
        2,
        &["train", p(&two_manifest), "--max-steps", "100", "--quiet"],
    );
    // The same averaged gradient, summed in another order: measured 1e-5 relative at most.
    assert_close(&state(two.path(), 100), &state(one.path(), 100), 1e-4);
    // It trained: the gradients were not lost on the way.
    assert_ne!(state(two.path(), 0).tensors, state(two.path(), 100).tensors);
    let first = std::fs::read(two.path().join("model").join(checkpoint::file_name(100)))
        .expect("checkpoint");
    std::fs::remove_dir_all(two.path().join("model")).expect("clear");
    ok_ranks(
        2,
        &["train", p(&two_manifest), "--max-steps", "100", "--quiet"],
    );
    let again = std::fs::read(two.path().join("model").join(checkpoint::file_name(100)))
        .expect("checkpoint");
    assert!(first == again, "two 2-rank runs differ");
}

#[test]
fn only_rank_0_writes_model_dir() {
    let dir = tempfile::tempdir().expect("dir");
    let manifest = manifest(dir.path());
    ok_ranks(2, &["train", p(&manifest), "--max-steps", "50", "--quiet"]);
    let model_dir = dir.path().join("model");
    let mut files = common::files(&model_dir);
    files.retain(|f| !f.starts_with("events.out.tfevents"));
    assert_eq!(
        files,
        [
            "checkpoint",
            "model.ckpt-0.safetensors",
            "model.ckpt-25.safetensors",
            "model.ckpt-50.safetensors",
            "resolved_config.yaml"
        ]
    );
    let events = common::files(&model_dir)
        .into_iter()
        .filter(|f| f.starts_with("events.out.tfevents"))
        .count();
    assert_eq!(events, 1, "one event file, rank 0's");
}

#[test]
fn a_run_resumes_across_rank_counts() {
    let (straight, mixed) = (trained_by_one_process(), tempfile::tempdir().expect("dir"));
    let m = manifest(mixed.path());
    // 2 ranks, then 1, then 2 again: the input goes on where it stopped each time.
    ok_ranks(2, &["train", p(&m), "--max-steps", "40", "--quiet"]);
    ok(&["train", p(&m), "--max-steps", "70", "--quiet"]);
    ok_ranks(2, &["train", p(&m), "--max-steps", "100", "--quiet"]);
    assert_close(
        &state(mixed.path(), 100),
        &state(straight.path(), 100),
        1e-4,
    );
}

/// The ranks' processes under `mpirun` (its children), with their rank.
fn ranks_of(mpirun: &Child) -> Vec<(u32, usize)> {
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", mpirun.id()))
        .unwrap_or_default();
    children
        .split_whitespace()
        .filter_map(|pid| pid.parse::<u32>().ok())
        .filter_map(|pid| {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            let rank = environ
                .split(|&b| b == 0)
                .filter_map(|kv| std::str::from_utf8(kv).ok())
                .find_map(|kv| kv.strip_prefix("OMPI_COMM_WORLD_RANK="))?
                .parse()
                .ok()?;
            Some((pid, rank))
        })
        .collect()
}

/// Starts a long 2-rank run and waits for its step-25 checkpoint; returns mpirun and the
/// pid of rank 1.
fn long_run(manifest: &Path, model_dir: &Path) -> (Child, u32) {
    let child = mpirun(
        2,
        &["train", p(manifest), "--max-steps", "100000000", "--quiet"],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("mpirun starts");
    common::wait_for(&model_dir.join(checkpoint::file_name(25)));
    let ranks = ranks_of(&child);
    let rank_1 = ranks
        .iter()
        .find(|(_, r)| *r == 1)
        .map(|(pid, _)| *pid)
        .unwrap_or_else(|| panic!("rank 1 among {ranks:?}"));
    (child, rank_1)
}

/// Waits for `child`, for at most a minute.
fn finish(mut child: Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().expect("waits") {
            return status;
        }
        assert!(Instant::now() < deadline, "the ranks did not end");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([name, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// A long 2-rank run in a new folder whose rank 1 gets `name` (`-INT`, `-KILL`) once it
/// has saved: the folder, its manifest, and how the job ended.
fn run_with_rank_1_signalled(name: &str) -> (tempfile::TempDir, PathBuf, std::process::ExitStatus) {
    let dir = tempfile::tempdir().expect("dir");
    let manifest = manifest(dir.path());
    let (child, rank_1) = long_run(&manifest, &dir.path().join("model"));
    signal(rank_1, name);
    (dir, manifest, finish(child))
}

/// The global step of the latest whole checkpoint in `model_dir`.
fn latest_step(model_dir: &Path) -> i64 {
    checkpoint::read_latest_whole(model_dir)
        .expect("state")
        .expect("a checkpoint")
        .global_step
}

#[test]
fn a_stop_on_one_rank_stops_all_with_a_checkpoint() {
    let (dir, _, status) = run_with_rank_1_signalled("-INT");
    // Interrupted, not failed: 130 (SIGINT) from rank 1, or 143 from rank 0, which
    // stopped with it without a signal of its own.
    assert!(matches!(status.code(), Some(130) | Some(143)), "{status:?}");
    // Rank 0 saved where the ranks agreed to stop, and that checkpoint is the latest.
    let latest = latest_step(&dir.path().join("model"));
    assert!(latest > 25, "{latest}");
}

#[test]
fn a_killed_rank_fails_the_job_and_the_next_run_resumes() {
    let (dir, manifest, status) = run_with_rank_1_signalled("-KILL");
    assert!(!status.success(), "the job fails");
    let model_dir = dir.path().join("model");
    let committed = latest_step(&model_dir);
    let target = (committed + 30).to_string();
    let out = mpirun(2, &["train", p(&manifest), "--max-steps", &target])
        .env("RUST_LOG", "info")
        .output()
        .expect("mpirun runs");
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{logs}");
    let from = checkpoint::file_name(committed);
    assert!(
        logs.contains("Restoring parameters from") && logs.contains(&from),
        "resumed from {from}: {logs}"
    );
    assert_eq!(latest_step(&model_dir), committed + 30);
}

#[test]
fn distributed_evaluation_equals_the_one_rank_evaluation() {
    let dir = trained_by_one_process();
    let manifest = dir.path().join("manifest.yaml");
    let metrics = |text: &str| -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(text.trim()).expect("one JSON line")
    };
    // Batches of 7 over 30 examples: uneven shares, and a last batch of 2 that leaves
    // ranks 2 and 3 nothing.
    let batch = "input.eval.batch_size=7";
    let one = metrics(&ok(&[
        "evaluate",
        p(&manifest),
        "--json",
        "--quiet",
        "--set",
        batch,
    ]));
    for ranks in [2, 4] {
        let out = run_ranks(
            ranks,
            &[
                "evaluate",
                p(&manifest),
                "--json",
                "--quiet",
                "--set",
                batch,
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.lines().count(), 1, "rank 0 alone prints: {text}");
        let many = metrics(&text);
        assert_eq!(many["accuracy"], one["accuracy"], "{ranks} ranks");
        assert_eq!(many["global_step"], one["global_step"]);
        let (a, b) = (
            many["loss"].as_f64().expect("loss"),
            one["loss"].as_f64().expect("loss"),
        );
        assert!(
            (a - b).abs() <= 1e-6 * b.abs(),
            "{ranks} ranks: loss {a} against {b}"
        );
    }
    let eval_events = common::files(&dir.path().join("model").join("eval"));
    assert_eq!(
        eval_events.len(),
        3,
        "one event file per evaluation, rank 0's: {eval_events:?}"
    );
}

#[test]
fn a_batch_too_small_to_share_is_refused_on_every_rank_before_anything_is_written() {
    let dir = tempfile::tempdir().expect("dir");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| {
        t.replace("batch_size: 100", "batch_size: 1")
    });
    let out = run_ranks(2, &["train", p(&manifest), "--max-steps", "10"]);
    assert_eq!(out.status.code(), Some(2), "bad input");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("a batch of 1 rows cannot be shared by 2 ranks"),
        "{stderr}"
    );
    assert!(!dir.path().join("model").exists(), "nothing written");
}

#[test]
fn a_model_fn_failing_on_one_rank_ends_every_rank_with_its_error_and_exit_code() {
    let dir = tempfile::tempdir().expect("dir");
    let manifest = common::staged_manifest(dir.path(), "{ fail_at_step: 3, fail_on_rank: 1 }");
    let out = run_ranks(2, &["train", p(&manifest), "--max-steps", "10"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The plugin's exit code, from both ranks: they agreed, nobody aborted the job.
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("[rank 1] error:") && stderr.contains("failing at step 3 on purpose"),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: stopped because rank 1 failed"),
        "{stderr}"
    );
    assert!(!stderr.contains("MPI_ABORT"), "{stderr}");
    // Steps 0-2 ran and were saved; the failed step was not applied.
    assert_eq!(latest_step(&dir.path().join("model")), 3);
}

#[test]
fn distributed_prediction_writes_every_row_in_input_order_from_rank_0() {
    let dir = trained_by_one_process();
    let manifest = dir.path().join("manifest.yaml");
    // Batches of 7 over 30 examples: uneven shares, and a last batch of 2 that leaves
    // ranks 2 and 3 nothing.
    let args = |output: &Path| {
        vec![
            "predict".to_owned(),
            p(&manifest).to_owned(),
            "--quiet".to_owned(),
            "--set".to_owned(),
            "input.eval.batch_size=7".to_owned(),
            "--output".to_owned(),
            p(output).to_owned(),
        ]
    };
    let one = dir.path().join("one.jsonl");
    let one_args = args(&one);
    ok(&one_args.iter().map(String::as_str).collect::<Vec<_>>());
    let one = std::fs::read_to_string(&one).expect("predictions");
    assert_eq!(one.lines().count(), 30);
    for ranks in [2, 4] {
        let many = dir.path().join(format!("{ranks}.jsonl"));
        let many_args = args(&many);
        ok_ranks(
            ranks,
            &many_args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let many = std::fs::read_to_string(&many).expect("predictions");
        assert_eq!(many, one, "{ranks} ranks");
    }
}

#[test]
fn train_and_evaluate_runs_under_mpirun_with_rank_0_evaluating() {
    let (one, two) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let specs = "train_spec: { max_steps: 50 }\neval_spec: { throttle_secs: 0 }\n";
    let [one_manifest, two_manifest] = [&one, &two].map(|d| {
        config_in(d.path(), "iris_custom.yaml", |t| {
            format!(
                "{}{specs}",
                t.replace("save_checkpoints_steps: 100", "save_checkpoints_steps: 25")
            )
        })
    });
    let metrics = |text: &str| -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(text.trim()).expect("one JSON line")
    };
    let alone = metrics(&ok(&[
        "train-and-evaluate",
        p(&one_manifest),
        "--json",
        "--quiet",
    ]));
    let out = run_ranks(
        2,
        &["train-and-evaluate", p(&two_manifest), "--json", "--quiet"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.lines().count(), 1, "rank 0 alone prints: {text}");
    let shared = metrics(&text);
    assert_eq!(shared["global_step"], 50);
    assert_eq!(shared["accuracy"], alone["accuracy"]);
    let (a, b) = (
        shared["loss"].as_f64().expect("loss"),
        alone["loss"].as_f64().expect("loss"),
    );
    assert!((a - b).abs() <= 1e-4 * b.abs(), "loss {a} against {b}");
    // Evaluated at 25 and 50 (not at the first save), by rank 0 alone.
    let eval_events = common::files(&two.path().join("model").join("eval"));
    assert_eq!(eval_events.len(), 2, "{eval_events:?}");
}

#[test]
fn rank_0_alone_reads_the_warm_start_and_hands_it_to_the_others() {
    let source = trained_by_one_process();
    let from = format!("warm_start_from={}", p(&source.path().join("model")));
    let (one, two) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let one_manifest = manifest(one.path());
    ok(&[
        "train",
        p(&one_manifest),
        "--max-steps",
        "50",
        "--quiet",
        "--set",
        &from,
    ]);
    // Rank 1 is given a warm start that is not there, as when it sits on rank 0's disk
    // alone: only rank 0 may read it.
    let two_manifest = manifest(two.path());
    let train = |warm: &str| {
        [
            env!("CARGO_BIN_EXE_estimator"),
            "train",
            p(&two_manifest),
            "--max-steps",
            "50",
            "--quiet",
            "--set",
        ]
        .into_iter()
        .map(str::to_owned)
        .chain([warm.to_owned()])
        .collect::<Vec<_>>()
    };
    let out = mpirun_apps(|cmd| {
        cmd.args(["-np", "1"])
            .args(train(&from))
            .args([":", "-np", "1"])
            .args(train("warm_start_from=/nonexistent/model"));
    })
    .output()
    .expect("mpirun runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Both ranks started from rank 0's warm start, as one process did.
    assert_eq!(state(two.path(), 0).tensors, state(one.path(), 0).tensors);
    assert_close(&state(two.path(), 50), &state(one.path(), 50), 1e-4);
}
