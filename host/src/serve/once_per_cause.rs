//! A fault that the poller meets at every poll (a base path gone, a broken config file)
//! is logged once, and again only when its cause changes, not once per poll.

use std::sync::{Mutex, PoisonError};

use tracing::warn;

#[derive(Default)]
pub struct OncePerCause(Mutex<Option<String>>);

impl OncePerCause {
    /// Logs `fault` unless it is the one logged last.
    pub fn report(&self, fault: String) {
        let mut last = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if last.as_deref() != Some(fault.as_str()) {
            warn!("{fault}");
            *last = Some(fault);
        }
    }

    /// Forgets the last fault; whether there was one (the fault is over).
    pub fn clear(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .is_some()
    }
}
