//! Batch normalization, as Keras' `BatchNormalization` over `[batch, n]`: in training,
//! each column is normalized with the batch's mean and (biased) variance, and the moving
//! averages move towards them; in evaluation and prediction the moving averages are used.
//! The moving averages are non-trainable variables: the layer returns their new values,
//! which a model puts in its spec's `updates` for the host to assign.

use crate::abi::{Initializer, NamedTensor, PluginError, Tensor, VarSpec};

use super::layers::Params;
use super::tape::{Tape, Var};
use super::variables::{LayerVars, VarBuilder};

#[derive(Clone, Debug)]
pub struct BatchNorm {
    name: String,
    units: usize,
    /// The moving averages' decay (TF's DNN estimators: 0.999).
    momentum: f32,
    epsilon: f32,
    gamma: String,
    beta: String,
    moving_mean: String,
    moving_variance: String,
    /// gamma, beta, moving_mean, moving_variance, once declared.
    vars: LayerVars,
}

impl BatchNorm {
    /// A layer over `units` columns, its variables named `<name>/gamma`, `<name>/beta`,
    /// `<name>/moving_mean`, `<name>/moving_variance`; epsilon 0.001 as Keras.
    pub fn new(name: &str, units: usize, momentum: f32) -> Self {
        BatchNorm {
            name: name.to_owned(),
            units,
            momentum,
            epsilon: 1e-3,
            gamma: format!("{name}/gamma"),
            beta: format!("{name}/beta"),
            moving_mean: format!("{name}/moving_mean"),
            moving_variance: format!("{name}/moving_variance"),
            vars: LayerVars::default(),
        }
    }

    /// Declares the four variables in `vars`; each step reads them through their handles.
    pub fn declare(mut self, vars: &mut VarBuilder) -> Self {
        self.vars = LayerVars::declare(vars, self.variables());
        self
    }

    pub fn variables(&self) -> [VarSpec; 4] {
        let n = [self.units];
        [
            VarSpec::new(self.gamma.as_str(), &n, Initializer::Ones),
            VarSpec::new(self.beta.as_str(), &n, Initializer::Zeros),
            VarSpec::new(self.moving_mean.as_str(), &n, Initializer::Zeros).non_trainable(),
            VarSpec::new(self.moving_variance.as_str(), &n, Initializer::Ones).non_trainable(),
        ]
    }

    /// Normalizes `x`. In training, also returns the moving averages' new values,
    /// `moving · momentum + batch · (1 − momentum)`.
    pub fn apply(
        &self,
        tape: &mut Tape,
        params: &Params,
        x: Var,
        training: bool,
    ) -> Result<(Var, Vec<NamedTensor>), PluginError> {
        let var = |i| self.vars.get(i, &self.name).map(|h| params.var(h));
        let scale = (var(0)?, var(1)?);
        let moving_mean = tape.value(var(2)?).iter().copied().collect::<Vec<f32>>();
        let moving_variance = tape.value(var(3)?).iter().copied().collect::<Vec<f32>>();
        if !training {
            let y = tape.normalize(
                x,
                scale,
                (&moving_mean, &moving_variance),
                self.epsilon,
                false,
            )?;
            return Ok((y, Vec::new()));
        }
        let values = tape.value(x);
        let rows = values.nrows().max(1) as f32;
        let mean: Vec<f32> = values
            .columns()
            .into_iter()
            .map(|c| c.sum() / rows)
            .collect();
        let variance: Vec<f32> = values
            .columns()
            .into_iter()
            .zip(&mean)
            .map(|(c, m)| c.iter().map(|v| (v - m) * (v - m)).sum::<f32>() / rows)
            .collect();
        let y = tape.normalize(x, scale, (&mean, &variance), self.epsilon, true)?;
        let decay = |moving: &[f32], batch: &[f32]| -> Vec<f32> {
            moving
                .iter()
                .zip(batch)
                .map(|(m, b)| m * self.momentum + b * (1.0 - self.momentum))
                .collect()
        };
        let updates = vec![
            NamedTensor::new(
                self.moving_mean.as_str(),
                Tensor::f32(vec![self.units], decay(&moving_mean, &mean)),
            ),
            NamedTensor::new(
                self.moving_variance.as_str(),
                Tensor::f32(vec![self.units], decay(&moving_variance, &variance)),
            ),
        ];
        Ok((y, updates))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{NamedView, TensorView};
    use ndarray::array;

    #[test]
    fn training_normalizes_by_the_batch_and_moves_the_averages() {
        let mut declared = VarBuilder::new();
        let layer = BatchNorm::new("bn", 2, 0.9).declare(&mut declared);
        let specs = declared.specs();
        let shape = [2usize];
        let (ones, zeros) = ([1.0f32, 1.0], [0.0f32, 0.0]);
        let data = [&ones, &zeros, &zeros, &ones];
        let views: Vec<NamedView<'_>> = specs
            .iter()
            .zip(data)
            .map(|(s, d)| NamedView {
                name: s.name.as_str().into(),
                tensor: TensorView::f32(&shape, d),
            })
            .collect();
        let mut tape = Tape::new();
        let params = Params::load(&mut tape, &specs, &views).expect("matching");
        let x = tape.constant(array![[1.0, 10.0], [3.0, 30.0]]);
        let (y, updates) = layer.apply(&mut tape, &params, x, true).expect("valid");
        // Column 0: mean 2, variance 1 → (∓1) / sqrt(1.001).
        let expected = 1.0 / 1.001f32.sqrt();
        assert!((tape.value(y)[[0, 0]] + expected).abs() < 1e-5);
        assert!((tape.value(y)[[1, 0]] - expected).abs() < 1e-5);
        // moving_mean: 0·0.9 + (2, 20)·0.1; moving_variance: 1·0.9 + (1, 100)·0.1.
        let mean = updates[0].tensor.as_f32().expect("f32");
        assert!(
            (mean[0] - 0.2).abs() < 1e-6 && (mean[1] - 2.0).abs() < 1e-5,
            "{mean:?}"
        );
        let var = updates[1].tensor.as_f32().expect("f32");
        assert!(
            (var[0] - 1.0).abs() < 1e-6 && (var[1] - 10.9).abs() < 1e-4,
            "{var:?}"
        );
        // Inference uses the moving averages (0, 1): x / sqrt(1.001).
        let (z, none) = layer.apply(&mut tape, &params, x, false).expect("valid");
        assert!(none.is_empty());
        assert!((tape.value(z)[[0, 1]] - 10.0 / 1.001f32.sqrt()).abs() < 1e-4);
    }
}
