//! The compute-bound training step: TF's DNNClassifier with 256 numeric features, hidden
//! units [512, 512] and 10 classes, on a batch of 256, model_fn called directly and its
//! gradients applied by the host's Adagrad, as the training loop does, on the threads
//! `MATMUL_NUM_THREADS` sets. Prints the step's GFLOP/s, counted as the products the
//! `gemm` bench times, in a line a script can read: `compute_step threads=<n> gflops=<x>
//! ms=<y> steps_per_sec=<z>`.

use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use estimator_benches::{f32_features, numeric_feature_columns, train_inputs};
use estimator_host::bench::{FlushDenormals, Optimizer, OptimizerConfig, VariableStore};
use estimator_plugin_api::abi::{FactoryContext, TensorView};
use estimator_plugin_api::sdk::export::parse_params;
use estimator_plugin_api::sdk::{recycle_spec, Model};
use estimator_plugin_premade::DnnClassifier;

const FEATURES: usize = 256;
const HIDDEN: usize = 512;
const CLASSES: usize = 10;
const BATCH: usize = 256;

/// The flops of the step's products: forward, the weights' gradients, and the inputs'
/// gradients of the two upper layers (the features need none).
fn flops_per_step() -> f64 {
    let weights = FEATURES * HIDDEN + HIDDEN * HIDDEN + HIDDEN * CLASSES;
    let upper = HIDDEN * HIDDEN + HIDDEN * CLASSES;
    2.0 * (BATCH * (2 * weights + upper)) as f64
}

fn compute_step(c: &mut Criterion) {
    let _flush = FlushDenormals::new();
    let names: Vec<String> = (0..FEATURES).map(|i| format!("x{i:03}")).collect();
    let params = format!(
        r#"{{"hidden_units": [{HIDDEN}, {HIDDEN}], "n_classes": {CLASSES}, "feature_columns": {}}}"#,
        numeric_feature_columns(&names)
    );
    let ctx = FactoryContext {
        base_dir: ".".into(),
        seed: 42,
    };
    let mut model =
        <DnnClassifier as Model>::new(parse_params(&params).expect("valid params"), &ctx)
            .expect("builds");
    let specs = model.variables();
    let mut vars = VariableStore::initialise(&specs, 42).expect("distinct names");
    let mut optimizer = Optimizer::new(OptimizerConfig::default(), &vars);
    let values: Vec<Vec<f32>> = (0..FEATURES)
        .map(|f| {
            (0..BATCH)
                .map(|r| ((r * 31 + f * 17) % 97) as f32 / 97.0)
                .collect()
        })
        .collect();
    let labels: Vec<i64> = (0..BATCH).map(|r| (r % CLASSES) as i64).collect();
    let shape = [BATCH];
    let features = f32_features(&names, &values, &shape);
    let mut step = |vars: &mut VariableStore, optimizer: &mut Optimizer, global_step: i64| {
        let views = vars.views();
        let batch_labels = TensorView::i64(&shape, &labels);
        let inputs = train_inputs(&features, batch_labels, &views, &specs, global_step);
        let spec = model.model_fn(&inputs).expect("valid step");
        drop(views);
        optimizer.apply(vars, &spec.gradients, global_step);
        recycle_spec(spec);
    };
    // A plain timing first, for the parseable line; criterion's own figures follow.
    for s in 0..5 {
        step(&mut vars, &mut optimizer, s);
    }
    let reps = 50;
    let start = Instant::now();
    for s in 0..reps {
        step(&mut vars, &mut optimizer, s);
    }
    let seconds = start.elapsed().as_secs_f64() / f64::from(reps as u32);
    println!(
        "compute_step threads={} gflops={:.1} ms={:.3} steps_per_sec={:.1}",
        std::env::var("MATMUL_NUM_THREADS").unwrap_or_else(|_| "default".into()),
        flops_per_step() / seconds / 1e9,
        seconds * 1e3,
        1.0 / seconds
    );
    let mut global_step = 0;
    c.bench_function(
        "compute-bound DNN step (256 features, [512, 512], batch 256)",
        |b| {
            b.iter(|| {
                step(&mut vars, &mut optimizer, global_step);
                global_step += 1;
            })
        },
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = compute_step
}
criterion_main!(benches);
