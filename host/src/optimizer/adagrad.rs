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
        let a = &mut *slots[0];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above.
            return unsafe { update_avx512(w, g, a, lr, self.epsilon) };
        }
        update(w, g, a, lr, self.epsilon);
    }

    fn params(&self) -> serde_yaml::Value {
        params_of(self)
    }
}

/// `a += g²; w −= lr·g / (√a + ε)`, element by element. Square roots and divisions are
/// correctly rounded at any vector width and nothing is fused, so every build of it gives
/// the same bits.
#[inline(always)]
fn update(w: &mut [f32], g: &[f32], a: &mut [f32], lr: f32, epsilon: f32) {
    for ((w, g), a) in w.iter_mut().zip(g).zip(a.iter_mut()) {
        *a += g * g;
        *w -= lr * g / (a.sqrt() + epsilon);
    }
}

/// [`update`] compiled for AVX-512: 16 square roots and divisions at a time instead of the
/// baseline build's 4, which they dominate (the host is built for any x86-64).
///
/// # Safety
/// The CPU must have AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn update_avx512(w: &mut [f32], g: &[f32], a: &mut [f32], lr: f32, epsilon: f32) {
    update(w, g, a, lr, epsilon);
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

    /// Checkpoints stay the same on CPUs with and without AVX-512.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx512_build_gives_the_baseline_builds_bits() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return;
        }
        // Lengths around the vector widths, values over many magnitudes.
        for len in [1, 3, 15, 16, 17, 33, 1027] {
            let values = |seed: u32| -> Vec<f32> {
                (0..len as u32)
                    .map(|i| {
                        (i.wrapping_mul(2_654_435_761).wrapping_add(seed) % 10_007) as f32 * 1e-3
                            - 5.0
                    })
                    .map(|x| x * 10f32.powi((x as i32) % 4))
                    .collect()
            };
            let g = values(1);
            let (mut w, mut a) = (
                values(2),
                values(3).iter().map(|x| x.abs()).collect::<Vec<_>>(),
            );
            let (mut w_avx, mut a_avx) = (w.clone(), a.clone());
            super::update(&mut w, &g, &mut a, 0.01, 1e-7);
            // SAFETY: the CPU has AVX-512F, checked above.
            unsafe { super::update_avx512(&mut w_avx, &g, &mut a_avx, 0.01, 1e-7) };
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&w), bits(&w_avx), "weights, {len} values");
            assert_eq!(bits(&a), bits(&a_avx), "accumulators, {len} values");
        }
    }
}
