//! The built-in hooks through the real binary, and a user's hook through the library.

mod common;

use common::{config_in, ok, ok_logs, p};
use estimator_host::checkpoint;
use estimator_host::hooks::{Hook, HookContext, RunValues};
use estimator_host::PluginRegistry;
use estimator_host::{Estimator, Manifest};

/// The Iris manifest with `hooks:` for training, and checkpoints every 10 steps.
fn with_train_hooks(dir: &std::path::Path, hooks: &str) -> std::path::PathBuf {
    config_in(dir, "iris_custom.yaml", |t| {
        format!(
            "{}hooks:\n  train:\n{hooks}",
            t.replace("save_checkpoints_steps: 100", "save_checkpoints_steps: 10")
        )
    })
}

fn latest_step(dir: &std::path::Path) -> i64 {
    let latest = checkpoint::latest(&dir.join("model"))
        .expect("state")
        .expect("a checkpoint");
    checkpoint::read(&latest).expect("whole").global_step
}

fn lines_with<'a>(logs: &'a str, text: &str) -> Vec<&'a str> {
    logs.lines().filter(|l| l.contains(text)).collect()
}

#[test]
fn logging_tensor_logs_the_named_values_every_n_iterations() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = with_train_hooks(
        dir.path(),
        "    - logging_tensor: { tensors: [loss, global_step], every_n_iter: 10 }\n",
    );
    let logs = ok_logs(&["train", p(&manifest), "--max-steps", "30"]);
    let lines = lines_with(&logs, ", global_step = ");
    assert_eq!(lines.len(), 3, "steps 0, 10 and 20:\n{logs}");
    assert!(
        lines[0].contains("global_step = 1") && !lines[0].contains(" sec)"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("global_step = 11 (") && lines[1].ends_with(" sec)"),
        "{}",
        lines[1]
    );
    // It replaced the default logging hook (`loss = …, step = …`).
    assert!(lines_with(&logs, ", step = ").is_empty(), "{logs}");
}

#[test]
fn stop_at_step_stops_and_a_resumed_run_keeps_its_last_step() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = with_train_hooks(dir.path(), "    - stop_at_step: { num_steps: 25 }\n");
    ok(&["train", p(&manifest)]);
    assert_eq!(latest_step(dir.path()), 25);
    // Its last step is part of the checkpoint: running again does not add 25 more.
    ok(&["train", p(&manifest)]);
    assert_eq!(latest_step(dir.path()), 25);
    let manifest = with_train_hooks(dir.path(), "    - stop_at_step: { last_step: 40 }\n");
    ok(&["train", p(&manifest)]);
    assert_eq!(latest_step(dir.path()), 40);
}

#[test]
fn nan_tensor_without_fail_stops_cleanly_at_the_last_finite_step() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| {
        let start = t.find("model:\n").expect("model");
        let end = t.find("optimizer:").expect("optimizer");
        format!(
            "{}model: {{ plugin: faulty, name: nan_loss, params: {{ at_step: 25 }} }}\n{}hooks:\n  train:\n    - nan_tensor: {{ fail_on_nan_loss: false }}\n",
            &t[..start],
            &t[end..].replace("save_checkpoints_steps: 100", "save_checkpoints_steps: 10")
        )
    });
    let logs = ok_logs(&["train", p(&manifest)]);
    assert!(
        logs.contains("loss is NaN at global step 25; stopping training"),
        "{logs}"
    );
    assert_eq!(latest_step(dir.path()), 25);
    let latest = checkpoint::latest(&dir.path().join("model"))
        .expect("ok")
        .expect("some");
    let ckpt = checkpoint::read(&latest).expect("whole");
    assert!(ckpt
        .tensors
        .values()
        .all(|(_, v)| v.iter().all(|x| x.is_finite())));
}

#[test]
fn final_ops_profiler_and_step_counter_report() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = with_train_hooks(
        dir.path(),
        "    - final_ops: { tensors: [loss, global_step] }\n    - profiler: { every_n_steps: 20 }\n    - step_counter: { every_n_steps: 5 }\n",
    );
    let logs = ok_logs(&["train", p(&manifest), "--max-steps", "40"]);
    let finals = lines_with(&logs, "Final values: loss = ");
    assert_eq!(finals.len(), 1, "{logs}");
    assert!(finals[0].ends_with(", global_step = 40"), "{}", finals[0]);
    let profiles = lines_with(&logs, "profile over ");
    assert_eq!(
        profiles.len(),
        3,
        "steps 20 and the end, plus the whole run:\n{logs}"
    );
    for part in ["input ", "model_fn ", "optimizer ", "hooks "] {
        assert!(profiles[0].contains(part), "{}", profiles[0]);
    }
    assert!(profiles[2].contains("profile over 40 steps") && profiles[2].ends_with("(whole run)"));
    assert_eq!(
        lines_with(&logs, "global_step/sec: ").len(),
        7,
        "every 5 steps after the first:\n{logs}"
    );
}

/// A hook written by a library user: counts steps and stops the run at step 12.
#[derive(Default)]
struct StopAtTwelve {
    runs: usize,
    began: bool,
    ended_at: Option<i64>,
}

impl Hook for StopAtTwelve {
    fn name(&self) -> &str {
        "stop_at_twelve"
    }
    fn begin(&mut self, _run: &estimator_host::hooks::RunInfo) -> estimator_host::Result<()> {
        self.began = true;
        Ok(())
    }
    fn after_run(
        &mut self,
        values: &RunValues<'_>,
        ctx: &mut HookContext,
    ) -> estimator_host::Result<()> {
        self.runs += 1;
        if values.global_step >= 12 {
            ctx.request_stop();
        }
        Ok(())
    }
    fn end(&mut self, last: Option<&RunValues<'_>>) -> estimator_host::Result<()> {
        self.ended_at = last.map(|v| v.global_step);
        Ok(())
    }
}

#[test]
fn a_library_users_hook_sees_every_step_and_can_stop_the_run() {
    common::ensure_plugins_built();
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| t);
    let registry = PluginRegistry::with_search_dirs(vec![common::bin_dir()]);
    let mut estimator = Estimator::new(Manifest::load(&manifest).expect("valid"), registry);
    let mut hook = StopAtTwelve::default();
    let outcome = estimator
        .train_with_hooks(None, vec![&mut hook])
        .expect("trains");
    assert_eq!(outcome.global_step, 12);
    assert!(hook.began);
    assert_eq!((hook.runs, hook.ended_at), (12, Some(12)));
    assert_eq!(latest_step(dir.path()), 12);
}

#[test]
fn eval_and_predict_hooks_see_each_batch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| {
        format!(
            "{t}hooks:\n  eval:\n    - logging_tensor: {{ tensors: [step, loss, class_ids], every_n_iter: 1 }}\n  predict:\n    - final_ops: {{ tensors: [step, class_ids] }}\n"
        )
    });
    ok(&["train", p(&manifest), "--max-steps", "50"]);
    // 30 test examples in batches of 100: one batch, step 0.
    let logs = ok_logs(&["evaluate", p(&manifest)]);
    let lines = lines_with(&logs, "step = 0, loss = ");
    assert_eq!(lines.len(), 1, "{logs}");
    assert!(lines[0].contains(", class_ids = "), "{}", lines[0]);
    let logs = ok_logs(&[
        "predict",
        p(&manifest),
        "--output",
        p(&dir.path().join("p.jsonl")),
    ]);
    assert_eq!(
        lines_with(&logs, "Final values: step = 0, class_ids = ").len(),
        1,
        "{logs}"
    );
}

/// The Iris manifest with the faulty plugin's `with_hooks` model and these params.
fn model_with_hooks(dir: &std::path::Path, params: &str) -> std::path::PathBuf {
    config_in(dir, "iris_custom.yaml", |t| {
        let start = t.find("model:\n").expect("model");
        let end = t.find("optimizer:").expect("optimizer");
        format!(
            "{}model: {{ plugin: faulty, name: with_hooks, params: {params} }}\n{}",
            &t[..start],
            // The noop model returns no class ids for the accuracy metric.
            t[end..]
                .lines()
                .filter(|l| !l.starts_with("metrics:") && !l.starts_with("  accuracy:"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

#[test]
fn a_model_can_ask_for_hooks_in_each_mode() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = model_with_hooks(
        dir.path(),
        "{ train: [{ stop_at_step: { last_step: 7 } }], eval: [{ final_ops: { tensors: [loss] } }] }",
    );
    ok(&["train", p(&manifest)]);
    assert_eq!(
        latest_step(dir.path()),
        7,
        "the model's stop_at_step ended training"
    );
    let logs = ok_logs(&["evaluate", p(&manifest)]);
    assert_eq!(
        lines_with(&logs, "Final values: loss = 0").len(),
        1,
        "{logs}"
    );
}

#[test]
fn hooks_a_model_asks_for_are_checked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = model_with_hooks(dir.path(), "{ train: [{ stop_at_step: {} }] }");
    let line = common::fails(&["train", p(&manifest)]);
    assert_eq!(
        line,
        "error: plugin `faulty` model_fn: requested_hooks in mode train: stop_at_step: exactly one of num_steps and last_step must be set"
    );
    assert!(!dir.path().join("model").exists());
}

#[test]
fn a_checkpoint_saver_hook_sets_when_checkpoints_are_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = with_train_hooks(dir.path(), "    - checkpoint_saver: { save_steps: 7 }\n");
    ok(&["train", p(&manifest), "--max-steps", "30"]);
    let state = checkpoint::read_state(&dir.path().join("model"))
        .expect("ok")
        .expect("state");
    let listed: Vec<i64> = state
        .all
        .iter()
        .filter_map(|(n, _)| checkpoint::step_of(n))
        .collect();
    // Every 7 steps instead of run_config's 10, and at the end; the newest 5 are kept.
    assert_eq!(listed, vec![7, 14, 21, 28, 30]);
}

#[test]
fn a_model_can_ask_for_its_values_in_tensorboard() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = model_with_hooks(
        dir.path(),
        "{ train: [{ summary_saver: { save_steps: 5, tensors: [row] } }] }",
    );
    ok(&["train", p(&manifest), "--max-steps", "12"]);
    let scalars = estimator_host::events::read_scalars(&dir.path().join("model")).expect("reads");
    // `row` is 0..99 in each batch of 100: its mean is 49.5, after steps 1, 6 and 11.
    assert_eq!(scalars["row"], vec![(1, 49.5), (6, 49.5), (11, 49.5)]);
}

/// The value a `logging_tensor` line gives `name`, when it gives a number.
fn logged(logs: &str, name: &str) -> Option<f64> {
    let at = logs.rfind(&format!("{name} = "))? + name.len() + 3;
    let text: String = logs[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || "-.e".contains(*c))
        .collect();
    text.parse().ok()
}

/// `config` trained 3 steps in `dir`, logging `tensors` every step when given; the logs.
fn train_logging(dir: &std::path::Path, config: &str, tensors: Option<&str>) -> String {
    let manifest = config_in(dir, config, |t| {
        match tensors {
        Some(tensors) => format!(
            "{t}hooks:\n  train:\n    - logging_tensor: {{ tensors: [{tensors}], every_n_iter: 1 }}\n"
        ),
        None => t,
    }
    });
    ok_logs(&["train", p(&manifest), "--max-steps", "3"])
}

#[test]
fn a_training_step_carries_the_predictions_a_hook_fetches() {
    // Each row of probabilities sums to 1, so their mean is 1 / the number of classes.
    for (config, n_classes) in [
        ("wine_dnn_classifier.yaml", 3.0),
        ("breast_cancer_dnn_classifier.yaml", 2.0),
        ("iris_custom.yaml", 3.0),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let logs = train_logging(dir.path(), config, Some("probabilities, class_ids"));
        let mean = logged(&logs, "probabilities").unwrap_or(f64::NAN);
        assert!((mean - 1.0 / n_classes).abs() < 1e-6, "{config}: {logs}");
        let class_ids = logged(&logs, "class_ids").unwrap_or(f64::NAN);
        assert!((0.0..n_classes).contains(&class_ids), "{config}: {logs}");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let logs = train_logging(
        dir.path(),
        "diabetes_dnn_regressor.yaml",
        Some("predictions"),
    );
    assert!(
        logged(&logs, "predictions").is_some_and(f64::is_finite),
        "{logs}"
    );
}

#[test]
fn fetching_predictions_leaves_training_as_it_was() {
    let weights = |tensors| {
        let dir = tempfile::tempdir().expect("temp dir");
        train_logging(dir.path(), "wine_dnn_classifier.yaml", tensors);
        let model = dir.path().join("model");
        let latest = checkpoint::latest(&model)
            .expect("state")
            .expect("a checkpoint");
        let ckpt = checkpoint::read(&latest).expect("whole");
        let mut tensors: Vec<(String, Vec<u32>)> = ckpt
            .tensors
            .into_iter()
            .map(|(name, (_, data))| (name, data.iter().map(|v| v.to_bits()).collect()))
            .collect();
        tensors.sort();
        tensors
    };
    let plain = weights(None);
    assert!(!plain.is_empty());
    assert_eq!(plain, weights(Some("logits, probabilities")));
}
