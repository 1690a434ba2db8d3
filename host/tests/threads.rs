//! `run_config.session_config.intra_op_parallelism_threads`: matmuls on several threads
//! give the same checkpoints, byte for byte at one thread count and value for value
//! across counts, through the real binary and the premade plugin.

mod common;

use std::fmt::Write;
use std::path::{Path, PathBuf};

use common::{ok, p};
use estimator_host::checkpoint;

/// A DNN big enough for matrixmultiply to split its products over two threads (it does
/// from `m·k + k·n >= 2^15`): batch 256, 64 features, hidden [256, 256], on 512 rows.
fn wide_dnn(dir: &Path, threads: usize) -> PathBuf {
    let mut csv = String::new();
    let names: Vec<String> = (0..64).map(|i| format!("f{i:02}")).collect();
    writeln!(csv, "{},label", names.join(",")).expect("write");
    for row in 0..512usize {
        let values: Vec<String> = (0..64)
            .map(|col| format!("{:.4}", ((row * 31 + col * 17) % 101) as f32 / 101.0 - 0.5))
            .collect();
        writeln!(csv, "{},{}", values.join(","), row % 4).expect("write");
    }
    std::fs::write(dir.join("wide.csv"), csv).expect("data");
    let columns: Vec<String> = names.iter().map(|n| format!("{{numeric: {n}}}")).collect();
    let manifest = format!(
        "model_dir: model\n\
         model:\n  plugin: premade\n  name: dnn_classifier\n  params:\n    hidden_units: [256, 256]\n    n_classes: 4\n    feature_columns: [{}]\n\
         optimizer: {{name: adam, learning_rate: 0.01}}\n\
         input:\n  train:\n    plugin: csv\n    params: {{path: wide.csv, label: label, label_dtype: int64}}\n    shuffle: 512\n    repeat: true\n    batch_size: 256\n\
         run_config:\n  random_seed: 3\n  save_checkpoints_steps: 10\n  session_config: {{intra_op_parallelism_threads: {threads}}}\n\
         train: {{max_steps: 10}}\n",
        columns.join(", ")
    );
    let path = dir.join("manifest.yaml");
    std::fs::write(&path, manifest).expect("manifest");
    path
}

/// Trains the wide DNN on `threads` in a fresh folder; returns the final checkpoint's path.
fn trained(dir: &Path, threads: usize) -> PathBuf {
    let manifest = wide_dnn(dir, threads);
    ok(&["train", p(&manifest), "--quiet"]);
    dir.join("model").join(checkpoint::file_name(10))
}

#[test]
fn threaded_matmuls_give_identical_checkpoints() {
    let runs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let two_a = trained(runs[0].path(), 2);
    let two_b = trained(runs[1].path(), 2);
    let one = trained(runs[2].path(), 1);
    let bytes = |path: &Path| std::fs::read(path).expect("checkpoint");
    assert!(
        bytes(&two_a) == bytes(&two_b),
        "two runs on 2 threads differ"
    );
    // The manifests differ in their thread count (and so in the checksum of the manifest
    // each checkpoint records), the tensors must not.
    let (two, one) = (
        checkpoint::read(&two_a).expect("reads"),
        checkpoint::read(&one).expect("reads"),
    );
    assert_eq!(two.tensors.len(), one.tensors.len());
    for (name, (shape, values)) in &two.tensors {
        let (other_shape, other) = &one.tensors[name];
        assert_eq!(shape, other_shape, "{name}");
        let same = values
            .iter()
            .zip(other)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "{name} differs between 1 and 2 threads");
    }
    let start = checkpoint::read(&runs[2].path().join("model").join(checkpoint::file_name(0)))
        .expect("step 0");
    let kernel = "dnn/hiddenlayer_1/kernel";
    assert_ne!(start.tensors[kernel].1, one.tensors[kernel].1, "it trained");
}

#[test]
fn a_thread_count_that_is_not_a_number_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().expect("dir");
    let manifest = wide_dnn(dir.path(), 1);
    let text = std::fs::read_to_string(&manifest).expect("read");
    std::fs::write(
        &manifest,
        text.replace(
            "intra_op_parallelism_threads: 1",
            "intra_op_parallelism_threads: many",
        ),
    )
    .expect("write");
    let line = common::fails(&["train", p(&manifest)]);
    assert!(
        line.contains("manifest.yaml") && line.contains("intra_op_parallelism_threads"),
        "{line}"
    );
    assert!(!dir.path().join("model").exists(), "nothing written");
}
