//! Keras' Adam (with AMSGrad): bias-corrected first and second moments.

use crate::error::Invalid;
use serde::{Deserialize, Serialize};

use super::rule::{params_of, positive, unit, UpdateRule};

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Adam {
    #[serde(default = "beta_1")]
    pub beta_1: f32,
    #[serde(default = "beta_2")]
    pub beta_2: f32,
    #[serde(default = "epsilon")]
    pub epsilon: f32,
    /// AMSGrad: divide by the largest second moment seen so far (slot `vhat`).
    #[serde(default)]
    pub amsgrad: bool,
}

fn beta_1() -> f32 {
    0.9
}

fn beta_2() -> f32 {
    0.999
}

fn epsilon() -> f32 {
    1e-7
}

impl UpdateRule for Adam {
    fn tf_name(&self) -> &'static str {
        "Adam"
    }

    fn slot_names(&self) -> &'static [&'static str] {
        match self.amsgrad {
            false => &["m", "v"],
            true => &["m", "v", "vhat"],
        }
    }

    fn validate(&self) -> Result<(), Invalid> {
        positive("epsilon", self.epsilon)?;
        unit("beta_1", self.beta_1)?;
        unit("beta_2", self.beta_2)
    }

    /// Keras' sparse Adam decays every row's moments: a row gradient is applied as the
    /// dense gradient it stands for.
    fn updates_rows_alone(&self) -> bool {
        false
    }

    fn update(&self, w: &mut [f32], g: &[f32], slots: &mut [&mut [f32]], lr: f32, iterations: i64) {
        let (beta_1, beta_2) = (self.beta_1, self.beta_2);
        // Keras' bias correction counts this update too.
        let t = (iterations + 1) as f32;
        let lr_t = lr * (1.0 - beta_2.powf(t)).sqrt() / (1.0 - beta_1.powf(t));
        let (m_slot, rest) = slots.split_at_mut(1);
        let (v_slot, vhat_slot) = rest.split_at_mut(1);
        let (m, v) = (&mut *m_slot[0], &mut *v_slot[0]);
        let mut vhat = vhat_slot.first_mut().map(|s| &mut **s);
        for (i, ((w, g), m)) in w.iter_mut().zip(g).zip(m.iter_mut()).enumerate() {
            *m += (g - *m) * (1.0 - beta_1);
            let v = &mut v[i];
            *v += (g * g - *v) * (1.0 - beta_2);
            // AMSGrad divides by the largest second moment so far (TF's
            // ApplyAdamWithAmsgrad).
            let second = match vhat.as_deref_mut() {
                Some(vhat) => {
                    vhat[i] = vhat[i].max(*v);
                    vhat[i]
                }
                None => *v,
            };
            *w -= *m * lr_t / (second.sqrt() + self.epsilon);
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
    fn adam_first_step_moves_by_the_learning_rate() {
        let (w, slots) = run("{ name: adam, learning_rate: 0.01 }", &[0.5]);
        // m = 0.05, v = 0.00025, lr_t = 0.01 * sqrt(0.001) / 0.1; step = lr_t * m / sqrt(v) ~ 0.01
        assert!((w - 0.99).abs() < 1e-5, "{w}");
        let names: Vec<&str> = slots.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["training/Adam/w/m", "training/Adam/w/v"]);
    }
}
