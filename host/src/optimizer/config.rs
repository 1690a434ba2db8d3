//! `optimizer:` in the manifest: which optimizer, its learning rate (or schedule), gradient
//! clipping, and the optimizer's own keys. Defaults follow Keras' legacy optimizers (TF 2
//! Estimator). This file only parses and prints; the rules live in their own files.

use crate::error::Invalid;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::adagrad::Adagrad;
use super::adam::Adam;
use super::ftrl::Ftrl;
use super::rmsprop::Rmsprop;
use super::rule::{positive, yaml_of_f32s, UpdateRule};
use super::schedule::LearningRate;
use super::sgd::Sgd;

/// Parses an optimizer's own keys (the manifest entry less `name`, `learning_rate` and
/// `global_clipnorm`) into its rule.
type ParseRule = fn(serde_yaml::Value) -> Result<Arc<dyn UpdateRule>, serde_yaml::Error>;

/// Every optimizer the manifest can name: its name, its default learning rate, and how
/// its keys are read. Adding an optimizer is a file with its [`UpdateRule`] and one line
/// here.
const OPTIMIZERS: &[(&str, f32, ParseRule)] = &[
    ("sgd", 0.01, |v| Ok(Arc::new(Sgd::parse(v)?))),
    ("momentum", 0.01, |v| Ok(Arc::new(Sgd::parse_momentum(v)?))),
    ("adagrad", 0.001, parse::<Adagrad>),
    ("adam", 0.001, parse::<Adam>),
    ("rmsprop", 0.001, parse::<Rmsprop>),
    ("ftrl", 0.001, parse::<Ftrl>),
];

fn parse<R>(params: serde_yaml::Value) -> Result<Arc<dyn UpdateRule>, serde_yaml::Error>
where
    R: UpdateRule + serde::de::DeserializeOwned + 'static,
{
    Ok(Arc::new(serde_yaml::from_value::<R>(params)?))
}

/// One optimizer as the manifest gives it: `{ name, learning_rate, global_clipnorm, ... }`.
#[derive(Clone, Debug)]
pub struct OptimizerConfig {
    name: &'static str,
    learning_rate: LearningRate,
    /// Scales all gradients together so their global norm is at most this (Keras'
    /// `global_clipnorm`, TF's `clip_by_global_norm`).
    global_clipnorm: Option<f32>,
    rule: Arc<dyn UpdateRule>,
}

impl OptimizerConfig {
    /// Reads one optimizer from its manifest entry.
    pub fn from_yaml(value: serde_yaml::Value) -> Result<Self, Invalid> {
        let serde_yaml::Value::Mapping(mut entry) = value else {
            return Err("an optimizer is a mapping with `name`".into());
        };
        let name = match entry.remove("name") {
            Some(serde_yaml::Value::String(name)) => name,
            Some(_) => return Err("`name` must be a string".into()),
            None => return Err("missing field `name`".into()),
        };
        let Some(&(name, default_lr, parse_rule)) =
            OPTIMIZERS.iter().find(|(known, ..)| *known == name)
        else {
            let known: Vec<String> = OPTIMIZERS.iter().map(|(n, ..)| format!("`{n}`")).collect();
            return Err(Invalid(format!(
                "unknown variant `{name}`, expected one of {}",
                known.join(", ")
            )));
        };
        let learning_rate = match entry.remove("learning_rate") {
            Some(value) => LearningRate::deserialize(value).map_err(|e| Invalid(e.to_string()))?,
            None => LearningRate::Constant(default_lr),
        };
        let global_clipnorm = match entry.remove("global_clipnorm") {
            Some(value) => Option::<f32>::deserialize(value).map_err(|e| Invalid(e.to_string()))?,
            None => None,
        };
        let rule =
            parse_rule(serde_yaml::Value::Mapping(entry)).map_err(|e| Invalid(e.to_string()))?;
        Ok(OptimizerConfig {
            name,
            learning_rate,
            global_clipnorm,
            rule,
        })
    }

    /// The manifest's name for it (`sgd`, `adam`, ...).
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn rule(&self) -> &dyn UpdateRule {
        self.rule.as_ref()
    }

    /// TF 2's class name, used in slot names.
    pub fn tf_name(&self) -> &'static str {
        self.rule.tf_name()
    }

    pub fn global_clipnorm(&self) -> Option<f32> {
        self.global_clipnorm
    }

    /// The learning rate for the update made at global step `step`.
    pub fn learning_rate_at(&self, step: i64) -> f32 {
        self.learning_rate.at(step)
    }

    /// TF's argument checks: a positive clip norm and learning rate, then the rule's own.
    pub fn validate(&self) -> Result<(), Invalid> {
        if let Some(c) = self.global_clipnorm {
            positive("global_clipnorm", c)?;
        }
        self.learning_rate.validate()?;
        self.rule.validate()
    }
}

impl Default for OptimizerConfig {
    /// TF's DNN estimators default to Adagrad with learning rate 0.001.
    fn default() -> Self {
        OptimizerConfig {
            name: "adagrad",
            learning_rate: LearningRate::Constant(0.001),
            global_clipnorm: None,
            rule: Arc::new(Adagrad {
                initial_accumulator_value: 0.1,
                epsilon: 1e-7,
            }),
        }
    }
}

impl Serialize for OptimizerConfig {
    /// As the manifest writes it: `name`, `learning_rate`, the rule's keys, then
    /// `global_clipnorm` when set.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut entry = serde_yaml::Mapping::new();
        entry.insert("name".into(), self.name.into());
        entry.insert("learning_rate".into(), yaml_of_f32s(&self.learning_rate));
        if let serde_yaml::Value::Mapping(params) = self.rule.params() {
            entry.extend(params);
        }
        if let Some(c) = self.global_clipnorm {
            entry.insert("global_clipnorm".into(), yaml_of_f32s(&c));
        }
        entry.serialize(s)
    }
}

impl<'de> Deserialize<'de> for OptimizerConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_yaml::Value::deserialize(d)?;
        OptimizerConfig::from_yaml(value).map_err(serde::de::Error::custom)
    }
}

impl PartialEq for OptimizerConfig {
    /// Equal when the manifest would write them the same.
    fn eq(&self, other: &Self) -> bool {
        serde_yaml::to_value(self).ok() == serde_yaml::to_value(other).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_names_and_defaults() {
        let c: OptimizerConfig = serde_yaml::from_str("{ name: adam }").expect("valid");
        assert_eq!(
            serde_yaml::to_string(&c).expect("prints"),
            "name: adam\nlearning_rate: 0.001\nbeta_1: 0.9\nbeta_2: 0.999\nepsilon: 1e-7\namsgrad: false\n"
        );
        let err = serde_yaml::from_str::<OptimizerConfig>("{ name: sgd, decay: 1 }").unwrap_err();
        assert!(err.to_string().contains("unknown field `decay`"), "{err}");
        let err = serde_yaml::from_str::<OptimizerConfig>("{ name: sgdd }").unwrap_err();
        assert!(
            err.to_string().starts_with(
                "unknown variant `sgdd`, expected one of `sgd`, `momentum`, `adagrad`, `adam`, `rmsprop`, `ftrl`"
            ),
            "{err}"
        );
        assert_eq!(
            OptimizerConfig::default(),
            serde_yaml::from_str("{ name: adagrad }").expect("valid")
        );
        let sgd: OptimizerConfig = serde_yaml::from_str("{ name: sgd }").expect("valid");
        assert_eq!(sgd.learning_rate_at(0), 0.01, "SGD's own default");
    }

    #[test]
    fn a_config_prints_as_a_manifest_entry_that_reads_back_the_same() {
        for yaml in [
            "{ name: sgd, learning_rate: 0.1, momentum: 0.9, nesterov: true, global_clipnorm: 5.0 }",
            "{ name: momentum }",
            "{ name: rmsprop, centered: true }",
            "{ name: ftrl, learning_rate: { exponential_decay: { initial_learning_rate: 0.1, decay_steps: 100, decay_rate: 0.5 } } }",
        ] {
            let c: OptimizerConfig = serde_yaml::from_str(yaml).expect("valid");
            let printed = serde_yaml::to_string(&c).expect("prints");
            let back: OptimizerConfig = serde_yaml::from_str(&printed).expect("reads back");
            assert_eq!(c, back, "{printed}");
            assert_eq!(c.rule().slot_names(), back.rule().slot_names());
        }
    }

    #[test]
    fn out_of_range_arguments_are_refused() {
        for (yaml, message) in [
            (
                "{ name: momentum, momentum: 1.0 }",
                "momentum must be in [0, 1), got 1",
            ),
            (
                "{ name: rmsprop, rho: 1.5 }",
                "rho must be in [0, 1), got 1.5",
            ),
            (
                "{ name: rmsprop, epsilon: 0 }",
                "epsilon must be > 0, got 0",
            ),
            (
                "{ name: ftrl, learning_rate_power: 0.5 }",
                "learning_rate_power must be <= 0, got 0.5",
            ),
            (
                "{ name: ftrl, l1_regularization_strength: -1 }",
                "l1_regularization_strength must be >= 0, got -1",
            ),
            (
                "{ name: ftrl, initial_accumulator_value: -0.1 }",
                "initial_accumulator_value must be >= 0, got -0.1",
            ),
            (
                "{ name: ftrl, l2_shrinkage_regularization_strength: -1 }",
                "l2_shrinkage_regularization_strength must be >= 0, got -1",
            ),
            (
                "{ name: adagrad, epsilon: -1e-7 }",
                "epsilon must be > 0, got -0.0000001",
            ),
            (
                "{ name: adagrad, initial_accumulator_value: -1 }",
                "initial_accumulator_value must be >= 0, got -1",
            ),
            ("{ name: adam, epsilon: 0 }", "epsilon must be > 0, got 0"),
            (
                "{ name: adam, beta_1: 1.0 }",
                "beta_1 must be in [0, 1), got 1",
            ),
            (
                "{ name: adam, beta_1: -0.1 }",
                "beta_1 must be in [0, 1), got -0.1",
            ),
            (
                "{ name: adam, beta_2: 1.0 }",
                "beta_2 must be in [0, 1), got 1",
            ),
            (
                "{ name: sgd, global_clipnorm: 0 }",
                "global_clipnorm must be > 0, got 0",
            ),
        ] {
            let config: OptimizerConfig = serde_yaml::from_str(yaml).expect("parses");
            assert_eq!(
                config.validate(),
                Err(Invalid(format!("optimizer: {message}"))),
                "{yaml}"
            );
        }
        // The edges that are allowed.
        for yaml in [
            "{ name: adam, beta_1: 0, beta_2: 0.999999 }",
            "{ name: adagrad, initial_accumulator_value: 0 }",
            "{ name: ftrl, learning_rate_power: 0 }",
        ] {
            let config: OptimizerConfig = serde_yaml::from_str(yaml).expect("parses");
            assert_eq!(config.validate(), Ok(()), "{yaml}");
        }
    }
}
