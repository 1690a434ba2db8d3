//! The seed's custom Iris model_fn: two ReLU layers of 10 units and 3 logits.
//!
//! PREDICT yields `class_ids`, `probabilities` and `logits`; EVAL adds the mean softmax
//! cross-entropy `loss`; TRAIN returns the loss and the gradients the host's optimizer
//! applies, without predictions.
//! Accuracy comes from the `metrics` plugin named in the manifest.

use estimator_plugin_api::prelude::*;
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
    vars: VarBuilder,
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
        let mut vars = VarBuilder::new();
        let input = DenseFeatures::new(params.feature_columns, "input_layer", ctx)?;
        vars.declare_all(input.variables());
        let hidden = params.hidden_units.iter().map(|&u| (u, Activation::Relu));
        let logits = std::iter::once((params.n_classes, Activation::Linear));
        let mut width = input.width();
        let mut layers = Vec::new();
        for (i, (units, activation)) in hidden.chain(logits).enumerate() {
            let name = match i {
                0 => "dense".to_owned(),
                _ => format!("dense_{i}"),
            };
            layers.push(Dense::declare(&mut vars, name, width, units, activation));
            width = units;
        }
        Ok(IrisCustom {
            vars,
            input,
            layers,
        })
    }

    fn variables(&self) -> Vec<VarSpec> {
        self.vars.specs()
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
            let ids = Tensor::i64(vec![logits.nrows(), 1], argmax_rows(logits));
            spec.add_prediction("class_ids", ids);
            spec.add_prediction("probabilities", tensor_from_array2(softmax_rows(logits)));
            spec.add_prediction("logits", tensor_from_array2(logits.to_owned()));
        }
        if inputs.mode == ModeKeys::Predict {
            return Ok(spec);
        }
        let labels = i64_column("labels", inputs.labels()?)?;
        let loss = tape.sparse_softmax_cross_entropy(net, labels)?;
        spec.set_loss(tape.scalar(loss));
        if inputs.mode == ModeKeys::Train {
            spec.set_gradients(params.gradients(tape.backward(loss)));
        }
        Ok(spec)
    }
}

export_plugin! {
    models: ["iris_custom" => IrisCustom],
    metrics: [],
    inputs: [],
}
