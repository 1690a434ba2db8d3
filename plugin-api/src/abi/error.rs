// The NonExhaustive expansion of `#[derive(StableAbi)]` defines impls inside a const block.
#![allow(non_local_definitions)]

use abi_stable::{std_types::RString, StableAbi};
use std::fmt;

/// What went wrong inside a plugin call.
///
/// It crosses the boundary as [`ErrorKind_NE`], so a later ABI 3.x may add a kind; a
/// host built before it reports such an error as [`ErrorKind::Other`] would be.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
#[sabi(kind(WithNonExhaustive(size = [usize; 1], traits(Debug, Clone, PartialEq, Eq))))]
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
    pub kind: ErrorKind_NE,
    pub message: RString,
}

impl PluginError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        PluginError {
            kind: ErrorKind_NE::new(kind),
            message: RString::from(message.into()),
        }
    }

    /// The kind, or [`ErrorKind::Other`] for one this build does not know.
    pub fn kind(&self) -> ErrorKind {
        self.kind.as_enum().copied().unwrap_or(ErrorKind::Other)
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
        match self.kind() {
            ErrorKind::Panic => write!(f, "plugin panicked: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for PluginError {}
