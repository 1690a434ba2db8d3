//! Evaluation metrics: TF's `loss` (mean of per-batch losses), the model's own
//! `eval_metric_ops`, and the metric plugins named in the manifest.

use std::collections::BTreeMap;

use abi_stable::std_types::RVec;
use estimator_plugin_api::abi::{EstimatorSpec, MetricBox, MetricPartial, ModelFnBox, TensorView};

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
            // A name is allocated once per evaluation, not once per batch: a binary head
            // sends hundreds of partial sums.
            let entry = match self.model_metrics.get_mut(m.name.as_str()) {
                Some(entry) => entry,
                None => self.model_metrics.entry(m.name.to_string()).or_default(),
            };
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

    /// The evaluate() dict: `loss`, `global_step` and every metric, sorted by key. The
    /// model turns the sums of its `eval_metric_ops` into its metrics' values.
    pub fn results(
        &self,
        global_step: i64,
        model: &ModelFnBox,
        plugin: &str,
    ) -> Result<BTreeMap<String, f64>> {
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
        for pm in &self.plugin_metrics {
            out.insert(pm.name.clone(), pm.metric.result());
        }
        let sums: RVec<MetricPartial> = self
            .model_metrics
            .iter()
            .map(|(name, &(total, count))| MetricPartial::new(name.as_str(), total, count))
            .collect();
        let values = model
            .eval_metric_results(sums.as_slice().into())
            .into_result()
            .map_err(|e| Error::PluginCall {
                plugin: plugin.to_owned(),
                call: "eval_metric_results".to_owned(),
                source: e,
            })?;
        for metric in values {
            if out.contains_key(metric.name.as_str()) {
                return Err(Error::Usage(format!(
                    "metric `{}` is reported by the model's eval_metric_ops and also by the estimator or the manifest's metrics",
                    metric.name
                )));
            }
            out.insert(metric.name.into_string(), metric.value);
        }
        Ok(out)
    }
}
