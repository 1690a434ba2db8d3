//! The variable store: every model variable, owned by the host, created from the model's
//! declarations and initialised from the run's seed.

use crate::error::Invalid;
use std::collections::HashSet;

use estimator_plugin_api::abi::{Initializer, NamedView, TensorView, VarSpec};
use rand::Rng;

use crate::seed;

#[derive(Clone, Debug, PartialEq)]
pub struct Variable {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    pub trainable: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct VariableStore {
    vars: Vec<Variable>,
}

impl VariableStore {
    /// Creates the declared variables, each initialised from its own seeded stream so that
    /// adding a variable does not change the others' initial values.
    pub fn initialise(specs: &[VarSpec], run_seed: u64) -> Result<Self, Invalid> {
        let mut seen = HashSet::new();
        let mut vars = Vec::with_capacity(specs.len());
        for spec in specs {
            let name = spec.name.to_string();
            if !seen.insert(name.clone()) {
                return Err(Invalid(format!("variable `{name}` is declared twice")));
            }
            let shape = spec.shape.to_vec();
            let mut rng = seed::rng(run_seed, &format!("init/{name}"));
            let Ok(&initializer) = spec.initializer.as_enum() else {
                return Err(Invalid(format!(
                    "variable `{name}`: its initializer is unknown to this host (the plugin was built against a newer ABI 3.x)"
                )));
            };
            let data = initial_values(initializer, &shape, &mut rng);
            vars.push(Variable {
                name,
                shape,
                data,
                trainable: spec.trainable,
            });
        }
        Ok(VariableStore { vars })
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Variable> {
        self.vars.iter_mut()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Variable> {
        self.vars.iter()
    }

    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// Exported to benchmarks, which clippy wants to find it beside `len`.
    #[cfg(feature = "bench")]
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    pub fn get(&self, index: usize) -> &Variable {
        &self.vars[index]
    }

    pub fn get_mut(&mut self, index: usize) -> &mut Variable {
        &mut self.vars[index]
    }

    /// Sets non-trainable variables to the values a model_fn returned in `updates`
    /// (checked by `spec_check`: each names a variable, with its shape).
    pub fn assign(&mut self, updates: &[estimator_plugin_api::abi::NamedTensor]) {
        for u in updates {
            if let (Some(var), Some(values)) = (self.find_mut(u.name.as_str()), u.tensor.as_f32()) {
                if var.data.len() == values.len() {
                    var.data.copy_from_slice(values);
                }
            }
        }
    }

    pub fn find_mut(&mut self, name: &str) -> Option<&mut Variable> {
        self.vars.iter_mut().find(|v| v.name == name)
    }

    /// Borrowed views of every variable, in declaration order, for one model_fn call.
    pub fn views(&self) -> Vec<NamedView<'_>> {
        self.views_into(Vec::with_capacity(self.vars.len()))
    }

    /// The variables' views in `list` (emptied first), keeping its allocation.
    pub fn views_into<'a>(&'a self, list: Vec<NamedView<'_>>) -> Vec<NamedView<'a>> {
        let mut list = crate::views::recycle(list);
        list.extend(self.vars.iter().map(|v| NamedView {
            name: v.name.as_str().into(),
            tensor: TensorView::f32(&v.shape, &v.data),
        }));
        list
    }

    /// Indices of the trainable variables, in declaration order (the order of gradients).
    pub fn trainable_indices(&self) -> Vec<usize> {
        (0..self.vars.len())
            .filter(|&i| self.vars[i].trainable)
            .collect()
    }
}

fn initial_values(init: Initializer, shape: &[usize], rng: &mut impl Rng) -> Vec<f32> {
    let n: usize = shape.iter().product();
    match init {
        Initializer::Zeros => vec![0.0; n],
        Initializer::Ones => vec![1.0; n],
        Initializer::Constant(c) => vec![c; n],
        Initializer::GlorotUniform => {
            let (fan_in, fan_out) = fans(shape);
            let limit = (6.0 / (fan_in + fan_out).max(1) as f64).sqrt() as f32;
            (0..n).map(|_| rng.gen_range(-limit..=limit)).collect()
        }
        Initializer::RandomUniform { min, max } => (0..n)
            .map(|_| {
                if min < max {
                    rng.gen_range(min..max)
                } else {
                    min
                }
            })
            .collect(),
        Initializer::TruncatedNormal { stddev } => {
            (0..n).map(|_| truncated_normal(rng) * stddev).collect()
        }
    }
}

/// Keras' fan computation: the last dimension is fan_out, the product of the rest fan_in.
fn fans(shape: &[usize]) -> (usize, usize) {
    match shape {
        [] => (1, 1),
        [n] => (*n, *n),
        [rest @ .., out] => (rest.iter().product(), *out),
    }
}

/// A standard normal sample, redrawn until within two standard deviations.
fn truncated_normal(rng: &mut impl Rng) -> f32 {
    loop {
        // Box-Muller transform.
        let u1: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
        let u2: f64 = rng.gen();
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        if z.abs() <= 2.0 {
            return z as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs() -> Vec<VarSpec> {
        vec![
            VarSpec::new("k", &[4, 10], Initializer::GlorotUniform),
            VarSpec::new("b", &[10], Initializer::Zeros),
        ]
    }

    #[test]
    fn glorot_uniform_stays_within_its_limit_and_biases_start_at_zero() {
        let store = VariableStore::initialise(&specs(), 7).expect("distinct names");
        let vars: Vec<&Variable> = store.iter().collect();
        let limit = (6.0f32 / 14.0).sqrt();
        assert!(vars[0].data.iter().all(|v| v.abs() <= limit));
        assert!(
            vars[0].data.iter().any(|v| v.abs() > limit / 2.0),
            "values spread over the range"
        );
        assert!(vars[1].data.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn same_seed_same_values_other_seed_other_values() {
        let a = VariableStore::initialise(&specs(), 7).expect("valid");
        let b = VariableStore::initialise(&specs(), 7).expect("valid");
        let c = VariableStore::initialise(&specs(), 8).expect("valid");
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn duplicate_names_are_refused() {
        let dup = vec![
            VarSpec::new("x", &[1], Initializer::Zeros),
            VarSpec::new("x", &[1], Initializer::Zeros),
        ];
        assert_eq!(
            VariableStore::initialise(&dup, 0).unwrap_err(),
            "variable `x` is declared twice"
        );
    }
}
