//! An example of what the tape's ops make possible: softmax regression whose loss is the
//! cross-entropy written out in ops (`log_softmax`, a one-hot `mul`, a `mean`) plus an L2
//! penalty on the kernel, `l2 · Σ w²`, as `tf.layers`' kernel regularizers add it. Its
//! variables are declared once in `new` (`VarBuilder`) and read through their handles.
//!
//! The manifest's `params`: `feature_columns`, `n_classes`, and `l2` (default 0).

use estimator_plugin_api::prelude::*;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegularizedParams {
    pub feature_columns: Vec<FeatureColumn>,
    pub n_classes: usize,
    #[serde(default)]
    pub l2: f32,
}

pub struct Regularized {
    vars: VarBuilder,
    input: DenseFeatures,
    logits: Dense,
    n_classes: usize,
}

impl Model for Regularized {
    type Params = RegularizedParams;

    fn new(params: RegularizedParams, ctx: &FactoryContext<'_>) -> Result<Self, PluginError> {
        if params.n_classes < 2 || !(params.l2 >= 0.0 && params.l2.is_finite()) {
            return Err(PluginError::bad_params(format!(
                "n_classes must be at least 2 and l2 >= 0, got {} and {}",
                params.n_classes, params.l2
            )));
        }
        let mut vars = VarBuilder::new();
        let input =
            DenseFeatures::new(params.feature_columns, "input_layer", ctx)?.declare(&mut vars);
        let width = input.width();
        let logits = Dense::new("dense", width, params.n_classes, Activation::Linear)
            .with_kernel_regularizer(Regularizer {
                l1: 0.0,
                l2: params.l2,
            })
            .declare(&mut vars);
        // Logged through the host: `RUST_LOG=estimator_plugin_regularized=debug` shows it.
        tracing::debug!(l2 = %params.l2, inputs = width, "declared the logits layer");
        Ok(Regularized {
            vars,
            input,
            logits,
            n_classes: params.n_classes,
        })
    }

    fn variables(&self) -> Vec<VarSpec> {
        self.vars.specs()
    }

    fn model_fn(&mut self, inputs: &ModelInputs<'_>) -> Result<EstimatorSpec, PluginError> {
        let mut tape = Tape::new();
        let params = Params::load(&mut tape, inputs.specs, inputs.variables)?;
        let x = self.input.apply(&mut tape, &params, inputs)?;
        let logits = self.logits.apply(&mut tape, &params, x)?;
        let mut spec = EstimatorSpec::new(inputs.mode);
        if inputs.mode != ModeKeys::Train {
            let values = tape.value(logits);
            let rows = values.nrows();
            spec.add_prediction("class_ids", Tensor::i64(vec![rows, 1], argmax_rows(values)));
            spec.add_prediction("probabilities", tensor_from_array2(softmax_rows(values)));
        }
        if inputs.mode == ModeKeys::Predict {
            return Ok(spec);
        }
        let labels = i64_column("labels", inputs.labels()?)?;
        let mut loss = cross_entropy(&mut tape, logits, labels, self.n_classes)?;
        if let Some(penalty) = self.logits.penalty(&mut tape, &params)? {
            loss = tape.add(loss, penalty)?;
        }
        spec.set_loss(tape.scalar(loss));
        if inputs.mode == ModeKeys::Train {
            spec.set_gradients(params.gradients(tape.backward(loss)));
        }
        Ok(spec)
    }
}

/// The mean softmax cross-entropy, `−mean(Σ one_hot ⊙ log_softmax(logits))`, in ops.
pub fn cross_entropy(
    tape: &mut Tape<'_>,
    logits: Var,
    labels: &[i64],
    n_classes: usize,
) -> Result<Var, PluginError> {
    let mut one_hot = Array2::zeros((labels.len(), n_classes));
    for (row, &class) in labels.iter().enumerate() {
        let Some(class) = usize::try_from(class).ok().filter(|&c| c < n_classes) else {
            return Err(PluginError::bad_data(format!(
                "label {class} is not a class id below n_classes {n_classes}"
            )));
        };
        one_hot[[row, class]] = 1.0;
    }
    let one_hot = tape.constant(one_hot);
    let log_p = tape.log_softmax(logits);
    let picked = tape.mul(log_p, one_hot)?;
    let per_example = tape.sum(picked, Over::Columns);
    let mean = tape.mean(per_example, Over::All);
    Ok(tape.neg(mean))
}

export_plugin! {
    models: ["regularized" => Regularized],
    metrics: [],
    inputs: [],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_composed_cross_entropy_equals_the_fused_one_and_so_do_their_gradients() {
        let logits = array![[1.0, -0.5, 0.2], [0.3, 0.3, 2.0], [-1.0, 0.0, 1.0]];
        let labels = [0i64, 2, 1];
        let mut t = Tape::new();
        let a = t.param(logits.clone());
        let composed = cross_entropy(&mut t, a, &labels, 3).expect("valid");
        let mut u = Tape::new();
        let b = u.param(logits);
        let fused = u.sparse_softmax_cross_entropy(b, &labels).expect("valid");
        assert!((t.scalar(composed) - u.scalar(fused)).abs() < 1e-6);
        let (ga, gb) = (
            t.backward(composed).of(a).expect("gradient"),
            u.backward(fused).of(b).expect("gradient"),
        );
        for (x, y) in ga.iter().zip(gb.iter()) {
            assert!((x - y).abs() < 1e-6, "{ga} vs {gb}");
        }
    }
}
