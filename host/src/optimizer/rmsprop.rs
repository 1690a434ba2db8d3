//! Keras' RMSprop: `rms` always; `momentum` when momentum > 0 (TF's ApplyRMSProp, epsilon
//! inside the root); `mg` when centered.

use crate::error::Invalid;
use serde::{Deserialize, Serialize};

use super::rule::{params_of, positive, unit, UpdateRule};

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rmsprop {
    #[serde(default = "rho")]
    pub rho: f32,
    #[serde(default)]
    pub momentum: f32,
    #[serde(default = "epsilon")]
    pub epsilon: f32,
    #[serde(default)]
    pub centered: bool,
}

fn rho() -> f32 {
    0.9
}

fn epsilon() -> f32 {
    1e-7
}

impl UpdateRule for Rmsprop {
    fn tf_name(&self) -> &'static str {
        "RMSprop"
    }

    fn slot_names(&self) -> &'static [&'static str] {
        match (self.momentum > 0.0, self.centered) {
            (false, false) => &["rms"],
            (true, false) => &["rms", "momentum"],
            (false, true) => &["rms", "mg"],
            (true, true) => &["rms", "momentum", "mg"],
        }
    }

    fn validate(&self) -> Result<(), Invalid> {
        positive("epsilon", self.epsilon)?;
        unit("rho", self.rho)?;
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
        let (rho, momentum, epsilon) = (self.rho, self.momentum, self.epsilon);
        let (rms, rest) = slots.split_at_mut(1);
        let (mut mom, mut mg) = match (momentum > 0.0, self.centered) {
            (true, true) => {
                let (m, g) = rest.split_at_mut(1);
                (Some(&mut *m[0]), Some(&mut *g[0]))
            }
            (true, false) => (rest.first_mut().map(|s| &mut **s), None),
            (false, true) => (None, rest.first_mut().map(|s| &mut **s)),
            (false, false) => (None, None),
        };
        for (i, (w, g)) in w.iter_mut().zip(g.iter()).enumerate() {
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

    fn params(&self) -> serde_yaml::Value {
        params_of(self)
    }
}

#[cfg(test)]
mod tests {
    use crate::optimizer::test_support::{close, run};

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
}
