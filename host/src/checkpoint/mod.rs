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
mod writer;

pub use commit::{system_clock, write_atomic, Clock, Committer};
pub use contents::{saved_hook_states, saved_input, Provenance, SavedInput, TrainingState};
pub use format::{decode, encode, read, read_weights, Checkpoint, SavedTensor, Weights};
pub use retention::{retain, Retention, RetentionPolicy};
pub use schedule::SaveSchedule;
pub use state::{
    file_name, latest, read_latest_whole, read_state, step_of, CheckpointState, STATE_FILE,
};
pub use writer::BackgroundWriter;
