//! Checkpoints: `model.ckpt-<step>.safetensors` files plus the `checkpoint` state file.
//!
//! - `format`: the file itself (tensors, `global_step`, metadata), encoded and read back;
//! - `contents`: what a training checkpoint's metadata holds (input position, hooks);
//! - `state`: the state file naming the latest and kept checkpoints;
//! - `retention`: which checkpoints stay (a pure policy);
//! - `schedule`: when training saves (a pure policy);
//! - `commit`: writing one to model_dir atomically, then the state file, then retention;
//! - `writer`: committing on a background thread, one write in flight.

mod commit;
mod contents;
mod format;
mod retention;
mod schedule;
mod state;
#[cfg(test)]
mod test_support;
pub mod tf;
mod writer;

// Reading checkpoints is public; writing them is the runtime's own.
pub use format::{decode, encode_checkpoint, read, read_weights, Checkpoint, Weights};
pub use state::{
    file_name, latest, read_latest_whole, read_state, step_of, CheckpointState, STATE_FILE,
};

#[cfg(test)]
pub(crate) use commit::Clock;
pub(crate) use commit::{sync_folder, system_clock, write_atomic, Committer};
pub(crate) use contents::{
    saved_hook_states, saved_input, saved_iterations, Provenance, SavedInput, TrainingState,
};
pub(crate) use format::encode;
pub(crate) use format::SavedTensor;
pub(crate) use retention::RetentionPolicy;
pub(crate) use schedule::SaveSchedule;
pub(crate) use writer::BackgroundWriter;
