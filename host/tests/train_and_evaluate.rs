//! `estimator train-and-evaluate` as TF's local `train_and_evaluate`: evaluations after
//! new checkpoints, throttled, and at the end.

mod common;

use common::{assert_model_dir_loads, config_in, kill_repeatedly, ok, p, temp_files};
use estimator_host::checkpoint;

/// The Iris manifest with checkpoints every 20 steps and the given train/eval specs.
fn manifest(dir: &std::path::Path, specs: &str) -> std::path::PathBuf {
    config_in(dir, "iris_custom.yaml", |t| {
        format!(
            "{}{specs}",
            t.replace("save_checkpoints_steps: 100", "save_checkpoints_steps: 20")
        )
    })
}

/// The global steps of the evaluations recorded in `eval/`, in order.
fn evaluated_steps(model_dir: &std::path::Path) -> Vec<i64> {
    let out = std::process::Command::new(common::python_with_tensorboard())
        .arg(common::repo_root().join("scripts/read_events.py"))
        .arg(model_dir)
        .arg("eval")
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let scalars: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    scalars["eval"]["accuracy"]
        .as_array()
        .expect("accuracy series")
        .iter()
        .map(|point| point[0].as_i64().expect("step"))
        .collect()
}

#[test]
fn without_throttle_every_new_checkpoint_is_evaluated() {
    let dir = tempfile::tempdir().expect("temp dir");
    let m = manifest(
        dir.path(),
        "train_spec: { max_steps: 100 }\neval_spec: { throttle_secs: 0, steps: null }\n",
    );
    let out = ok(&["train-and-evaluate", p(&m), "--json"]);
    let metrics: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(metrics["global_step"], 100);
    // TF's observed run: evaluations at 20, 40, 60, 80, 100 (not at the first save, 0).
    assert_eq!(
        evaluated_steps(&dir.path().join("model")),
        vec![20, 40, 60, 80, 100]
    );
}

#[test]
fn with_tfs_default_throttle_the_first_and_the_final_checkpoints_are_evaluated() {
    let dir = tempfile::tempdir().expect("temp dir");
    let m = manifest(dir.path(), "train_spec: { max_steps: 100 }\n");
    ok(&["train-and-evaluate", p(&m)]);
    assert_eq!(evaluated_steps(&dir.path().join("model")), vec![20, 100]);
    let latest = checkpoint::latest(&dir.path().join("model"))
        .expect("ok")
        .expect("some");
    assert_eq!(checkpoint::read(&latest).expect("whole").global_step, 100);
}

#[test]
fn train_and_evaluate_needs_checkpoints() {
    let dir = tempfile::tempdir().expect("temp dir");
    let m = manifest(dir.path(), "train_spec: { max_steps: 100 }\n");
    let line = common::fails(&[
        "train-and-evaluate",
        p(&m),
        "--set",
        "run_config.save_checkpoints_steps=null",
    ]);
    assert!(
        line.contains("train-and-evaluate evaluates checkpoints"),
        "{line}"
    );
    assert!(!dir.path().join("model").exists());
}

#[test]
fn sigkill_during_train_and_evaluate_never_breaks_the_model_dir() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model_dir = dir.path().join("model");
    let m = manifest(
        dir.path(),
        "train_spec: { max_steps: 2000 }\neval_spec: { throttle_secs: 0 }\n",
    );
    let text = std::fs::read_to_string(&m)
        .expect("read")
        .replace("save_checkpoints_steps: 20", "save_checkpoints_steps: 3");
    std::fs::write(&m, text).expect("write");
    let kills = kill_repeatedly(&["train-and-evaluate", p(&m)], &model_dir, 20, 7);
    assert!(kills.mid_run >= 13, "{kills:?}");
    assert!(kills.during_a_write >= 4, "{kills:?}");
    // A killed run leaves no lock behind: it resumes and ends at max_steps, with every
    // temporary file of the killed runs cleaned up.
    ok(&["train-and-evaluate", p(&m)]);
    assert_eq!(assert_model_dir_loads(&model_dir), Some(2000));
    let leftovers = temp_files(&model_dir);
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn early_stopping_reads_the_evaluations_and_stops_training() {
    let dir = tempfile::tempdir().expect("temp dir");
    let m = manifest(
        dir.path(),
        "train_spec:\n  max_steps: 2000\n  hooks:\n    - stop_if_higher: { metric_name: accuracy, threshold: 0.9, run_every_steps: 1 }\neval_spec: { throttle_secs: 0, steps: null }\n",
    );
    let out = ok(&["train-and-evaluate", p(&m), "--json"]);
    let metrics: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let model_dir = dir.path().join("model");
    let evaluated = evaluated_steps(&model_dir);
    let last_eval = *evaluated.last().expect("evaluations ran");
    let stopped_at = metrics["global_step"].as_i64().expect("step");
    assert!(
        stopped_at < 2000,
        "early stopping ended training at {stopped_at}"
    );
    // The first evaluation above 0.9 stops training one step after it.
    assert!(
        metrics["accuracy"].as_f64().expect("accuracy") > 0.9,
        "{metrics}"
    );
    assert_eq!(
        stopped_at,
        evaluated[evaluated.len() - 2] + 1,
        "{evaluated:?}"
    );
    assert_eq!(last_eval, stopped_at, "the final checkpoint is evaluated");
    // The decision is in the checkpoint: running again stops at once.
    ok(&["train", p(&m), "--set", "hooks.train=[{stop_if_higher: {metric_name: accuracy, threshold: 0.9, run_every_steps: 1}}]"]);
    let latest = checkpoint::latest(&model_dir).expect("ok").expect("some");
    assert_eq!(
        checkpoint::read(&latest).expect("whole").global_step,
        stopped_at
    );
}

/// The versions an exporter wrote under `model_dir/export/<name>`, sorted.
fn exports(model_dir: &std::path::Path, name: &str) -> Vec<u64> {
    let mut versions: Vec<u64> = std::fs::read_dir(model_dir.join("export").join(name))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    versions.sort_unstable();
    versions
}

#[test]
fn exporters_write_the_latest_the_best_and_the_final_model() {
    let dir = tempfile::tempdir().expect("temp dir");
    let specs = "train_spec: { max_steps: 60 }\neval_spec:\n  throttle_secs: 0\n  exporters:\n    - latest: { exports_to_keep: 2 }\n    - best: {}\n    - final: {}\n";
    let m = manifest(dir.path(), specs);
    ok(&["train-and-evaluate", p(&m), "--quiet"]);
    let model_dir = dir.path().join("model");
    // Evaluations at 20, 40 and 60: the latest exporter keeps its 2 newest.
    assert_eq!(exports(&model_dir, "latest").len(), 2);
    assert_eq!(exports(&model_dir, "final").len(), 1);
    // The best exporter exported each evaluation whose loss beat every earlier one.
    let losses: Vec<f64> = estimator_host::events::read_scalars(&model_dir.join("eval"))
        .expect("eval events")["loss"]
        .iter()
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(losses.len(), 3);
    let improving = |losses: &[f64]| {
        let mut best = f64::INFINITY;
        losses
            .iter()
            .filter(|&&l| {
                let better = l < best;
                best = best.min(l);
                better
            })
            .count()
    };
    assert_eq!(
        exports(&model_dir, "best_exporter").len(),
        improving(&losses)
    );
    // Each export predicts as the model_dir's latest checkpoint does.
    let final_dir = model_dir
        .join("export/final")
        .join(exports(&model_dir, "final")[0].to_string());
    assert_eq!(
        ok(&["predict", p(&m), "--export-dir", p(&final_dir), "--quiet"]),
        ok(&["predict", p(&m), "--quiet"])
    );
    // Resumed to 100, the best exporter still knows the best loss from before.
    let more = std::fs::read_to_string(&m)
        .expect("manifest")
        .replace("max_steps: 60", "max_steps: 100");
    std::fs::write(&m, more).expect("write");
    ok(&["train-and-evaluate", p(&m), "--quiet"]);
    let losses: Vec<f64> = estimator_host::events::read_scalars(&model_dir.join("eval"))
        .expect("eval events")["loss"]
        .iter()
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(losses.len(), 5);
    assert_eq!(
        exports(&model_dir, "best_exporter").len(),
        improving(&losses).min(5)
    );
}
