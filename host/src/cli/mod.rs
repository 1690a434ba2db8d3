//! What the `estimator` binary shows a person: the progress bar and the logs that share
//! the terminal with it, and the `checkpoints` command's listings.

pub mod inspect;
pub mod progress;
