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
        let rule = Rule {
            l2: self.l2_regularization_strength + self.beta / (2.0 * lr),
            l1: self.l1_regularization_strength,
            shrinkage: 2.0 * self.l2_shrinkage_regularization_strength,
            power: -self.learning_rate_power,
            lr,
        };
        let (accumulators, linears) = slots.split_at_mut(1);
        let (acc, lin) = (&mut *accumulators[0], &mut *linears[0]);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above.
            return unsafe { update_avx512(&rule, w, g, acc, lin) };
        }
        update(&rule, w, g, acc, lin);
    }

    fn params(&self) -> serde_yaml::Value {
        params_of(self)
    }
}

/// One update's constants.
struct Rule {
    l1: f32,
    l2: f32,
    shrinkage: f32,
    /// `−learning_rate_power`.
    power: f32,
    lr: f32,
}

impl Rule {
    /// `x^power`. TF's kernel takes the default power, 0.5, as a square root (ApplyFtrl's
    /// special case), which is also what lets the update vectorise.
    #[inline(always)]
    fn power(&self, x: f32) -> f32 {
        match self.power == 0.5 {
            true => x.sqrt(),
            false => x.powf(self.power),
        }
    }
}

/// TF's ApplyFtrlV2, element by element. Square roots and divisions are correctly rounded
/// at any vector width and nothing is fused, so every build of it gives the same bits.
#[inline(always)]
fn update(rule: &Rule, w: &mut [f32], g: &[f32], acc: &mut [f32], lin: &mut [f32]) {
    for (((w, g), a), l) in w.iter_mut().zip(g).zip(acc.iter_mut()).zip(lin.iter_mut()) {
        let new_a = *a + g * g;
        let shrunk = match rule.shrinkage == 0.0 {
            true => *g,
            false => g + rule.shrinkage * *w,
        };
        *l += shrunk - (rule.power(new_a) - rule.power(*a)) / rule.lr * *w;
        let quadratic = rule.power(new_a) / rule.lr + 2.0 * rule.l2;
        *w = match l.abs() > rule.l1 {
            true => (l.signum() * rule.l1 - *l) / quadratic,
            false => 0.0,
        };
        *a = new_a;
    }
}

/// [`update`] compiled for AVX-512 (the host is built for any x86-64).
///
/// # Safety
/// The CPU must have AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn update_avx512(rule: &Rule, w: &mut [f32], g: &[f32], acc: &mut [f32], lin: &mut [f32]) {
    update(rule, w, g, acc, lin);
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

    #[test]
    fn a_power_other_than_tfs_default_takes_pow() {
        // learning_rate_power −0.25: accum^0.25 in place of the square root.
        let (w, slots) = run(
            "{ name: ftrl, learning_rate: 0.1, learning_rate_power: -0.25 }",
            &[2.0],
        );
        let linear = 2.0 - (4.1f32.powf(0.25) - 0.1f32.powf(0.25)) / 0.1;
        let quadratic = 4.1f32.powf(0.25) / 0.1;
        assert!(close(w, -linear / quadratic), "{w}");
        assert!(close(slots[1].data[0], linear));
    }

    /// Checkpoints stay the same on CPUs with and without AVX-512.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx512_build_gives_the_baseline_builds_bits() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return;
        }
        let values = |len: u32, seed: u32| -> Vec<f32> {
            (0..len)
                .map(|i| {
                    (i.wrapping_mul(2_654_435_761).wrapping_add(seed) % 10_007) as f32 * 1e-3 - 5.0
                })
                .collect()
        };
        for (power, shrinkage, l1) in [(0.5, 0.0, 0.0), (0.5, 0.2, 1.5), (0.25, 0.0, 0.5)] {
            let rule = super::Rule {
                l1,
                l2: 0.3,
                shrinkage,
                power,
                lr: 0.05,
            };
            for len in [1, 3, 15, 16, 17, 33, 1027] {
                let g = values(len, 1);
                let mut w = values(len, 2);
                let mut acc: Vec<f32> = values(len, 3).iter().map(|x| x.abs() + 0.1).collect();
                let mut lin = values(len, 4);
                let (mut w2, mut acc2, mut lin2) = (w.clone(), acc.clone(), lin.clone());
                super::update(&rule, &mut w, &g, &mut acc, &mut lin);
                // SAFETY: the CPU has AVX-512F, checked above.
                unsafe { super::update_avx512(&rule, &mut w2, &g, &mut acc2, &mut lin2) };
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&w), bits(&w2), "weights, {len} values, power {power}");
                assert_eq!(bits(&acc), bits(&acc2));
                assert_eq!(bits(&lin), bits(&lin2));
            }
        }
    }
}
