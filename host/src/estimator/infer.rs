//! `evaluate` and `predict`: one inference loop over the latest (or a given) checkpoint,
//! run in EVAL or PREDICT, as TF's `Estimator.evaluate` and `Estimator.predict`.

use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;
use std::time::Instant;

use estimator_plugin_api::abi::{EstimatorSpec, ModeKeys};
use tracing::info;

use super::predictions::{sorted_by_name, PredictionRow};
use super::session::Session;
use super::Estimator;
use crate::denormals::FlushDenormals;
use crate::error::{Error, Result};
use crate::eval_metrics::{EvalMetrics, EvalState};
use crate::export::Servable;
use crate::hooks::{Hook, HookConfig, HookSet, RunInfo, RunValues};
use crate::input::BatchRef;
use crate::replica::{gather_predictions, rows_of_rank, BatchSlicer};

/// One pass of inference.
struct Inference<'a> {
    mode: ModeKeys,
    /// The input and the hooks under `input.<name>` and `hooks.<name>`.
    name: &'static str,
    hooks: &'a [HookConfig],
    checkpoint: Option<&'a Path>,
    /// At most this many batches; all of the input when `None`.
    max_batches: Option<u64>,
}

impl Estimator {
    /// Evaluates the latest checkpoint (or `checkpoint`) on `input.eval`; returns TF's dict.
    pub fn evaluate(&mut self, checkpoint: Option<&Path>) -> Result<BTreeMap<String, f64>> {
        self.evaluate_with_hooks(checkpoint, Vec::new())
    }

    /// [`Estimator::evaluate`] with the caller's hooks after the manifest's `hooks.eval`.
    /// In EVAL, [`RunValues::step`] counts batches from 0.
    pub fn evaluate_with_hooks(
        &mut self,
        checkpoint: Option<&Path>,
        user_hooks: Vec<&mut dyn Hook>,
    ) -> Result<BTreeMap<String, f64>> {
        let started = Instant::now();
        let hooks = self.manifest.hooks.eval.clone();
        let run = Inference {
            mode: ModeKeys::Eval,
            name: "eval",
            hooks: &hooks,
            checkpoint,
            max_batches: self.manifest.eval.steps,
        };
        let mut metrics = EvalMetrics::new(self.plugin_metrics()?);
        let chief = self.replicas.is_chief();
        let session = self.infer(run, user_hooks, |spec, share, batch_len| {
            let Some(spec) = spec else {
                return Ok(());
            };
            // A rank's loss counts by its share of the batch's rows; rank 0 counts the batch.
            let weight = share.len as f64 / batch_len.max(1) as f64;
            metrics.update_share(spec, share.labels.as_ref(), weight, chief)
        })?;
        // A data-parallel evaluation: every rank adds the others' sums to its own.
        if self.replicas.is_distributed() {
            let own = serde_json::to_vec(&metrics.state()?)
                .map_err(|e| Error::Internal(format!("encoding an evaluation's sums: {e}")))?;
            for (rank, bytes) in self.replicas.gather_bytes(&own).iter().enumerate() {
                if rank == self.replicas.rank() {
                    continue;
                }
                let state: EvalState = serde_json::from_slice(bytes)
                    .map_err(|e| Error::Internal(format!("rank {rank}'s evaluation sums: {e}")))?;
                metrics.merge(&state)?;
            }
        }
        if metrics.batches() == 0 {
            return Err(self.manifest.error("input.eval produced no examples"));
        }
        let results = metrics.results(session.global_step, &session.model, &session.lib.name)?;
        info!("Inference Time : {:.5}s", started.elapsed().as_secs_f64());
        let line: Vec<String> = results
            .iter()
            .map(|(k, v)| format!("{k} = {}", format_value(k, *v)))
            .collect();
        info!(
            "Saving dict for global step {}: {}",
            session.global_step,
            line.join(", ")
        );
        let scalars: Vec<(&str, f32)> = results
            .iter()
            .filter(|(k, _)| k.as_str() != "global_step")
            .map(|(k, v)| (k.as_str(), *v as f32))
            .collect();
        self.summaries_in(&self.eval_dir())
            .scalars(session.global_step, &scalars)?;
        Ok(results)
    }

    /// Runs PREDICT over `input.predict` (or `input.eval` without labels), handing each
    /// example's predictions to `sink` as a JSON object. Returns the number of examples.
    pub fn predict(
        &mut self,
        checkpoint: Option<&Path>,
        sink: impl FnMut(PredictionRow<'_>) -> Result<()>,
    ) -> Result<usize> {
        self.predict_with_hooks(checkpoint, Vec::new(), sink)
    }

    /// [`Estimator::predict`] with the caller's hooks after the manifest's
    /// `hooks.predict`. In PREDICT, [`RunValues::step`] counts batches from 0.
    pub fn predict_with_hooks(
        &mut self,
        checkpoint: Option<&Path>,
        user_hooks: Vec<&mut dyn Hook>,
        mut sink: impl FnMut(PredictionRow<'_>) -> Result<()>,
    ) -> Result<usize> {
        let hooks = self.manifest.hooks.predict.clone();
        let run = Inference {
            mode: ModeKeys::Predict,
            name: "predict",
            hooks: &hooks,
            checkpoint,
            max_batches: None,
        };
        let mut examples = 0;
        let replicas = Rc::clone(&self.replicas);
        let mut whole = EstimatorSpec::new(ModeKeys::Predict);
        self.infer(run, user_hooks, |spec, _, batch_len| {
            examples += batch_len;
            // In a data-parallel run, rank 0 writes every rank's rows, in input order.
            let spec = match replicas.is_distributed() {
                false => spec,
                true => {
                    let own = spec.map(|s| s.predictions.as_slice());
                    let Some(all) = gather_predictions(own, &replicas)? else {
                        return Ok(());
                    };
                    whole.predictions = all.into();
                    Some(&whole)
                }
            };
            let Some(spec) = spec else {
                return Ok(());
            };
            let sorted = sorted_by_name(spec);
            for row in 0..batch_len {
                sink(PredictionRow::new(spec, &sorted, row))?;
            }
            Ok(())
        })?;
        Ok(examples)
    }

    /// Runs PREDICT over `input.predict` (or `input.eval` without labels) with the model
    /// and weights of the exported version in `export_dir` instead of model_dir's, which
    /// is never read. Returns the number of examples.
    pub fn predict_export(
        &mut self,
        export_dir: &Path,
        mut sink: impl FnMut(PredictionRow<'_>) -> Result<()>,
    ) -> Result<usize> {
        let servable = Servable::load(export_dir, &mut self.registry)?;
        let _flush = FlushDenormals::new();
        let mut pipeline = self.pipeline("predict", ModeKeys::Predict)?;
        let mut examples = 0;
        while let Some(batch) = pipeline.next_batch()? {
            let spec = servable.predict_views(&batch.features, batch.len)?;
            let sorted = sorted_by_name(&spec);
            for row in 0..batch.len {
                sink(PredictionRow::new(&spec, &sorted, row))?;
            }
            examples += batch.len;
        }
        Ok(examples)
    }

    /// The inference loop: restore (or warm-start) the model, then for each batch run the
    /// hooks, model_fn with its spec checked, and `on_batch` with the rows model_fn saw
    /// and the batch's size. PREDICT hides the labels. In a data-parallel run, each rank
    /// takes its share of every batch (`on_batch` gets no spec when it had no rows) and
    /// rank 0 reads the checkpoint for all. Returns the session, for what the caller reports.
    fn infer(
        &mut self,
        run: Inference<'_>,
        user_hooks: Vec<&mut dyn Hook>,
        mut on_batch: impl FnMut(Option<&EstimatorSpec>, &BatchRef<'_>, usize) -> Result<()>,
    ) -> Result<Session> {
        let verb = match run.mode {
            ModeKeys::Eval => "evaluate",
            _ => "predict",
        };
        let latest = match self.replicas.is_chief() {
            true => self.checkpoint_for(verb, run.checkpoint),
            false => Ok(None),
        };
        let latest = self.replicas.agree(latest)?;
        let mut ckpt = self.shared_with_replicas(latest, &self.model_dir())?;
        let _flush = FlushDenormals::new();
        let mut session = self.open_session(ckpt.as_mut())?;
        if ckpt.is_none() {
            self.warm_start(&mut session, std::iter::empty())?;
        }
        let mut pipeline = self.pipeline(run.name, run.mode)?;
        let mut hooks = HookSet::new(
            self.loop_hooks(run.name, run.hooks, &session, run.mode)?,
            user_hooks,
        );
        let global_step = session.global_step;
        hooks.begin(&RunInfo {
            mode: run.mode,
            start_step: global_step,
            last_step: run.max_batches.map(|n| n as i64),
            model_plugin: session.lib.name.clone(),
        })?;
        hooks.after_create_session(global_step)?;
        if run.mode == ModeKeys::Eval {
            info!("Starting evaluation at global step {global_step}");
        }
        let mut last: Option<(usize, EstimatorSpec)> = None;
        let mut step = 0u64;
        let (rank, ranks) = (self.replicas.rank(), self.replicas.size());
        let mut slicer = BatchSlicer::default();
        // A failure of the last batch's hooks or output, which the ranks agree on with the
        // next batch's stop.
        let mut failed: Result<()> = Ok(());
        loop {
            let more = run.max_batches.is_none_or(|n| step < n);
            let ((), [stop]) = self.replicas.agree_with(
                std::mem::replace(&mut failed, Ok(())),
                [!more || hooks.stop_requested()],
            )?;
            if stop {
                break;
            }
            hooks.before_run(global_step)?;
            let Some(mut batch) = pipeline.next_batch()? else {
                break;
            };
            if run.mode == ModeKeys::Predict {
                batch.labels = None;
            }
            let batch_len = batch.len;
            let rows = rows_of_rank(batch_len, rank, ranks);
            let share = match ranks {
                1 => batch,
                _ => slicer.slice(&batch, rows),
            };
            // A short last batch can leave a rank no rows. A rank's model_fn can fail on
            // its rows alone: the ranks agree before they go on.
            let spec = match share.len {
                0 => Ok(None),
                _ => session
                    .run_model_fn(&share, run.mode, self.seed, &[])
                    .map(Some),
            };
            let spec = self.replicas.agree(spec)?;
            failed = on_batch(spec.as_ref(), &share, batch_len);
            if let Some(spec) = spec {
                let values = loop_values(step as i64, global_step, batch_len, &spec);
                failed = failed.and_then(|()| hooks.after_run(&values));
                last = Some((batch_len, spec));
            }
            step += 1;
        }
        // The last batch's failure, if any.
        self.replicas.agree(failed)?;
        let last_values = last
            .as_ref()
            .map(|(len, spec)| loop_values(step as i64 - 1, global_step, *len, spec));
        hooks.end(last_values.as_ref())?;
        Ok(session)
    }
}

/// What an EVAL or PREDICT step shows its hooks.
fn loop_values(
    step: i64,
    global_step: i64,
    batch_len: usize,
    spec: &EstimatorSpec,
) -> RunValues<'_> {
    RunValues {
        step,
        global_step,
        loss: spec.loss.into_option(),
        predictions: &spec.predictions,
        batch_len,
        learning_rate: None,
        timings: None,
    }
}

fn format_value(key: &str, v: f64) -> String {
    if key == "global_step" {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use crate::estimator::test_support::iris_estimator;
    use crate::estimator::StopAt;

    #[test]
    fn evaluate_and_predict_read_the_trained_model() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut estimator = iris_estimator(dir.path(), |t| t);
        estimator
            .train(Some(StopAt::MaxSteps(300)))
            .expect("trains");
        let metrics = estimator.evaluate(None).expect("evaluates");
        assert_eq!(metrics["global_step"], 300.0);
        assert!(
            metrics["loss"].is_finite() && metrics["loss"] > 0.0,
            "{metrics:?}"
        );
        let mut rows = Vec::new();
        let count = estimator
            .predict(None, |row| {
                rows.push(row.to_json());
                Ok(())
            })
            .expect("predicts");
        assert_eq!((count, rows.len()), (30, 30), "one object per test example");
        for row in &rows {
            let p: Vec<f64> = row["probabilities"]
                .as_array()
                .expect("probabilities")
                .iter()
                .map(|v| v.as_f64().expect("number"))
                .collect();
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-5, "{row:?}");
            let class = row["class_ids"][0].as_u64().expect("class id") as usize;
            assert!(
                p.iter().all(|&q| q <= p[class]),
                "class_ids is the argmax: {row:?}"
            );
        }
        // The trained model classifies the test set well.
        let labels: Vec<u64> = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/iris_test.csv"),
        )
        .expect("data")
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().expect("label").parse().expect("class"))
        .collect();
        let right = rows
            .iter()
            .zip(&labels)
            .filter(|(row, &y)| row["class_ids"][0].as_u64() == Some(y))
            .count();
        assert!(right >= 27, "{right} of 30 right");
    }
}
