//! The event files, judged by TensorBoard's own reader (`EventAccumulator`, through
//! `scripts/read_events.py`): training scalars where TF writes them, eval scalars under
//! `eval/` and `eval_<name>/`.

mod common;

use common::{config_in, ok, p, python_with_tensorboard, repo_root};

type Scalars =
    std::collections::BTreeMap<String, std::collections::BTreeMap<String, Vec<(i64, f64)>>>;

fn read_scalars(model_dir: &std::path::Path, folders: &[&str]) -> Scalars {
    let out = std::process::Command::new(python_with_tensorboard())
        .arg(repo_root().join("scripts/read_events.py"))
        .arg(model_dir)
        .args(folders)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn steps(series: &[(i64, f64)]) -> Vec<i64> {
    series.iter().map(|(s, _)| *s).collect()
}

#[test]
fn tensorboard_reads_training_and_evaluation_scalars() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| {
        t.replace(
            "log_step_count_steps: 100",
            "log_step_count_steps: 50\n  save_summary_steps: 50",
        )
    });
    ok(&["train", p(&manifest), "--max-steps", "120"]);
    ok(&["evaluate", p(&manifest)]);
    ok(&["evaluate", p(&manifest), "--set", "eval.name=test_set"]);
    let model_dir = dir.path().join("model");
    let scalars = read_scalars(&model_dir, &[".", "eval", "eval_test_set"]);

    // As TF (reference CK-07): loss after the first step, then every 50 global steps;
    // global_step/sec from the second firing on.
    let train = &scalars["."];
    assert_eq!(steps(&train["loss"]), vec![1, 51, 101]);
    assert_eq!(steps(&train["learning_rate"]), vec![1, 51, 101]);
    assert!(train["learning_rate"]
        .iter()
        .all(|(_, v)| (*v - 0.1).abs() < 1e-6));
    assert_eq!(steps(&train["global_step/sec"]), vec![51, 101]);
    assert!(
        train["loss"][2].1 < train["loss"][0].1,
        "the loss goes down"
    );

    let eval = &scalars["eval"];
    let accuracy = &eval["accuracy"];
    assert_eq!(steps(accuracy), vec![120]);
    let json = ok(&["evaluate", p(&manifest), "--json"]);
    let metrics: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let expected = metrics["accuracy"].as_f64().expect("accuracy");
    assert!(
        (accuracy[0].1 - expected).abs() < 1e-6,
        "{} vs {expected}",
        accuracy[0].1
    );
    assert!(eval.contains_key("loss"));
    assert_eq!(steps(&scalars["eval_test_set"]["accuracy"]), vec![120]);
}
