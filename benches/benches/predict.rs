//! `Estimator::predict` with iris_custom (through its dylib) over 200,000 generated
//! examples, each written as a JSON line to a buffered sink as `estimator predict` writes
//! them. Prints `predict examples_per_sec=<x>`.

use std::io::Write;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use estimator_benches::{plugin_dir, repo_root};
use estimator_host::{Estimator, Manifest, PluginRegistry, StopAt};

const EXAMPLES: usize = 200_000;

fn predict(c: &mut Criterion) {
    plugin_dir();
    let dir = tempfile::tempdir().expect("temp dir");
    let data = repo_root().join("data");
    let config =
        std::fs::read_to_string(repo_root().join("configs/iris_custom.yaml")).expect("config");
    let text = config
        .replace("model_dir: ../runs/iris_custom", "model_dir: model")
        .replace("../data", &data.to_string_lossy());
    let manifest_path = dir.path().join("m.yaml");
    std::fs::write(&manifest_path, text).expect("write");
    let examples = dir.path().join("examples.csv");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&examples).expect("create"));
    writeln!(out, "SepalLength,SepalWidth,PetalLength,PetalWidth,Species").expect("write");
    for i in 0..EXAMPLES {
        let f = |k: usize| 1.0 + ((i * 37 + k * 11) % 60) as f32 / 10.0;
        writeln!(out, "{},{},{},{},{}", f(0), f(1), f(2), f(3), i % 3).expect("write");
    }
    drop(out);
    let registry = || PluginRegistry::with_search_dirs(vec![repo_root().join("target/release")]);
    let mut manifest = Manifest::load(&manifest_path).expect("manifest");
    Estimator::new(manifest.clone(), registry())
        .train(Some(StopAt::MaxSteps(100)))
        .expect("trains");
    manifest
        .override_predict_path(&examples)
        .expect("predict input");
    let mut est = Estimator::new(manifest, registry());
    let mut run = || {
        let mut sink = std::io::BufWriter::new(std::io::sink());
        est.predict(None, |row| {
            serde_json::to_writer(&mut sink, &row).expect("writes");
            sink.write_all(b"\n").expect("writes");
            Ok(())
        })
        .expect("predicts")
    };
    let start = Instant::now();
    assert_eq!(run(), EXAMPLES);
    println!(
        "predict examples_per_sec={:.0}",
        EXAMPLES as f64 / start.elapsed().as_secs_f64()
    );
    let mut group = c.benchmark_group("predict");
    group.sample_size(10);
    group.bench_function("iris_custom, 200,000 examples to JSON lines", |b| {
        b.iter(&mut run)
    });
    group.finish();
}

criterion_group!(benches, predict);
criterion_main!(benches);
