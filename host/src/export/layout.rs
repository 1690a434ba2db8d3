//! One exported version: `BASE/<version>/` holding
//!
//! - `export.yaml`: the model section of the manifest (its plugin now the copy below), the
//!   global step, the serving inputs and the signatures ([`ExportMeta`]);
//! - `variables.safetensors`: the variables the model predicts with (no optimizer slots),
//!   in the checkpoint format;
//! - `plugin/<library>`: a copy of the model's plugin library, whose SHA-256
//!   `export.yaml` records and loading checks;
//! - `warmup.json`: a few examples from the manifest's input, which a server predicts
//!   before the version serves.
//!
//! As TF's, the version is the Unix time in seconds; the directory is written as
//! `temp-<version>` and renamed, so a reader never sees half an export.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::signature::{Signatures, TensorInfo};
use crate::checkpoint::sync_folder;
use crate::error::{Error, Result};

pub const EXPORT_FILE: &str = "export.yaml";
pub const VARIABLES_FILE: &str = "variables.safetensors";
pub const PLUGIN_DIR: &str = "plugin";
pub const WARMUP_FILE: &str = "warmup.json";
/// The export format this host writes and reads.
pub const FORMAT: u32 = 1;

/// `export.yaml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportMeta {
    pub format: u32,
    pub global_step: i64,
    pub model: ExportedModel,
    /// The features a request gives, each with its type per example.
    pub inputs: BTreeMap<String, TensorInfo>,
    pub signatures: Signatures,
}

/// The model section of the manifest, pointing at the library copied into the export.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedModel {
    /// The library's file name under `plugin/`.
    pub plugin: String,
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub params: serde_yaml::Value,
}

impl ExportMeta {
    /// Reads `dir/export.yaml`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(EXPORT_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::ModelDir(format!("{}: cannot read: {e}", path.display())))?;
        let meta: ExportMeta = serde_yaml::from_str(&text)
            .map_err(|e| Error::ModelDir(format!("{}: {e}", path.display())))?;
        // The library is looked for in the version's own `plugin/` folder, nowhere else.
        let bare = Path::new(&meta.model.plugin).file_name() == Some(meta.model.plugin.as_ref())
            && meta.model.plugin != "..";
        if !bare {
            return Err(Error::ModelDir(format!(
                "{}: plugin `{}` must be a file name in the version's {PLUGIN_DIR}/ folder",
                path.display(),
                meta.model.plugin
            )));
        }
        if meta.format != FORMAT {
            return Err(Error::ModelDir(format!(
                "{}: export format {} is not this host's ({FORMAT})",
                path.display(),
                meta.format
            )));
        }
        Ok(meta)
    }
}

/// Refuses a version directory that is, or holds, a link out of `base`: what a server
/// loads from a base path must be inside it. Returns the first offending path.
pub fn check_inside(base: &Path, dir: &Path) -> Result<()> {
    let io = |path: &Path, e: std::io::Error| {
        Error::ModelDir(format!("{}: cannot resolve: {e}", path.display()))
    };
    let root = base.canonicalize().map_err(|e| io(base, e))?;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let real = path.canonicalize().map_err(|e| io(&path, e))?;
        if !real.starts_with(&root) {
            // Where it leads is not said: a status must not show paths outside the base.
            return Err(Error::ModelDir(format!(
                "{}: a link out of the base path {}: refused (a version and its files must \
                 be inside the base path)",
                path.display(),
                base.display()
            )));
        }
        if real.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(|e| io(&path, e))? {
                pending.push(entry.map_err(|e| io(&path, e))?.path());
            }
        }
    }
    Ok(())
}

/// The first free version at or after `now`: TF's rule, which waits a second while the
/// current one is taken, ten times at most. `None` when every try was taken.
pub fn free_version(
    mut now: impl FnMut() -> u64,
    taken: impl Fn(u64) -> bool,
    mut wait: impl FnMut(),
) -> Option<u64> {
    for _ in 0..10 {
        let version = now();
        if !taken(version) {
            return Some(version);
        }
        wait();
    }
    None
}

/// Writes a new version under `base`: `fill` writes the files into a temporary directory,
/// which is then renamed to `base/<version>`. Returns the version's path. On any error the
/// temporary directory is removed and `base` holds no new version.
pub fn write_version(base: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
    let io =
        |what: &str, path: &Path, e| Error::io(format!("{}: cannot {what}", path.display()), e);
    std::fs::create_dir_all(base).map_err(|e| io("create", base, e))?;
    let now = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    };
    let version = free_version(
        now,
        |v| base.join(v.to_string()).exists() || base.join(format!("temp-{v}")).exists(),
        || std::thread::sleep(Duration::from_secs(1)),
    )
    .ok_or_else(|| {
        Error::Usage(format!(
            "{}: Failed to obtain a unique export directory name after 10 attempts.",
            base.display()
        ))
    })?;
    let temp = base.join(format!("temp-{version}"));
    let done = base.join(version.to_string());
    std::fs::create_dir(&temp).map_err(|e| io("create", &temp, e))?;
    // `fill` writes each file durably (`checkpoint::write_atomic`); the rename is made
    // durable here.
    let written = fill(&temp).and_then(|()| {
        std::fs::rename(&temp, &done).map_err(|e| io("rename", &temp, e))?;
        sync_folder(base);
        Ok(())
    });
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&temp);
        return Err(e);
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_second_waits_for_the_next() {
        let clock = std::cell::Cell::new(100);
        let mut waits = 0;
        let version = free_version(
            || clock.get(),
            |v| v == 100,
            || {
                waits += 1;
                clock.set(clock.get() + 1);
            },
        );
        assert_eq!((version, waits), (Some(101), 1));
    }

    #[test]
    fn ten_taken_seconds_give_up() {
        let mut waits = 0;
        assert_eq!(free_version(|| 7, |_| true, || waits += 1), None);
        assert_eq!(waits, 10);
    }

    #[test]
    fn a_failed_export_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("temp dir");
        let err = write_version(dir.path(), |temp| {
            std::fs::write(temp.join("half"), b"x").expect("write");
            Err(Error::Usage("refused".into()))
        })
        .expect_err("fails");
        assert_eq!(err.to_string(), "refused");
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
        let done = write_version(dir.path(), |temp| {
            std::fs::write(temp.join("whole"), b"x").map_err(|e| Error::io("write", e))
        })
        .expect("writes");
        assert!(done.join("whole").is_file());
        assert!(done
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.parse::<u64>().is_ok()));
    }

    #[test]
    fn a_version_or_a_file_linking_out_of_the_base_path_is_refused() {
        let root = tempfile::tempdir().expect("temp dir");
        let base = root.path().join("base");
        let outside = root.path().join("outside");
        std::fs::create_dir_all(base.join("1/plugin")).expect("mkdir");
        std::fs::create_dir_all(&outside).expect("mkdir");
        std::fs::write(base.join("1/export.yaml"), "x").expect("write");
        std::fs::write(outside.join("lib.so"), "x").expect("write");
        check_inside(&base, &base.join("1")).expect("all inside");
        std::os::unix::fs::symlink(outside.join("lib.so"), base.join("1/plugin/lib.so"))
            .expect("symlink");
        let e = check_inside(&base, &base.join("1")).expect_err("a file outside");
        assert!(
            e.to_string()
                .contains("plugin/lib.so: a link out of the base path"),
            "{e}"
        );
        assert!(!e.to_string().contains("outside/"), "{e}");
        std::os::unix::fs::symlink(&outside, base.join("2")).expect("symlink");
        let e = check_inside(&base, &base.join("2")).expect_err("a version outside");
        assert!(
            e.to_string().contains("2: a link out of the base path"),
            "{e}"
        );
        // A link that stays inside is fine.
        std::fs::remove_file(base.join("1/plugin/lib.so")).expect("rm");
        std::os::unix::fs::symlink(base.join("1/export.yaml"), base.join("1/plugin/lib.so"))
            .expect("symlink");
        check_inside(&base, &base.join("1")).expect("inside");
    }
}
