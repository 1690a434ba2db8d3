//! How a plugin's log events reach the host's subscriber.
//!
//! A plugin library has its own copy of `tracing`, with its own global dispatcher, so
//! its events would go nowhere. Right after loading a library, the host hands it a
//! [`HostLogger`]; the SDK installs a dispatcher that asks the host whether an event is
//! wanted and forwards it, formatted, with its target. The host's filter (`RUST_LOG`)
//! and output (above the progress bar) then apply as to its own events.

use abi_stable::{std_types::RStr, StableAbi};

/// tracing's levels, most severe first.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// The host's logging entry points, valid for the life of the process.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct HostLogger {
    /// Whether the host wants events of this level and target.
    pub enabled: extern "C" fn(LogLevel, RStr<'_>) -> bool,
    /// Logs a formatted event: level, target, message (with its fields).
    pub log: extern "C" fn(LogLevel, RStr<'_>, RStr<'_>),
    /// The most verbose level the host may want; the plugin skips finer events unasked.
    pub max_level: LogLevel,
}
