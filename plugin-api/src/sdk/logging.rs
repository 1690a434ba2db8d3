//! A plugin's `tracing` events, sent to the host.
//!
//! A plugin library has its own copy of `tracing` and so its own global dispatcher. When
//! the host loads the library it calls the root module's `init_logging`, and
//! [`forward_to`] makes a [`Forwarder`] that dispatcher: each event the host wants (its
//! `RUST_LOG` filter decides, by level and target) is formatted here and handed over. The
//! target is the event's own, which starts with the plugin crate's name, so
//! `RUST_LOG=my_plugin=debug` works as for any crate. Spans are not forwarded: an event
//! arrives without the spans around it.

use std::fmt::{self, Write as _};
use std::sync::OnceLock;

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{span, Event, Level, Metadata, Subscriber};

use crate::abi::{HostLogger, LogLevel};

static HOST: OnceLock<HostLogger> = OnceLock::new();

/// Sends this library's events to `host` from now on. Later calls change nothing.
pub fn forward_to(host: HostLogger) {
    if HOST.set(host).is_ok() {
        // Fails only if the library set a dispatcher itself; its choice then stands.
        let _ = tracing::subscriber::set_global_default(Forwarder);
    }
}

/// The dispatcher that hands events to the host.
pub struct Forwarder;

impl Subscriber for Forwarder {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // The host's filter may depend on the target, so ask on every event.
        Interest::sometimes()
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(
            HOST.get()
                .map_or(LevelFilter::OFF, |h| level_filter(h.max_level)),
        )
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        HOST.get().is_some_and(|host| {
            (host.enabled)(log_level(metadata.level()), metadata.target().into())
        })
    }

    fn event(&self, event: &Event<'_>) {
        let Some(host) = HOST.get() else { return };
        let mut message = Message::default();
        event.record(&mut message);
        let metadata = event.metadata();
        (host.log)(
            log_level(metadata.level()),
            metadata.target().into(),
            message.0.as_str().into(),
        );
    }

    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }

    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}

/// An event's fields as the host's formatter writes them: the message, then
/// `key=value` for each other field.
#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let gap = if self.0.is_empty() { "" } else { " " };
        let _ = match field.name() {
            "message" => write!(self.0, "{gap}{value:?}"),
            name => write!(self.0, "{gap}{name}={value:?}"),
        };
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }
}

fn log_level(level: &Level) -> LogLevel {
    match *level {
        Level::ERROR => LogLevel::Error,
        Level::WARN => LogLevel::Warn,
        Level::INFO => LogLevel::Info,
        Level::DEBUG => LogLevel::Debug,
        _ => LogLevel::Trace,
    }
}

fn level_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Trace => LevelFilter::TRACE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_written_as_the_host_formats_them() {
        // Record through a real event: the message first, then key=value pairs.
        struct Capture(std::sync::Mutex<String>);
        impl Subscriber for Capture {
            fn enabled(&self, _: &Metadata<'_>) -> bool {
                true
            }
            fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
                span::Id::from_u64(1)
            }
            fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
            fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
            fn event(&self, event: &Event<'_>) {
                let mut m = Message::default();
                event.record(&mut m);
                *self.0.lock().expect("unpoisoned") = m.0;
            }
            fn enter(&self, _: &span::Id) {}
            fn exit(&self, _: &span::Id) {}
        }
        let capture = std::sync::Arc::new(Capture(std::sync::Mutex::new(String::new())));
        tracing::subscriber::with_default(std::sync::Arc::clone(&capture), || {
            tracing::info!(rows = 150, name = "iris", "read {} columns", 5);
        });
        let message = capture.0.lock().expect("unpoisoned").clone();
        assert_eq!(message, "read 5 columns rows=150 name=\"iris\"");
    }
}
