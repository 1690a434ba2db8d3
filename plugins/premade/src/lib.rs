//! Premade estimators, as `tf.estimator`'s canned models, driven by the manifest alone.

mod baseline;
mod canned;
mod dnn;
mod dnn_classifier;
mod dnn_linear_combined;
mod dnn_regressor;
mod linear;

pub use baseline::{BaselineClassifier, BaselineRegressor};
pub use dnn_classifier::DnnClassifier;
pub use dnn_linear_combined::{DnnLinearCombinedClassifier, DnnLinearCombinedRegressor};
pub use dnn_regressor::DnnRegressor;
pub use linear::{LinearClassifier, LinearRegressor};

estimator_plugin_api::export_plugin! {
    models: [
        "dnn_classifier" => DnnClassifier,
        "dnn_regressor" => DnnRegressor,
        "linear_classifier" => LinearClassifier,
        "linear_regressor" => LinearRegressor,
        "dnn_linear_combined_classifier" => DnnLinearCombinedClassifier,
        "dnn_linear_combined_regressor" => DnnLinearCombinedRegressor,
        "baseline_classifier" => BaselineClassifier,
        "baseline_regressor" => BaselineRegressor,
    ],
    metrics: [],
    inputs: [],
}
