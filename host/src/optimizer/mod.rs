//! Optimizers, host-side as in TF's premade estimators: the model returns gradients and the
//! optimizers configured in the manifest (or the model's defaults per part) apply them.
//!
//! - `config`: the manifest's form of one optimizer, and the list of optimizers by name;
//! - `rule`: the [`UpdateRule`] every optimizer implements, one file each (`sgd`,
//!   `adagrad`, `adam`, `rmsprop`, `ftrl`);
//! - `schedule`: learning rates that follow the global step;
//! - `apply`: one optimizer over its variables and slots, dense or row-sparse, clipped;
//! - `parts`: which optimizer updates which variables.

mod adagrad;
mod adam;
mod apply;
mod config;
mod ftrl;
mod parts;
mod rmsprop;
mod rule;
mod schedule;
mod sgd;
#[cfg(test)]
mod test_support;

pub use apply::{Optimizer, Slot};
pub use config::OptimizerConfig;
pub use parts::{DeclaredPart, OptimizerSection, Optimizers};
