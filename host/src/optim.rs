//! Optimizers, host-side as in TF's premade estimators: the model returns gradients and the
//! optimizer configured in the manifest applies them. Slots are named as TF 2 names them
//! (`training/<Optimizer>/<variable>/<slot>`) and are checkpointed with the variables.

use estimator_plugin_api::abi::NamedTensor;
use serde::Deserialize;

use crate::variables::VariableStore;

/// `optimizer:` in the manifest. Defaults follow Keras' legacy optimizers (TF 2 Estimator).
#[derive(Clone, Debug, PartialEq, Deserialize, serde::Serialize)]
#[serde(tag = "name", rename_all = "lowercase", deny_unknown_fields)]
pub enum OptimizerConfig {
    Sgd {
        #[serde(default = "lr_sgd")]
        learning_rate: f32,
    },
    Adagrad {
        #[serde(default = "lr_001")]
        learning_rate: f32,
        #[serde(default = "initial_accumulator")]
        initial_accumulator_value: f32,
        #[serde(default = "epsilon")]
        epsilon: f32,
    },
    Adam {
        #[serde(default = "lr_001")]
        learning_rate: f32,
        #[serde(default = "beta_1")]
        beta_1: f32,
        #[serde(default = "beta_2")]
        beta_2: f32,
        #[serde(default = "epsilon")]
        epsilon: f32,
    },
}

fn lr_sgd() -> f32 {
    0.01
}
fn lr_001() -> f32 {
    0.001
}
fn initial_accumulator() -> f32 {
    0.1
}
fn epsilon() -> f32 {
    1e-7
}
fn beta_1() -> f32 {
    0.9
}
fn beta_2() -> f32 {
    0.999
}

impl Default for OptimizerConfig {
    /// TF's DNN estimators default to Adagrad with learning rate 0.001.
    fn default() -> Self {
        OptimizerConfig::Adagrad {
            learning_rate: lr_001(),
            initial_accumulator_value: initial_accumulator(),
            epsilon: epsilon(),
        }
    }
}

impl OptimizerConfig {
    /// TF 2's class name, used in slot names.
    pub fn tf_name(&self) -> &'static str {
        match self {
            OptimizerConfig::Sgd { .. } => "SGD",
            OptimizerConfig::Adagrad { .. } => "Adagrad",
            OptimizerConfig::Adam { .. } => "Adam",
        }
    }

    pub fn learning_rate(&self) -> f32 {
        match *self {
            OptimizerConfig::Sgd { learning_rate }
            | OptimizerConfig::Adagrad { learning_rate, .. }
            | OptimizerConfig::Adam { learning_rate, .. } => learning_rate,
        }
    }

    /// TF's argument checks: a positive learning rate and epsilon, betas in [0, 1), a
    /// non-negative initial accumulator.
    pub fn validate(&self) -> Result<(), String> {
        let positive = |name: &str, v: f32| match v.is_finite() && v > 0.0 {
            true => Ok(()),
            false => Err(format!("optimizer: {name} must be > 0, got {v}")),
        };
        match *self {
            OptimizerConfig::Sgd { learning_rate } => positive("learning_rate", learning_rate),
            OptimizerConfig::Adagrad {
                learning_rate,
                initial_accumulator_value,
                epsilon,
            } => {
                positive("learning_rate", learning_rate)?;
                positive("epsilon", epsilon)?;
                match initial_accumulator_value.is_finite() && initial_accumulator_value >= 0.0 {
                    true => Ok(()),
                    false => Err(format!(
                        "optimizer: initial_accumulator_value must be >= 0, got {initial_accumulator_value}"
                    )),
                }
            }
            OptimizerConfig::Adam {
                learning_rate,
                beta_1,
                beta_2,
                epsilon,
            } => {
                positive("learning_rate", learning_rate)?;
                positive("epsilon", epsilon)?;
                for (name, beta) in [("beta_1", beta_1), ("beta_2", beta_2)] {
                    if !(0.0..1.0).contains(&beta) {
                        return Err(format!("optimizer: {name} must be in [0, 1), got {beta}"));
                    }
                }
                Ok(())
            }
        }
    }

    fn slot_names(&self) -> &'static [&'static str] {
        match self {
            OptimizerConfig::Sgd { .. } => &[],
            OptimizerConfig::Adagrad { .. } => &["accumulator"],
            OptimizerConfig::Adam { .. } => &["m", "v"],
        }
    }

    fn slot_initial_value(&self) -> f32 {
        match self {
            OptimizerConfig::Adagrad {
                initial_accumulator_value,
                ..
            } => *initial_accumulator_value,
            _ => 0.0,
        }
    }
}

/// A named slot of one trainable variable.
#[derive(Clone, Debug, PartialEq)]
pub struct Slot {
    pub name: String,
    pub variable: usize,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

#[derive(Clone, Debug)]
pub struct Optimizer {
    config: OptimizerConfig,
    /// Slots grouped per trainable variable, in the order of `trainable`.
    slots: Vec<Slot>,
    trainable: Vec<usize>,
}

impl Optimizer {
    pub fn new(config: OptimizerConfig, vars: &VariableStore) -> Self {
        let trainable = vars.trainable_indices();
        let all: Vec<_> = vars.iter().collect();
        let mut slots = Vec::new();
        for &index in &trainable {
            let var = all[index];
            for slot in config.slot_names() {
                slots.push(Slot {
                    name: format!("training/{}/{}/{slot}", config.tf_name(), var.name),
                    variable: index,
                    shape: var.shape.clone(),
                    data: vec![config.slot_initial_value(); var.data.len()],
                });
            }
        }
        Optimizer {
            config,
            slots,
            trainable,
        }
    }

    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    pub fn slots_mut(&mut self) -> &mut [Slot] {
        &mut self.slots
    }

    /// Indices of the variables that receive gradients, in gradient order.
    pub fn trainable(&self) -> &[usize] {
        &self.trainable
    }

    /// Applies one gradient per trainable variable, as a model_fn returned them (checked by
    /// `spec_check`: F32, in declaration order, with the variables' shapes). `step` is the
    /// global step before this update (Adam's bias correction uses `step + 1`, as Keras'
    /// `iterations`).
    pub fn apply(&mut self, vars: &mut VariableStore, gradients: &[NamedTensor], step: i64) {
        let per_var = self.config.slot_names().len();
        for (i, (&index, gradient)) in self.trainable.iter().zip(gradients).enumerate() {
            let grad = gradient.tensor.as_f32().unwrap_or_default();
            let var = &mut vars.get_mut(index).data;
            let slots = &mut self.slots[i * per_var..(i + 1) * per_var];
            match self.config {
                OptimizerConfig::Sgd { learning_rate } => {
                    for (w, g) in var.iter_mut().zip(grad.iter()) {
                        *w -= learning_rate * g;
                    }
                }
                OptimizerConfig::Adagrad {
                    learning_rate,
                    epsilon,
                    ..
                } => {
                    let acc = &mut slots[0].data;
                    for ((w, g), a) in var.iter_mut().zip(grad.iter()).zip(acc.iter_mut()) {
                        *a += g * g;
                        *w -= learning_rate * g / (a.sqrt() + epsilon);
                    }
                }
                OptimizerConfig::Adam {
                    learning_rate,
                    beta_1,
                    beta_2,
                    epsilon,
                } => {
                    let t = (step + 1) as i32;
                    let lr_t =
                        learning_rate * (1.0 - beta_2.powi(t)).sqrt() / (1.0 - beta_1.powi(t));
                    let (m_slot, v_slot) = slots.split_at_mut(1);
                    let (m, v) = (&mut m_slot[0].data, &mut v_slot[0].data);
                    for (((w, g), m), v) in var
                        .iter_mut()
                        .zip(grad.iter())
                        .zip(m.iter_mut())
                        .zip(v.iter_mut())
                    {
                        *m = beta_1 * *m + (1.0 - beta_1) * g;
                        *v = beta_2 * *v + (1.0 - beta_2) * g * g;
                        *w -= lr_t * *m / (v.sqrt() + epsilon);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use estimator_plugin_api::abi::{Initializer, Tensor, VarSpec};

    fn grad(v: f32) -> Vec<NamedTensor> {
        vec![NamedTensor::new("w", Tensor::f32(vec![1], vec![v]))]
    }

    fn store(value: f32) -> VariableStore {
        VariableStore::initialise(&[VarSpec::new("w", &[1], Initializer::Constant(value))], 0)
            .expect("valid")
    }

    fn value(vars: &VariableStore) -> f32 {
        vars.iter().next().expect("one variable").data[0]
    }

    #[test]
    fn sgd_steps_against_the_gradient() {
        let mut vars = store(1.0);
        let mut opt = Optimizer::new(OptimizerConfig::Sgd { learning_rate: 0.1 }, &vars);
        opt.apply(&mut vars, &grad(2.0), 0);
        assert!((value(&vars) - 0.8).abs() < 1e-7);
    }

    #[test]
    fn adagrad_matches_hand_computation_with_tf_initial_accumulator() {
        let mut vars = store(1.0);
        let mut opt = Optimizer::new(OptimizerConfig::default(), &vars);
        assert_eq!(opt.slots()[0].name, "training/Adagrad/w/accumulator");
        opt.apply(&mut vars, &grad(2.0), 0);
        // acc = 0.1 + 4 = 4.1; w = 1 - 0.001 * 2 / (sqrt(4.1) + 1e-7)
        let expected = 1.0 - 0.001 * 2.0 / (4.1f32.sqrt() + 1e-7);
        assert!((value(&vars) - expected).abs() < 1e-7);
        assert!((opt.slots()[0].data[0] - 4.1).abs() < 1e-6);
    }

    #[test]
    fn adam_first_step_moves_by_the_learning_rate() {
        let mut vars = store(1.0);
        let config = OptimizerConfig::Adam {
            learning_rate: 0.01,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
        };
        let mut opt = Optimizer::new(config, &vars);
        opt.apply(&mut vars, &grad(0.5), 0);
        // m = 0.05, v = 0.00025, lr_t = 0.01 * sqrt(0.001) / 0.1; step = lr_t * m / sqrt(v) ~ 0.01
        assert!((value(&vars) - 0.99).abs() < 1e-5, "{}", value(&vars));
    }

    #[test]
    fn manifest_names_and_defaults() {
        let c: OptimizerConfig = serde_yaml::from_str("{ name: adam }").expect("valid");
        assert_eq!(
            c,
            OptimizerConfig::Adam {
                learning_rate: 0.001,
                beta_1: 0.9,
                beta_2: 0.999,
                epsilon: 1e-7
            }
        );
        let err =
            serde_yaml::from_str::<OptimizerConfig>("{ name: sgd, momentum: 1 }").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `momentum`"),
            "{err}"
        );
    }
}
