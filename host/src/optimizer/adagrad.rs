//! Keras' Adagrad: `a += g²; w −= lr·g / (√a + ε)`.

use crate::error::Invalid;
use serde::{Deserialize, Serialize};

use super::rule::{non_negative, params_of, positive, UpdateRule};

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Adagrad {
    #[serde(default = "initial_accumulator")]
    pub initial_accumulator_value: f32,
    #[serde(default = "epsilon")]
    pub epsilon: f32,
}

fn initial_accumulator() -> f32 {
    0.1
}

fn epsilon() -> f32 {
    1e-7
}

impl UpdateRule for Adagrad {
    fn tf_name(&self) -> &'static str {
        "Adagrad"
    }

    fn slot_names(&self) -> &'static [&'static str] {
        &["accumulator"]
    }

    fn slot_initial_value(&self, _slot: &str) -> f32 {
        self.initial_accumulator_value
    }

    fn validate(&self) -> Result<(), Invalid> {
        positive("epsilon", self.epsilon)?;
        non_negative("initial_accumulator_value", self.initial_accumulator_value)
    }

    fn update(
        &self,
        w: &mut [f32],
        g: &[f32],
        slots: &mut [&mut [f32]],
        lr: f32,
        _iterations: i64,
    ) {
        for ((w, g), a) in w.iter_mut().zip(g).zip(slots[0].iter_mut()) {
            *a += g * g;
            *w -= lr * g / (a.sqrt() + self.epsilon);
        }
    }

    fn params(&self) -> serde_yaml::Value {
        params_of(self)
    }
}

#[cfg(test)]
mod tests {
    use crate::optimizer::test_support::run;

    #[test]
    fn adagrad_matches_hand_computation_with_tf_initial_accumulator() {
        let (w, slots) = run("{ name: adagrad }", &[2.0]);
        assert_eq!(slots[0].name, "training/Adagrad/w/accumulator");
        // acc = 0.1 + 4 = 4.1; w = 1 - 0.001 * 2 / (sqrt(4.1) + 1e-7)
        let expected = 1.0 - 0.001 * 2.0 / (4.1f32.sqrt() + 1e-7);
        assert!((w - expected).abs() < 1e-7);
        assert!((slots[0].data[0] - 4.1).abs() < 1e-6);
    }
}
