//! TF's exporters in `train_and_evaluate`: after an evaluation, `latest` exports the
//! evaluated checkpoint, `best` exports it when its metric is the best so far (the best
//! before it is read back from the eval events, so it survives a restart), and `final`
//! exports the last one. Each writes `model_dir/export/<name>/<version>/` and keeps its
//! `exports_to_keep` newest versions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tracing::info;

use super::Estimator;
use crate::config::ExporterConfig;
use crate::error::{Error, Result};
use crate::export::{best_before, improves, versions_to_delete};

pub(super) struct Exporters {
    configs: Vec<ExporterConfig>,
    /// `model_dir/export`.
    base: PathBuf,
    /// Each `best` exporter's best value so far, once read.
    best: BTreeMap<String, Option<f64>>,
}

impl Exporters {
    pub fn new(configs: Vec<ExporterConfig>, model_dir: &Path) -> Self {
        Exporters {
            configs,
            base: model_dir.join("export"),
            best: BTreeMap::new(),
        }
    }

    /// Runs the `latest` and `best` exporters after the evaluation of `checkpoint`.
    pub fn after_evaluation(
        &mut self,
        evaluator: &mut Estimator,
        step: i64,
        checkpoint: &Path,
        metrics: &BTreeMap<String, f64>,
    ) -> Result<()> {
        for config in self.configs.clone() {
            let export = match &config {
                ExporterConfig::Latest(_) => true,
                ExporterConfig::Best(best) => {
                    let current = *metrics.get(&best.metric).ok_or_else(|| {
                        Error::Usage(format!(
                            "eval_spec.exporters: `{}` compares `{}`, which the evaluation did not report",
                            best.name, best.metric
                        ))
                    })?;
                    let known = match self.best.get(&best.name) {
                        Some(known) => *known,
                        None => {
                            let history = crate::events::read_scalars(&evaluator.eval_dir())
                                .map(|mut s| s.remove(&best.metric).unwrap_or_default())
                                .unwrap_or_default();
                            best_before(&history, step, best.higher_is_better)
                        }
                    };
                    let better = improves(known, current, best.higher_is_better);
                    if better {
                        self.best.insert(best.name.clone(), Some(current));
                    } else {
                        self.best.insert(best.name.clone(), known);
                    }
                    better
                }
                ExporterConfig::Final(_) => false,
            };
            if export {
                self.export(evaluator, &config, checkpoint)?;
            }
        }
        Ok(())
    }

    /// Runs the `final` exporters on the last evaluated checkpoint.
    pub fn at_end(&mut self, evaluator: &mut Estimator, checkpoint: &Path) -> Result<()> {
        for config in self.configs.clone() {
            if matches!(config, ExporterConfig::Final(_)) {
                self.export(evaluator, &config, checkpoint)?;
            }
        }
        Ok(())
    }

    fn export(
        &self,
        evaluator: &mut Estimator,
        config: &ExporterConfig,
        checkpoint: &Path,
    ) -> Result<()> {
        let base = self.base.join(config.name());
        let dir = evaluator.export(&base, Some(checkpoint))?;
        info!("Exporter `{}` wrote {}", config.name(), dir.display());
        let versions: Vec<u64> = std::fs::read_dir(&base)
            .map_err(|e| Error::io(format!("{}: cannot list", base.display()), e))?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        for old in versions_to_delete(&versions, config.exports_to_keep()) {
            let path = base.join(old.to_string());
            std::fs::remove_dir_all(&path)
                .map_err(|e| Error::io(format!("{}: cannot delete", path.display()), e))?;
        }
        Ok(())
    }
}
