//! What every optimizer is: an update rule over a variable's values and its slots.

use crate::error::Invalid;

/// One optimizer's update, as Keras applies it to one variable, with the slots it keeps.
///
/// The host calls `validate` once when it reads the manifest, then `update` once per
/// variable per step (per touched row for a row-sparse gradient, when
/// `updates_rows_alone`). Learning rate, its schedule and gradient clipping are the
/// host's, shared by every rule: a rule sees the learning rate of the step.
pub trait UpdateRule: std::fmt::Debug + Send + Sync {
    /// TF 2's class name, used in slot names (`training/<tf_name>/<variable>/<slot>`).
    fn tf_name(&self) -> &'static str;

    /// Keras' slot names, in the order `update` receives them.
    fn slot_names(&self) -> &'static [&'static str];

    /// A slot's value before the first update.
    fn slot_initial_value(&self, _slot: &str) -> f32 {
        0.0
    }

    /// TF's argument checks, each failure a message `optimizer: <key> must be ...`.
    fn validate(&self) -> Result<(), Invalid>;

    /// Whether a row-sparse gradient updates only its rows, slots included (Keras' sparse
    /// updates). A rule whose sparse update touches every row (Adam's decays all its
    /// moments) gets the dense gradient the rows stand for instead.
    fn updates_rows_alone(&self) -> bool {
        true
    }

    /// One update of weights `w` by gradient `g` at learning rate `lr`, with the slots'
    /// values for the same elements. `iterations` counts the updates the optimizer made
    /// before this one (Keras' `iterations`, TF's `training/<Optimizer>/iter`).
    fn update(&self, w: &mut [f32], g: &[f32], slots: &mut [&mut [f32]], lr: f32, iterations: i64);

    /// The rule's own manifest keys with their values, for the resolved configuration.
    fn params(&self) -> serde_yaml::Value;
}

/// `Ok` when `v` is finite and above 0.
pub(crate) fn positive(name: &str, v: f32) -> Result<(), Invalid> {
    match v.is_finite() && v > 0.0 {
        true => Ok(()),
        false => Err(Invalid(format!("optimizer: {name} must be > 0, got {v}"))),
    }
}

/// `Ok` when `v` is in [0, 1).
pub(crate) fn unit(name: &str, v: f32) -> Result<(), Invalid> {
    match (0.0..1.0).contains(&v) {
        true => Ok(()),
        false => Err(Invalid(format!(
            "optimizer: {name} must be in [0, 1), got {v}"
        ))),
    }
}

/// `Ok` when `v` is finite and at least 0.
pub(crate) fn non_negative(name: &str, v: f32) -> Result<(), Invalid> {
    match v.is_finite() && v >= 0.0 {
        true => Ok(()),
        false => Err(Invalid(format!("optimizer: {name} must be >= 0, got {v}"))),
    }
}

/// A rule's fields as the manifest writes them.
pub(crate) fn params_of(rule: &impl serde::Serialize) -> serde_yaml::Value {
    yaml_of_f32s(rule)
}

/// `value` as YAML, its floats written as the `f32`s they are (`0.001`, not the
/// `0.0010000000474974513` a YAML value widened to `f64` would print).
pub(crate) fn yaml_of_f32s(value: &impl serde::Serialize) -> serde_yaml::Value {
    fn shorten(v: &mut serde_yaml::Value) {
        match v {
            serde_yaml::Value::Number(n) if n.is_f64() => {
                let wide = n.as_f64().unwrap_or_default();
                let narrow = wide as f32;
                if f64::from(narrow) == wide {
                    let short: f64 = narrow.to_string().parse().unwrap_or(wide);
                    *v = serde_yaml::Value::from(short);
                }
            }
            serde_yaml::Value::Mapping(m) => m.values_mut().for_each(shorten),
            serde_yaml::Value::Sequence(s) => s.iter_mut().for_each(shorten),
            _ => {}
        }
    }
    let mut yaml = serde_yaml::to_value(value).unwrap_or(serde_yaml::Value::Null);
    shorten(&mut yaml);
    yaml
}
