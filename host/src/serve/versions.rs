//! The versions of one served model: which are loaded, their states as TF Serving reports
//! them, and the poll that loads new versions and unloads old ones.
//!
//! Availability comes first, as TF Serving's: a version is loaded and checked (see
//! [`Servable::load`]) before it serves, and only then does the version it replaces stop
//! serving. A version that fails to load is reported with its error and never tried again
//! (exports are never changed in place); the versions already serving go on. A request
//! holds its version (an `Arc`) until it is answered, so a swap never cuts one short.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use tracing::{error, info, warn};

use super::batching::{Batcher, BatchingOptions};
use super::policy::{versions_in, VersionPolicy};
use crate::export::Servable;
use crate::plugins::PluginRegistry;

/// A version's state, with TF Serving's names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionState {
    Loading,
    Available,
    /// Unloaded, or failed to load (with the error).
    End(Option<String>),
}

impl VersionState {
    pub fn tf_name(&self) -> &'static str {
        match self {
            VersionState::Loading => "LOADING",
            VersionState::Available => "AVAILABLE",
            VersionState::End(_) => "END",
        }
    }
}

/// A version that serves: the loaded export, and its batch queue when batching is on.
pub struct Version {
    pub servable: Arc<Servable>,
    pub batcher: Option<Batcher>,
}

#[derive(Default)]
struct Table {
    serving: BTreeMap<u64, Arc<Version>>,
    states: BTreeMap<u64, VersionState>,
    failed: BTreeSet<u64>,
}

pub struct ModelVersions {
    pub name: String,
    pub base_path: PathBuf,
    pub policy: VersionPolicy,
    batching: Option<BatchingOptions>,
    table: RwLock<Table>,
}

impl ModelVersions {
    pub fn new(
        name: String,
        base_path: PathBuf,
        policy: VersionPolicy,
        batching: Option<BatchingOptions>,
    ) -> Self {
        ModelVersions {
            name,
            base_path,
            policy,
            batching,
            table: RwLock::new(Table::default()),
        }
    }

    /// The version to answer with: `version`, or the largest serving one.
    pub fn servable(&self, version: Option<u64>) -> Option<(u64, Arc<Version>)> {
        let table = self.table.read().ok()?;
        let found = match version {
            Some(v) => table.serving.get_key_value(&v),
            None => table.serving.iter().next_back(),
        };
        found.map(|(v, s)| (*v, Arc::clone(s)))
    }

    /// Every version seen, with its state.
    pub fn states(&self) -> Vec<(u64, VersionState)> {
        self.table
            .read()
            .map(|t| t.states.iter().map(|(v, s)| (*v, s.clone())).collect())
            .unwrap_or_default()
    }

    /// One look at the base path: loads every version the policy wants that is not loaded,
    /// then unloads those it no longer wants.
    pub fn poll(&self, registry: &Mutex<PluginRegistry>) {
        let on_disk = self.versions_on_disk();
        loop {
            let wanted = self.wanted(&on_disk);
            let missing = {
                let Ok(table) = self.table.read() else { return };
                wanted.into_iter().find(|v| !table.serving.contains_key(v))
            };
            match missing {
                Some(version) => self.load(version, registry),
                None => break,
            }
        }
        let wanted = self.wanted(&on_disk);
        let Ok(mut table) = self.table.write() else {
            return;
        };
        let unwanted: Vec<u64> = table
            .serving
            .keys()
            .copied()
            .filter(|v| !wanted.contains(v))
            .collect();
        for version in unwanted {
            info!(
                "Unloading servable version {{name: {} version: {version}}}",
                self.name
            );
            table.serving.remove(&version);
            table.states.insert(version, VersionState::End(None));
        }
    }

    fn wanted(&self, on_disk: &[u64]) -> Vec<u64> {
        let failed = self
            .table
            .read()
            .map(|t| t.failed.clone())
            .unwrap_or_default();
        let candidates: Vec<u64> = on_disk
            .iter()
            .copied()
            .filter(|v| !failed.contains(v))
            .collect();
        self.policy.choose(&candidates)
    }

    fn versions_on_disk(&self) -> Vec<u64> {
        match std::fs::read_dir(&self.base_path) {
            Ok(entries) => {
                let names: Vec<String> = entries
                    .filter_map(|e| e.ok())
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                versions_in(names.iter().map(String::as_str))
            }
            Err(e) => {
                warn!(
                    "{}: cannot list versions of `{}`: {e}",
                    self.base_path.display(),
                    self.name
                );
                Vec::new()
            }
        }
    }

    fn load(&self, version: u64, registry: &Mutex<PluginRegistry>) {
        let name = &self.name;
        info!("Loading servable version {{name: {name} version: {version}}}");
        if let Ok(mut table) = self.table.write() {
            table.states.insert(version, VersionState::Loading);
        }
        let dir = self.base_path.join(version.to_string());
        let loaded = match registry.lock() {
            Ok(mut registry) => Servable::load(&dir, &mut registry),
            Err(_) => Err(crate::Error::Internal(
                "the plugin registry's lock is poisoned".into(),
            )),
        };
        let Ok(mut table) = self.table.write() else {
            return;
        };
        match loaded {
            Ok(servable) => {
                info!("Successfully loaded servable version {{name: {name} version: {version}}}");
                let servable = Arc::new(servable);
                let batcher = self
                    .batching
                    .map(|o| Batcher::start(Arc::clone(&servable), o));
                table
                    .serving
                    .insert(version, Arc::new(Version { servable, batcher }));
                table.states.insert(version, VersionState::Available);
            }
            Err(e) => {
                let message = e.to_string();
                error!("Loading servable version {{name: {name} version: {version}}} failed: {message}");
                table.failed.insert(version);
                table
                    .states
                    .insert(version, VersionState::End(Some(message)));
            }
        }
    }
}
