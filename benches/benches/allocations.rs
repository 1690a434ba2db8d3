//! Heap allocations per steady-state training step, counted by a counting global
//! allocator: in the host's loop (`Estimator::train` with iris_custom through its dylib,
//! whose own allocations go through the library's allocator and are not counted here),
//! from global step 1000 to 3000, with TensorBoard summaries off and every 100 steps; and
//! in the SDK (iris_custom's model_fn linked statically, counted alone). Prints
//! `allocations host_per_step=<x> host_per_step_with_summaries_every_100=<y>
//! sdk_per_step=<z>`. The criterion figure is the host loop's 1000 steps.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{criterion_group, criterion_main, Criterion};
use estimator_benches::{f32_features, iris_batch, plugin_dir, repo_root, train_inputs};
use estimator_host::bench::VariableStore;
use estimator_host::hooks::{Hook, RunValues};
use estimator_host::{Estimator, Manifest, PluginRegistry, StopAt};
use estimator_plugin_api::abi::{FactoryContext, TensorView};
use estimator_plugin_api::sdk::{recycle_spec, Model};
use estimator_plugin_iris_custom::IrisCustom;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded as given.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as given.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded as given.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// iris_custom's manifest in a fresh folder, with checkpoints and logging off so the loop
/// is all that runs; TensorBoard summaries every `summary_steps` (0: none).
fn manifest(summary_steps: u64) -> (tempfile::TempDir, Manifest) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config =
        std::fs::read_to_string(repo_root().join("configs/iris_custom.yaml")).expect("config");
    let text = config
        .replace("model_dir: ../runs/iris_custom", "model_dir: model")
        .replace("../data", &repo_root().join("data").to_string_lossy())
        .replace(
            "save_checkpoints_steps: 100",
            "save_checkpoints_steps: null",
        )
        .replace(
            "log_step_count_steps: 100",
            &format!("log_step_count_steps: null\n  save_summary_steps: {summary_steps}"),
        )
        + "\n";
    let path = dir.path().join("m.yaml");
    std::fs::write(&path, text).expect("write");
    let manifest = Manifest::load(&path).expect("manifest");
    (dir, manifest)
}

/// Counts the allocations from the step at `from` to the end of training.
struct Window {
    from: i64,
    start: Option<u64>,
    counted: u64,
}

impl Hook for Window {
    fn name(&self) -> &str {
        "allocation_window"
    }

    fn before_run(&mut self, global_step: i64) -> estimator_host::Result<()> {
        if global_step == self.from {
            self.start = Some(allocations());
        }
        Ok(())
    }

    fn end(&mut self, _last: Option<&RunValues<'_>>) -> estimator_host::Result<()> {
        self.counted = self.start.map_or(0, |s| allocations() - s);
        Ok(())
    }
}

fn estimator(summary_steps: u64) -> (tempfile::TempDir, Estimator) {
    let (dir, manifest) = manifest(summary_steps);
    let registry = PluginRegistry::with_search_dirs(vec![repo_root().join("target/release")]);
    (dir, Estimator::new(manifest, registry))
}

/// Allocations per step from global step 1000 to 3000: the steady state, set-up and the
/// end left out.
fn steady_state_allocations(summary_steps: u64) -> f64 {
    let (_dir, mut est) = estimator(summary_steps);
    let mut window = Window {
        from: 1000,
        start: None,
        counted: 0,
    };
    est.train_with_hooks(Some(StopAt::MaxSteps(3000)), vec![&mut window])
        .expect("trains");
    window.counted as f64 / 2000.0
}

/// Allocations per model_fn call in TRAIN, the SDK's share.
fn sdk_allocations_per_step() -> f64 {
    let ctx = FactoryContext {
        base_dir: ".".into(),
        seed: 42,
    };
    let params = estimator_plugin_api::sdk::export::parse_params(
        r#"{"feature_columns": [{"numeric": "SepalLength"}, {"numeric": "SepalWidth"}, {"numeric": "PetalLength"}, {"numeric": "PetalWidth"}], "hidden_units": [10, 10], "n_classes": 3}"#,
    )
    .expect("params");
    let mut model = <IrisCustom as Model>::new(params, &ctx).expect("builds");
    let specs = model.variables();
    let vars = VariableStore::initialise(&specs, 42).expect("distinct names");
    let batch = iris_batch(100);
    let features = f32_features(&batch.names, &batch.columns, &batch.shape);
    let views = vars.views();
    let mut step = |global_step: i64| {
        let labels = TensorView::i64(&batch.shape, &batch.labels);
        let inputs = train_inputs(&features, labels, &views, &specs, global_step);
        // As the host does, the spec goes back for the next step's buffers.
        recycle_spec(model.model_fn(&inputs).expect("valid step"));
    };
    step(0);
    let before = allocations();
    for s in 1..=1000 {
        step(s);
    }
    (allocations() - before) as f64 / 1000.0
}

fn bench(c: &mut Criterion) {
    plugin_dir();
    println!(
        "allocations host_per_step={:.3} host_per_step_with_summaries_every_100={:.3} sdk_per_step={:.2}",
        steady_state_allocations(0),
        steady_state_allocations(100),
        sdk_allocations_per_step()
    );
    let mut group = c.benchmark_group("allocations");
    group.sample_size(10);
    group.bench_function("iris_custom train, 1000 steps", |b| {
        b.iter(|| {
            let (_dir, mut est) = estimator(0);
            est.train(Some(StopAt::MaxSteps(1000))).expect("trains")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
