//! Bad input and misbehaving plugins: exit code 2, one `error:` line naming the file or
//! plugin and the cause, no panic, and nothing written to model_dir.

mod common;

use common::*;
use estimator_host::checkpoint;

fn faulty_manifest(dir: &std::path::Path, model: &str) -> std::path::PathBuf {
    config_in(dir, "iris_custom.yaml", |t| {
        let start = t.find("model:\n").expect("model section");
        let end = t.find("optimizer:").expect("optimizer section");
        format!(
            "{}model: {{ plugin: faulty, name: {model} }}\n{}",
            &t[..start],
            &t[end..]
        )
    })
}

/// The Iris custom manifest with its training data replaced by a CSV holding `contents`.
fn with_training_csv(
    dir: &std::path::Path,
    contents: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let csv = dir.join("train.csv");
    std::fs::write(&csv, contents).expect("write");
    let manifest = config_in(dir, "iris_custom.yaml", |t| {
        let training = repo_root().join("data/iris_training.csv");
        t.replace(
            &training.to_string_lossy().into_owned(),
            &csv.to_string_lossy(),
        )
    });
    (manifest, csv)
}

#[test]
fn a_panicking_plugin_becomes_an_error_not_an_abort() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = faulty_manifest(dir.path(), "panics");
    let line = fails(&["train", p(&manifest)]);
    assert!(line.contains("plugin `faulty` (model_fn in mode train): plugin panicked: model_fn exploded on purpose at"), "{line}");
    assert!(
        line.contains("src/lib.rs"),
        "the panic's location is kept: {line}"
    );
    assert!(!dir.path().join("model").exists(), "model_dir untouched");
}

#[test]
fn a_train_spec_without_loss_is_refused_naming_mode_and_field() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = faulty_manifest(dir.path(), "no_loss");
    let line = fails(&["train", p(&manifest)]);
    assert_eq!(
        line,
        "error: plugin `faulty` model_fn: EstimatorSpec for mode train has no `loss` (mode train requires loss and gradients)"
    );
    assert!(!dir.path().join("model").exists());
}

#[test]
fn a_gradient_of_the_wrong_shape_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = faulty_manifest(dir.path(), "wrong_gradient");
    let line = fails(&["train", p(&manifest)]);
    assert!(
        line.contains("gradient `w` is F32 [2] with 2 values; variable `w` is F32 [1]"),
        "{line}"
    );
}

#[test]
fn a_failure_mid_training_leaves_the_last_checkpoint_intact() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| t);
    ok(&["train", p(&manifest), "--max-steps", "100"]);
    let before: Vec<(String, Vec<u8>)> = files(&dir.path().join("model"))
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(dir.path().join("model").join(&f)).expect("read");
            (f, bytes)
        })
        .collect();
    let broken = faulty_manifest(dir.path(), "panics");
    fails(&["train", p(&broken)]);
    for (f, bytes) in before {
        assert_eq!(
            std::fs::read(dir.path().join("model").join(&f)).expect("still there"),
            bytes,
            "{f} changed"
        );
    }
}

#[test]
fn unknown_manifest_key_names_file_line_and_column() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| {
        t.replace("random_seed: 42", "random_sed: 42")
    });
    let line = fails(&["train", p(&manifest)]);
    let expected = format!("error: {}:", manifest.display());
    assert!(line.starts_with(&expected), "{line}");
    assert!(
        line.contains(": run_config: unknown field `random_sed`, expected one of"),
        "{line}"
    );
    let position = line[expected.len()..]
        .split(':')
        .take(2)
        .collect::<Vec<_>>();
    assert!(
        position.iter().all(|n| n.parse::<u32>().is_ok()),
        "line and column: {line}"
    );
    assert!(!dir.path().join("model").exists());
}

#[test]
fn bad_yaml_syntax_is_reported_with_position() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = dir.path().join("m.yaml");
    std::fs::write(&manifest, "model_dir: x\nmodel: { plugin: iris_custom\n").expect("write");
    let line = fails(&["train", p(&manifest)]);
    assert!(
        line.starts_with(&format!("error: {}:3:", manifest.display())),
        "{line}"
    );
}

#[test]
fn bad_model_params_name_the_manifest_and_the_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| {
        t.replace("hidden_units:", "hiden_units:")
    });
    let line = fails(&["train", p(&manifest)]);
    assert!(
        line.starts_with(&format!(
            "error: {}: model: plugin `iris_custom`",
            manifest.display()
        )),
        "{line}"
    );
    assert!(line.contains("unknown field `hiden_units`"), "{line}");
}

#[test]
fn a_missing_plugin_is_named_with_where_it_was_searched() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| {
        t.replace("plugin: iris_custom", "plugin: iris_custum")
    });
    let line = fails(&["train", p(&manifest)]);
    assert!(
        line.starts_with(&format!(
            "error: {}: model.plugin: plugin `iris_custum` not found: looked for libestimator_plugin_iris_custum.so in",
            manifest.display()
        )),
        "{line}"
    );
    assert!(!dir.path().join("model").exists());
}

#[test]
fn a_plugin_path_that_does_not_exist_names_the_key_and_the_resolved_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| {
        t.replace(
            "    plugin: csv\n    params: { path: ",
            "    plugin: ./plugins/libnope.so\n    params: { path: ",
        )
    });
    let line = fails(&["train", p(&manifest)]);
    assert_eq!(
        line,
        format!(
            "error: {}: input.train.plugin: plugin `./plugins/libnope.so`: no such file {} (resolved against the manifest's folder {})",
            manifest.display(),
            dir.path().join("plugins/libnope.so").display(),
            dir.path().display()
        )
    );
    assert!(!dir.path().join("model").exists());
}

#[test]
fn a_shared_library_that_is_not_a_plugin_says_how_a_plugin_is_built() {
    // Any shared library of the system that exports no plugin: libc is always there.
    let libc = [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
        "/lib/aarch64-linux-gnu/libc.so.6",
        "/usr/lib/aarch64-linux-gnu/libc.so.6",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).is_file())
    .expect("a libc.so.6");
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| {
        t.replace("plugin: iris_custom", &format!("plugin: {libc}"))
    });
    let line = fails(&["train", p(&manifest)]);
    assert_eq!(
        line,
        format!(
            "error: {}: model.plugin: {libc}: cannot load plugin `{libc}`: it exports no estimator plugin. A plugin is a crate with `crate-type = [\"cdylib\"]` that calls `estimator_plugin_api::export_plugin!` (see docs/writing-a-plugin.md)",
            manifest.display()
        )
    );
}

#[test]
fn a_plugin_path_that_is_not_a_library_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fake = dir.path().join("libfake.so");
    std::fs::write(&fake, "not a library").expect("write");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| {
        t.replace("plugin: iris_custom", "plugin: ./libfake.so")
    });
    let line = fails(&["train", p(&manifest)]);
    assert!(
        line.contains("libfake.so: cannot load plugin `./libfake.so`"),
        "{line}"
    );
}

#[test]
fn a_plugin_built_against_abi_2_is_refused_with_both_versions() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| {
        t.replace("plugin: iris_custom", "plugin: old_api")
    });
    let line = fails(&["train", p(&manifest)]);
    assert!(
        line.contains("libestimator_plugin_old_api.so: cannot load plugin `old_api`"),
        "{line}"
    );
    assert!(
        line.ends_with(&format!(
            "it was built against estimator-plugin-api 0.2.0, this host uses {}",
            estimator_plugin_api::VERSION
        )),
        "{line}"
    );
    assert!(!dir.path().join("model").exists());
}

#[test]
fn a_bad_csv_row_names_file_and_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (manifest, csv) = with_training_csv(dir.path(), "SepalLength,SepalWidth,PetalLength,PetalWidth,Species\n5.1,3.5,1.4,0.2,0\n4.9,three,1.4,0.2,0\n");
    let line = fails(&["train", p(&manifest)]);
    assert!(
        line.contains(&format!(
            "{}:3: column `SepalWidth`: `three` is not a finite number",
            csv.display()
        )),
        "{line}"
    );
    assert!(!dir.path().join("model").exists());
}

#[test]
fn a_csv_row_with_too_few_fields_names_file_and_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (manifest, csv) = with_training_csv(
        dir.path(),
        "SepalLength,SepalWidth,PetalLength,PetalWidth,Species\n5.1,3.5,1.4,0\n",
    );
    let line = fails(&["train", p(&manifest)]);
    assert!(
        line.contains(&format!("{}:2: expected 5 fields, found 4", csv.display())),
        "{line}"
    );
}

#[test]
fn a_header_only_csv_makes_no_steps_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (manifest, _) = with_training_csv(
        dir.path(),
        "SepalLength,SepalWidth,PetalLength,PetalWidth,Species\n",
    );
    let line = fails(&["train", p(&manifest)]);
    assert!(
        line.ends_with("input.train produced no examples: training made no steps"),
        "{line}"
    );
    assert!(!dir.path().join("model").exists());
}

#[test]
fn a_label_out_of_range_is_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (manifest, _) = with_training_csv(
        dir.path(),
        "SepalLength,SepalWidth,PetalLength,PetalWidth,Species\n5.1,3.5,1.4,0.2,3\n",
    );
    let line = fails(&["train", p(&manifest)]);
    assert!(line.ends_with("label 3 is outside [0, 3)"), "{line}");
}

#[test]
fn bad_cli_arguments_exit_2_with_one_line() {
    let line = fails(&["train"]);
    assert!(line.contains("MANIFEST"), "{line}");
    let line = fails(&["train", "x.yaml", "--steps", "1", "--max-steps", "2"]);
    assert!(line.contains("cannot be used with"), "{line}");
    let line = fails(&["train", "x.yaml", "--steps", "0"]);
    assert!(line.contains("--steps"), "{line}");
}

#[test]
fn a_missing_manifest_is_named() {
    let line = fails(&["evaluate", "no/such/manifest.yaml"]);
    assert!(
        line.starts_with("error: no/such/manifest.yaml: cannot read manifest:"),
        "{line}"
    );
}

/// The faulty plugin's `nan_loss` model with `params`.
fn nan_loss_manifest(dir: &std::path::Path, params: &str) -> std::path::PathBuf {
    let manifest = faulty_manifest(dir, "nan_loss");
    let text = std::fs::read_to_string(&manifest).expect("read");
    let text = text.replace(
        "name: nan_loss }",
        &format!("name: nan_loss, params: {params} }}"),
    );
    std::fs::write(&manifest, text).expect("write");
    manifest
}

#[test]
fn a_nan_loss_is_refused_naming_plugin_function_and_tensor() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = nan_loss_manifest(dir.path(), "{}");
    let line = fails(&["train", p(&manifest)]);
    assert_eq!(
        line,
        "error: plugin `faulty` model_fn: loss is NaN at global step 0; it must be finite (nan_tensor: fail_on_nan_loss)"
    );
    assert!(!dir.path().join("model").exists());
}

#[test]
fn an_infinite_loss_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = nan_loss_manifest(dir.path(), "{ infinite: true }");
    let line = fails(&["train", p(&manifest)]);
    assert!(
        line.ends_with(
            "loss is inf at global step 0; it must be finite (nan_tensor: fail_on_nan_loss)"
        ),
        "{line}"
    );
}

#[test]
fn a_nan_loss_mid_training_never_reaches_a_checkpoint() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = nan_loss_manifest(dir.path(), "{ at_step: 25 }");
    let text = std::fs::read_to_string(&manifest)
        .expect("read")
        .replace("save_checkpoints_steps: 100", "save_checkpoints_steps: 10");
    std::fs::write(&manifest, text).expect("write");
    fails(&["train", p(&manifest)]);
    let model_dir = dir.path().join("model");
    let latest = checkpoint::latest(&model_dir)
        .expect("state readable")
        .expect("checkpoints before the NaN");
    let ckpt = checkpoint::read(&latest).expect("whole");
    assert_eq!(ckpt.global_step, 20, "the last save before step 25");
    for (name, (_, values)) in &ckpt.tensors {
        assert!(values.iter().all(|v| v.is_finite()), "{name} is not finite");
    }
    assert!(!model_dir.join(checkpoint::file_name(25)).exists());
}

#[test]
fn predictions_with_the_wrong_batch_size_are_refused_naming_the_tensor() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = faulty_manifest(dir.path(), "wrong_batch_predictions");
    let line = fails(&["train", p(&manifest)]);
    assert_eq!(
        line,
        "error: plugin `faulty` model_fn: mode train: prediction `class_ids` has shape [101]; its first dimension must be the batch size 100"
    );
    assert!(!dir.path().join("model").exists());
}

#[test]
fn a_pinned_plugin_loads_when_its_sha256_matches() {
    use sha2::Digest;
    ensure_plugins_built();
    let pin = |plugin: &str| -> String {
        let library = bin_dir().join(format!("libestimator_plugin_{plugin}.so"));
        let digest = sha2::Sha256::digest(std::fs::read(&library).expect("library"));
        digest.iter().map(|b| format!("{b:02x}")).collect()
    };
    let dir = tempfile::tempdir().expect("temp dir");
    // The model, both inputs and the metric, each pinned.
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| {
        t.replace(
            "  plugin: iris_custom\n",
            &format!("  plugin: iris_custom\n  sha256: {}\n", pin("iris_custom")),
        )
        .replace(
            "    plugin: csv\n",
            &format!("    plugin: csv\n    sha256: {}\n", pin("csv")),
        )
        .replace(
            "{ plugin: metrics,",
            &format!("{{ plugin: metrics, sha256: {},", pin("metrics")),
        )
    });
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    assert_eq!(text.matches("sha256: ").count(), 4, "{text}");
    ok(&["train", p(&manifest), "--max-steps", "5"]);
    assert!(dir
        .path()
        .join("model")
        .join(checkpoint::file_name(5))
        .exists());
    let metrics: serde_json::Value =
        serde_json::from_str(&ok(&["evaluate", p(&manifest), "--json"])).expect("JSON");
    assert!(metrics["accuracy"].as_f64().is_some(), "{metrics}");
    // One pin wrong, each in turn: refused, naming the entry. `input.train`'s pin comes
    // first in the manifest, `input.eval`'s second.
    let wrong = "ab".repeat(32);
    let csv = pin("csv");
    let cases = [
        ("train", "input.train", text.replacen(&csv, &wrong, 1)),
        (
            "evaluate",
            "input.eval",
            text.replacen(&csv, "PIN", 1)
                .replacen(&csv, &wrong, 1)
                .replacen("PIN", &csv, 1),
        ),
        (
            "evaluate",
            "metrics.accuracy",
            text.replace(&pin("metrics"), &wrong),
        ),
    ];
    for (command, entry, text) in cases {
        std::fs::write(&manifest, text).expect("write");
        let line = fails(&[command, p(&manifest)]);
        assert!(
            line.contains(&format!("{entry}.sha256:")),
            "{entry}: {line}"
        );
        assert!(
            line.contains(&format!("not the pinned {wrong}")),
            "{entry}: {line}"
        );
    }
}

/// The faulty plugin's `model` with `params` (YAML) in place of the Iris model.
fn faulty_with_params(dir: &std::path::Path, model: &str, params: &str) -> std::path::PathBuf {
    let manifest = faulty_manifest(dir, model);
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    let text = text.replace(
        &format!("name: {model} }}"),
        &format!("name: {model}, params: {params} }}"),
    );
    std::fs::write(&manifest, text).expect("write");
    manifest
}

#[test]
fn every_rule_of_the_spec_check_is_enforced_through_the_abi() {
    let cases = [
        ("none", ""),
        (
            "missing_gradients",
            "EstimatorSpec for mode train has no `gradients` (mode train requires loss and gradients)",
        ),
        (
            "extra_gradient",
            "mode train: 3 gradients for 2 trainable variables (one per variable, in declaration order)",
        ),
        (
            "gradient_order",
            "mode train: gradient `table` is where variable `w`'s gradient belongs (declaration order)",
        ),
        (
            "gradient_dtype",
            "mode train: gradient `w` is I64 [1] with 1 values; variable `w` is F32 [1]",
        ),
        (
            "rows_outside",
            "mode train: row gradient `table` names row 5; variable `table` has 3 rows",
        ),
        (
            "update_unknown",
            "mode train: update `nope` names no declared variable",
        ),
        (
            "update_trainable",
            "mode train: update `w` is for a trainable variable; the optimizer alone changes those",
        ),
        (
            "update_twice",
            "mode train: variable `moving` is updated twice",
        ),
        (
            "update_shape",
            "mode train: update `moving` is F32 [2] with 2 values; variable `moving` is F32 [1]",
        ),
        ("update_nan", "mode train: update `moving` holds NaN"),
        (
            "prediction_values",
            "mode train: prediction `p` has shape [100] but 99 values",
        ),
    ];
    for (rule, message) in cases {
        let dir = tempfile::tempdir().expect("temp dir");
        let manifest =
            faulty_with_params(dir.path(), "breaks_rule", &format!("{{ rule: {rule} }}"));
        if rule == "none" {
            // The fixture is valid until it breaks a rule: the refusals below are its rule's.
            ok(&["train", p(&manifest), "--max-steps", "2"]);
            continue;
        }
        let line = fails(&["train", p(&manifest)]);
        assert_eq!(
            line,
            format!("error: plugin `faulty` model_fn: {message}"),
            "rule {rule}"
        );
        assert!(
            !dir.path().join("model").exists(),
            "rule {rule}: model_dir untouched"
        );
    }
}

#[test]
fn a_panic_in_any_plugin_call_becomes_an_error_naming_the_call() {
    // Each case: the plugin object that panics, where, and the message that must come back.
    let input = |dir: &std::path::Path, at: &str| {
        config_in(dir, "iris_custom.yaml", |t| {
            let start = t.find("  train:\n").expect("train input");
            let end = t.find("  eval:\n").expect("eval input");
            format!(
                "{}  train: {{ plugin: faulty, name: panics, params: {{ at: {at} }}, batch_size: 10 }}\n{}",
                &t[..start],
                &t[end..]
            )
        })
    };
    let cases = [
        ("model", "new"),
        ("model", "variables"),
        ("input", "open"),
        ("input", "next_chunk"),
    ];
    for (object, at) in cases {
        let dir = tempfile::tempdir().expect("temp dir");
        let manifest = match object {
            "model" => faulty_with_params(dir.path(), "panics", &format!("{{ at: {at} }}")),
            _ => input(dir.path(), at),
        };
        let message = format!("{at} exploded on purpose");
        let line = fails(&["train", p(&manifest)]);
        assert!(
            line.contains("plugin `faulty`")
                && line.contains("plugin panicked: ")
                && line.contains(&message),
            "{object} {at}: {line}"
        );
        assert!(
            !dir.path().join("model").exists(),
            "{object} {at}: model_dir untouched"
        );
    }
    // A metric that panics, at creation, on its first batch or when asked for its result
    // (never a silent NaN): evaluate fails, and the model_dir trained before keeps exactly
    // what it had.
    let dir = tempfile::tempdir().expect("temp dir");
    let trained = config_in(dir.path(), "iris_custom.yaml", |t| t);
    ok(&["train", p(&trained), "--max-steps", "10"]);
    let before = files(&dir.path().join("model"));
    for (at, message) in [
        ("new", "new exploded on purpose"),
        ("update", "update exploded on purpose"),
        ("result", "result exploded on purpose"),
    ] {
        let manifest = config_in(dir.path(), "iris_custom.yaml", |t| {
            t.replace(
                "accuracy: { plugin: metrics, kind: accuracy, predictions: class_ids }",
                &format!("broken: {{ plugin: faulty, kind: panics, params: {{ at: {at} }} }}"),
            )
        });
        let line = fails(&["evaluate", p(&manifest)]);
        assert!(
            line.contains("plugin `faulty`")
                && line.contains("plugin panicked: ")
                && line.contains(message),
            "metric {at}: {line}"
        );
        assert_eq!(files(&dir.path().join("model")), before, "metric {at}");
    }
}

#[test]
fn a_run_already_at_max_steps_still_refuses_a_bad_param_or_input() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "iris_custom.yaml", |t| t);
    ok(&["train", p(&manifest), "--max-steps", "5"]);
    let before = files(&dir.path().join("model"));
    // A misspelt model param.
    let misspelt = std::fs::read_to_string(&manifest)
        .expect("manifest")
        .replace("hidden_units:", "hiden_units:");
    std::fs::write(&manifest, &misspelt).expect("write");
    let line = fails(&["train", p(&manifest), "--max-steps", "5"]);
    assert!(line.contains("hiden_units"), "{line}");
    // A training input that is gone.
    let gone = misspelt
        .replace("hiden_units:", "hidden_units:")
        .replace("iris_training.csv", "no_such_file.csv");
    std::fs::write(&manifest, gone).expect("write");
    let line = fails(&["train", p(&manifest), "--max-steps", "5"]);
    assert!(line.contains("no_such_file.csv"), "{line}");
    assert_eq!(files(&dir.path().join("model")), before, "nothing written");
    // The manifest as it was: the run says it skips, exit 0.
    let fixed = std::fs::read_to_string(&manifest)
        .expect("manifest")
        .replace("no_such_file.csv", "iris_training.csv");
    std::fs::write(&manifest, fixed).expect("write");
    let logs = ok_logs(&["train", p(&manifest), "--max-steps", "5"]);
    assert!(
        logs.contains("Skipping training since max_steps has already saved (global step 5)."),
        "{logs}"
    );
}

/// Trains Iris for a few steps with the model from `plugin` and debug logs on; returns
/// stderr.
fn train_with_debug_logs(dir: &std::path::Path, plugin: &str) -> String {
    let manifest = config_in(dir, "iris_custom.yaml", |t| {
        t.replace("plugin: iris_custom", &format!("plugin: {plugin}"))
    });
    ok_logs_at("debug", &["train", p(&manifest), "--max-steps", "3"])
}

const TRUSTED: &str = "built from this host's plugin ABI source; layouts trusted";

#[test]
fn a_library_built_from_this_abi_source_skips_the_layout_walk() {
    let dir = tempfile::tempdir().expect("temp dir");
    let stderr = train_with_debug_logs(dir.path(), "iris_custom");
    assert!(
        stderr
            .lines()
            .any(|l| l.contains(TRUSTED) && l.contains("libestimator_plugin_iris_custom.so")),
        "{stderr}"
    );
}

#[test]
fn a_library_with_another_fingerprint_is_walked_and_loads_when_its_layouts_match() {
    // A copy of a real plugin whose exported fingerprint differs by one bit: as if built
    // from an edited ABI source that kept every layout.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut bytes = std::fs::read(bin_dir().join("libestimator_plugin_iris_custom.so"))
        .expect("the iris plugin is built");
    let fingerprint: Vec<u8> = estimator_plugin_api::abi::ABI_FINGERPRINT
        .iter()
        .flat_map(|word| word.to_le_bytes())
        .collect();
    let at: Vec<usize> = bytes
        .windows(fingerprint.len())
        .enumerate()
        .filter(|(_, w)| *w == fingerprint.as_slice())
        .map(|(i, _)| i)
        .collect();
    // The exported static, and in a debug build the debug info's copies of the constant.
    assert!(!at.is_empty(), "the library holds its fingerprint");
    for i in at {
        bytes[i] ^= 1;
    }
    std::fs::write(dir.path().join("libedited.so"), bytes).expect("write");
    let stderr = train_with_debug_logs(dir.path(), "./libedited.so");
    assert!(
        !stderr
            .lines()
            .any(|l| l.contains(TRUSTED) && l.contains("libedited.so")),
        "{stderr}"
    );
    assert!(stderr.contains("Loss for final step"), "{stderr}");
}
