//! The host's error type. Every variant that comes from what the user gave us (manifest,
//! plugin, data, arguments) exits with code 2; failures of the machine itself exit with 1.

use std::path::PathBuf;

use estimator_plugin_api::abi::PluginError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A manifest problem; the message starts with `file:line:column` where known.
    #[error("{0}")]
    Manifest(String),
    /// A plugin library could not be found, loaded or used.
    #[error("{0}")]
    Plugin(String),
    /// A plugin call failed; the message names the plugin and the call.
    #[error("plugin `{plugin}` ({call}): {source}")]
    PluginCall {
        plugin: String,
        call: String,
        source: PluginError,
    },
    /// A model_fn returned an EstimatorSpec that breaks the contract for its mode.
    #[error("plugin `{plugin}` model_fn: {message}")]
    Spec { plugin: String, message: String },
    /// A checkpoint or the state file is unreadable or does not fit the model.
    #[error("{path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    /// A bad combination of arguments or manifest values.
    #[error("{0}")]
    Usage(String),
    /// A failure of the runtime itself, not of what the user gave it: a bug.
    #[error("internal error, a bug in estimator (please report it): {0}")]
    Internal(String),
    /// Reading or writing files in model_dir failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The process exit code this error maps to.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Io { .. } | Error::Internal(_) => 1,
            _ => 2,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
