//! Raw single-precision GEMM at the compute-bound step's shapes (batch 256, 256 features,
//! hidden [512, 512], 10 classes): the forward products and the backward ones, with the
//! transposes the tape passes. Through ndarray's `dot`, as the SDK's tape multiplies, on
//! the threads `MATMUL_NUM_THREADS` sets (the machine's physical cores, at most 4, when
//! unset). Prints `gemm threads=<n> gflops=<x> ms=<y>`; the step's efficiency is
//! compute_step's GFLOP/s over this one's at the same thread count.

use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use estimator_host::bench::FlushDenormals;
use ndarray::Array2;

/// `(m, k, n, a transposed, b transposed)` of every product in one step.
const PRODUCTS: [(usize, usize, usize, bool, bool); 8] = [
    (256, 256, 512, false, false), // x · W0
    (256, 512, 512, false, false), // h1 · W1
    (256, 512, 10, false, false),  // h2 · W2
    (256, 10, 512, false, true),   // dlogits · W2ᵀ
    (512, 256, 10, true, false),   // h2ᵀ · dlogits
    (256, 512, 512, false, true),  // dh2 · W1ᵀ
    (512, 256, 512, true, false),  // h1ᵀ · dh2
    (256, 256, 512, true, false),  // xᵀ · dh1
];

fn matrix(rows: usize, cols: usize, seed: usize) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |(r, c)| {
        ((r * 7919 + c * 104_729 + seed) % 1000) as f32 / 1000.0 - 0.5
    })
}

fn gemm(c: &mut Criterion) {
    let _flush = FlushDenormals::new();
    let operands: Vec<(Array2<f32>, Array2<f32>, bool, bool)> = PRODUCTS
        .iter()
        .enumerate()
        .map(|(i, &(m, k, n, at, bt))| {
            let a = if at { matrix(k, m, i) } else { matrix(m, k, i) };
            let b = if bt {
                matrix(n, k, i + 1)
            } else {
                matrix(k, n, i + 1)
            };
            (a, b, at, bt)
        })
        .collect();
    let all = || {
        for (a, b, at, bt) in &operands {
            let product = match (at, bt) {
                (false, false) => a.dot(b),
                (true, false) => a.t().dot(b),
                (false, true) => a.dot(&b.t()),
                (true, true) => a.t().dot(&b.t()),
            };
            std::hint::black_box(product);
        }
    };
    let flops: f64 = PRODUCTS
        .iter()
        .map(|&(m, k, n, _, _)| 2.0 * (m * k * n) as f64)
        .sum();
    for _ in 0..5 {
        all();
    }
    let reps = 50;
    let start = Instant::now();
    for _ in 0..reps {
        all();
    }
    let seconds = start.elapsed().as_secs_f64() / f64::from(reps);
    println!(
        "gemm threads={} gflops={:.1} ms={:.3}",
        std::env::var("MATMUL_NUM_THREADS").unwrap_or_else(|_| "default".into()),
        flops / seconds / 1e9,
        seconds * 1e3
    );
    c.bench_function("raw GEMM, the compute-bound step's products", |b| {
        b.iter(all)
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = gemm
}
criterion_main!(benches);
