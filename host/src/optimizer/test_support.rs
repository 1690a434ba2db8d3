//! What the optimizers' unit tests share: one variable, a few steps.

use estimator_plugin_api::abi::{Gradient, Initializer, Tensor, VarSpec};

use super::{Optimizer, OptimizerConfig, Slot};
use crate::variables::VariableStore;

/// Runs `config` (manifest YAML) for the given gradients on one variable w = 1; returns
/// w and the slots.
pub fn run(config: &str, grads: &[f32]) -> (f32, Vec<Slot>) {
    let config: OptimizerConfig = serde_yaml::from_str(config).expect("valid");
    config.validate().expect("valid values");
    let spec = VarSpec::new("w", &[1], Initializer::Constant(1.0));
    let mut vars = VariableStore::initialise(&[spec], 0).expect("valid");
    let mut opt = Optimizer::new(config, &vars);
    for (step, &g) in grads.iter().enumerate() {
        let gradient = Gradient::dense("w", Tensor::f32(vec![1], vec![g]));
        opt.apply(&mut vars, &[gradient], step as i64);
    }
    let w = vars.iter().next().expect("one variable").data[0];
    (w, opt.slots().to_vec())
}

pub fn close(a: f32, b: f32) -> bool {
    (a - b).abs() < 1e-6
}
