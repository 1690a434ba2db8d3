//! Crash safety through the real binary: a training process killed with SIGKILL at random
//! moments (many of them inside checkpoint writes) never leaves a model_dir that fails to
//! load, and one writer at a time holds a model_dir.

mod common;

use std::time::Duration;

use common::{config_in, fails, ok, p, spawn, wait_for};
use estimator_host::checkpoint;
use rand::{Rng, SeedableRng};

/// Checks that the state file parses, that every checkpoint it lists is whole, and that
/// the latest holds the step its name says. Returns the latest global step.
fn assert_model_dir_loads(model_dir: &std::path::Path) -> Option<i64> {
    let state = checkpoint::read_state(model_dir).expect("state file readable")?;
    for (name, _) in &state.all {
        let ckpt = checkpoint::read(&model_dir.join(name))
            .unwrap_or_else(|e| panic!("listed checkpoint {name} is not whole: {e}"));
        assert_eq!(Some(ckpt.global_step), checkpoint::step_of(name));
        assert!(ckpt.tensors.contains_key("dense/kernel"));
    }
    let latest = state
        .latest
        .expect("a state file names its latest checkpoint");
    assert!(state.all.iter().any(|(n, _)| n == &latest));
    checkpoint::step_of(&latest)
}

#[test]
fn sigkill_at_random_moments_never_breaks_the_model_dir() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model_dir = dir.path().join("model");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| {
        t.replace("save_checkpoints_steps: 100", "save_checkpoints_steps: 2")
            .replace("keep_checkpoint_max: 5", "keep_checkpoint_max: 3")
            .replace("max_steps: 1000", "max_steps: 3000")
    });
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20);
    let mut last_step = None;
    for kill in 0..24 {
        let mut child = spawn(&["train", p(&manifest)]);
        if kill == 0 {
            wait_for(&model_dir.join("checkpoint"));
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(5..150)));
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        let step = assert_model_dir_loads(&model_dir);
        assert!(
            step >= last_step,
            "the latest checkpoint went back: {last_step:?} -> {step:?}"
        );
        last_step = step;
    }
    // A killed run leaves no lock behind: training resumes and ends at max_steps.
    ok(&["train", p(&manifest)]);
    assert_eq!(assert_model_dir_loads(&model_dir), Some(3000));
    let leftovers: Vec<String> = common::files(&model_dir)
        .into_iter()
        .filter(|f| f.starts_with(".tmp-"))
        .collect();
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
