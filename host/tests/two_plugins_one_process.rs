//! Two different model plugins loaded in one process each give their own results (the
//! trap `RootModule::load_from_file` would fall into: it returns the first module loaded).

mod common;

use common::*;
use estimator_host::PluginRegistry;
use estimator_host::StopAt;
use estimator_host::{Estimator, Manifest};
use estimator_plugin_api::abi::FactoryContext;

const COLUMNS: &str = r#"[{"numeric":"SepalLength"},{"numeric":"SepalWidth"},{"numeric":"PetalLength"},{"numeric":"PetalWidth"}]"#;

#[test]
fn each_library_exports_its_own_models() {
    ensure_plugins_built();
    let mut registry = PluginRegistry::with_search_dirs(vec![bin_dir()]);
    let custom = registry.load("iris_custom", &repo_root()).expect("loads");
    let premade = registry.load("premade", &repo_root()).expect("loads");
    assert_eq!(custom.package, "estimator-plugin-iris-custom");
    assert_eq!(premade.package, "estimator-plugin-premade");
    assert_eq!(custom.model_names(), ["iris_custom"]);
    assert_eq!(
        premade.model_names(),
        [
            "dnn_classifier",
            "dnn_regressor",
            "linear_classifier",
            "linear_regressor",
            "dnn_linear_combined_classifier",
            "dnn_linear_combined_regressor",
            "baseline_classifier",
            "baseline_regressor"
        ]
    );

    let ctx = FactoryContext {
        base_dir: ".".into(),
        seed: 0,
    };
    let params = format!(r#"{{"feature_columns":{COLUMNS},"hidden_units":[10,10],"n_classes":3}}"#);
    let a = custom.create_model(None, &params, ctx).expect("model");
    let b = premade
        .create_model(Some("dnn_classifier"), &params, ctx)
        .expect("model");
    let names = |m: &estimator_plugin_api::abi::ModelFnBox| -> Vec<String> {
        m.variables()
            .into_result()
            .expect("variables")
            .iter()
            .map(|v| v.name.to_string())
            .collect()
    };
    assert_eq!(names(&a)[0], "dense/kernel");
    assert_eq!(names(&b)[0], "dnn/hiddenlayer_0/kernel");
}

#[test]
fn two_estimators_with_different_plugins_train_side_by_side() {
    ensure_plugins_built();
    let mut results = Vec::new();
    let dirs: Vec<_> = ["iris_custom.yaml", "iris_dnn.yaml"]
        .iter()
        .map(|config| {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = config_in(dir.path(), config, |t| t);
            let manifest = Manifest::load(&path).expect("valid manifest");
            let mut est =
                Estimator::new(manifest, PluginRegistry::with_search_dirs(vec![bin_dir()]));
            est.train(Some(StopAt::MaxSteps(300))).expect("trains");
            results.push(est.evaluate(None).expect("evaluates"));
            dir
        })
        .collect();
    assert!(
        !results[0].contains_key("average_loss"),
        "iris_custom reports no average_loss"
    );
    assert!(
        results[1].contains_key("average_loss"),
        "dnn_classifier's head reports average_loss"
    );
    assert_ne!(results[0]["loss"], results[1]["loss"]);
    drop(dirs);
}
