//! The seed's custom Iris model_fn: hidden ReLU layers, then `n_classes` logits.
//!
//! PREDICT yields `logits`, `probabilities` and `class_ids`; EVAL adds the mean softmax
//! cross-entropy `loss`; TRAIN returns the loss and its gradients, and the predictions
//! only when a hook fetches one of them.
//! Accuracy comes from the `metrics` plugin named in the manifest.

use estimator_plugin_api::prelude::*;
use serde::Deserialize;

/// The seed's `params`: feature columns, hidden units, number of classes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IrisParams {
    pub feature_columns: Vec<FeatureColumn>,
    pub hidden_units: Vec<usize>,
    pub n_classes: usize,
}

/// Layers named as `tf.compat.v1.layers.dense` names them: `dense`, `dense_1`, ...
pub struct IrisCustom {
    vars: VarBuilder,
    input: DenseFeatures,
    net: Mlp,
}

impl Model for IrisCustom {
    type Params = IrisParams;

    fn new(p: IrisParams, ctx: &FactoryContext<'_>) -> Result<Self, PluginError> {
        if p.n_classes < 2 {
            let why = format!("n_classes must be at least 2, got {}", p.n_classes);
            return Err(PluginError::bad_params(why));
        }
        let mut vars = VarBuilder::new();
        let input = DenseFeatures::new(p.feature_columns, "input_layer", ctx)?.declare(&mut vars);
        let net = Mlp::tf_layers(
            input.width(),
            &p.hidden_units,
            p.n_classes,
            Activation::Relu,
        );
        let net = net.declare(&mut vars);
        Ok(IrisCustom { vars, input, net })
    }

    fn variables(&self) -> Vec<VarSpec> {
        self.vars.specs()
    }

    fn model_fn(&mut self, inputs: &ModelInputs<'_>) -> Result<EstimatorSpec, PluginError> {
        let mut tape = Tape::new();
        let params = Params::load(&mut tape, inputs.specs, inputs.variables)?;
        let features = self.input.apply(&mut tape, &params, inputs)?;
        let logits = self.net.apply(&mut tape, &params, features)?;
        let mut spec = EstimatorSpec::new(inputs.mode);
        // A TRAIN step carries predictions only when a hook fetches one.
        if inputs.wants_any_prediction(&CLASS_PREDICTIONS) {
            add_class_predictions(&mut spec, tape.value(logits));
        }
        if inputs.mode == ModeKeys::Predict {
            return Ok(spec);
        }
        let labels = i64_column("labels", inputs.labels()?)?;
        let loss = tape.sparse_softmax_cross_entropy(logits, labels)?;
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
