//! Premade estimators, as `tf.estimator`'s canned models, driven by the manifest alone.

mod dnn_classifier;
mod multi_class_head;

pub use dnn_classifier::DnnClassifier;

estimator_plugin_api::export_plugin! {
    models: ["dnn_classifier" => DnnClassifier],
    metrics: [],
    inputs: [],
}
