//! An example of what the tape's ops make possible: softmax regression whose loss is the
//! cross-entropy written out in ops (`log_softmax`, a one-hot `mul`, a `mean`) plus an L2
//! penalty on the kernel, `l2 · Σ w²`, as `tf.layers`' kernel regularizers add it.
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
    input: DenseFeatures,
    logits: Dense,
    n_classes: usize,
    l2: f32,
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
        let input = DenseFeatures::new(params.feature_columns, "input_layer", ctx)?;
        let logits = Dense::new("dense", input.width(), params.n_classes, Activation::Linear);
        Ok(Regularized {
            input,
            logits,
            n_classes: params.n_classes,
            l2: params.l2,
        })
    }

    fn variables(&self) -> Vec<VarSpec> {
        let mut vars = self.input.variables();
        vars.extend(self.logits.variables());
        vars
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
        let cross_entropy = cross_entropy(&mut tape, logits, labels, self.n_classes)?;
        let kernel = params.get(self.logits.kernel_name())?;
        let loss = with_l2_penalty(&mut tape, cross_entropy, kernel, self.l2)?;
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

/// `loss + l2 · Σ kernel²` (the loss itself when `l2` is 0).
pub fn with_l2_penalty(
    tape: &mut Tape<'_>,
    loss: Var,
    kernel: Var,
    l2: f32,
) -> Result<Var, PluginError> {
    if l2 == 0.0 {
        return Ok(loss);
    }
    let squares = tape.square(kernel);
    let total = tape.sum(squares, Over::All);
    let penalty = tape.scale(total, l2);
    tape.add(loss, penalty)
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

    #[test]
    fn the_penalty_adds_l2_times_the_squared_norm_and_its_gradient_2_l2_w() {
        let mut t = Tape::new();
        let w = t.param(array![[1.0, -2.0], [0.5, 0.0]]);
        let zero = t.constant(array![[0.0]]);
        let loss = with_l2_penalty(&mut t, zero, w, 0.1).expect("valid");
        // 0.1 · (1 + 4 + 0.25) = 0.525; d/dw = 0.2 · w.
        assert!((t.scalar(loss) - 0.525).abs() < 1e-6);
        let g = t.backward(loss).of(w).expect("gradient");
        assert_eq!(g, array![[0.2, -0.4], [0.1, 0.0]]);
    }
}
