//! Learning rates that change with the global step: Keras' `LearningRateSchedule`s, by
//! their TF names. A schedule's position is the global step, which every checkpoint holds,
//! so resumed runs continue on the same curve.
//!
//! ```yaml
//! optimizer:
//!   name: sgd
//!   learning_rate: { exponential_decay: { initial_learning_rate: 0.1, decay_steps: 100, decay_rate: 0.5 } }
//! ```

use crate::error::Invalid;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};

/// A constant learning rate or a schedule.
#[derive(Clone, Debug, PartialEq)]
pub enum LearningRate {
    Constant(f32),
    Schedule(Schedule),
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    ExponentialDecay(ExponentialDecay),
    PiecewiseConstant(PiecewiseConstant),
    CosineDecay(CosineDecay),
    PolynomialDecay(PolynomialDecay),
}

/// `initial · decay_rate^(step / decay_steps)`, the exponent floored when `staircase`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExponentialDecay {
    pub initial_learning_rate: f32,
    pub decay_steps: u64,
    pub decay_rate: f32,
    #[serde(default)]
    pub staircase: bool,
}

/// `values[0]` up to and including `boundaries[0]`, then `values[1]` up to `boundaries[1]`…
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PiecewiseConstant {
    pub boundaries: Vec<i64>,
    pub values: Vec<f32>,
}

/// Half a cosine from `initial` down to `alpha · initial` over `decay_steps`, then flat.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CosineDecay {
    pub initial_learning_rate: f32,
    pub decay_steps: u64,
    #[serde(default)]
    pub alpha: f32,
}

/// `(initial − end) · (1 − step / decay_steps)^power + end`; with `cycle`, `decay_steps`
/// grows to the next multiple past the step instead of the rate staying at `end`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolynomialDecay {
    pub initial_learning_rate: f32,
    pub decay_steps: u64,
    #[serde(default = "end_learning_rate")]
    pub end_learning_rate: f32,
    #[serde(default = "one")]
    pub power: f32,
    #[serde(default)]
    pub cycle: bool,
}

fn end_learning_rate() -> f32 {
    0.0001
}
fn one() -> f32 {
    1.0
}

impl LearningRate {
    /// The rate for the update made at `step` (the global step before it, Keras'
    /// `iterations`).
    pub fn at(&self, step: i64) -> f32 {
        let step = step.max(0) as f64;
        let rate = match self {
            LearningRate::Constant(lr) => return *lr,
            LearningRate::Schedule(Schedule::ExponentialDecay(s)) => {
                let mut p = step / s.decay_steps as f64;
                if s.staircase {
                    p = p.floor();
                }
                f64::from(s.initial_learning_rate) * f64::from(s.decay_rate).powf(p)
            }
            LearningRate::Schedule(Schedule::PiecewiseConstant(s)) => {
                let i = s
                    .boundaries
                    .iter()
                    .take_while(|&&b| step > b as f64)
                    .count();
                f64::from(s.values.get(i).copied().unwrap_or_default())
            }
            LearningRate::Schedule(Schedule::CosineDecay(s)) => {
                let p = step.min(s.decay_steps as f64) / s.decay_steps as f64;
                let cosine = 0.5 * (1.0 + (std::f64::consts::PI * p).cos());
                let alpha = f64::from(s.alpha);
                f64::from(s.initial_learning_rate) * ((1.0 - alpha) * cosine + alpha)
            }
            LearningRate::Schedule(Schedule::PolynomialDecay(s)) => {
                let mut decay_steps = s.decay_steps as f64;
                let step = match s.cycle {
                    true => {
                        decay_steps *= (step / decay_steps).ceil().max(1.0);
                        step
                    }
                    false => step.min(decay_steps),
                };
                let (initial, end) = (
                    f64::from(s.initial_learning_rate),
                    f64::from(s.end_learning_rate),
                );
                (initial - end) * (1.0 - step / decay_steps).powf(f64::from(s.power)) + end
            }
        };
        rate as f32
    }

    /// Keras' argument checks, as one line naming the key.
    pub fn validate(&self) -> Result<(), Invalid> {
        let positive = |name: &str, v: f32| match v.is_finite() && v > 0.0 {
            true => Ok(()),
            false => Err(Invalid(format!(
                "optimizer: learning_rate: {name} must be > 0, got {v}"
            ))),
        };
        let steps = |n: u64| match n > 0 {
            true => Ok(()),
            false => Err("optimizer: learning_rate: decay_steps must be > 0".to_owned()),
        };
        match self {
            LearningRate::Constant(lr) => positive("learning_rate", *lr)
                .map_err(|e| Invalid(e.0.replace("learning_rate: learning_rate", "learning_rate"))),
            LearningRate::Schedule(Schedule::ExponentialDecay(s)) => {
                steps(s.decay_steps)?;
                positive("initial_learning_rate", s.initial_learning_rate)?;
                positive("decay_rate", s.decay_rate)
            }
            LearningRate::Schedule(Schedule::PiecewiseConstant(s)) => {
                if s.values.len() != s.boundaries.len() + 1 {
                    return Err(Invalid(format!(
                        "optimizer: learning_rate: piecewise_constant needs one more value than boundaries, got {} values for {} boundaries",
                        s.values.len(),
                        s.boundaries.len()
                    )));
                }
                if s.boundaries.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(
                        "optimizer: learning_rate: piecewise_constant boundaries must increase"
                            .into(),
                    );
                }
                s.values.iter().try_for_each(|&v| positive("each value", v))
            }
            LearningRate::Schedule(Schedule::CosineDecay(s)) => {
                steps(s.decay_steps)?;
                positive("initial_learning_rate", s.initial_learning_rate)
            }
            LearningRate::Schedule(Schedule::PolynomialDecay(s)) => {
                steps(s.decay_steps)?;
                positive("initial_learning_rate", s.initial_learning_rate)?;
                positive("end_learning_rate", s.end_learning_rate)
            }
        }
    }
}

impl From<f32> for LearningRate {
    fn from(lr: f32) -> Self {
        LearningRate::Constant(lr)
    }
}

// A number or a one-key map, so that mistakes inside a schedule are reported where they are.
impl<'de> Deserialize<'de> for LearningRate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = LearningRate;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number or a schedule such as {exponential_decay: {...}}")
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<LearningRate, E> {
                Ok(LearningRate::Constant(v as f32))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<LearningRate, E> {
                Ok(LearningRate::Constant(v as f32))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<LearningRate, E> {
                Ok(LearningRate::Constant(v as f32))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<LearningRate, A::Error> {
                Schedule::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(LearningRate::Schedule)
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl Serialize for LearningRate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let schedule = match self {
            LearningRate::Constant(lr) => return s.serialize_f32(*lr),
            LearningRate::Schedule(schedule) => schedule,
        };
        let mut map = s.serialize_map(Some(1))?;
        match schedule {
            Schedule::ExponentialDecay(x) => map.serialize_entry("exponential_decay", x)?,
            Schedule::PiecewiseConstant(x) => map.serialize_entry("piecewise_constant", x)?,
            Schedule::CosineDecay(x) => map.serialize_entry("cosine_decay", x)?,
            Schedule::PolynomialDecay(x) => map.serialize_entry("polynomial_decay", x)?,
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> LearningRate {
        let lr: LearningRate = serde_yaml::from_str(yaml).expect(yaml);
        lr.validate().expect(yaml);
        lr
    }

    fn close(a: f32, b: f64) -> bool {
        (f64::from(a) - b).abs() < 1e-6
    }

    /// Values as Keras computes them for the same arguments.
    #[test]
    fn schedules_match_keras() {
        let exp = parse(
            "{exponential_decay: {initial_learning_rate: 0.1, decay_steps: 100, decay_rate: 0.5}}",
        );
        assert!(
            close(exp.at(0), 0.1)
                && close(exp.at(100), 0.05)
                && close(exp.at(150), 0.1 * 0.5f64.powf(1.5))
        );
        let stairs = parse("{exponential_decay: {initial_learning_rate: 0.1, decay_steps: 100, decay_rate: 0.5, staircase: true}}");
        assert!(close(stairs.at(150), 0.05) && close(stairs.at(200), 0.025));
        let pieces =
            parse("{piecewise_constant: {boundaries: [100, 200], values: [1.0, 0.5, 0.1]}}");
        let got: Vec<f32> = [0, 100, 101, 200, 201]
            .iter()
            .map(|&s| pieces.at(s))
            .collect();
        assert_eq!(
            got,
            vec![1.0, 1.0, 0.5, 0.5, 0.1],
            "a boundary belongs to the range below it"
        );
        let cosine =
            parse("{cosine_decay: {initial_learning_rate: 1.0, decay_steps: 100, alpha: 0.1}}");
        assert!(
            close(cosine.at(0), 1.0)
                && close(cosine.at(50), 0.55)
                && close(cosine.at(100), 0.1)
                && close(cosine.at(500), 0.1)
        );
        let poly = parse("{polynomial_decay: {initial_learning_rate: 1.0, decay_steps: 100, end_learning_rate: 0.1, power: 2}}");
        assert!(close(poly.at(50), 0.9 * 0.25 + 0.1) && close(poly.at(300), 0.1));
        let cycle = parse("{polynomial_decay: {initial_learning_rate: 1.0, decay_steps: 100, end_learning_rate: 0.1, cycle: true}}");
        // At 150 the period is 200: (1 - 0.1)·(1 - 0.75) + 0.1.
        assert!(close(cycle.at(150), 0.325), "{}", cycle.at(150));
        assert!(close(parse("0.3").at(1000), 0.3));
    }

    #[test]
    fn bad_schedules_are_refused() {
        for yaml in [
            "{piecewise_constant: {boundaries: [100], values: [1.0]}}",
            "{piecewise_constant: {boundaries: [200, 100], values: [1.0, 0.5, 0.1]}}",
            "{exponential_decay: {initial_learning_rate: 0.1, decay_steps: 0, decay_rate: 0.5}}",
            "-0.1",
        ] {
            let lr: LearningRate = serde_yaml::from_str(yaml).expect(yaml);
            assert!(lr.validate().is_err(), "{yaml}");
        }
        let err = serde_yaml::from_str::<LearningRate>(
            "{exponential_decay: {initial_learning_rate: 0.1, decay_step: 5, decay_rate: 0.5}}",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown field `decay_step`"), "{err}");
    }

    #[test]
    fn a_schedule_writes_back_as_it_reads() {
        let lr = parse("{cosine_decay: {initial_learning_rate: 1.0, decay_steps: 100}}");
        let text = serde_yaml::to_string(&lr).expect("serializes");
        assert_eq!(parse(&text), lr, "{text}");
    }
}
