//! The host's error type. Every variant that comes from what the user gave us (manifest,
//! plugin, model output, data, model_dir, arguments) exits with code 2 and says what to
//! fix; a failure of the machine (a disk) or of the runtime itself (a bug) exits with 1.

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
    /// Input data, or files in model_dir that a run reads, are not what they must be (a
    /// changed CSV, a damaged event file); the message names the file or input.
    #[error("{0}")]
    Data(String),
    /// model_dir cannot be used now: another process trains in it.
    #[error("{0}")]
    ModelDir(String),
    /// A hook refuses to go on (its settings do not fit what it finds).
    #[error("{0}")]
    Hook(String),
    /// A bad combination of command-line arguments or manifest values, found at run time.
    #[error("{0}")]
    Usage(String),
    /// A failure of the runtime itself, not of what the user gave it: a bug.
    /// Another rank of a data-parallel run failed (it says why), so this one stops too,
    /// with that rank's exit code.
    #[error("stopped because rank {rank} failed (its error is above)")]
    OtherRank { rank: usize, code: i32 },
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
            Error::OtherRank { code, .. } => *code,
            _ => 2,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a value the user gave (a manifest key, a hook's settings, what a model returned) is
/// refused, in words. Whoever knows where the value came from, the manifest's file and key
/// or the plugin and call, makes it an [`Error`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl From<String> for Invalid {
    fn from(message: String) -> Self {
        Invalid(message)
    }
}

/// The message, to read and test as text.
impl std::ops::Deref for Invalid {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<&str> for Invalid {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl From<&str> for Invalid {
    fn from(message: &str) -> Self {
        Invalid(message.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_errors_exit_2_and_failures_of_the_machine_or_the_runtime_exit_1() {
        let user = [
            Error::Manifest("m.yaml: x".into()),
            Error::Plugin("p".into()),
            Error::Spec {
                plugin: "p".into(),
                message: "m".into(),
            },
            Error::Checkpoint {
                path: "c".into(),
                message: "m".into(),
            },
            Error::Data("d".into()),
            Error::ModelDir("d".into()),
            Error::Hook("h".into()),
            Error::Usage("u".into()),
        ];
        assert!(user.iter().all(|e| e.exit_code() == 2));
        let bug = Error::Internal("the checkpoint writer thread panicked".into());
        assert_eq!(bug.exit_code(), 1);
        assert_eq!(
            bug.to_string(),
            "internal error, a bug in estimator (please report it): the checkpoint writer thread panicked"
        );
        let disk = Error::io("model/x: cannot write", std::io::Error::other("disk full"));
        assert_eq!(disk.exit_code(), 1);
    }
}
