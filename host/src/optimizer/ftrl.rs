//! Keras' Ftrl (TF's ApplyFtrl, ApplyFtrlV2 with shrinkage): the linear estimators'
//! default.

use crate::error::Invalid;
use serde::{Deserialize, Serialize};

use super::rule::{non_negative, params_of, UpdateRule};

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Ftrl {
    #[serde(default = "lr_power")]
    pub learning_rate_power: f32,
    #[serde(default = "initial_accumulator")]
    pub initial_accumulator_value: f32,
    #[serde(default)]
    pub l1_regularization_strength: f32,
    #[serde(default)]
    pub l2_regularization_strength: f32,
    #[serde(default)]
    pub beta: f32,
    /// TF's `ApplyFtrlV2`: adds `2 · strength · w` to the gradient in the linear term
    /// (the accumulator still sums the plain gradient's squares).
    #[serde(default)]
    pub l2_shrinkage_regularization_strength: f32,
}

fn lr_power() -> f32 {
    -0.5
}

fn initial_accumulator() -> f32 {
    0.1
}

impl UpdateRule for Ftrl {
    fn tf_name(&self) -> &'static str {
        "Ftrl"
    }

    fn slot_names(&self) -> &'static [&'static str] {
        &["accumulator", "linear"]
    }

    fn slot_initial_value(&self, slot: &str) -> f32 {
        match slot {
            "accumulator" => self.initial_accumulator_value,
            _ => 0.0,
        }
    }

    fn validate(&self) -> Result<(), Invalid> {
        let power = self.learning_rate_power;
        if power.is_nan() || power > 0.0 {
            return Err(Invalid(format!(
                "optimizer: learning_rate_power must be <= 0, got {power}"
            )));
        }
        non_negative("initial_accumulator_value", self.initial_accumulator_value)?;
        non_negative(
            "l1_regularization_strength",
            self.l1_regularization_strength,
        )?;
        non_negative(
            "l2_regularization_strength",
            self.l2_regularization_strength,
        )?;
        non_negative(
            "l2_shrinkage_regularization_strength",
            self.l2_shrinkage_regularization_strength,
        )?;
        non_negative("beta", self.beta)
    }

    fn update(
        &self,
        w: &mut [f32],
        g: &[f32],
        slots: &mut [&mut [f32]],
        lr: f32,
        _iterations: i64,
    ) {
        // Keras folds beta into l2, as its Ftrl does.
        let l2 = self.l2_regularization_strength + self.beta / (2.0 * lr);
        let l1 = self.l1_regularization_strength;
        let shrinkage = 2.0 * self.l2_shrinkage_regularization_strength;
        let power = |x: f32| x.powf(-self.learning_rate_power);
        let (accumulators, linears) = slots.split_at_mut(1);
        let (acc, lin) = (&mut *accumulators[0], &mut *linears[0]);
        for (((w, g), a), l) in w.iter_mut().zip(g).zip(acc.iter_mut()).zip(lin.iter_mut()) {
            let new_a = *a + g * g;
            let shrunk = match shrinkage == 0.0 {
                true => *g,
                false => g + shrinkage * *w,
            };
            *l += shrunk - (power(new_a) - power(*a)) / lr * *w;
            let quadratic = power(new_a) / lr + 2.0 * l2;
            *w = match l.abs() > l1 {
                true => (l.signum() * l1 - *l) / quadratic,
                false => 0.0,
            };
            *a = new_a;
        }
    }

    fn params(&self) -> serde_yaml::Value {
        params_of(self)
    }
}

#[cfg(test)]
mod tests {
    use crate::optimizer::test_support::{close, run};

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
}
