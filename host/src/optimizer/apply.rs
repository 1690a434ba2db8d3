//! Applying gradients: one optimizer over its variables, with their slots, dense or
//! row-sparse gradients, and gradient clipping. Slots are named as TF 2 names them
//! (`training/<Optimizer>/<variable>/<slot>`) and are checkpointed with the variables.

use abi_stable::std_types::RVec;
use estimator_plugin_api::abi::Gradient;

use super::config::OptimizerConfig;
use crate::variables::VariableStore;

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
    /// The updates made so far (Keras' `iterations`), which Adam's bias correction uses.
    iterations: i64,
}

impl Optimizer {
    /// An optimizer for every trainable variable (the runtime builds one per part, with
    /// `for_variables`; tests and benchmarks use this).
    #[cfg(any(test, feature = "bench"))]
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
            for slot in config.rule().slot_names() {
                slots.push(Slot {
                    name: format!("training/{}/{}/{slot}", config.tf_name(), var.name),
                    variable: index,
                    shape: var.shape.clone(),
                    data: vec![config.rule().slot_initial_value(slot); var.data.len()],
                });
            }
        }
        Optimizer {
            config,
            slots,
            trainable,
            positions,
            iterations: 0,
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

    /// TF's name for the update counter: `training/<Optimizer>/iter`.
    pub fn iterations_name(&self) -> String {
        format!("training/{}/iter", self.config.tf_name())
    }

    pub fn iterations(&self) -> i64 {
        self.iterations
    }

    pub fn set_iterations(&mut self, iterations: i64) {
        self.iterations = iterations;
    }

    /// Indices of the variables that receive gradients, in gradient order.
    #[cfg(feature = "bench")]
    pub fn trainable(&self) -> &[usize] {
        &self.trainable
    }

    /// Applies its variables' gradients from the model's list (checked by `spec_check`:
    /// F32, one per trainable variable in declaration order, dense with the variable's
    /// shape or row-sparse within it). `step` is the global step before this update, which
    /// learning-rate schedules follow; the rule sees the optimizer's own update count.
    ///
    /// A row-sparse gradient updates only its rows, slots included, as Keras' sparse
    /// updates do (repeated rows are summed first); Adam, whose Keras sparse update
    /// decays every row's moments, applies it as the dense gradient it stands for.
    pub fn apply(&mut self, vars: &mut VariableStore, gradients: &[Gradient], step: i64) {
        let rule = self.config.rule();
        let per_var = rule.slot_names().len();
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
                Some(rows) if rule.updates_rows_alone() => {
                    let summed = SummedRows::new(rows, values_of(gradient), var.len(), scale);
                    for (row, g) in summed.iter() {
                        let range = row * summed.width..(row + 1) * summed.width;
                        let mut parts = slot_parts(slots, range.clone());
                        let parts = &mut parts[..per_var];
                        rule.update(&mut var[range], g, parts, lr, self.iterations);
                    }
                }
                _ => {
                    let grad = dense_values(gradient, rows, var.len(), scale);
                    let mut parts = slot_parts(slots, 0..var.len());
                    let parts = &mut parts[..per_var];
                    rule.update(var, &grad, parts, lr, self.iterations);
                }
            }
        }
        self.iterations += 1;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimizer::test_support::close;
    use estimator_plugin_api::abi::{Initializer, Tensor, VarSpec};

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
            "../../../data/tf_reference/optimizer_trajectories.json"
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
}
