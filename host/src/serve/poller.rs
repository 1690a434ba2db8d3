//! The poller: one thread that loads and unloads every model's versions, polling their
//! base paths, and, with `--model_config_file_poll_wait_seconds`, reads the config file
//! again to add, replace, relabel and remove models without a restart. Requests never wait
//! for it: a model (re)loaded from the config is swapped into the served map only once its
//! versions are loaded.
//!
//! A panic in one poll (a bug, or a plugin that panics while it loads) is logged and the
//! next poll goes on: the poller never dies silently, leaving versions never updated.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::{error, info};

use super::batching::BatchingOptions;
use super::model_config::{read_model_config_file, ConfigChange, ModelConfig};
use super::once_per_cause::OncePerCause;
use super::rest::Server;
use super::retry::LoadRetries;
use super::versions::ModelVersions;
use crate::plugins::PluginRegistry;

/// How models are made from their configs.
#[derive(Clone, Copy)]
pub struct ModelSettings {
    pub batching: Option<BatchingOptions>,
    pub retries: LoadRetries,
}

impl ModelSettings {
    pub fn model(&self, config: &ModelConfig) -> ModelVersions {
        let versions = ModelVersions::new(
            config.name.clone(),
            config.base_path.clone(),
            config.model_version_policy.clone(),
            self.batching,
            self.retries,
        );
        versions.set_labels(config.version_labels.clone());
        versions
    }
}

/// The config file read again every `wait`, and what it said last.
pub struct ConfigReload {
    pub path: PathBuf,
    pub wait: Duration,
    pub current: Vec<ModelConfig>,
    pub fault: OncePerCause,
}

pub struct Poller {
    pub server: Arc<Server>,
    pub registry: Arc<Mutex<PluginRegistry>>,
    pub settings: ModelSettings,
    pub poll_wait: Duration,
    pub reload: Option<ConfigReload>,
}

impl Poller {
    /// Polls until `stop`.
    pub fn spawn(mut self, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut next_poll = started + self.poll_wait;
            let mut next_reload = started + self.reload.as_ref().map_or(Duration::ZERO, |r| r.wait);
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
                let now = Instant::now();
                if now >= next_poll {
                    self.poll_all();
                    next_poll = Instant::now() + self.poll_wait;
                }
                if let Some(wait) = self.reload.as_ref().map(|r| r.wait) {
                    if now >= next_reload {
                        self.reload_config();
                        next_reload = Instant::now() + wait;
                    }
                }
            }
        })
    }

    fn poll_all(&self) {
        for versions in self.server.served_models() {
            poll_supervised(&versions, &self.registry);
        }
    }

    /// Reads the config file and applies what changed. A file that cannot be read or is
    /// wrong changes nothing (logged once per cause).
    fn reload_config(&mut self) {
        let Some(reload) = self.reload.as_mut() else {
            return;
        };
        let new = match read_model_config_file(&reload.path) {
            Ok(new) => new,
            Err(e) => {
                reload
                    .fault
                    .report(format!("{e}; the models served are unchanged"));
                return;
            }
        };
        if reload.fault.clear() {
            info!("{}: read again", reload.path.display());
        }
        let change = ConfigChange::between(&reload.current, &new);
        reload.current = new;
        if change.is_empty() {
            return;
        }
        for config in &change.load {
            info!("Config file: loading model `{}`", config.name);
            let versions = Arc::new(self.settings.model(config));
            poll_supervised(&versions, &self.registry);
            self.served().insert(config.name.clone(), versions);
        }
        for config in &change.relabel {
            if let Some(model) = self.served().get(&config.name) {
                info!("Config file: new version labels for `{}`", config.name);
                model.set_labels(config.version_labels.clone());
            }
        }
        for name in &change.remove {
            info!("Config file: unloading every version of `{name}` (no longer configured)");
            self.served().remove(name);
        }
    }

    fn served(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<ModelVersions>>> {
        self.server
            .models
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

pub fn poll_supervised(versions: &ModelVersions, registry: &Mutex<PluginRegistry>) {
    let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        versions.poll(registry);
    }));
    if let Err(panic) = polled {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        error!(
            "Polling the versions of `{}` panicked (a bug): {why}; polling goes on",
            versions.name
        );
    }
}
