//! A host built-in a model asks for by name (a hook, an optimizer), with typed settings.
//!
//! The host owns hooks and optimizers and checks their settings, so the ABI does not
//! mirror each one's fields: a model names the built-in as the manifest would and lists
//! its settings as typed values. The host reads them exactly as it reads the manifest's
//! `hooks:` and `optimizer:` entries, with the same checks and messages.

// The NonExhaustive expansion of `#[derive(StableAbi)]` defines impls inside a const block.
#![allow(non_local_definitions)]

use abi_stable::{
    std_types::{RString, RVec},
    StableAbi,
};

/// One setting's value.
///
/// It crosses the boundary as [`SettingValue_NE`], so a later ABI 3.x may add a type.
#[repr(u8)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
#[sabi(kind(WithNonExhaustive(size = [usize; 5], traits(Debug, Clone, PartialEq))))]
pub enum SettingValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(RString),
    TextList(RVec<RString>),
}

/// A setting: its key, as the manifest spells it, and its value.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct Setting {
    pub key: RString,
    pub value: SettingValue_NE,
}

/// A built-in chosen by name (`logging_tensor`, `ftrl`) with its settings.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct BuiltIn {
    pub name: RString,
    pub settings: RVec<Setting>,
}

impl BuiltIn {
    /// The built-in `name` with no settings yet.
    pub fn new(name: impl Into<String>) -> Self {
        BuiltIn {
            name: RString::from(name.into()),
            settings: RVec::new(),
        }
    }

    /// Adds the setting `key`: `.with("every_n_iter", 10)`, `.with("tensors", ["loss"])`.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<SettingValue>) -> Self {
        self.settings.push(Setting {
            key: RString::from(key.into()),
            value: SettingValue_NE::new(value.into()),
        });
        self
    }
}

/// A group of variables one optimizer updates, and its default optimizer.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct OptimizerPart {
    /// The part's name: the key under the manifest's `optimizer:` that overrides it.
    pub name: RString,
    /// The prefix of the variable names this part's optimizer updates.
    pub variables: RString,
    /// The default optimizer, by the manifest's name: `BuiltIn::new("ftrl")
    /// .with("learning_rate", 0.2)`.
    pub optimizer: BuiltIn,
}

impl OptimizerPart {
    pub fn new(name: impl Into<String>, variables: impl Into<String>, optimizer: BuiltIn) -> Self {
        OptimizerPart {
            name: RString::from(name.into()),
            variables: RString::from(variables.into()),
            optimizer,
        }
    }
}

impl From<bool> for SettingValue {
    fn from(v: bool) -> Self {
        SettingValue::Bool(v)
    }
}

impl From<i64> for SettingValue {
    fn from(v: i64) -> Self {
        SettingValue::Int(v)
    }
}

impl From<i32> for SettingValue {
    fn from(v: i32) -> Self {
        SettingValue::Int(v.into())
    }
}

impl From<u32> for SettingValue {
    fn from(v: u32) -> Self {
        SettingValue::Int(v.into())
    }
}

impl From<f64> for SettingValue {
    fn from(v: f64) -> Self {
        SettingValue::Float(v)
    }
}

impl From<&str> for SettingValue {
    fn from(v: &str) -> Self {
        SettingValue::Text(v.into())
    }
}

impl From<String> for SettingValue {
    fn from(v: String) -> Self {
        SettingValue::Text(v.into())
    }
}

impl<const N: usize> From<[&str; N]> for SettingValue {
    fn from(v: [&str; N]) -> Self {
        SettingValue::TextList(v.iter().map(|s| RString::from(*s)).collect())
    }
}

impl From<Vec<String>> for SettingValue {
    fn from(v: Vec<String>) -> Self {
        SettingValue::TextList(v.into_iter().map(RString::from).collect())
    }
}
