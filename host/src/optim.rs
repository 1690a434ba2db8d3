//! Optimizers, host-side as in TF's premade estimators: the model returns gradients and the
//! optimizer configured in the manifest applies them. Slots are named as TF 2 names them
//! (`training/<Optimizer>/<variable>/<slot>`) and are checkpointed with the variables.

use abi_stable::std_types::RVec;
use estimator_plugin_api::abi::Gradient;
use serde::Deserialize;

use crate::lr_schedule::LearningRate;
use crate::variables::VariableStore;

/// `optimizer:` in the manifest. Defaults follow Keras' legacy optimizers (TF 2 Estimator).
#[derive(Clone, Debug, PartialEq, Deserialize, serde::Serialize)]
#[serde(tag = "name", rename_all = "lowercase", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// Keras' SGD: with `momentum`, `v = momentum·v − lr·g; w += v` (Nesterov:
    /// `w += momentum·v − lr·g`).
    Sgd {
        #[serde(default = "lr_sgd")]
        learning_rate: LearningRate,
        #[serde(default)]
        momentum: f32,
        #[serde(default)]
        nesterov: bool,
        /// Scales all gradients together so their global norm is at most this (Keras'
        /// `global_clipnorm`, TF's `clip_by_global_norm`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        global_clipnorm: Option<f32>,
    },
    /// SGD with momentum 0.9 unless given (TF's MomentumOptimizer, Keras' update).
    Momentum {
        #[serde(default = "lr_sgd")]
        learning_rate: LearningRate,
        #[serde(default = "momentum")]
        momentum: f32,
        #[serde(default)]
        nesterov: bool,
        /// Scales all gradients together so their global norm is at most this (Keras'
        /// `global_clipnorm`, TF's `clip_by_global_norm`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        global_clipnorm: Option<f32>,
    },
    Adagrad {
        #[serde(default = "lr_001")]
        learning_rate: LearningRate,
        #[serde(default = "initial_accumulator")]
        initial_accumulator_value: f32,
        #[serde(default = "epsilon")]
        epsilon: f32,
        /// Scales all gradients together so their global norm is at most this (Keras'
        /// `global_clipnorm`, TF's `clip_by_global_norm`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        global_clipnorm: Option<f32>,
    },
    Adam {
        #[serde(default = "lr_001")]
        learning_rate: LearningRate,
        #[serde(default = "beta_1")]
        beta_1: f32,
        #[serde(default = "beta_2")]
        beta_2: f32,
        #[serde(default = "epsilon")]
        epsilon: f32,
        /// AMSGrad: divide by the largest second moment seen so far (slot `vhat`).
        #[serde(default)]
        amsgrad: bool,
        /// Scales all gradients together so their global norm is at most this (Keras'
        /// `global_clipnorm`, TF's `clip_by_global_norm`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        global_clipnorm: Option<f32>,
    },
    /// Keras' RMSprop.
    Rmsprop {
        #[serde(default = "lr_001")]
        learning_rate: LearningRate,
        #[serde(default = "rho")]
        rho: f32,
        #[serde(default)]
        momentum: f32,
        #[serde(default = "epsilon")]
        epsilon: f32,
        #[serde(default)]
        centered: bool,
        /// Scales all gradients together so their global norm is at most this (Keras'
        /// `global_clipnorm`, TF's `clip_by_global_norm`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        global_clipnorm: Option<f32>,
    },
    /// Keras' Ftrl (TF's linear estimators' default, learning rate 0.2 there).
    Ftrl {
        #[serde(default = "lr_001")]
        learning_rate: LearningRate,
        #[serde(default = "lr_power")]
        learning_rate_power: f32,
        #[serde(default = "initial_accumulator")]
        initial_accumulator_value: f32,
        #[serde(default)]
        l1_regularization_strength: f32,
        #[serde(default)]
        l2_regularization_strength: f32,
        #[serde(default)]
        beta: f32,
        /// TF's `ApplyFtrlV2`: adds `2 · strength · w` to the gradient in the linear term
        /// (the accumulator still sums the plain gradient's squares).
        #[serde(default)]
        l2_shrinkage_regularization_strength: f32,
        /// Scales all gradients together so their global norm is at most this (Keras'
        /// `global_clipnorm`, TF's `clip_by_global_norm`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        global_clipnorm: Option<f32>,
    },
}

fn momentum() -> f32 {
    0.9
}
fn rho() -> f32 {
    0.9
}
fn lr_power() -> f32 {
    -0.5
}

fn lr_sgd() -> LearningRate {
    LearningRate::Constant(0.01)
}
fn lr_001() -> LearningRate {
    LearningRate::Constant(0.001)
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
            global_clipnorm: None,
        }
    }
}

impl OptimizerConfig {
    /// TF 2's class name, used in slot names.
    pub fn tf_name(&self) -> &'static str {
        match self {
            OptimizerConfig::Sgd { .. } | OptimizerConfig::Momentum { .. } => "SGD",
            OptimizerConfig::Adagrad { .. } => "Adagrad",
            OptimizerConfig::Rmsprop { .. } => "RMSprop",
            OptimizerConfig::Ftrl { .. } => "Ftrl",
            OptimizerConfig::Adam { .. } => "Adam",
        }
    }

    pub fn global_clipnorm(&self) -> Option<f32> {
        match self {
            OptimizerConfig::Sgd {
                global_clipnorm, ..
            }
            | OptimizerConfig::Momentum {
                global_clipnorm, ..
            }
            | OptimizerConfig::Rmsprop {
                global_clipnorm, ..
            }
            | OptimizerConfig::Ftrl {
                global_clipnorm, ..
            }
            | OptimizerConfig::Adagrad {
                global_clipnorm, ..
            }
            | OptimizerConfig::Adam {
                global_clipnorm, ..
            } => *global_clipnorm,
        }
    }

    /// The learning rate for the update made at global step `step`.
    pub fn learning_rate_at(&self, step: i64) -> f32 {
        match self {
            OptimizerConfig::Sgd { learning_rate, .. }
            | OptimizerConfig::Momentum { learning_rate, .. }
            | OptimizerConfig::Rmsprop { learning_rate, .. }
            | OptimizerConfig::Ftrl { learning_rate, .. }
            | OptimizerConfig::Adagrad { learning_rate, .. }
            | OptimizerConfig::Adam { learning_rate, .. } => learning_rate.at(step),
        }
    }

    /// TF's argument checks: a positive learning rate and epsilon, betas in [0, 1), a
    /// non-negative initial accumulator.
    pub fn validate(&self) -> Result<(), String> {
        let positive = |name: &str, v: f32| match v.is_finite() && v > 0.0 {
            true => Ok(()),
            false => Err(format!("optimizer: {name} must be > 0, got {v}")),
        };
        let unit = |name: &str, v: f32| match (0.0..1.0).contains(&v) {
            true => Ok(()),
            false => Err(format!("optimizer: {name} must be in [0, 1), got {v}")),
        };
        let non_negative = |name: &str, v: f32| match v.is_finite() && v >= 0.0 {
            true => Ok(()),
            false => Err(format!("optimizer: {name} must be >= 0, got {v}")),
        };
        if let Some(c) = self.global_clipnorm() {
            positive("global_clipnorm", c)?;
        }
        match self {
            OptimizerConfig::Sgd {
                learning_rate,
                momentum,
                ..
            }
            | OptimizerConfig::Momentum {
                learning_rate,
                momentum,
                ..
            } => {
                learning_rate.validate()?;
                unit("momentum", *momentum)
            }
            OptimizerConfig::Rmsprop {
                learning_rate,
                rho,
                momentum,
                epsilon,
                ..
            } => {
                learning_rate.validate()?;
                positive("epsilon", *epsilon)?;
                unit("rho", *rho)?;
                unit("momentum", *momentum)
            }
            OptimizerConfig::Ftrl {
                learning_rate,
                learning_rate_power,
                initial_accumulator_value,
                l1_regularization_strength,
                l2_regularization_strength,
                l2_shrinkage_regularization_strength,
                beta,
                ..
            } => {
                learning_rate.validate()?;
                if learning_rate_power.is_nan() || *learning_rate_power > 0.0 {
                    return Err(format!(
                        "optimizer: learning_rate_power must be <= 0, got {learning_rate_power}"
                    ));
                }
                non_negative("initial_accumulator_value", *initial_accumulator_value)?;
                non_negative("l1_regularization_strength", *l1_regularization_strength)?;
                non_negative("l2_regularization_strength", *l2_regularization_strength)?;
                non_negative(
                    "l2_shrinkage_regularization_strength",
                    *l2_shrinkage_regularization_strength,
                )?;
                non_negative("beta", *beta)
            }
            OptimizerConfig::Adagrad {
                learning_rate,
                initial_accumulator_value,
                epsilon,
                ..
            } => {
                learning_rate.validate()?;
                positive("epsilon", *epsilon)?;
                match initial_accumulator_value.is_finite() && *initial_accumulator_value >= 0.0 {
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
                ..
            } => {
                learning_rate.validate()?;
                positive("epsilon", *epsilon)?;
                for (name, beta) in [("beta_1", *beta_1), ("beta_2", *beta_2)] {
                    if !(0.0..1.0).contains(&beta) {
                        return Err(format!("optimizer: {name} must be in [0, 1), got {beta}"));
                    }
                }
                Ok(())
            }
        }
    }

    /// Keras' slot names, in the order `apply` uses them.
    fn slot_names(&self) -> &'static [&'static str] {
        match *self {
            OptimizerConfig::Sgd { momentum: 0.0, .. } => &[],
            OptimizerConfig::Sgd { .. } | OptimizerConfig::Momentum { .. } => &["momentum"],
            OptimizerConfig::Adagrad { .. } => &["accumulator"],
            OptimizerConfig::Adam { amsgrad: false, .. } => &["m", "v"],
            OptimizerConfig::Adam { amsgrad: true, .. } => &["m", "v", "vhat"],
            OptimizerConfig::Rmsprop {
                momentum, centered, ..
            } => match (momentum > 0.0, centered) {
                (false, false) => &["rms"],
                (true, false) => &["rms", "momentum"],
                (false, true) => &["rms", "mg"],
                (true, true) => &["rms", "momentum", "mg"],
            },
            OptimizerConfig::Ftrl { .. } => &["accumulator", "linear"],
        }
    }

    fn slot_initial_value(&self, slot: &str) -> f32 {
        match (self, slot) {
            (
                OptimizerConfig::Adagrad {
                    initial_accumulator_value,
                    ..
                }
                | OptimizerConfig::Ftrl {
                    initial_accumulator_value,
                    ..
                },
                "accumulator",
            ) => *initial_accumulator_value,
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

/// One optimizer and the trainable variables it updates.
#[derive(Clone, Debug)]
pub struct Optimizer {
    config: OptimizerConfig,
    /// Slots grouped per trainable variable, in the order of `trainable`.
    slots: Vec<Slot>,
    trainable: Vec<usize>,
    /// Where each of `trainable`'s gradients is in the model's list of gradients.
    positions: Vec<usize>,
}

impl Optimizer {
    /// An optimizer for every trainable variable.
    pub fn new(config: OptimizerConfig, vars: &VariableStore) -> Self {
        let trainable = vars.trainable_indices();
        let positions = (0..trainable.len()).collect();
        Self::for_variables(config, vars, trainable, positions)
    }

    /// An optimizer for the variables `trainable`, whose gradients come at `positions` of
    /// the model's gradient list.
    pub fn for_variables(
        config: OptimizerConfig,
        vars: &VariableStore,
        trainable: Vec<usize>,
        positions: Vec<usize>,
    ) -> Self {
        let all: Vec<_> = vars.iter().collect();
        let mut slots = Vec::new();
        for &index in &trainable {
            let var = all[index];
            for slot in config.slot_names() {
                slots.push(Slot {
                    name: format!("training/{}/{}/{slot}", config.tf_name(), var.name),
                    variable: index,
                    shape: var.shape.clone(),
                    data: vec![config.slot_initial_value(slot); var.data.len()],
                });
            }
        }
        Optimizer {
            config,
            slots,
            trainable,
            positions,
        }
    }

    pub fn config(&self) -> &OptimizerConfig {
        &self.config
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

    /// Applies its variables' gradients from the model's list (checked by `spec_check`:
    /// F32, one per trainable variable in declaration order, dense with the variable's
    /// shape or row-sparse within it). `step` is the global step before this update
    /// (Adam's bias correction uses `step + 1`, as Keras' `iterations`).
    ///
    /// A row-sparse gradient updates only its rows, slots included, as Keras' sparse
    /// updates do (repeated rows are summed first); Adam, whose Keras sparse update
    /// decays every row's moments, applies it as the dense gradient it stands for.
    pub fn apply(&mut self, vars: &mut VariableStore, gradients: &[Gradient], step: i64) {
        let per_var = self.config.slot_names().len();
        let lr = self.config.learning_rate_at(step);
        let scale = self
            .config
            .global_clipnorm()
            .map(|c| {
                let values = self.positions.iter().map(|p| values_of(&gradients[*p]));
                clip_scale(values, c)
            })
            .unwrap_or(1.0);
        for (i, (&index, position)) in self.trainable.iter().zip(&self.positions).enumerate() {
            let gradient = &gradients[*position];
            let var = &mut vars.get_mut(index).data;
            let slots = &mut self.slots[i * per_var..(i + 1) * per_var];
            let rows = gradient.rows.as_ref().into_option();
            match rows {
                Some(rows) if !matches!(self.config, OptimizerConfig::Adam { .. }) => {
                    let summed = SummedRows::new(rows, values_of(gradient), var.len(), scale);
                    for (row, g) in summed.iter() {
                        let range = row * summed.width..(row + 1) * summed.width;
                        let mut parts = slot_parts(slots, range.clone());
                        let parts = &mut parts[..per_var];
                        update(&self.config, &mut var[range], g, parts, lr, step);
                    }
                }
                _ => {
                    let grad = dense_values(gradient, rows, var.len(), scale);
                    let mut parts = slot_parts(slots, 0..var.len());
                    let parts = &mut parts[..per_var];
                    update(&self.config, var, &grad, parts, lr, step);
                }
            }
        }
    }
}

/// The most slots an optimizer keeps per variable (RMSprop: rms, momentum, mg).
const MAX_SLOTS: usize = 3;

/// The slots' values for the elements `range` of their variable, without allocating
/// (only the first `slots.len()` are filled).
fn slot_parts(slots: &mut [Slot], range: std::ops::Range<usize>) -> [&mut [f32]; MAX_SLOTS] {
    let mut parts: [&mut [f32]; MAX_SLOTS] = Default::default();
    for (part, slot) in parts.iter_mut().zip(slots.iter_mut()) {
        *part = &mut slot.data[range.clone()];
    }
    parts
}

/// One update of weights `w` by gradient `g`, with the slots' values for the same
/// elements (in `slot_names` order).
fn update(
    config: &OptimizerConfig,
    w: &mut [f32],
    g: &[f32],
    slots: &mut [&mut [f32]],
    lr: f32,
    step: i64,
) {
    match config {
        OptimizerConfig::Sgd {
            momentum, nesterov, ..
        }
        | OptimizerConfig::Momentum {
            momentum, nesterov, ..
        } => match slots.first_mut() {
            None => {
                for (w, g) in w.iter_mut().zip(g) {
                    *w -= lr * g;
                }
            }
            Some(velocity) => {
                for ((w, g), v) in w.iter_mut().zip(g).zip(velocity.iter_mut()) {
                    *v = momentum * *v - lr * g;
                    *w += match nesterov {
                        true => momentum * *v - lr * g,
                        false => *v,
                    };
                }
            }
        },
        OptimizerConfig::Rmsprop {
            rho,
            momentum,
            epsilon,
            centered,
            ..
        } => rmsprop(w, g, slots, lr, *rho, *momentum, *epsilon, *centered),
        OptimizerConfig::Ftrl {
            learning_rate_power,
            l1_regularization_strength,
            l2_regularization_strength,
            l2_shrinkage_regularization_strength,
            beta,
            ..
        } => {
            // Keras folds beta into l2, as its Ftrl does.
            let l2 = l2_regularization_strength + beta / (2.0 * lr);
            let shrinkage = 2.0 * l2_shrinkage_regularization_strength;
            let (accumulators, linears) = slots.split_at_mut(1);
            let (acc, lin) = (&mut *accumulators[0], &mut *linears[0]);
            for (((w, g), a), l) in w.iter_mut().zip(g).zip(acc.iter_mut()).zip(lin.iter_mut()) {
                let new_a = *a + g * g;
                let power = |x: f32| x.powf(-learning_rate_power);
                let shrunk = match shrinkage == 0.0 {
                    true => *g,
                    false => g + shrinkage * *w,
                };
                *l += shrunk - (power(new_a) - power(*a)) / lr * *w;
                let quadratic = power(new_a) / lr + 2.0 * l2;
                *w = match l.abs() > *l1_regularization_strength {
                    true => (l.signum() * l1_regularization_strength - *l) / quadratic,
                    false => 0.0,
                };
                *a = new_a;
            }
        }
        OptimizerConfig::Adagrad { epsilon, .. } => {
            for ((w, g), a) in w.iter_mut().zip(g).zip(slots[0].iter_mut()) {
                *a += g * g;
                *w -= lr * g / (a.sqrt() + epsilon);
            }
        }
        OptimizerConfig::Adam {
            beta_1,
            beta_2,
            epsilon,
            ..
        } => {
            let t = (step + 1) as i32;
            let lr_t = lr * (1.0 - beta_2.powi(t)).sqrt() / (1.0 - beta_1.powi(t));
            let (m_slot, rest) = slots.split_at_mut(1);
            let (v_slot, vhat_slot) = rest.split_at_mut(1);
            let (m, v) = (&mut *m_slot[0], &mut *v_slot[0]);
            let mut vhat = vhat_slot.first_mut().map(|s| &mut **s);
            for (i, ((w, g), m)) in w.iter_mut().zip(g).zip(m.iter_mut()).enumerate() {
                *m = beta_1 * *m + (1.0 - beta_1) * g;
                let v = &mut v[i];
                *v = beta_2 * *v + (1.0 - beta_2) * g * g;
                // AMSGrad divides by the largest second moment so far (TF's
                // ApplyAdamWithAmsgrad).
                let second = match vhat.as_deref_mut() {
                    Some(vhat) => {
                        vhat[i] = vhat[i].max(*v);
                        vhat[i]
                    }
                    None => *v,
                };
                *w -= lr_t * *m / (second.sqrt() + epsilon);
            }
        }
    }
}

fn values_of(g: &Gradient) -> &[f32] {
    g.values.as_f32().unwrap_or_default()
}

/// A gradient as the dense values of its whole variable (`len` of them), scaled:
/// borrowed when nothing changes them.
fn dense_values<'g>(
    g: &'g Gradient,
    rows: Option<&RVec<i64>>,
    len: usize,
    scale: f32,
) -> std::borrow::Cow<'g, [f32]> {
    let values = values_of(g);
    match rows {
        None if scale == 1.0 => std::borrow::Cow::Borrowed(values),
        None => values.iter().map(|v| v * scale).collect(),
        Some(rows) => {
            let mut dense = vec![0.0; len];
            let summed = SummedRows::new(rows, values, len, scale);
            for (row, g) in summed.iter() {
                dense[row * summed.width..(row + 1) * summed.width].copy_from_slice(g);
            }
            std::borrow::Cow::Owned(dense)
        }
    }
}

/// A row-sparse gradient with each row once, its parts summed and scaled, in row order.
struct SummedRows {
    rows: Vec<usize>,
    /// `rows.len() × width` values.
    values: Vec<f32>,
    width: usize,
}

impl SummedRows {
    /// Sums the parts of `rows` (row indices into a variable of `len` values, checked by
    /// `spec_check`; any past it are dropped) with `values` row after row.
    fn new(rows: &[i64], values: &[f32], len: usize, scale: f32) -> Self {
        let width = values.len().checked_div(rows.len()).unwrap_or(0);
        let height = len.checked_div(width).unwrap_or(0);
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by_key(|&i| rows[i]);
        let mut out = SummedRows {
            rows: Vec::with_capacity(rows.len()),
            values: Vec::with_capacity(values.len()),
            width,
        };
        for i in order {
            let row = rows[i] as usize;
            if row >= height {
                continue;
            }
            let part = &values[i * width..(i + 1) * width];
            if out.rows.last() != Some(&row) {
                out.rows.push(row);
                out.values.extend(std::iter::repeat_n(0.0, width));
            }
            let start = out.values.len() - width;
            for (s, v) in out.values[start..].iter_mut().zip(part) {
                *s += v * scale;
            }
        }
        out
    }

    fn iter(&self) -> impl Iterator<Item = (usize, &[f32])> {
        self.rows
            .iter()
            .copied()
            .zip(self.values.chunks(self.width.max(1)))
    }
}

/// TF's `clip_by_global_norm`: `clip_norm / max(global_norm, clip_norm)`, where the
/// global norm is that of all the optimizer's gradients together.
fn clip_scale<'g>(gradients: impl Iterator<Item = &'g [f32]>, clip_norm: f32) -> f32 {
    let squares: f64 = gradients
        .flatten()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum();
    let norm = squares.sqrt();
    (f64::from(clip_norm) / norm.max(f64::from(clip_norm))) as f32
}

/// Keras' RMSprop: `rms` always; `momentum` when momentum > 0 (TF's ApplyRMSProp, epsilon
/// inside the root); `mg` when centered.
#[allow(clippy::too_many_arguments)]
fn rmsprop(
    var: &mut [f32],
    grad: &[f32],
    slots: &mut [&mut [f32]],
    lr: f32,
    rho: f32,
    momentum: f32,
    epsilon: f32,
    centered: bool,
) {
    let (rms, rest) = slots.split_at_mut(1);
    let (mut mom, mut mg) = match (momentum > 0.0, centered) {
        (true, true) => {
            let (m, g) = rest.split_at_mut(1);
            (Some(&mut *m[0]), Some(&mut *g[0]))
        }
        (true, false) => (rest.first_mut().map(|s| &mut **s), None),
        (false, true) => (None, rest.first_mut().map(|s| &mut **s)),
        (false, false) => (None, None),
    };
    for (i, (w, g)) in var.iter_mut().zip(grad.iter()).enumerate() {
        let ms = &mut rms[0][i];
        *ms = rho * *ms + (1.0 - rho) * g * g;
        let mut denominator = *ms;
        if let Some(mg) = mg.as_deref_mut() {
            mg[i] = rho * mg[i] + (1.0 - rho) * g;
            denominator -= mg[i] * mg[i];
        }
        match mom.as_deref_mut() {
            Some(mom) => {
                mom[i] = momentum * mom[i] + lr * g / (denominator + epsilon).sqrt();
                *w -= mom[i];
            }
            None => *w -= lr * g / (denominator.sqrt() + epsilon),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use estimator_plugin_api::abi::{Initializer, Tensor, VarSpec};

    fn grad(v: f32) -> Vec<Gradient> {
        vec![Gradient::dense("w", Tensor::f32(vec![1], vec![v]))]
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
        let config = OptimizerConfig::Sgd {
            learning_rate: 0.1.into(),
            momentum: 0.0,
            nesterov: false,
            global_clipnorm: None,
        };
        let mut opt = Optimizer::new(config, &vars);
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
            learning_rate: 0.01.into(),
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
            amsgrad: false,
            global_clipnorm: None,
        };
        let mut opt = Optimizer::new(config, &vars);
        opt.apply(&mut vars, &grad(0.5), 0);
        // m = 0.05, v = 0.00025, lr_t = 0.01 * sqrt(0.001) / 0.1; step = lr_t * m / sqrt(v) ~ 0.01
        assert!((value(&vars) - 0.99).abs() < 1e-5, "{}", value(&vars));
    }

    /// A `[3, 2]` table of ones and `config`'s optimizer for it.
    fn table(config: &str) -> (VariableStore, Optimizer) {
        let vars = VariableStore::initialise(&[VarSpec::new("t", &[3, 2], Initializer::Ones)], 0)
            .expect("valid");
        let config: OptimizerConfig = serde_yaml::from_str(config).expect("valid");
        let opt = Optimizer::new(config, &vars);
        (vars, opt)
    }

    fn data(vars: &VariableStore) -> Vec<f32> {
        vars.iter().next().expect("one variable").data.clone()
    }

    #[test]
    fn a_row_gradient_updates_only_its_rows_and_sums_repeats() {
        // Rows 2, 0, 2: row 2 gets (1, 1) + (3, 3); row 1 is not touched, slots included.
        let sparse = Gradient::sparse(
            "t",
            vec![2, 0, 2],
            Tensor::f32(vec![3, 2], vec![1.0, 1.0, 2.0, 2.0, 3.0, 3.0]),
        );
        let (mut vars, mut opt) = table("{ name: adagrad, learning_rate: 0.1 }");
        opt.apply(&mut vars, std::slice::from_ref(&sparse), 0);
        let moved = |g: f32| 1.0 - 0.1 * g / ((0.1 + g * g).sqrt() + 1e-7);
        let expected = [moved(2.0), moved(2.0), 1.0, 1.0, moved(4.0), moved(4.0)];
        for (got, want) in data(&vars).iter().zip(expected) {
            assert!(
                (got - want).abs() < 1e-6,
                "{:?} vs {expected:?}",
                data(&vars)
            );
        }
        assert_eq!(
            opt.slots()[0].data[2..4],
            [0.1, 0.1],
            "row 1's accumulator untouched"
        );
        // With momentum, untouched rows keep their velocity, as Keras' sparse update.
        let (mut vars, mut opt) = table("{ name: momentum, learning_rate: 0.1 }");
        opt.apply(&mut vars, &[sparse], 0);
        assert_eq!(data(&vars)[2..4], [1.0, 1.0]);
        assert_eq!(opt.slots()[0].data[2..4], [0.0, 0.0]);
    }

    #[test]
    fn adam_applies_a_row_gradient_as_the_dense_gradient_it_stands_for() {
        let sparse = Gradient::sparse("t", vec![1], Tensor::f32(vec![1, 2], vec![0.5, -0.5]));
        let dense = Gradient::dense(
            "t",
            Tensor::f32(vec![3, 2], vec![0.0, 0.0, 0.5, -0.5, 0.0, 0.0]),
        );
        let adam = "{ name: adam, learning_rate: 0.01 }";
        let (mut a, mut opt_a) = table(adam);
        let (mut b, mut opt_b) = table(adam);
        for step in 0..3 {
            opt_a.apply(&mut a, std::slice::from_ref(&sparse), step);
            opt_b.apply(&mut b, std::slice::from_ref(&dense), step);
        }
        assert_eq!(data(&a), data(&b));
        assert_eq!(opt_a.slots(), opt_b.slots());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// For optimizers whose step is 0 where the gradient is 0 (SGD, Adagrad), a row
            /// gradient must do exactly what its dense equivalent does.
            #[test]
            fn row_gradients_match_their_dense_equivalent(
                rows in proptest::collection::vec((0i64..3, -2f32..2.0, -2f32..2.0), 1..6),
                adagrad in any::<bool>(),
            ) {
                let config = match adagrad {
                    true => "{ name: adagrad, learning_rate: 0.1 }",
                    false => "{ name: sgd, learning_rate: 0.1 }",
                };
                let indices: Vec<i64> = rows.iter().map(|r| r.0).collect();
                let values: Vec<f32> = rows.iter().flat_map(|r| [r.1, r.2]).collect();
                let sparse = Gradient::sparse("t", indices.clone(), Tensor::f32(vec![rows.len(), 2], values.clone()));
                // The dense equivalent, by scatter-adding each part in order.
                let mut dense_values = vec![0.0f32; 6];
                for (&row, part) in indices.iter().zip(values.chunks(2)) {
                    for (k, v) in part.iter().enumerate() {
                        dense_values[row as usize * 2 + k] += v;
                    }
                }
                let dense = Gradient::dense("t", Tensor::f32(vec![3, 2], dense_values));
                let (mut a, mut opt_a) = table(config);
                let (mut b, mut opt_b) = table(config);
                opt_a.apply(&mut a, std::slice::from_ref(&sparse), 0);
                opt_b.apply(&mut b, std::slice::from_ref(&dense), 0);
                prop_assert_eq!(data(&a), data(&b));
                prop_assert_eq!(opt_a.slots(), opt_b.slots());
            }
        }
    }

    /// Runs `config` for the given gradients on w = 1; returns w and the slots.
    fn run(config: &str, grads: &[f32]) -> (f32, Vec<Slot>) {
        let config: OptimizerConfig = serde_yaml::from_str(config).expect("valid");
        config.validate().expect("valid values");
        let mut vars = store(1.0);
        let mut opt = Optimizer::new(config, &vars);
        for (step, &g) in grads.iter().enumerate() {
            opt.apply(&mut vars, &grad(g), step as i64);
        }
        (value(&vars), opt.slots().to_vec())
    }

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn momentum_and_nesterov_match_keras() {
        // v1 = -0.1·2 = -0.2, w = 0.8; v2 = 0.9·-0.2 - 0.1·1 = -0.28, w = 0.52.
        let (w, slots) = run("{ name: momentum, learning_rate: 0.1 }", &[2.0, 1.0]);
        assert!(close(w, 0.52), "{w}");
        assert_eq!(slots[0].name, "training/SGD/w/momentum");
        assert!(close(slots[0].data[0], -0.28));
        // Nesterov: w1 = 1 + 0.9·-0.2 - 0.2 = 0.62.
        let (w, _) = run(
            "{ name: sgd, learning_rate: 0.1, momentum: 0.9, nesterov: true }",
            &[2.0],
        );
        assert!(close(w, 0.62), "{w}");
        // Plain SGD keeps no slot.
        assert!(run("{ name: sgd }", &[1.0]).1.is_empty());
    }

    #[test]
    fn rmsprop_matches_keras() {
        // rms = 0.1·4 = 0.4; w = 1 - 0.01·2 / (sqrt(0.4) + 1e-7).
        let (w, slots) = run("{ name: rmsprop, learning_rate: 0.01 }", &[2.0]);
        assert!(close(w, 1.0 - 0.02 / (0.4f32.sqrt() + 1e-7)), "{w}");
        assert_eq!(slots[0].name, "training/RMSprop/w/rms");
        // Centered: mg = 0.2, denominator 0.4 - 0.04 = 0.36.
        let (w, _) = run(
            "{ name: rmsprop, learning_rate: 0.01, centered: true }",
            &[2.0],
        );
        assert!(close(w, 1.0 - 0.02 / (0.36f32.sqrt() + 1e-7)), "{w}");
        // With momentum: mom = 0.01·2 / sqrt(0.4 + 1e-7); w -= mom.
        let (w, slots) = run(
            "{ name: rmsprop, learning_rate: 0.01, momentum: 0.5 }",
            &[2.0],
        );
        assert!(close(w, 1.0 - 0.02 / (0.4f32 + 1e-7).sqrt()), "{w}");
        assert_eq!(slots[1].name, "training/RMSprop/w/momentum");
    }

    #[test]
    fn ftrl_matches_tf_apply_ftrl() {
        // accum 0.1 → 4.1; linear = 2 - (sqrt(4.1) - sqrt(0.1)) / 0.1 · 1;
        // quadratic = sqrt(4.1) / 0.1 + 2·0.5; |linear| > l1 → w = (sign·0.1 - linear) / quadratic.
        let (w, slots) = run(
            "{ name: ftrl, learning_rate: 0.1, l1_regularization_strength: 0.1, l2_regularization_strength: 0.5 }",
            &[2.0],
        );
        let linear = 2.0 - (4.1f32.sqrt() - 0.1f32.sqrt()) / 0.1;
        let quadratic = 4.1f32.sqrt() / 0.1 + 1.0;
        assert!(
            close(w, (linear.signum() * 0.1 - linear) / quadratic),
            "{w}"
        );
        assert_eq!(slots[0].name, "training/Ftrl/w/accumulator");
        assert!(close(slots[0].data[0], 4.1) && close(slots[1].data[0], linear));
        // A large l1 zeroes the weight.
        let (w, _) = run(
            "{ name: ftrl, learning_rate: 0.1, l1_regularization_strength: 100 }",
            &[2.0],
        );
        assert_eq!(w, 0.0);
    }

    /// One trajectory of `data/tf_reference/optimizer_trajectories.json`.
    #[derive(serde::Deserialize)]
    struct Trajectory {
        name: String,
        keras_class: String,
        config: serde_json::Map<String, serde_json::Value>,
        initial: Vec<f32>,
        gradients: Vec<Vec<f32>>,
        after_each_step: Vec<AfterStep>,
    }

    #[derive(serde::Deserialize)]
    struct AfterStep {
        var: Vec<f32>,
        slots: std::collections::BTreeMap<String, Vec<f32>>,
    }

    #[test]
    fn every_optimizer_follows_keras_for_six_steps_slots_included() {
        // Computed by TF 2.15's Keras optimizers: data/tf_reference/README.md.
        #[derive(serde::Deserialize)]
        struct Reference {
            trajectories: Vec<Trajectory>,
        }
        let reference: Reference = serde_json::from_str(include_str!(
            "../../data/tf_reference/optimizer_trajectories.json"
        ))
        .expect("reference JSON");
        assert_eq!(reference.trajectories.len(), 12);
        for t in &reference.trajectories {
            let mut config = t.config.clone();
            config.insert("name".into(), t.keras_class.to_lowercase().into());
            let config: OptimizerConfig =
                serde_json::from_value(config.into()).expect("a config the manifest takes");
            config.validate().expect("valid values");
            let spec = VarSpec::new("w", &[t.initial.len()], Initializer::Zeros);
            let mut vars = VariableStore::initialise(&[spec], 0).expect("valid");
            vars.get_mut(0).data.copy_from_slice(&t.initial);
            let mut opt = Optimizer::new(config, &vars);
            for (step, (g, expected)) in t.gradients.iter().zip(&t.after_each_step).enumerate() {
                let gradient = Gradient::dense("w", Tensor::f32(vec![g.len()], g.clone()));
                opt.apply(&mut vars, &[gradient], step as i64);
                let at = format!("{} after step {}", t.name, step + 1);
                assert_close(&vars.get_mut(0).data, &expected.var, &at);
                let slots: std::collections::BTreeMap<&str, &[f32]> = opt
                    .slots()
                    .iter()
                    .map(|s| (s.name.rsplit('/').next().unwrap_or(""), s.data.as_slice()))
                    .collect();
                let names: Vec<&str> = slots.keys().copied().collect();
                let expected_names: Vec<&str> = expected.slots.keys().map(String::as_str).collect();
                assert_eq!(names, expected_names, "{at}: slots");
                for (name, values) in &expected.slots {
                    assert_close(slots[name.as_str()], values, &format!("{at}: {name}"));
                }
            }
        }
    }

    /// Within float32 rounding of TF's values: 2e-6 relative, 1e-7 absolute near 0.
    fn assert_close(actual: &[f32], expected: &[f32], what: &str) {
        assert_eq!(actual.len(), expected.len(), "{what}");
        for (a, e) in actual.iter().zip(expected) {
            assert!(
                (a - e).abs() <= 2e-6 * e.abs().max(0.05),
                "{what}: {actual:?} vs TF's {expected:?}"
            );
        }
    }

    #[test]
    fn global_clipnorm_scales_all_gradients_together() {
        let specs = [
            VarSpec::new("a", &[1], Initializer::Constant(1.0)),
            VarSpec::new("b", &[1], Initializer::Constant(1.0)),
        ];
        let mut vars = VariableStore::initialise(&specs, 0).expect("valid");
        let config: OptimizerConfig =
            serde_yaml::from_str("{ name: sgd, learning_rate: 1.0, global_clipnorm: 1.0 }")
                .expect("valid");
        let mut opt = Optimizer::new(config, &vars);
        // Global norm of (3, 4) is 5: both scale by 1/5, to (0.6, 0.8).
        let grads = vec![
            Gradient::dense("a", Tensor::f32(vec![1], vec![3.0])),
            Gradient::dense("b", Tensor::f32(vec![1], vec![4.0])),
        ];
        opt.apply(&mut vars, &grads, 0);
        let values: Vec<f32> = vars.iter().map(|v| v.data[0]).collect();
        assert!(close(values[0], 0.4) && close(values[1], 0.2), "{values:?}");
        // Under the norm: untouched.
        let small = vec![
            Gradient::dense("a", Tensor::f32(vec![1], vec![0.3])),
            Gradient::dense("b", Tensor::f32(vec![1], vec![0.4])),
        ];
        opt.apply(&mut vars, &small, 1);
        let values: Vec<f32> = vars.iter().map(|v| v.data[0]).collect();
        assert!(
            close(values[0], 0.1) && close(values[1], -0.2),
            "{values:?}"
        );
    }

    #[test]
    fn out_of_range_arguments_are_refused() {
        for (yaml, message) in [
            (
                "{ name: momentum, momentum: 1.0 }",
                "momentum must be in [0, 1), got 1",
            ),
            (
                "{ name: rmsprop, rho: 1.5 }",
                "rho must be in [0, 1), got 1.5",
            ),
            (
                "{ name: rmsprop, epsilon: 0 }",
                "epsilon must be > 0, got 0",
            ),
            (
                "{ name: ftrl, learning_rate_power: 0.5 }",
                "learning_rate_power must be <= 0, got 0.5",
            ),
            (
                "{ name: ftrl, l1_regularization_strength: -1 }",
                "l1_regularization_strength must be >= 0, got -1",
            ),
            (
                "{ name: ftrl, initial_accumulator_value: -0.1 }",
                "initial_accumulator_value must be >= 0, got -0.1",
            ),
            (
                "{ name: ftrl, l2_shrinkage_regularization_strength: -1 }",
                "l2_shrinkage_regularization_strength must be >= 0, got -1",
            ),
            (
                "{ name: adagrad, epsilon: -1e-7 }",
                "epsilon must be > 0, got -0.0000001",
            ),
            (
                "{ name: adagrad, initial_accumulator_value: -1 }",
                "initial_accumulator_value must be >= 0, got -1",
            ),
            ("{ name: adam, epsilon: 0 }", "epsilon must be > 0, got 0"),
            (
                "{ name: adam, beta_1: 1.0 }",
                "beta_1 must be in [0, 1), got 1",
            ),
            (
                "{ name: adam, beta_1: -0.1 }",
                "beta_1 must be in [0, 1), got -0.1",
            ),
            (
                "{ name: adam, beta_2: 1.0 }",
                "beta_2 must be in [0, 1), got 1",
            ),
            (
                "{ name: sgd, global_clipnorm: 0 }",
                "global_clipnorm must be > 0, got 0",
            ),
        ] {
            let config: OptimizerConfig = serde_yaml::from_str(yaml).expect("parses");
            assert_eq!(
                config.validate(),
                Err(format!("optimizer: {message}")),
                "{yaml}"
            );
        }
        // The edges that are allowed.
        for yaml in [
            "{ name: adam, beta_1: 0, beta_2: 0.999999 }",
            "{ name: adagrad, initial_accumulator_value: 0 }",
            "{ name: ftrl, learning_rate_power: 0 }",
        ] {
            let config: OptimizerConfig = serde_yaml::from_str(yaml).expect("parses");
            assert_eq!(config.validate(), Ok(()), "{yaml}");
        }
    }

    #[test]
    fn manifest_names_and_defaults() {
        let c: OptimizerConfig = serde_yaml::from_str("{ name: adam }").expect("valid");
        assert_eq!(
            c,
            OptimizerConfig::Adam {
                learning_rate: 0.001.into(),
                beta_1: 0.9,
                beta_2: 0.999,
                epsilon: 1e-7,
                amsgrad: false,
                global_clipnorm: None,
            }
        );
        let err = serde_yaml::from_str::<OptimizerConfig>("{ name: sgd, decay: 1 }").unwrap_err();
        assert!(err.to_string().contains("unknown field `decay`"), "{err}");
    }
}
