//! One training step of premade models on a batch of 100 examples with categorical
//! features, model_fn called directly (the ABI costs the same few ns as for Iris): a wide
//! & deep model over a vocabulary, a hash bucket, their cross and an embedding; and a
//! DNN whose embedding table has 10,000 rows, to see what a dense table gradient costs;
//! and the premade cases' DNN on numeric columns alone (wine's shape: 13 columns, hidden
//! [32, 16], 3 classes, batch 32), breast cancer's (30 columns, 2 classes named by a
//! label vocabulary) and diabetes' (10 columns, regression), where what is not arithmetic
//! shows most.

use abi_stable::std_types::RString;
use criterion::{criterion_group, criterion_main, Criterion};
use estimator_benches::{f32_features, numeric_feature_columns, train_inputs};
use estimator_host::bench::VariableStore;
use estimator_plugin_api::abi::{FactoryContext, NamedView, TensorData, TensorView};
use estimator_plugin_api::sdk::export::parse_params;
use estimator_plugin_api::sdk::{recycle_spec, Model};
use estimator_plugin_premade::{DnnClassifier, DnnLinearCombinedClassifier, DnnRegressor};

const COLORS: [&str; 5] = ["red", "orange", "blue", "green", "grey"];

fn ctx() -> FactoryContext<'static> {
    FactoryContext {
        base_dir: ".".into(),
        seed: 42,
    }
}

/// Runs model_fn in TRAIN on 100 examples with features `color`, `city` (strings) and
/// `x` (a number).
fn bench_step<M: Model>(c: &mut Criterion, name: &str, params: &str) {
    let mut model = M::new(parse_params(params).expect("valid params"), &ctx()).expect("builds");
    let specs = model.variables();
    let vars = VariableStore::initialise(&specs, 42).expect("distinct names");
    let colors: Vec<RString> = (0..100).map(|i| COLORS[i % 5].into()).collect();
    let cities: Vec<RString> = (0..100)
        .map(|i| format!("city{}", i * 37 % 1000).into())
        .collect();
    let x: Vec<f32> = (0..100).map(|i| i as f32 / 100.0).collect();
    let labels: Vec<i64> = (0..100).map(|i| i64::from(i % 5 < 2)).collect();
    let shape = [100usize];
    let features = [
        text("color", &shape, &colors),
        text("city", &shape, &cities),
        NamedView {
            name: "x".into(),
            tensor: TensorView::f32(&shape, &x),
        },
    ];
    let views = vars.views();
    c.bench_function(name, |b| {
        b.iter(|| {
            let batch_labels = TensorView::i64(&shape, &labels);
            let inputs = train_inputs(&features, batch_labels, &views, &specs, 0);
            // As the host does, the spec goes back for the next step's buffers.
            recycle_spec(model.model_fn(&inputs).expect("valid step"));
        })
    });
}

/// The labels of a numeric-feature case: class ids, words of a label vocabulary, or a
/// regressor's targets.
enum Labels {
    Ids(usize),
    Words([&'static str; 2]),
    Targets,
}

/// Runs a DNN's model_fn (`M`: DnnClassifier, or DnnRegressor for targets) in TRAIN on
/// `batch` examples of `columns` numeric features.
fn bench_numeric_dnn_step<M: Model>(
    c: &mut Criterion,
    name: &str,
    columns: usize,
    batch: usize,
    classes: Labels,
) {
    let names: Vec<String> = (0..columns).map(|i| format!("x{i}")).collect();
    let params = format!(
        r#"{{"hidden_units": [32, 16], {}"feature_columns": {}}}"#,
        match classes {
            Labels::Ids(n) => format!(r#""n_classes": {n}, "#),
            Labels::Words([a, b]) =>
                format!(r#""n_classes": 2, "label_vocabulary": ["{a}", "{b}"], "#),
            Labels::Targets => String::new(),
        },
        numeric_feature_columns(&names)
    );
    let mut model = M::new(parse_params(&params).expect("valid params"), &ctx()).expect("builds");
    let specs = model.variables();
    let vars = VariableStore::initialise(&specs, 42).expect("distinct names");
    let values: Vec<Vec<f32>> = (0..columns)
        .map(|c| {
            (0..batch)
                .map(|r| ((r * 7 + c) % 13) as f32 / 13.0)
                .collect()
        })
        .collect();
    let (mut ids, mut words, mut targets) = (Vec::new(), Vec::<RString>::new(), Vec::new());
    match classes {
        Labels::Ids(n) => ids = (0..batch as i64).map(|i| i % n as i64).collect(),
        Labels::Words(w) => words = (0..batch).map(|i| w[i % 2].into()).collect(),
        Labels::Targets => targets = (0..batch).map(|i| i as f32 * 3.5).collect(),
    }
    let shape = [batch];
    let features = f32_features(&names, &values, &shape);
    let views = vars.views();
    c.bench_function(name, |b| {
        b.iter(|| {
            let batch_labels = if !words.is_empty() {
                TensorView {
                    shape: shape.as_slice().into(),
                    data: TensorData::Str(words.as_slice().into()),
                }
            } else if !targets.is_empty() {
                TensorView::f32(&shape, &targets)
            } else {
                TensorView::i64(&shape, &ids)
            };
            let inputs = train_inputs(&features, batch_labels, &views, &specs, 0);
            // As the host does, the spec goes back for the next step's buffers.
            recycle_spec(model.model_fn(&inputs).expect("valid step"));
        })
    });
}

fn text<'a>(name: &'static str, shape: &'a [usize], values: &'a [RString]) -> NamedView<'a> {
    NamedView {
        name: name.into(),
        tensor: TensorView {
            shape: shape.into(),
            data: TensorData::Str(values.into()),
        },
    }
}

fn premade_steps(c: &mut Criterion) {
    bench_numeric_dnn_step::<DnnClassifier>(
        c,
        "dnn step, 13 numeric columns, hidden [32, 16], 3 classes (batch 32)",
        13,
        32,
        Labels::Ids(3),
    );
    bench_numeric_dnn_step::<DnnClassifier>(
        c,
        "dnn step, 30 numeric columns, hidden [32, 16], 2 named classes (batch 32)",
        30,
        32,
        Labels::Words(["benign", "malignant"]),
    );
    bench_numeric_dnn_step::<DnnRegressor>(
        c,
        "dnn step, 10 numeric columns, hidden [32, 16], regression (batch 32)",
        10,
        32,
        Labels::Targets,
    );
    let color = r#"{"vocabulary_list": {"key": "color", "vocabulary_list": ["red", "orange", "blue", "green", "grey"]}}"#;
    let city = r#"{"hash_bucket": {"key": "city", "hash_bucket_size": 1000}}"#;
    bench_step::<DnnLinearCombinedClassifier>(
        c,
        "wide & deep step (vocabulary, hash bucket, cross, embedding; batch 100)",
        &format!(
            r#"{{"dnn_hidden_units": [16, 8],
                "dnn_feature_columns": [{{"embedding": {{"categorical_column": {city}, "dimension": 8}}}},
                                        {{"indicator": {color}}}, {{"numeric": "x"}}],
                "linear_feature_columns": [{color}, {city},
                    {{"crossed": {{"keys": ["color", "city"], "hash_bucket_size": 5000}}}}]}}"#
        ),
    );
    // The same DNN with tables of 100 and 10,000 rows: the difference is the cost of a
    // dense table gradient, which grows with the table while the lookups do not.
    for rows in [100, 10_000] {
        let city = format!(r#"{{"hash_bucket": {{"key": "city", "hash_bucket_size": {rows}}}}}"#);
        bench_step::<DnnClassifier>(
            c,
            &format!("dnn step with a {rows} x 8 embedding table (batch 100)"),
            &format!(
                r#"{{"hidden_units": [16, 8],
                    "feature_columns": [{{"embedding": {{"categorical_column": {city}, "dimension": 8}}}},
                                        {{"numeric": "x"}}]}}"#
            ),
        );
    }
}

criterion_group!(benches, premade_steps);
criterion_main!(benches);
