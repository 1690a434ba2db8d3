//! Where plugins' log events go: the host's own subscriber.
//!
//! A loaded library gets a [`HostLogger`] (see `estimator_plugin_api::sdk::logging`). Its
//! events arrive here with a level, a target and a formatted message, and are handed to
//! the `log` facade, which the host's subscriber reads (tracing-subscriber's `tracing-log`
//! bridge): `RUST_LOG` filters them by target, and they print above the progress bar as
//! the host's own do. Targets are not printed for the host's events, so the message
//! carries the plugin's.

use abi_stable::std_types::RStr;
use estimator_plugin_api::abi::{HostLogger, LogLevel};
use tracing::level_filters::LevelFilter;

/// The logger handed to every plugin library this process loads.
pub fn host_logger() -> HostLogger {
    HostLogger {
        enabled,
        log,
        max_level: max_level(LevelFilter::current()),
    }
}

extern "C" fn enabled(level: LogLevel, target: RStr<'_>) -> bool {
    let metadata = log::Metadata::builder()
        .level(log_level(level))
        .target(target.as_str())
        .build();
    log::logger().enabled(&metadata)
}

extern "C" fn log(level: LogLevel, target: RStr<'_>, message: RStr<'_>) {
    let target = target.as_str();
    log::logger().log(
        &log::Record::builder()
            .level(log_level(level))
            .target(target)
            .args(format_args!("{target}: {message}"))
            .build(),
    );
}

fn log_level(level: LogLevel) -> log::Level {
    match level {
        LogLevel::Error => log::Level::Error,
        LogLevel::Warn => log::Level::Warn,
        LogLevel::Info => log::Level::Info,
        LogLevel::Debug => log::Level::Debug,
        LogLevel::Trace => log::Level::Trace,
    }
}

/// The finest level the host's filter may let through; `Error` when it lets nothing
/// through, since `enabled` then refuses every event anyway.
fn max_level(filter: LevelFilter) -> LogLevel {
    match filter.into_level() {
        Some(tracing::Level::TRACE) => LogLevel::Trace,
        Some(tracing::Level::DEBUG) => LogLevel::Debug,
        Some(tracing::Level::INFO) => LogLevel::Info,
        Some(tracing::Level::WARN) => LogLevel::Warn,
        _ => LogLevel::Error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_max_level_follows_the_filter() {
        assert_eq!(max_level(LevelFilter::TRACE), LogLevel::Trace);
        assert_eq!(max_level(LevelFilter::INFO), LogLevel::Info);
        assert_eq!(max_level(LevelFilter::WARN), LogLevel::Warn);
        assert_eq!(max_level(LevelFilter::OFF), LogLevel::Error);
    }
}
