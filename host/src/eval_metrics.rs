//! Evaluation metrics: TF's `loss` (mean of per-batch losses), the model's own
//! `eval_metric_ops`, and the metric plugins named in the manifest.

use std::collections::BTreeMap;

use estimator_plugin_api::abi::{EstimatorSpec, MetricBox, TensorView};

use crate::error::{Error, Result};

/// A metric plugin instance and the prediction it reads.
pub struct PluginMetric {
    pub name: String,
    pub plugin: String,
    pub predictions: String,
    pub metric: MetricBox,
}

#[derive(Default)]
pub struct EvalMetrics {
    loss_sum: f64,
    batches: u64,
    model_metrics: BTreeMap<String, (f64, f64)>,
    plugin_metrics: Vec<PluginMetric>,
}

impl EvalMetrics {
    pub fn new(plugin_metrics: Vec<PluginMetric>) -> Self {
        EvalMetrics {
            plugin_metrics,
            ..Self::default()
        }
    }

    pub fn batches(&self) -> u64 {
        self.batches
    }

    /// Adds one batch. `spec` has passed `spec_check` for EVAL.
    pub fn update(&mut self, spec: &EstimatorSpec, labels: Option<&TensorView<'_>>) -> Result<()> {
        self.loss_sum += f64::from(spec.loss.into_option().unwrap_or(f32::NAN));
        self.batches += 1;
        for m in spec.eval_metric_ops.iter() {
            if self
                .plugin_metrics
                .iter()
                .any(|p| p.name == m.name.as_str())
                || matches!(m.name.as_str(), "loss" | "global_step")
            {
                return Err(Error::Usage(format!(
                    "metric `{}` is reported by the model's eval_metric_ops and also by the estimator or the manifest's metrics",
                    m.name
                )));
            }
            let entry = self.model_metrics.entry(m.name.to_string()).or_default();
            entry.0 += m.total;
            entry.1 += m.count;
        }
        for pm in &mut self.plugin_metrics {
            let predictions = spec.prediction(&pm.predictions).ok_or_else(|| {
                let known: Vec<&str> = spec.predictions.iter().map(|p| p.name.as_str()).collect();
                Error::Usage(format!(
                    "metric `{}` reads prediction `{}`, which model_fn did not return (it returned: {})",
                    pm.name,
                    pm.predictions,
                    known.join(", ")
                ))
            })?;
            let labels = labels.ok_or_else(|| {
                Error::Usage(format!(
                    "metric `{}` needs labels; the eval input has none",
                    pm.name
                ))
            })?;
            pm.metric
                .update(*labels, predictions.view(), None.into())
                .into_result()
                .map_err(|e| Error::PluginCall {
                    plugin: pm.plugin.clone(),
                    call: format!("metric `{}` update", pm.name),
                    source: e,
                })?;
        }
        Ok(())
    }

    /// The evaluate() dict: `loss`, `global_step` and every metric, sorted by key.
    pub fn results(&self, global_step: i64) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        out.insert(
            "loss".to_owned(),
            if self.batches == 0 {
                f64::NAN
            } else {
                self.loss_sum / self.batches as f64
            },
        );
        out.insert("global_step".to_owned(), global_step as f64);
        for (name, (total, count)) in &self.model_metrics {
            out.insert(
                name.clone(),
                if *count == 0.0 { 0.0 } else { total / count },
            );
        }
        for pm in &self.plugin_metrics {
            out.insert(pm.name.clone(), pm.metric.result());
        }
        out
    }
}
