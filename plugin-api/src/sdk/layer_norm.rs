//! Keras' `LayerNormalization` over each example's features: `gamma · (x − mean) /
//! sqrt(var + ε) + beta`, the mean and variance of each row; variables `<name>/gamma`
//! (ones) and `<name>/beta` (zeros), ε 1e-3 as Keras'.

use crate::abi::{Initializer, PluginError, VarSpec};

use super::layers::Params;
use super::tape::{Over, Tape, Var};
use super::variables::{LayerVars, VarBuilder};

/// Keras' default epsilon.
pub const LAYER_NORM_EPSILON: f32 = 1e-3;

#[derive(Clone, Debug)]
pub struct LayerNorm {
    name: String,
    width: usize,
    epsilon: f32,
    /// gamma and beta, once declared.
    vars: LayerVars,
}

impl LayerNorm {
    /// The layer over `width` features.
    pub fn new(name: impl Into<String>, width: usize) -> Self {
        LayerNorm {
            name: name.into(),
            width,
            epsilon: LAYER_NORM_EPSILON,
            vars: LayerVars::default(),
        }
    }

    /// Its scale and offset.
    pub fn variables(&self) -> [VarSpec; 2] {
        let name = &self.name;
        [
            VarSpec::new(format!("{name}/gamma"), &[self.width], Initializer::Ones),
            VarSpec::new(format!("{name}/beta"), &[self.width], Initializer::Zeros),
        ]
    }

    /// Declares the scale and offset in `vars`; each step reads them through their
    /// handles.
    pub fn declare(mut self, vars: &mut VarBuilder) -> Self {
        self.vars = LayerVars::declare(vars, self.variables());
        self
    }

    pub fn apply(&self, tape: &mut Tape, params: &Params, x: Var) -> Result<Var, PluginError> {
        let mean = tape.mean(x, Over::Columns);
        let centered = tape.sub(x, mean)?;
        let squares = tape.square(centered);
        let variance = tape.mean(squares, Over::Columns);
        let variance = tape.shift(variance, self.epsilon);
        let deviation = tape.sqrt(variance);
        let normalized = tape.div(centered, deviation)?;
        let gamma = params.var(self.vars.get(0, &self.name)?);
        let beta = params.var(self.vars.get(1, &self.name)?);
        let scaled = tape.mul(normalized, gamma)?;
        tape.add(scaled, beta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::NamedView;
    use crate::sdk::tape::test_support::{assert_gradients_match, finite_value};
    use ndarray::array;

    #[test]
    fn rows_are_normalized_as_keras_does() {
        let mut vars = VarBuilder::new();
        let norm = LayerNorm::new("layer_normalization", 3).declare(&mut vars);
        let specs = vars.specs();
        assert_eq!(specs[0].name.as_str(), "layer_normalization/gamma");
        let (gamma, beta) = ([1.0f32, 1.0, 1.0], [0.0f32, 0.0, 0.0]);
        let views = [
            NamedView {
                name: "layer_normalization/gamma".into(),
                tensor: crate::abi::TensorView::f32(&[3], &gamma),
            },
            NamedView {
                name: "layer_normalization/beta".into(),
                tensor: crate::abi::TensorView::f32(&[3], &beta),
            },
        ];
        let mut t = Tape::new();
        let params = Params::load(&mut t, &specs, &views).expect("loads");
        let x = t.constant(array![[1.0, 2.0, 3.0]]);
        let y = norm.apply(&mut t, &params, x).expect("applies");
        // Mean 2, variance 2/3: (x − 2) / sqrt(2/3 + 0.001).
        let d = (2.0f32 / 3.0 + 1e-3).sqrt();
        let expected = [-1.0 / d, 0.0, 1.0 / d];
        for (got, want) in t.value(y).iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{} vs {expected:?}", t.value(y));
        }
    }

    #[test]
    fn gradients_through_the_normalization_match_finite_differences() {
        let x = finite_value((3, 4), -2.0, 2.0, 11);
        let gamma = finite_value((1, 4), 0.5, 1.5, 12);
        let beta = finite_value((1, 4), -0.5, 0.5, 13);
        assert_gradients_match(&[x, gamma, beta], &|t, v| {
            let mean = t.mean(v[0], Over::Columns);
            let centered = t.sub(v[0], mean).expect("broadcasts");
            let squares = t.square(centered);
            let variance = t.mean(squares, Over::Columns);
            let variance = t.shift(variance, LAYER_NORM_EPSILON);
            let deviation = t.sqrt(variance);
            let normalized = t.div(centered, deviation).expect("broadcasts");
            let scaled = t.mul(normalized, v[1]).expect("broadcasts");
            t.add(scaled, v[2]).expect("broadcasts")
        });
    }
}
