//! Premade estimators, as `tf.estimator`'s canned models, driven by the manifest alone.

mod baseline;
mod binary_class_head;
mod class_names;
mod dnn;
mod dnn_classifier;
mod dnn_regressor;
mod head;
mod multi_class_head;
mod regression_head;

pub use baseline::{BaselineClassifier, BaselineRegressor};
pub use dnn_classifier::DnnClassifier;
pub use dnn_regressor::DnnRegressor;

estimator_plugin_api::export_plugin! {
    models: [
        "dnn_classifier" => DnnClassifier,
        "dnn_regressor" => DnnRegressor,
        "baseline_classifier" => BaselineClassifier,
        "baseline_regressor" => BaselineRegressor,
    ],
    metrics: [],
    inputs: [],
}
