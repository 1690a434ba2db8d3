//! The CSV input through the host's pipeline, one pass with `cache: false` (the streaming
//! case: chunks are parsed, batched and dropped): a narrow file like Iris (1M rows, 4
//! features and a label) and a wide one (20,000 rows, 256 features and a label). Prints
//! `input file=<name> rows_per_sec=<x> mb_per_sec=<y>` per file.
//!
//! Then training's steady state on the wide file: cached, shuffled (a buffer of 1000),
//! repeating batches of 256, where the cost is gathering the picked rows. Prints
//! `input cached_shuffled file=<name> batches_per_sec=<x> rows_per_sec=<y>`.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use estimator_host::bench::{Opener, Pipeline, PipelineConfig};
use estimator_plugin_api::abi::{FactoryContext, ModeKeys, ModeKeys_NE};
use estimator_plugin_api::sdk::export::open_input;
use estimator_plugin_csv::CsvInput;
use rand::SeedableRng;

/// Writes `rows` rows of `features` numbers and an integer label.
fn write_csv(path: &Path, rows: usize, features: usize) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let names: Vec<String> = (0..features).map(|i| format!("f{i}")).collect();
    writeln!(out, "{},label", names.join(",")).expect("write");
    for r in 0..rows {
        for f in 0..features {
            write!(out, "{:.4},", ((r * 31 + f * 17) % 1000) as f32 / 100.0).expect("write");
        }
        writeln!(out, "{}", r % 3).expect("write");
    }
}

fn pipeline(path: &Path, batch_size: usize) -> Pipeline {
    streamed(path, batch_size, None)
}

/// The CSV pipeline over `path`: streamed once when `shuffle` is `None`; otherwise cached,
/// shuffled with that buffer and repeating, as training reads.
fn streamed(path: &Path, batch_size: usize, shuffle: Option<usize>) -> Pipeline {
    let params =
        serde_json::json!({"path": path, "label": "label", "label_dtype": "int64"}).to_string();
    let opener: Opener = Box::new(move || {
        let ctx = FactoryContext {
            base_dir: ".".into(),
            seed: 1,
        };
        open_input::<CsvInput>(&params, &ctx, &ModeKeys_NE::new(ModeKeys::Train))
            .map_err(|e| estimator_host::Error::Data(e.to_string()))
    });
    let config = PipelineConfig {
        label: "input.train".into(),
        plugin: "csv".into(),
        batch_size,
        shuffle,
        repeat: shuffle.is_some(),
        drop_remainder: false,
        cache: shuffle.is_some(),
    };
    Pipeline::new(config, opener, rand_chacha::ChaCha8Rng::seed_from_u64(1))
}

/// Rows in one pass over the file.
fn one_pass(path: &Path, batch_size: usize) -> usize {
    let mut p = pipeline(path, batch_size);
    let mut rows = 0;
    while let Some(batch) = p.next_batch().expect("reads") {
        rows += batch.len;
    }
    rows
}

fn input(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = [
        ("narrow_1m_rows", 1_000_000, 4, 100),
        ("wide_256_columns", 20_000, 256, 256),
    ];
    for (name, rows, features, batch) in files {
        let path = dir.path().join(format!("{name}.csv"));
        write_csv(&path, rows, features);
        let bytes = std::fs::metadata(&path).expect("size").len() as f64;
        let start = Instant::now();
        assert_eq!(one_pass(&path, batch), rows);
        let seconds = start.elapsed().as_secs_f64();
        println!(
            "input file={name} rows_per_sec={:.0} mb_per_sec={:.1}",
            rows as f64 / seconds,
            bytes / seconds / 1e6
        );
        let mut group = c.benchmark_group("input");
        group.sample_size(10);
        group.bench_function(format!("one pass, {name}"), |b| {
            b.iter(|| one_pass(&path, batch))
        });
        group.finish();
    }
}

/// Batches of 256 from the wide file, cached and shuffled, once the cache is full.
fn cached_shuffled(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let name = "wide_256_columns";
    let path = dir.path().join(format!("{name}.csv"));
    write_csv(&path, 20_000, 256);
    let mut p = streamed(&path, 256, Some(1000));
    // The first pass fills the cache.
    for _ in 0..20_000 / 256 + 1 {
        p.next_batch().expect("reads");
    }
    let batches = 2000;
    let start = Instant::now();
    for _ in 0..batches {
        std::hint::black_box(p.next_batch().expect("reads").expect("repeats").len);
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "input cached_shuffled file={name} batches_per_sec={:.0} rows_per_sec={:.0}",
        batches as f64 / seconds,
        (batches * 256) as f64 / seconds
    );
    let mut group = c.benchmark_group("input");
    group.bench_function(format!("cached shuffled batch of 256, {name}"), |b| {
        b.iter(|| p.next_batch().expect("reads").map(|b| b.len))
    });
    group.finish();
}

criterion_group!(benches, input, cached_shuffled);
criterion_main!(benches);
