//! Committing checkpoints to model_dir: each file written to a temporary file, fsynced and
//! renamed; the state file written after the checkpoint, so it is the commit marker; then
//! what retention dropped deleted. A crash at any instant leaves the previous state file
//! naming whole checkpoints.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::retention::{retain, RetentionPolicy};
use super::state::{file_name, read_state, step_of, CheckpointState, STATE_FILE};
use crate::error::{Error, Result};

/// Seconds since the Unix epoch; injectable so that retention by age is testable.
pub type Clock = Box<dyn Fn() -> f64 + Send>;

pub fn system_clock() -> Clock {
    Box::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default()
    })
}

/// Deletes temporary files and checkpoints newer than the committed latest one. Failures
/// are ignored: the files are harmless, only untidy.
fn remove_uncommitted(model_dir: &Path, state: &CheckpointState) {
    let latest = state.latest.as_deref().and_then(step_of).unwrap_or(-1);
    let Ok(entries) = std::fs::read_dir(model_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let uncommitted =
            name.starts_with(TEMP_PREFIX) || step_of(name).is_some_and(|s| s > latest);
        if uncommitted {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Temporary files `write_atomic` creates in model_dir before renaming them.
const TEMP_PREFIX: &str = ".tmp-";

/// Writes `bytes` to `path` atomically: temp file in the same folder, fsync, rename, fsync
/// the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let context = || format!("{}: cannot write", path.display());
    let mut builder = tempfile::Builder::new();
    builder.prefix(TEMP_PREFIX);
    // tempfile creates files readable by their owner only; checkpoints are shared with
    // the user's other tools (TensorBoard, a serving process), so create them as any file.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut tmp = builder
        .tempfile_in(dir)
        .map_err(|e| Error::io(context(), e))?;
    tmp.write_all(bytes).map_err(|e| Error::io(context(), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io(context(), e))?;
    tmp.persist(path)
        .map_err(|e| Error::io(context(), e.error))?;
    sync_folder(dir);
    Ok(())
}

/// Makes renames and new entries in `dir` durable, where the filesystem can: not all
/// support syncing a folder.
pub fn sync_folder(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Commits checkpoints into one model_dir and applies retention, continuing the state a
/// previous run left.
pub struct Committer {
    model_dir: PathBuf,
    policy: RetentionPolicy,
    state: CheckpointState,
    clock: Clock,
    /// As TF's Saver: a checkpoint leaving the window after this time is kept.
    next_keep: f64,
}

impl Committer {
    /// A committer for `model_dir`, which the caller has locked. Removes what a run that
    /// crashed there left half done: temporary files, and checkpoints written after the
    /// latest the state file commits (which may be incomplete runs' leftovers).
    pub fn new(model_dir: &Path, policy: RetentionPolicy, clock: Clock) -> Result<Self> {
        let state = read_state(model_dir)?.unwrap_or_default();
        remove_uncommitted(model_dir, &state);
        let next_keep = clock() + policy.keep_every_secs;
        Ok(Committer {
            model_dir: model_dir.to_path_buf(),
            policy,
            state,
            clock,
            next_keep,
        })
    }

    /// Writes the checkpoint for `global_step`, then the state file, then deletes what
    /// retention dropped. Returns the checkpoint's path.
    pub fn save(&mut self, global_step: i64, encoded: &[u8]) -> Result<PathBuf> {
        let name = file_name(global_step);
        let path = self.model_dir.join(&name);
        write_atomic(&path, encoded)?;
        let now = (self.clock)();
        self.state.all.retain(|(n, _)| n != &name);
        self.state.all.push((name.clone(), now));
        let retention = retain(&self.state.all, self.policy, &mut self.next_keep);
        self.state.all = retention.listed;
        self.state.latest = Some(name);
        write_atomic(
            &self.model_dir.join(STATE_FILE),
            self.state.to_text().as_bytes(),
        )?;
        for old in retention.delete {
            // Already gone is fine: retention only wants it not to be there.
            let _ = std::fs::remove_file(self.model_dir.join(old));
        }
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::test_support::{entries, keep};
    use crate::checkpoint::CheckpointState;

    /// TF's keep_checkpoint_every_n_hours, with a clock that ticks one second per save:
    /// every 2 s, a checkpoint leaving the window of 2 stays on disk, unlisted.
    #[test]
    fn every_n_hours_keeps_checkpoints_leaving_the_window_by_age() {
        let dir = tempfile::tempdir().expect("temp dir");
        let tick = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let clock_tick = std::sync::Arc::clone(&tick);
        let clock: Clock =
            Box::new(move || clock_tick.load(std::sync::atomic::Ordering::SeqCst) as f64);
        let policy = RetentionPolicy {
            keep_max: 2,
            keep_every_secs: 2.0,
        };
        let mut saver = Committer::new(dir.path(), policy, clock).expect("saver");
        for step in 0..=8 {
            tick.store(step as u64, std::sync::atomic::Ordering::SeqCst);
            saver.save(step, b"x").expect("saves");
        }
        let mut on_disk: Vec<i64> = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(|e| step_of(&e.expect("entry").file_name().to_string_lossy()))
            .collect();
        on_disk.sort();
        assert_eq!(on_disk, vec![3, 5, 7, 8]);
        let state = read_state(dir.path()).expect("state").expect("written");
        assert_eq!(state.all, entries(&[7, 8]));
    }

    #[test]
    fn a_new_saver_removes_what_a_crashed_run_left_uncommitted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = CheckpointState {
            latest: Some(file_name(10)),
            all: entries(&[10]),
        };
        std::fs::write(dir.path().join(STATE_FILE), state.to_text()).expect("write");
        for name in [
            file_name(5),
            file_name(10),
            file_name(15),
            ".tmp-x1".into(),
            "notes.txt".into(),
        ] {
            std::fs::write(dir.path().join(name), b"x").expect("write");
        }
        Committer::new(dir.path(), keep(5), system_clock()).expect("saver");
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![
                STATE_FILE.to_owned(),
                file_name(10),
                file_name(5),
                "notes.txt".into()
            ]
        );
    }

    #[cfg(unix)]
    #[test]
    fn written_files_get_the_permissions_of_any_new_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        write_atomic(&dir.path().join("a"), b"x").expect("writes");
        std::fs::write(dir.path().join("b"), b"x").expect("writes");
        let mode = |name: &str| {
            std::fs::metadata(dir.path().join(name))
                .expect("exists")
                .permissions()
                .mode()
        };
        assert_eq!(mode("a"), mode("b"));
    }
}
