//! A built-in a model asks for through the ABI (a hook, an optimizer), read as the
//! manifest's entry for it would be, so that the same checks and messages apply.

use estimator_plugin_api::abi::{BuiltIn, SettingValue};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::Invalid;

/// `built_in` as the manifest's `hooks:` lists a hook: `{name: {settings}}`.
pub fn as_named_entry<T: DeserializeOwned>(built_in: &BuiltIn) -> Result<T, Invalid> {
    let entry = Value::Object(Map::from_iter([(
        built_in.name.to_string(),
        Value::Object(settings(built_in)?),
    )]));
    read(built_in, entry)
}

/// `built_in` as the manifest's `optimizer:` gives one: `{name: ..., settings}`.
pub fn as_tagged_entry<T: DeserializeOwned>(built_in: &BuiltIn) -> Result<T, Invalid> {
    let mut entry = settings(built_in)?;
    entry.insert("name".to_owned(), Value::from(built_in.name.as_str()));
    read(built_in, Value::Object(entry))
}

fn read<T: DeserializeOwned>(built_in: &BuiltIn, entry: Value) -> Result<T, Invalid> {
    serde_json::from_value(entry).map_err(|e| Invalid(format!("`{}`: {e}", built_in.name)))
}

fn settings(built_in: &BuiltIn) -> Result<Map<String, Value>, Invalid> {
    built_in
        .settings
        .iter()
        .map(|s| {
            let value = match s.value.as_enum() {
                Ok(SettingValue::Bool(b)) => Value::from(*b),
                Ok(SettingValue::Int(i)) => Value::from(*i),
                Ok(SettingValue::Float(f)) => Value::from(*f),
                Ok(SettingValue::Text(t)) => Value::from(t.as_str()),
                Ok(SettingValue::TextList(l)) => l.iter().map(|t| Value::from(t.as_str())).collect(),
                Err(_) => {
                    return Err(Invalid(format!(
                        "`{}`: setting `{}` has a type this host does not know (the plugin was built against a newer ABI 3.x)",
                        built_in.name, s.key
                    )))
                }
            };
            Ok((s.key.to_string(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::HookConfig;
    use crate::optimizer::OptimizerConfig;

    #[test]
    fn a_hook_reads_as_its_manifest_entry() {
        let asked = BuiltIn::new("logging_tensor")
            .with("tensors", ["loss"])
            .with("every_n_iter", 10);
        let from_abi: HookConfig = as_named_entry(&asked).expect("valid");
        let written: HookConfig = serde_json::from_str(
            r#"{"logging_tensor": {"tensors": ["loss"], "every_n_iter": 10}}"#,
        )
        .expect("valid");
        assert_eq!(from_abi, written);
    }

    #[test]
    fn an_optimizer_reads_as_its_manifest_entry() {
        let asked = BuiltIn::new("ftrl").with("learning_rate", 0.2);
        let from_abi: OptimizerConfig = as_tagged_entry(&asked).expect("valid");
        let from_yaml: OptimizerConfig =
            serde_yaml::from_str("{name: ftrl, learning_rate: 0.2}").expect("valid");
        assert_eq!(from_abi, from_yaml);
    }

    #[test]
    fn a_wrong_setting_is_named() {
        let asked = BuiltIn::new("logging_tensor").with("every_n_iter", "often");
        let err = as_named_entry::<HookConfig>(&asked).expect_err("refused");
        assert!(err.0.starts_with("`logging_tensor`: "), "{err}");
        assert!(
            err.0.contains("every_n_iter") || err.0.contains("invalid type"),
            "{err}"
        );
    }
}
