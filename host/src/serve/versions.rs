//! The versions of one served model: which are loaded, their states as TF Serving reports
//! them, and the poll that loads new versions and unloads old ones.
//!
//! Availability comes first, as TF Serving's: a version is loaded and checked (see
//! [`Servable::load`]) before it serves, and only then does the version it replaces stop
//! serving. A request holds its version (an `Arc`) until it is answered, so a swap never
//! cuts one short. Faults in the base path never take a version away:
//!
//! - a base path that cannot be listed (gone, EACCES, EMFILE, ...) or that lists no version
//!   at all changes nothing; the cause is logged once, and again only when it changes;
//! - a version directory without `export.yaml` is still being copied in: it is not ready,
//!   and is looked at again on the next poll;
//! - a load that fails is retried as TF Serving retries it ([`LoadRetries`]), and reported
//!   `END` with its error once every retry is spent; meanwhile the serving versions go on.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use tracing::{error, info, warn};

use super::batching::{Batcher, BatchingOptions};
use super::metrics::METRICS;
use super::once_per_cause::OncePerCause;
use super::policy::{versions_in, VersionPolicy};
use super::retry::{Failures, LoadRetries};
use crate::export::{check_inside, Servable, EXPORT_FILE};
use crate::plugins::PluginRegistry;

/// A version's state, with TF Serving's names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionState {
    /// Being loaded, or waiting to be tried again (with the last try's error).
    Loading(Option<String>),
    Available,
    /// Unloaded, or failed to load every time it was tried (with the error).
    End(Option<String>),
}

impl VersionState {
    pub fn tf_name(&self) -> &'static str {
        match self {
            VersionState::Loading(_) => "LOADING",
            VersionState::Available => "AVAILABLE",
            VersionState::End(_) => "END",
        }
    }

    /// The error a status shows with this state, if any.
    pub fn error(&self) -> Option<&str> {
        match self {
            VersionState::Loading(e) | VersionState::End(e) => e.as_deref(),
            VersionState::Available => None,
        }
    }
}

/// A version that serves: the loaded export, and its batch queue when batching is on.
pub struct Version {
    pub servable: Arc<Servable>,
    pub batcher: Option<Batcher>,
    /// Whether small requests to this version may run on the network thread that took
    /// them: its model was measured fast (see [`super::pool::Lane::Inline`]).
    pub fast: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct Table {
    serving: BTreeMap<u64, Arc<Version>>,
    states: BTreeMap<u64, VersionState>,
    failures: BTreeMap<u64, Failures>,
}

pub struct ModelVersions {
    pub name: String,
    pub base_path: PathBuf,
    pub policy: VersionPolicy,
    batching: Option<BatchingOptions>,
    retries: LoadRetries,
    table: RwLock<Table>,
    fault: OncePerCause,
    /// Versions seen without `export.yaml`, so that waiting for each is logged once.
    not_ready: Mutex<BTreeSet<u64>>,
    /// Version labels (`stable` → 3), which a config reload may change.
    labels: RwLock<BTreeMap<String, u64>>,
}

impl ModelVersions {
    pub fn new(
        name: String,
        base_path: PathBuf,
        policy: VersionPolicy,
        batching: Option<BatchingOptions>,
        retries: LoadRetries,
    ) -> Self {
        ModelVersions {
            name,
            base_path,
            policy,
            batching,
            retries,
            table: RwLock::new(Table::default()),
            fault: OncePerCause::default(),
            not_ready: Mutex::new(BTreeSet::new()),
            labels: RwLock::new(BTreeMap::new()),
        }
    }

    /// The version `label` names, if any.
    pub fn label(&self, label: &str) -> Option<u64> {
        let labels = self.labels.read().unwrap_or_else(PoisonError::into_inner);
        labels.get(label).copied()
    }

    /// Replaces the version labels.
    pub fn set_labels(&self, labels: BTreeMap<String, u64>) {
        *self.labels.write().unwrap_or_else(PoisonError::into_inner) = labels;
    }

    /// The table, even after a panic elsewhere poisoned its lock: every write leaves it
    /// whole (each is one insert or remove), so what it holds is still true.
    fn read(&self) -> RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The version to answer with: `version`, or the largest serving one.
    pub fn servable(&self, version: Option<u64>) -> Option<(u64, Arc<Version>)> {
        let table = self.read();
        let found = match version {
            Some(v) => table.serving.get_key_value(&v),
            None => table.serving.iter().next_back(),
        };
        found.map(|(v, s)| (*v, Arc::clone(s)))
    }

    /// The examples waiting in each serving version's batch queue.
    pub fn queued(&self) -> Vec<(u64, usize)> {
        let table = self.read();
        table
            .serving
            .iter()
            .filter_map(|(v, s)| Some((*v, s.batcher.as_ref()?.waiting())))
            .collect()
    }

    /// Every version seen, with its state.
    pub fn states(&self) -> Vec<(u64, VersionState)> {
        let table = self.read();
        table.states.iter().map(|(v, s)| (*v, s.clone())).collect()
    }

    /// One look at the base path: loads every version the policy wants that is not loaded,
    /// then unloads those it no longer wants. A base path that cannot be listed, or that
    /// lists no version, changes nothing.
    pub fn poll(&self, registry: &Mutex<PluginRegistry>) {
        let on_disk = match self.versions_on_disk() {
            Ok(versions) if versions.is_empty() => {
                self.fault.report(format!(
                    "No versions of `{}` found under base path {}; the versions loaded keep serving",
                    self.name,
                    self.base_path.display()
                ));
                return;
            }
            Ok(versions) => versions,
            Err(e) => {
                self.fault.report(format!(
                    "{}: cannot list the versions of `{}`: {e}; the versions loaded keep serving",
                    self.base_path.display(),
                    self.name
                ));
                return;
            }
        };
        if self.fault.clear() {
            info!("The base path of `{}` can be read again", self.name);
        }
        let ready = self.ready(&on_disk);
        // Load first, so that a version is replaced only once its successor serves. Each
        // load either serves or records a failure that takes it out of the candidates
        // until its retry is due, so this ends.
        while let Some(version) = self.next_to_load(&ready) {
            self.load(version, registry);
        }
        let wanted = self.wanted(&ready, Instant::now());
        let mut table = self.write();
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
            METRICS.unload(&self.name);
        }
    }

    /// The first version the policy wants that does not serve yet.
    fn next_to_load(&self, ready: &[u64]) -> Option<u64> {
        let wanted = self.wanted(ready, Instant::now());
        let table = self.read();
        wanted.into_iter().find(|v| !table.serving.contains_key(v))
    }

    /// The versions the policy wants among those ready on disk, leaving out versions whose
    /// last load failed and whose next try is not due (or that gave up). A version that
    /// serves stays a candidate.
    fn wanted(&self, ready: &[u64], now: Instant) -> Vec<u64> {
        let table = self.read();
        let candidates: Vec<u64> = ready
            .iter()
            .copied()
            .filter(|v| {
                table.serving.contains_key(v)
                    || table.failures.get(v).is_none_or(|f| f.may_try(now))
            })
            .collect();
        self.policy.choose(&candidates)
    }

    /// The versions whose `export.yaml` is there; the others are still being copied in.
    fn ready(&self, on_disk: &[u64]) -> Vec<u64> {
        let mut not_ready = self
            .not_ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        on_disk
            .iter()
            .copied()
            .filter(|v| {
                let file = self.base_path.join(v.to_string()).join(EXPORT_FILE);
                let ready = file.exists();
                if ready {
                    not_ready.remove(v);
                } else if not_ready.insert(*v) {
                    info!(
                        "Version {v} of `{}` has no {EXPORT_FILE} yet: waiting for it to be copied in",
                        self.name
                    );
                }
                ready
            })
            .collect()
    }

    fn versions_on_disk(&self) -> std::io::Result<Vec<u64>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.base_path)? {
            let entry = entry?;
            if entry.path().is_dir() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        Ok(versions_in(names.iter().map(String::as_str)))
    }

    fn load(&self, version: u64, registry: &Mutex<PluginRegistry>) {
        let name = &self.name;
        info!("Loading servable version {{name: {name} version: {version}}}");
        {
            let mut table = self.write();
            let last_error = table.failures.get(&version).map(|f| f.last_error.clone());
            table
                .states
                .insert(version, VersionState::Loading(last_error));
        }
        let dir = self.base_path.join(version.to_string());
        let started = Instant::now();
        let loaded = check_inside(&self.base_path, &dir).and_then(|()| {
            let mut registry = registry.lock().unwrap_or_else(PoisonError::into_inner);
            Servable::load(&dir, &mut registry)
        });
        METRICS.load(&dir.to_string_lossy(), loaded.is_ok(), started.elapsed());
        let mut table = self.write();
        match loaded {
            Ok(servable) => {
                info!("Successfully loaded servable version {{name: {name} version: {version}}}");
                let servable = Arc::new(servable);
                let batcher = self
                    .batching
                    .map(|o| Batcher::start(Arc::clone(&servable), o, name));
                let fast = super::pool::measured_fast(servable.warmup_time);
                tracing::debug!(
                    "{name} version {version}: warm-up predicted in {:?}; small requests run {}",
                    servable.warmup_time,
                    if fast {
                        "where they arrive"
                    } else {
                        "on the pool"
                    }
                );
                let fast = fast.into();
                let served = Version {
                    servable,
                    batcher,
                    fast,
                };
                table.serving.insert(version, Arc::new(served));
                table.failures.remove(&version);
                table.states.insert(version, VersionState::Available);
            }
            Err(e) => {
                let message = e.to_string();
                let failures = self.retries.record(
                    table.failures.get(&version),
                    message.clone(),
                    Instant::now(),
                );
                let state = if failures.gave_up() {
                    error!(
                        "Loading servable version {{name: {name} version: {version}}} failed \
                         after {} tries: {message}",
                        failures.count
                    );
                    VersionState::End(Some(message))
                } else {
                    warn!(
                        "Loading servable version {{name: {name} version: {version}}} failed \
                         (try {} of {}; retrying in {:?}): {message}",
                        failures.count,
                        self.retries.max_retries + 1,
                        self.retries.interval
                    );
                    VersionState::Loading(Some(message))
                };
                table.failures.insert(version, failures);
                table.states.insert(version, state);
            }
        }
    }
}
