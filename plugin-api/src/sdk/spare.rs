//! The buffers of a spec the host is done with, kept for the next model_fn on the same
//! thread: a TRAIN spec's gradient list, whose names and shapes the next step's gradients
//! take (`Params::gradients`) instead of allocating their own. The host hands each TRAIN
//! spec back after applying it (`ModelFn::recycle_spec`).
//!
//! An allocation cache only: a list that does not fit the next step (another model's, or
//! none) is dropped and the gradients are built afresh.

use std::cell::Cell;

use abi_stable::std_types::RVec;

use crate::abi::{EstimatorSpec, Gradient};

thread_local! {
    static GRADIENTS: Cell<Option<RVec<Gradient>>> = const { Cell::new(None) };
}

/// Keeps `spec`'s gradient list for the next model_fn on this thread, and drops the rest.
/// A model called outside a host (a bench, a test) hands its specs back here to run as
/// it does in one.
pub fn recycle_spec(mut spec: EstimatorSpec) {
    let gradients = std::mem::take(&mut spec.gradients);
    if !gradients.is_empty() {
        GRADIENTS.set(Some(gradients));
    }
}

/// The gradient list kept last, if any.
pub(crate) fn take_gradients() -> Option<RVec<Gradient>> {
    GRADIENTS.take()
}
