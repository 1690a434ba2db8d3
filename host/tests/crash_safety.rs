//! Crash safety through the real binary: a training process killed with SIGKILL at random
//! moments (many of them inside checkpoint writes) never leaves a model_dir that fails to
//! load, and one writer at a time holds a model_dir.

mod common;

use common::{
    assert_model_dir_loads, config_in, fails, kill_repeatedly, ok, p, spawn, temp_files, wait_for,
};

#[test]
fn sigkill_at_random_moments_never_breaks_the_model_dir() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model_dir = dir.path().join("model");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| {
        t.replace("save_checkpoints_steps: 100", "save_checkpoints_steps: 2")
            .replace("keep_checkpoint_max: 5", "keep_checkpoint_max: 3")
            .replace("max_steps: 1000", "max_steps: 3000")
    });
    let kills = kill_repeatedly(&["train", p(&manifest)], &model_dir, 24, 20);
    // The kills land where they can do harm: most after training started (every moment
    // of which is within 2 steps of a write), and some inside a write.
    assert!(kills.mid_run >= 16, "{kills:?}");
    assert!(kills.during_a_write >= 6, "{kills:?}");
    // A killed run leaves no lock behind: training resumes and ends at max_steps.
    ok(&["train", p(&manifest)]);
    assert_eq!(assert_model_dir_loads(&model_dir), Some(3000));
    let leftovers = temp_files(&model_dir);
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn a_second_trainer_is_refused_while_the_first_holds_the_model_dir() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model_dir = dir.path().join("model");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| {
        t.replace("max_steps: 1000", "max_steps: 100000000")
    });
    let mut first = spawn(&["train", p(&manifest)]);
    wait_for(&model_dir.join("checkpoint"));
    let line = fails(&["train", p(&manifest), "--steps", "10"]);
    assert!(
        line.ends_with("model: model_dir is in use by another training process; wait for it to end or use another model_dir"),
        "{line}"
    );
    // Readers need no lock: evaluate and predict read committed checkpoints while the
    // trainer holds it.
    let metrics: serde_json::Value =
        serde_json::from_str(&ok(&["evaluate", p(&manifest), "--json"])).expect("JSON");
    assert!(metrics["global_step"].as_i64().is_some(), "{metrics}");
    let predictions = ok(&["predict", p(&manifest)]);
    assert_eq!(predictions.lines().count(), 30, "one line per test example");
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");
    let before = assert_model_dir_loads(&model_dir).expect("a checkpoint");
    ok(&["train", p(&manifest), "--steps", "10"]);
    assert_eq!(assert_model_dir_loads(&model_dir), Some(before + 10));
}
