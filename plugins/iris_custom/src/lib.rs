//! The seed's custom Iris model_fn: two ReLU layers of 10 units and 3 logits.
//!
//! PREDICT yields `class_ids`, `probabilities` and `logits`; EVAL adds the mean softmax
//! cross-entropy `loss`; TRAIN returns the loss and the gradients the host's optimizer
//! applies, without predictions.
//! Accuracy comes from the `metrics` plugin named in the manifest.

use estimator_plugin_api::abi::{
    EstimatorSpec, FactoryContext, ModeKeys, NamedTensor, PluginError, Tensor, VarSpec,
};
use estimator_plugin_api::sdk::feature_columns::{DenseFeatures, FeatureColumn};
use estimator_plugin_api::sdk::layers::{Activation, Dense, Params};
use estimator_plugin_api::sdk::tape::Tape;
use estimator_plugin_api::sdk::{
    argmax_rows, i64_column, softmax_rows, tensor_from_array2, Model, ModelInputs,
};
use serde::Deserialize;

/// The seed's `params`: feature columns, hidden units, number of classes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IrisParams {
    pub feature_columns: Vec<FeatureColumn>,
    #[serde(default = "default_hidden_units")]
    pub hidden_units: Vec<usize>,
    #[serde(default = "default_n_classes")]
    pub n_classes: usize,
}

fn default_hidden_units() -> Vec<usize> {
    vec![10, 10]
}

fn default_n_classes() -> usize {
    3
}

/// Dense layers named as `tf.compat.v1.layers.dense` names them: `dense`, `dense_1`, ...
pub struct IrisCustom {
    input: DenseFeatures,
    layers: Vec<Dense>,
}

impl Model for IrisCustom {
    type Params = IrisParams;

    fn new(params: IrisParams, ctx: &FactoryContext<'_>) -> Result<Self, PluginError> {
        if params.n_classes < 2 {
            return Err(PluginError::bad_params(format!(
                "n_classes must be at least 2, got {}",
                params.n_classes
            )));
        }
        let input = DenseFeatures::new(params.feature_columns, "input_layer", ctx)?;
        let mut layers = Vec::new();
        let mut width = input.width();
        let widths = params.hidden_units.iter().map(|&u| (u, Activation::Relu));
        for (i, (units, activation)) in widths
            .chain(std::iter::once((params.n_classes, Activation::Linear)))
            .enumerate()
        {
            let name = if i == 0 {
                "dense".to_owned()
            } else {
                format!("dense_{i}")
            };
            layers.push(Dense::new(name, width, units, activation));
            width = units;
        }
        Ok(IrisCustom { input, layers })
    }

    fn variables(&self) -> Vec<VarSpec> {
        let mut vars = self.input.variables();
        vars.extend(self.layers.iter().flat_map(Dense::variables));
        vars
    }

    fn model_fn(&mut self, inputs: &ModelInputs<'_>) -> Result<EstimatorSpec, PluginError> {
        let mut tape = Tape::new();
        let params = Params::load(&mut tape, inputs.specs, inputs.variables)?;
        let mut net = self.input.apply(&mut tape, &params, inputs)?;
        for layer in &self.layers {
            net = layer.apply(&mut tape, &params, net)?;
        }
        let mut spec = EstimatorSpec::new(inputs.mode);
        // As the seed's model_fn: TRAIN returns only the loss and what the optimizer
        // needs, so a training step computes no predictions.
        if inputs.mode != ModeKeys::Train {
            let logits = tape.value(net);
            let batch = logits.nrows();
            spec.predictions.push(NamedTensor::new(
                "class_ids",
                Tensor::i64(vec![batch, 1], argmax_rows(logits)),
            ));
            spec.predictions.push(NamedTensor::new(
                "probabilities",
                tensor_from_array2(softmax_rows(logits)),
            ));
            spec.predictions.push(NamedTensor::new(
                "logits",
                tensor_from_array2(logits.to_owned()),
            ));
        }
        if inputs.mode == ModeKeys::Predict {
            return Ok(spec);
        }

        let labels = i64_column("labels", inputs.labels()?)?;
        let loss = tape.sparse_softmax_cross_entropy(net, labels)?;
        spec.loss = Some(tape.scalar(loss)).into();
        if inputs.mode == ModeKeys::Train {
            spec.gradients = params.gradients(tape.backward(loss));
        }
        Ok(spec)
    }
}

estimator_plugin_api::export_plugin! {
    models: ["iris_custom" => IrisCustom],
    metrics: [],
    inputs: [],
}
