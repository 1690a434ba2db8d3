//! Keras' SGD, with optional (Nesterov) momentum; `momentum` is SGD with momentum 0.9
//! unless given (TF's MomentumOptimizer, Keras' update).

use crate::error::Invalid;
use serde::{Deserialize, Serialize};

use super::rule::{params_of, unit, UpdateRule};

/// `v = momentum·v − lr·g; w += v` (Nesterov: `w += momentum·v − lr·g`); plain
/// `w −= lr·g` without momentum.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Sgd {
    #[serde(default)]
    pub momentum: f32,
    #[serde(default)]
    pub nesterov: bool,
    /// Whether the `momentum` slot is kept: with momentum, or always for `momentum`.
    #[serde(skip)]
    keeps_velocity: bool,
}

impl Sgd {
    /// `sgd` in the manifest.
    pub fn parse(params: serde_yaml::Value) -> Result<Self, serde_yaml::Error> {
        let mut sgd: Sgd = serde_yaml::from_value(params)?;
        sgd.keeps_velocity = sgd.momentum > 0.0;
        Ok(sgd)
    }

    /// `momentum` in the manifest: SGD with momentum 0.9 unless given, and its slot.
    pub fn parse_momentum(params: serde_yaml::Value) -> Result<Self, serde_yaml::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Momentum {
            #[serde(default = "point_nine")]
            momentum: f32,
            #[serde(default)]
            nesterov: bool,
        }
        fn point_nine() -> f32 {
            0.9
        }
        let m: Momentum = serde_yaml::from_value(params)?;
        Ok(Sgd {
            momentum: m.momentum,
            nesterov: m.nesterov,
            keeps_velocity: true,
        })
    }
}

impl UpdateRule for Sgd {
    fn tf_name(&self) -> &'static str {
        "SGD"
    }

    fn slot_names(&self) -> &'static [&'static str] {
        match self.keeps_velocity {
            true => &["momentum"],
            false => &[],
        }
    }

    fn validate(&self) -> Result<(), Invalid> {
        unit("momentum", self.momentum)
    }

    fn update(
        &self,
        w: &mut [f32],
        g: &[f32],
        slots: &mut [&mut [f32]],
        lr: f32,
        _iterations: i64,
    ) {
        let Some(velocity) = slots.first_mut() else {
            for (w, g) in w.iter_mut().zip(g) {
                *w -= lr * g;
            }
            return;
        };
        let momentum = self.momentum;
        for ((w, g), v) in w.iter_mut().zip(g).zip(velocity.iter_mut()) {
            *v = momentum * *v - lr * g;
            *w += match self.nesterov {
                true => momentum * *v - lr * g,
                false => *v,
            };
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
    fn sgd_steps_against_the_gradient() {
        let (w, slots) = run("{ name: sgd, learning_rate: 0.1 }", &[2.0]);
        assert!((w - 0.8).abs() < 1e-7, "{w}");
        assert!(slots.is_empty(), "plain SGD keeps no slot");
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
    }
}
