//! Which optimizer updates which variables. A model declares its parts, each with TF's
//! default optimizer for it (a DNN's Adagrad 0.001, a linear model's Ftrl 0.2, both for a
//! combined model); the manifest's `optimizer:` overrides them:
//!
//! ```yaml
//! optimizer: { name: adam, learning_rate: 0.01 }          # a model with one part
//! optimizer: { dnn: { name: adam }, linear: { name: ftrl, learning_rate: 0.1 } }
//! ```

use crate::error::Invalid;
use std::collections::BTreeMap;

use estimator_plugin_api::abi::Gradient;
use serde::{Deserialize, Serialize};

use super::{Optimizer, OptimizerConfig, Slot};
use crate::variables::VariableStore;

/// `optimizer:` in the manifest.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OptimizerSection {
    /// Absent: each part's default from the model.
    #[default]
    ModelDefault,
    /// One optimizer, for a model with one part.
    One(OptimizerConfig),
    /// An optimizer per part name; parts not named keep their default.
    ByPart(BTreeMap<String, OptimizerConfig>),
}

impl OptimizerSection {
    pub fn is_model_default(&self) -> bool {
        *self == OptimizerSection::ModelDefault
    }

    /// Reads the section from YAML: a mapping with `name` is one optimizer, any other
    /// mapping has one per part.
    pub fn from_yaml(value: serde_yaml::Value) -> Result<Self, Invalid> {
        let by_part = value.as_mapping().is_some_and(|m| !m.contains_key("name"));
        match (value, by_part) {
            (serde_yaml::Value::Null, _) => Ok(OptimizerSection::ModelDefault),
            (serde_yaml::Value::Mapping(parts), true) => {
                let mut out = BTreeMap::new();
                for (key, config) in parts {
                    let name = key
                        .as_str()
                        .ok_or("optimizer: a part's name must be a string")?
                        .to_owned();
                    let config = OptimizerConfig::deserialize(config)
                        .map_err(|e| format!("optimizer: {name}: {e}"))?;
                    out.insert(name, config);
                }
                Ok(OptimizerSection::ByPart(out))
            }
            (value, _) => OptimizerConfig::deserialize(value)
                .map(OptimizerSection::One)
                .map_err(|e| Invalid(format!("optimizer: {e}"))),
        }
    }

    /// TF's argument checks for every optimizer given.
    pub fn validate(&self) -> Result<(), Invalid> {
        match self {
            OptimizerSection::ModelDefault => Ok(()),
            OptimizerSection::One(config) => config.validate(),
            OptimizerSection::ByPart(parts) => parts.iter().try_for_each(|(name, config)| {
                config.validate().map_err(|m| {
                    Invalid(m.0.replacen("optimizer:", &format!("optimizer: {name}:"), 1))
                })
            }),
        }
    }
}

/// A part as a model declares it (`ModelFn::optimizer_parts`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredPart {
    pub name: String,
    /// The prefix of the variable names this part updates.
    pub variables: String,
    pub optimizer: OptimizerConfig,
}

/// The optimizers of a training run, each over its part's trainable variables.
#[derive(Clone, Debug)]
pub struct Optimizers {
    parts: Vec<Optimizer>,
    /// Every trainable variable, in gradient order.
    trainable: Vec<usize>,
}

impl Optimizers {
    /// Gives each trainable variable to the first declared part whose prefix it has, with
    /// the part's optimizer from the manifest or its default. A model that declares no
    /// parts has one, over every variable, with the host's default (TF's DNN default).
    /// Errors are messages about the manifest's `optimizer:` or the model's declaration.
    pub fn resolve(
        section: &OptimizerSection,
        mut declared: Vec<DeclaredPart>,
        vars: &VariableStore,
    ) -> Result<Self, Invalid> {
        if declared.is_empty() {
            declared.push(DeclaredPart {
                name: "model".to_owned(),
                variables: String::new(),
                optimizer: OptimizerConfig::default(),
            });
        }
        let names: Vec<&str> = declared.iter().map(|p| p.name.as_str()).collect();
        let chosen: Vec<OptimizerConfig> = match section {
            OptimizerSection::ModelDefault => {
                declared.iter().map(|p| p.optimizer.clone()).collect()
            }
            OptimizerSection::One(config) if declared.len() == 1 => vec![config.clone()],
            OptimizerSection::One(_) => {
                return Err(Invalid(format!(
                    "optimizer: the model has one optimizer per part ({}): write `optimizer: {{{}: {{name: ...}}}}`",
                    names.join(", "),
                    names[0]
                )))
            }
            OptimizerSection::ByPart(given) => {
                if let Some(unknown) = given.keys().find(|k| !names.contains(&k.as_str())) {
                    return Err(Invalid(format!(
                        "optimizer: the model has no part `{unknown}` (its parts: {})",
                        names.join(", ")
                    )));
                }
                declared
                    .iter()
                    .map(|p| given.get(&p.name).unwrap_or(&p.optimizer).clone())
                    .collect()
            }
        };
        let trainable = vars.trainable_indices();
        let mut members: Vec<(Vec<usize>, Vec<usize>)> = vec![Default::default(); declared.len()];
        let all: Vec<_> = vars.iter().collect();
        for (position, &index) in trainable.iter().enumerate() {
            let name = &all[index].name;
            let part = declared
                .iter()
                .position(|p| name.starts_with(&p.variables))
                .ok_or_else(|| {
                    format!(
                        "variable `{name}` belongs to none of the model's optimizer parts ({})",
                        names.join(", ")
                    )
                })?;
            members[part].0.push(index);
            members[part].1.push(position);
        }
        let parts = chosen
            .into_iter()
            .zip(members)
            .filter(|(_, (indices, _))| !indices.is_empty())
            .map(|(config, (indices, positions))| {
                Optimizer::for_variables(config, vars, indices, positions)
            })
            .collect();
        Ok(Optimizers { parts, trainable })
    }

    /// Indices of the variables that receive gradients, in gradient order.
    pub fn trainable(&self) -> &[usize] {
        &self.trainable
    }

    pub fn slots(&self) -> impl Iterator<Item = &Slot> {
        self.parts.iter().flat_map(Optimizer::slots)
    }

    pub fn slots_mut(&mut self) -> impl Iterator<Item = &mut Slot> {
        self.parts.iter_mut().flat_map(Optimizer::slots_mut)
    }

    /// Each part's update counter by TF's name (`training/Adam/iter`), for checkpoints.
    pub fn iterations(&self) -> BTreeMap<String, i64> {
        self.parts
            .iter()
            .map(|p| (p.iterations_name(), p.iterations()))
            .collect()
    }

    /// Restores the update counters a checkpoint at `global_step` saved; a part whose
    /// counter it lacks (checkpoints from before counters were saved) counts from the
    /// global step, as it does when every update was one step.
    pub fn restore_iterations(&mut self, global_step: i64, saved: &BTreeMap<String, i64>) {
        for part in &mut self.parts {
            let saved = saved.get(&part.iterations_name()).copied();
            part.set_iterations(saved.unwrap_or(global_step));
        }
    }

    /// Every part applies its variables' gradients; the global step advances once.
    pub fn apply(&mut self, vars: &mut VariableStore, gradients: &[Gradient], step: i64) {
        for part in &mut self.parts {
            part.apply(vars, gradients, step);
        }
    }

    /// The learning rate logged for a step: the first part's.
    pub fn learning_rate_at(&self, step: i64) -> Option<f32> {
        self.parts
            .first()
            .map(|p| p.config().learning_rate_at(step))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use estimator_plugin_api::abi::{Initializer, VarSpec};

    fn store() -> VariableStore {
        let var = |name: &str| VarSpec::new(name, &[1], Initializer::Ones);
        let specs = [
            var("dnn/w"),
            var("dnn/moving_mean").non_trainable(),
            var("linear/w"),
            var("dnn/b"),
        ];
        VariableStore::initialise(&specs, 0).expect("distinct names")
    }

    fn part(name: &str, optimizer: &str) -> DeclaredPart {
        DeclaredPart {
            name: name.to_owned(),
            variables: format!("{name}/"),
            optimizer: serde_yaml::from_str(optimizer).expect("optimizer"),
        }
    }

    fn section(yaml: &str) -> OptimizerSection {
        OptimizerSection::from_yaml(serde_yaml::from_str(yaml).expect("yaml")).expect("section")
    }

    #[test]
    fn update_counters_count_each_apply_and_restore_from_a_checkpoint_or_the_step() {
        let mut vars = store();
        let declared = vec![part("dnn", "{name: adam}"), part("linear", "{name: ftrl}")];
        let mut opt =
            Optimizers::resolve(&OptimizerSection::ModelDefault, declared, &vars).expect("valid");
        let counters = |o: &Optimizers| o.iterations().into_iter().collect::<Vec<_>>();
        assert_eq!(
            counters(&opt),
            [
                ("training/Adam/iter".to_owned(), 0),
                ("training/Ftrl/iter".to_owned(), 0)
            ]
        );
        let grads: Vec<Gradient> = (0..3)
            .map(|_| {
                Gradient::dense(
                    "g",
                    estimator_plugin_api::abi::Tensor::f32(vec![1], vec![1.0]),
                )
            })
            .collect();
        opt.apply(&mut vars, &grads, 0);
        opt.apply(&mut vars, &grads, 1);
        assert_eq!(counters(&opt)[0].1, 2);
        // TF saved the linear optimizer's counter only: the other follows the global step.
        let saved = BTreeMap::from([("training/Ftrl/iter".to_owned(), 7)]);
        opt.restore_iterations(300, &saved);
        assert_eq!(
            counters(&opt),
            [
                ("training/Adam/iter".to_owned(), 300),
                ("training/Ftrl/iter".to_owned(), 7)
            ]
        );
    }

    #[test]
    fn each_part_updates_its_own_variables_with_its_own_rule() {
        let mut vars = store();
        let declared = vec![
            part("dnn", "{name: sgd, learning_rate: 0.5}"),
            part("linear", "{name: sgd, learning_rate: 0.1}"),
        ];
        let by_part = section("{linear: {name: sgd, learning_rate: 0.25}}");
        let mut opt = Optimizers::resolve(&by_part, declared, &vars).expect("valid");
        assert_eq!(opt.trainable(), &[0, 2, 3]);
        let grads: Vec<Gradient> = [1.0f32, 2.0, 4.0]
            .iter()
            .map(|&g| {
                Gradient::dense(
                    "g",
                    estimator_plugin_api::abi::Tensor::f32(vec![1], vec![g]),
                )
            })
            .collect();
        opt.apply(&mut vars, &grads, 0);
        let values: Vec<f32> = vars.iter().map(|v| v.data[0]).collect();
        // dnn/w: 1 - 0.5·1; linear/w (overridden): 1 - 0.25·2; dnn/b: 1 - 0.5·4.
        assert_eq!(values, vec![0.5, 1.0, 0.5, -1.0]);
    }

    #[test]
    fn the_manifest_must_name_parts_the_model_has() {
        let vars = store();
        let declared = || {
            vec![
                part("dnn", "{name: adagrad}"),
                part("linear", "{name: ftrl}"),
            ]
        };
        let one = section("{name: adam}");
        let err = Optimizers::resolve(&one, declared(), &vars).unwrap_err();
        assert!(
            err.contains("one optimizer per part (dnn, linear)"),
            "{err}"
        );
        let unknown = section("{wide: {name: adam}}");
        let err = Optimizers::resolve(&unknown, declared(), &vars).unwrap_err();
        assert!(err.contains("no part `wide`"), "{err}");
        let err = Optimizers::resolve(
            &OptimizerSection::ModelDefault,
            vec![part("dnn", "{name: sgd}")],
            &vars,
        )
        .unwrap_err();
        assert!(err.contains("variable `linear/w` belongs to none"), "{err}");
    }

    #[test]
    fn a_model_without_parts_gets_the_manifest_optimizer_or_the_host_default() {
        let vars = store();
        let default =
            Optimizers::resolve(&OptimizerSection::ModelDefault, Vec::new(), &vars).expect("valid");
        let slots: Vec<String> = default.slots().map(|s| s.name.to_string()).collect();
        assert_eq!(
            slots.len(),
            3,
            "an accumulator for each of three variables: {slots:?}"
        );
        assert!(
            slots.iter().all(|s| s.starts_with("training/Adagrad/")),
            "{slots:?}"
        );
        let adam = Optimizers::resolve(&section("{name: adam}"), Vec::new(), &vars).expect("valid");
        assert_eq!(adam.slots().count(), 6, "m and v for three variables");
        assert!(OptimizerSection::from_yaml(
            serde_yaml::from_str("{dnn: {name: sgdd}}").expect("yaml")
        )
        .unwrap_err()
        .starts_with("optimizer: dnn: unknown variant `sgdd`"));
    }
}
