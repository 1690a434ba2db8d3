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

/// What an evaluation has summed so far, as plain numbers: enough to finish it elsewhere.
/// An evaluation split in parts (over processes) merges each part's state into one.
impl PluginMetric {
    fn call_error(&self, call: &str, source: estimator_plugin_api::abi::PluginError) -> Error {
        Error::PluginCall {
            plugin: self.plugin.clone(),
            call: format!("metric `{}` {call}", self.name),
            source,
        }
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EvalState {
    pub loss_sum: f64,
    pub batches: u64,
    /// The model's `eval_metric_ops` sums, `(total, count)` by name.
    pub model_metrics: BTreeMap<String, (f64, f64)>,
    /// Each metric plugin's state (its ABI `state`), in the manifest's order.
    pub plugin_metrics: Vec<Vec<f64>>,
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
    #[cfg(test)]
    pub fn update(&mut self, spec: &EstimatorSpec, labels: Option<&TensorView<'_>>) -> Result<()> {
        self.update_share(spec, labels, 1.0, true)
    }

    /// Adds one rank's share of a batch in a data-parallel evaluation: its loss weighted
    /// by its share of the rows (the batch's loss is their sum), the batch counted by
    /// one rank alone.
    pub fn update_share(
        &mut self,
        spec: &EstimatorSpec,
        labels: Option<&TensorView<'_>>,
        loss_weight: f64,
        counts_batch: bool,
    ) -> Result<()> {
        self.loss_sum += loss_weight * f64::from(spec.loss.into_option().unwrap_or(f32::NAN));
        self.batches += u64::from(counts_batch);
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
                .map_err(|e| pm.call_error("update", e))?;
        }
        Ok(())
    }

    /// The sums so far, for another part of the evaluation to [`merge`](Self::merge).
    pub fn state(&self) -> Result<EvalState> {
        let plugin_metrics = self
            .plugin_metrics
            .iter()
            .map(|pm| {
                pm.metric
                    .state()
                    .into_result()
                    .map(|s| s.into_vec())
                    .map_err(|e| pm.call_error("state", e))
            })
            .collect::<Result<_>>()?;
        Ok(EvalState {
            loss_sum: self.loss_sum,
            batches: self.batches,
            model_metrics: self.model_metrics.clone(),
            plugin_metrics,
        })
    }

    /// Adds another part's sums, as if its batches had been evaluated here. Parts must
    /// come from the same manifest (the same metrics, in the same order).
    pub fn merge(&mut self, other: &EvalState) -> Result<()> {
        if other.plugin_metrics.len() != self.plugin_metrics.len() {
            return Err(Error::Internal(format!(
                "merging an evaluation with {} metric plugins into one with {}",
                other.plugin_metrics.len(),
                self.plugin_metrics.len()
            )));
        }
        self.loss_sum += other.loss_sum;
        self.batches += other.batches;
        for (name, (total, count)) in &other.model_metrics {
            let entry = self.model_metrics.entry(name.clone()).or_default();
            entry.0 += total;
            entry.1 += count;
        }
        for (pm, state) in self.plugin_metrics.iter_mut().zip(&other.plugin_metrics) {
            pm.metric
                .merge(state.as_slice().into())
                .into_result()
                .map_err(|e| pm.call_error("merge", e))?;
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
            let value = pm
                .metric
                .result()
                .into_result()
                .map_err(|e| pm.call_error("result", e))?;
            out.insert(pm.name.clone(), value);
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

#[cfg(test)]
mod tests {
    use super::*;
    use abi_stable::std_types::ROption;
    use estimator_plugin_api::abi::{
        FactoryContext, ModeKeys, NamedTensor, PluginError, Tensor, TensorData, VarSpec,
    };
    use estimator_plugin_api::sdk::{export, Model, ModelInputs, StreamingMetric};

    /// A model that is only asked for metric values: each sum's ratio (the SDK default).
    struct Ratios;

    impl Model for Ratios {
        type Params = serde_json::Value;
        fn new(_: serde_json::Value, _: &FactoryContext<'_>) -> Result<Self, PluginError> {
            Ok(Ratios)
        }
        fn variables(&self) -> Vec<VarSpec> {
            Vec::new()
        }
        fn model_fn(&mut self, _: &ModelInputs<'_>) -> Result<EstimatorSpec, PluginError> {
            Err(PluginError::bad_data("not called here"))
        }
    }

    /// The mean of the labels it is given, streamed batch by batch.
    #[derive(Default)]
    struct LabelMean {
        sum: f64,
        count: f64,
    }

    impl StreamingMetric for LabelMean {
        type Params = serde_json::Value;
        fn new(_: serde_json::Value, _: &FactoryContext<'_>) -> Result<Self, PluginError> {
            Ok(LabelMean::default())
        }
        fn update(
            &mut self,
            labels: &TensorView<'_>,
            _: &TensorView<'_>,
            _: Option<&TensorView<'_>>,
        ) -> Result<(), PluginError> {
            let TensorData::F32(values) = labels.data else {
                return Err(PluginError::bad_data("labels must be f32"));
            };
            for &y in values.as_slice() {
                self.sum += f64::from(y);
                self.count += 1.0;
            }
            Ok(())
        }
        fn result(&self) -> Result<f64, PluginError> {
            Ok(self.sum / self.count)
        }
        fn reset(&mut self) {
            *self = LabelMean::default();
        }
        fn state(&self) -> Vec<f64> {
            vec![self.sum, self.count]
        }
        fn merge(&mut self, other: &[f64]) -> Result<(), PluginError> {
            self.sum += other[0];
            self.count += other[1];
            Ok(())
        }
    }

    fn ctx() -> FactoryContext<'static> {
        FactoryContext {
            base_dir: ".".into(),
            seed: 0,
        }
    }

    fn label_mean(name: &str, predictions: &str) -> PluginMetric {
        PluginMetric {
            name: name.to_owned(),
            plugin: "test".to_owned(),
            predictions: predictions.to_owned(),
            metric: export::create_metric::<LabelMean>("{}", &ctx()).expect("metric"),
        }
    }

    /// An EVAL spec with `loss`, one partial sum per `(name, total, count)` and a
    /// prediction `p` per label.
    fn spec(loss: f32, partials: &[(&str, f64, f64)], rows: usize) -> EstimatorSpec {
        let mut spec = EstimatorSpec::new(ModeKeys::Eval);
        spec.loss = ROption::RSome(loss);
        spec.eval_metric_ops = partials
            .iter()
            .map(|&(name, total, count)| MetricPartial::new(name, total, count))
            .collect();
        spec.predictions = vec![NamedTensor::new(
            "p",
            Tensor::f32(vec![rows], vec![0.0; rows]),
        )]
        .into();
        spec
    }

    #[test]
    fn loss_is_the_mean_of_batch_losses_and_sums_add_up_across_batches() {
        let model = export::create_model::<Ratios>("{}", &ctx()).expect("model");
        let mut metrics = EvalMetrics::new(vec![label_mean("label_mean", "p")]);
        // Three batches of 4, 4 and 1 examples.
        let batches: [(f32, (f64, f64), &[f32]); 3] = [
            (1.0, (3.0, 4.0), &[1.0, 2.0, 3.0, 4.0]),
            (2.0, (0.0, 4.0), &[5.0, 6.0, 7.0, 8.0]),
            (6.0, (1.0, 1.0), &[9.0]),
        ];
        for (loss, (total, count), labels) in batches {
            let labels = Tensor::f32(vec![labels.len()], labels.to_vec());
            let spec = spec(loss, &[("accuracy", total, count)], labels.data.len());
            metrics.update(&spec, Some(&labels.view())).expect("valid");
        }
        assert_eq!(metrics.batches(), 3);
        let results = metrics.results(7, &model, "test").expect("results");
        // TF's loss: (1 + 2 + 6) / 3 batches, not weighted by their sizes.
        assert_eq!(results["loss"], 3.0);
        // A ratio of the sums, (3 + 0 + 1) / (4 + 4 + 1), not a mean of ratios.
        assert_eq!(results["accuracy"], 4.0 / 9.0);
        // The plugin metric saw every label once: the mean of 1..=9.
        assert_eq!(results["label_mean"], 5.0);
        assert_eq!(results["global_step"], 7.0);
        assert_eq!(results.len(), 4, "{results:?}");
    }

    /// Feeds `batches` of `(loss, (total, count), labels)` to `metrics`.
    fn evaluate(metrics: &mut EvalMetrics, batches: &[(f32, (f64, f64), &[f32])]) {
        for &(loss, (total, count), labels) in batches {
            let labels = Tensor::f32(vec![labels.len()], labels.to_vec());
            let spec = spec(loss, &[("accuracy", total, count)], labels.data.len());
            metrics.update(&spec, Some(&labels.view())).expect("valid");
        }
    }

    #[test]
    fn two_halves_merged_report_what_one_pass_does() {
        let model = export::create_model::<Ratios>("{}", &ctx()).expect("model");
        let batches: [(f32, (f64, f64), &[f32]); 3] = [
            (1.0, (3.0, 4.0), &[1.0, 2.0, 3.0, 4.0]),
            (2.0, (0.0, 4.0), &[5.0, 6.0, 7.0, 8.0]),
            (6.0, (1.0, 1.0), &[9.0]),
        ];
        let mut whole = EvalMetrics::new(vec![label_mean("label_mean", "p")]);
        evaluate(&mut whole, &batches);
        let mut first = EvalMetrics::new(vec![label_mean("label_mean", "p")]);
        evaluate(&mut first, &batches[..1]);
        let mut second = EvalMetrics::new(vec![label_mean("label_mean", "p")]);
        evaluate(&mut second, &batches[1..]);
        let second_state = second.state().expect("state");
        assert_eq!(second_state.batches, 2);
        assert_eq!(second_state.plugin_metrics, vec![vec![35.0, 5.0]]);
        first.merge(&second_state).expect("merge");
        assert_eq!(first.state().expect("state"), whole.state().expect("state"));
        let merged = first.results(7, &model, "test").expect("results");
        assert_eq!(merged, whole.results(7, &model, "test").expect("results"));
        // Each half alone reports something else: the merge is what makes them agree.
        assert_eq!(merged["label_mean"], 5.0);
        assert_eq!(merged["accuracy"], 4.0 / 9.0);
        assert_eq!(merged["loss"], 3.0);
    }

    #[test]
    fn merging_a_part_with_other_metrics_is_refused() {
        let mut one = EvalMetrics::new(vec![label_mean("label_mean", "p")]);
        let none = EvalMetrics::new(Vec::new()).state().expect("state");
        let err = one.merge(&none).expect_err("mismatch");
        assert_eq!(
            err.to_string(),
            "internal error, a bug in estimator (please report it): merging an evaluation with 0 metric plugins into one with 1"
        );
    }

    #[test]
    fn a_metric_reading_a_missing_prediction_or_clashing_with_the_model_is_refused() {
        let model = export::create_model::<Ratios>("{}", &ctx()).expect("model");
        let labels = Tensor::f32(vec![1], vec![1.0]);
        let mut metrics = EvalMetrics::new(vec![label_mean("m", "probabilities")]);
        let err = metrics
            .update(&spec(1.0, &[], 1), Some(&labels.view()))
            .expect_err("no such prediction");
        assert_eq!(
            err.to_string(),
            "metric `m` reads prediction `probabilities`, which model_fn did not return (it returned: p)"
        );
        let mut metrics = EvalMetrics::new(vec![label_mean("m", "p")]);
        let err = metrics
            .update(&spec(1.0, &[], 1), None)
            .expect_err("no labels");
        assert_eq!(
            err.to_string(),
            "metric `m` needs labels; the eval input has none"
        );
        let mut metrics = EvalMetrics::new(vec![label_mean("accuracy", "p")]);
        metrics
            .update(
                &spec(1.0, &[("accuracy", 1.0, 1.0)], 1),
                Some(&labels.view()),
            )
            .expect("valid");
        let err = metrics.results(0, &model, "test").expect_err("clash");
        assert!(
            err.to_string().starts_with(
                "metric `accuracy` is reported by the model's eval_metric_ops and also"
            ),
            "{err}"
        );
    }
}
