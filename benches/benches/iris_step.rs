//! One Iris training step (model_fn + spec check + optimizer) through the plugin ABI versus
//! the same model_fn linked statically; the ABI crossing alone (a model_fn that does no
//! work, through the ABI and directly); and 1000 Iris steps through the whole estimator.

use std::time::{Duration, Instant};

use abi_stable::std_types::{ROption, RSlice};
use criterion::{criterion_group, criterion_main, Criterion};
use estimator_benches::{f32_features, iris_batch, plugin_dir, repo_root};
use estimator_host::bench::spec_check;
use estimator_host::bench::FlushDenormals;
use estimator_host::bench::VariableStore;
use estimator_host::bench::{Optimizer, OptimizerConfig};
use estimator_host::PluginRegistry;
use estimator_host::StopAt;
use estimator_host::{Estimator, Manifest};
use estimator_plugin_api::abi::{
    EstimatorSpec, FactoryContext, ModeKeys, NamedView, PluginError, StepContext, TensorView,
    VarSpec,
};
use estimator_plugin_api::sdk::{recycle_spec, Model, ModelInputs};
use estimator_plugin_iris_custom::IrisCustom;

const PARAMS: &str = r#"{"feature_columns":[{"numeric":"SepalLength"},{"numeric":"SepalWidth"},{"numeric":"PetalLength"},{"numeric":"PetalWidth"}],"hidden_units":[10,10],"n_classes":3}"#;

fn ctx() -> FactoryContext<'static> {
    FactoryContext {
        base_dir: ".".into(),
        seed: 42,
    }
}

/// Calls model_fn on (features, labels, variables).
type ModelFnCall<'m> =
    dyn FnMut(&[NamedView<'_>], TensorView<'_>, &[NamedView<'_>]) -> EstimatorSpec + 'm;

/// One training step given a way to call model_fn; returns the spec, which the host
/// would hand back to the model.
fn step(
    vars: &mut VariableStore,
    opt: &mut Optimizer,
    features: &[NamedView<'_>],
    labels: TensorView<'_>,
    trainable: &[usize],
    model_fn: &mut ModelFnCall<'_>,
) -> EstimatorSpec {
    let spec = {
        let views = vars.views();
        model_fn(features, labels, &views)
    };
    spec_check::check(&spec, ModeKeys::Train, vars, trainable, 100).expect("valid spec");
    opt.apply(vars, &spec.gradients, 0);
    spec
}

/// Times `iters` steps as training runs of at most 1000 steps from freshly initialised
/// variables (trained for long on one fixed batch, the model would stop changing), with
/// subnormals flushed as in the Estimator's loop.
fn timed_runs(
    iters: u64,
    specs: &[VarSpec],
    run: &mut dyn FnMut(&mut VariableStore, &mut Optimizer),
) -> Duration {
    let _flush = FlushDenormals::new();
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let mut vars = VariableStore::initialise(specs, 42).expect("vars");
        let adagrad: OptimizerConfig =
            serde_json::from_str(r#"{"name": "adagrad", "learning_rate": 0.1}"#).expect("valid");
        let mut opt = Optimizer::new(adagrad, &vars);
        let steps = (iters - done).min(1000);
        let started = Instant::now();
        for _ in 0..steps {
            run(&mut vars, &mut opt);
        }
        total += started.elapsed();
        done += steps;
    }
    total
}

fn bench_step(c: &mut Criterion) {
    let batch = iris_batch(100);
    let features = f32_features(&batch.names, &batch.columns, &batch.shape);
    let labels = TensorView::i64(&batch.shape, &batch.labels);
    let step_ctx = StepContext {
        global_step: 0,
        seed: 1,
    };

    let mut registry = PluginRegistry::with_search_dirs(vec![plugin_dir()]);
    let lib = registry
        .load("iris_custom", &repo_root())
        .expect("plugin loads");
    let mut dynamic = lib.create_model(None, PARAMS, ctx()).expect("model");
    // As the host tells it when no hook reads a prediction.
    dynamic
        .set_train_fetches(RSlice::from_slice(&[]))
        .into_result()
        .expect("fetches");
    let specs = dynamic.variables().into_result().expect("variables");
    let mut static_model = IrisCustom::new(serde_json_params(), &ctx()).expect("model");

    let mut group = c.benchmark_group("iris_train_step_batch_100");
    group.measurement_time(Duration::from_secs(5));
    for (name, through_abi) in [("through_plugin_abi", true), ("statically_linked", false)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                timed_runs(iters, &specs, &mut |vars, opt| {
                    let trainable = opt.trainable().to_vec();
                    let mut call = |f: &[NamedView<'_>], l: TensorView<'_>, v: &[NamedView<'_>]| {
                        if through_abi {
                            dynamic
                                .model_fn(
                                    RSlice::from_slice(f),
                                    ROption::RSome(l),
                                    ModeKeys::Train.into(),
                                    RSlice::from_slice(v),
                                    step_ctx,
                                )
                                .into_result()
                                .expect("model_fn")
                        } else {
                            let inputs = ModelInputs {
                                features: f,
                                labels: Some(l),
                                mode: ModeKeys::Train,
                                variables: v,
                                specs: &specs,
                                ctx: step_ctx,
                                train_fetches: Some(&[]),
                            };
                            static_model.model_fn(&inputs).expect("model_fn")
                        }
                    };
                    let spec = step(vars, opt, &features, labels, &trainable, &mut call);
                    match through_abi {
                        true => dynamic.recycle_spec(spec),
                        false => recycle_spec(spec),
                    }
                })
            })
        });
    }
    group.finish();

    // The crossing alone: a model_fn that does no work, called through the ABI (boxed
    // trait object, R-types, catch_unwind, spec returned across) and directly.
    let noop_lib = registry.load("faulty", &repo_root()).expect("plugin loads");
    let mut noop_dynamic = noop_lib
        .create_model(Some("noop"), "{}", ctx())
        .expect("model");
    let mut noop_static = Noop;
    let mut group = c.benchmark_group("abi_crossing");
    group.bench_function("noop_model_fn_through_plugin_abi", |b| {
        b.iter(|| {
            noop_dynamic
                .model_fn(
                    RSlice::from_slice(&features),
                    ROption::RSome(labels),
                    ModeKeys::Train.into(),
                    RSlice::from_slice(&[]),
                    step_ctx,
                )
                .into_result()
                .expect("model_fn")
        })
    });
    group.bench_function("noop_model_fn_statically_linked", |b| {
        b.iter(|| {
            let inputs = ModelInputs {
                features: &features,
                labels: Some(labels),
                mode: ModeKeys::Train,
                variables: &[],
                specs: &[],
                ctx: step_ctx,
                train_fetches: Some(&[]),
            };
            noop_static.model_fn(&inputs).expect("model_fn")
        })
    });
    group.finish();
}

/// The `faulty` plugin's `noop` model, compiled into the benchmark (two plugins' root
/// modules cannot be linked into one binary).
struct Noop;

impl Model for Noop {
    type Params = serde_json::Value;
    fn new(_: serde_json::Value, _: &FactoryContext<'_>) -> Result<Self, PluginError> {
        Ok(Noop)
    }
    fn variables(&self) -> Vec<VarSpec> {
        Vec::new()
    }
    fn model_fn(&mut self, inputs: &ModelInputs<'_>) -> Result<EstimatorSpec, PluginError> {
        let mut spec = EstimatorSpec::new(inputs.mode);
        spec.loss = ROption::RSome(0.0);
        Ok(spec)
    }
}

fn serde_json_params() -> <IrisCustom as Model>::Params {
    estimator_plugin_api::sdk::export::parse_params(PARAMS).expect("valid params")
}

fn bench_1000_steps(c: &mut Criterion) {
    plugin_dir();
    let config =
        std::fs::read_to_string(repo_root().join("configs/iris_custom.yaml")).expect("config");
    let data = repo_root().join("data");
    let mut group = c.benchmark_group("iris_custom_train");
    group.sample_size(10);
    group.bench_function("1000_steps", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("temp dir");
                let text = config
                    .replace("model_dir: ../runs/iris_custom", "model_dir: model")
                    .replace("../data", &data.to_string_lossy())
                    .replace(
                        "save_checkpoints_steps: 100",
                        "save_checkpoints_steps: 100000",
                    )
                    .replace("log_step_count_steps: 100", "log_step_count_steps: null");
                let path = dir.path().join("m.yaml");
                std::fs::write(&path, text).expect("write");
                (dir, Manifest::load(&path).expect("manifest"))
            },
            |(dir, manifest)| {
                let mut est = Estimator::new(
                    manifest,
                    PluginRegistry::with_search_dirs(vec![repo_root().join("target/release")]),
                );
                est.train(Some(StopAt::MaxSteps(1000))).expect("trains");
                dir
            },
            criterion::BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_step, bench_1000_steps);
criterion_main!(benches);
