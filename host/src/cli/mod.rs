//! What the `estimator` binary shows a person: the progress bar and the logs that share
//! the terminal with it, the `checkpoints` command's listings, and `new-plugin`'s crate.

pub mod inspect;
pub mod progress;
pub mod scaffold;
pub mod serve_flags;
