use abi_stable::{std_types::RString, StableAbi};
use std::fmt;

/// What went wrong inside a plugin call.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The params subtree of the manifest did not fit the plugin's schema.
    BadParams,
    /// The data handed to the plugin (or read by it) is invalid.
    BadData,
    /// The manifest named something this library does not export.
    NotFound,
    /// The plugin panicked; the panic was caught at the boundary.
    Panic,
    /// Any other failure.
    Other,
}

/// An error returned across the ABI: a kind and a one-line message.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct PluginError {
    pub kind: ErrorKind,
    pub message: RString,
}

impl PluginError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        PluginError {
            kind,
            message: RString::from(message.into()),
        }
    }

    pub fn bad_params(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadParams, message)
    }

    pub fn bad_data(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadData, message)
    }

    pub fn other(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Other, message)
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ErrorKind::Panic => write!(f, "plugin panicked: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for PluginError {}
