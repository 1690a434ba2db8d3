//! Server-side batching, TF Serving's `--enable_batching`: concurrent requests to one
//! version wait up to `batch_timeout` for others, and up to `max_batch_size` examples run
//! in one model_fn call; each request gets its own rows back.
//!
//! Each version with batching has a queue and one batching thread per core. A thread takes
//! the first waiting request, gathers more until the batch is full or the timeout passes,
//! and predicts; a request larger than `max_batch_size` runs alone.

use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use estimator_plugin_api::abi::{ErrorKind, EstimatorSpec, Tensor, TensorBuf};
use tokio::sync::oneshot;
use tracing::debug;

use crate::error::{Error, Result};
use crate::export::Servable;
use crate::input::concatenate_tensors;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchingOptions {
    pub max_batch_size: usize,
    pub batch_timeout: Duration,
}

/// One request waiting in a batch queue.
struct Job {
    columns: Vec<Tensor>,
    rows: usize,
    /// The predictions the request answers with; only these are copied out of the batch.
    wanted: Vec<String>,
    reply: oneshot::Sender<Result<EstimatorSpec>>,
}

/// A version's batch queue. Dropping it stops its threads once the queue is empty.
pub struct Batcher {
    queue: Sender<Job>,
}

impl Batcher {
    pub fn start(servable: Arc<Servable>, options: BatchingOptions) -> Self {
        let (queue, jobs) = channel::<Job>();
        let shared = Arc::new(Mutex::new(Queue { jobs, held: None }));
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        for _ in 0..threads {
            let (servable, shared) = (Arc::clone(&servable), Arc::clone(&shared));
            std::thread::spawn(move || run(&servable, &shared, options));
        }
        Batcher { queue }
    }

    /// Predicts `rows` examples as part of a batch; the spec holds this request's rows of
    /// the `wanted` predictions.
    pub async fn predict(
        &self,
        columns: Vec<Tensor>,
        rows: usize,
        wanted: Vec<String>,
    ) -> Result<EstimatorSpec> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job {
                columns,
                rows,
                wanted,
                reply,
            })
            .map_err(|_| Error::Internal("the version's batch queue is closed".into()))?;
        answer
            .await
            .map_err(|_| Error::Internal("a batching thread stopped without answering".into()))?
    }
}

/// The queue as the batching threads share it: the receiver, and a job that did not fit
/// in the last batch, which starts the next one.
struct Queue {
    jobs: Receiver<Job>,
    held: Option<Job>,
}

/// A batching thread: gather, predict, answer, until the queue closes.
fn run(servable: &Servable, queue: &Mutex<Queue>, options: BatchingOptions) {
    loop {
        let batch = {
            let Ok(mut queue) = queue.lock() else { return };
            match gather(&mut queue, options) {
                Some(batch) => batch,
                None => return,
            }
        };
        answer(servable, batch);
    }
}

/// The next batch: the first job, then whatever arrives before the batch is full or the
/// timeout passes. `None` once the queue is closed and empty.
fn gather(queue: &mut Queue, options: BatchingOptions) -> Option<Vec<Job>> {
    let first = match queue.held.take() {
        Some(job) => job,
        None => queue.jobs.recv().ok()?,
    };
    let mut rows = first.rows;
    let mut batch = vec![first];
    let deadline = Instant::now() + options.batch_timeout;
    while rows < options.max_batch_size {
        let left = deadline.saturating_duration_since(Instant::now());
        match queue.jobs.recv_timeout(left) {
            Ok(job) if rows + job.rows <= options.max_batch_size => {
                rows += job.rows;
                batch.push(job);
            }
            Ok(job) => {
                queue.held = Some(job);
                break;
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
        }
    }
    Some(batch)
}

/// Predicts one batch and hands each job its rows. When the model refuses the batch's
/// data, each request is predicted alone, so that one request's bad data fails only that
/// request (the host's own checks, made before a request joins a batch, catch the rest).
fn answer(servable: &Servable, batch: Vec<Job>) {
    let rows: usize = batch.iter().map(|j| j.rows).sum();
    debug!("batch of {rows} examples from {} requests", batch.len());
    if batch.len() == 1 {
        return answer_alone(servable, batch);
    }
    let columns = concat_columns(&batch);
    match servable.predict(&columns, rows) {
        Ok(spec) => {
            let mut start = 0;
            for job in batch {
                let part = rows_of(&spec, &job.wanted, start, start + job.rows);
                start += job.rows;
                let _ = job.reply.send(Ok(part));
            }
        }
        Err(e) if is_bad_data(&e) => {
            debug!("the model refused a batch ({e}): predicting its requests one by one");
            for job in batch {
                answer_alone(servable, vec![job]);
            }
        }
        Err(e) => {
            for job in batch {
                let _ = job.reply.send(Err(copy_error(&e)));
            }
        }
    }
}

/// Whether the model refused the data it was given (the client's fault).
pub fn is_bad_data(e: &Error) -> bool {
    matches!(e, Error::PluginCall { source, .. } if source.kind() == ErrorKind::BadData)
}

/// The same error for each request of a failed batch.
fn copy_error(e: &Error) -> Error {
    match e {
        Error::PluginCall {
            plugin,
            call,
            source,
        } => Error::PluginCall {
            plugin: plugin.clone(),
            call: call.clone(),
            source: source.clone(),
        },
        other => Error::Internal(other.to_string()),
    }
}

/// Predicts each job of `jobs` by itself.
fn answer_alone(servable: &Servable, jobs: Vec<Job>) {
    for job in jobs {
        let predicted = servable.predict(&job.columns, job.rows);
        let _ = job.reply.send(predicted);
    }
}

/// Every job's columns, one after another, input by input. Every job's columns were
/// read against the same inputs, so they share dtypes and row shapes.
fn concat_columns(batch: &[Job]) -> Vec<Tensor> {
    let inputs = batch[0].columns.len();
    (0..inputs)
        .map(|i| {
            let parts: Vec<&Tensor> = batch.iter().map(|j| &j.columns[i]).collect();
            concatenate_tensors(&parts)
        })
        .collect()
}

/// Rows `start..end` of every prediction.
fn rows_of(spec: &EstimatorSpec, wanted: &[String], start: usize, end: usize) -> EstimatorSpec {
    let mut part = EstimatorSpec::new(estimator_plugin_api::abi::ModeKeys::Predict);
    let predictions = spec.predictions.iter();
    for p in predictions.filter(|p| wanted.iter().any(|w| w.as_str() == p.name.as_str())) {
        part.add_prediction(p.name.as_str(), slice_rows(&p.tensor, start, end));
    }
    part
}

pub fn slice_rows(t: &Tensor, start: usize, end: usize) -> Tensor {
    let width: usize = t.shape[1..].iter().product();
    let range = start * width..end * width;
    let mut shape = t.shape.to_vec();
    if let Some(n) = shape.first_mut() {
        *n = end - start;
    }
    let data = match &t.data {
        TensorBuf::F32(v) => TensorBuf::F32(v[range].to_vec().into()),
        TensorBuf::I64(v) => TensorBuf::I64(v[range].to_vec().into()),
        TensorBuf::Str(v) => TensorBuf::Str(v[range].to_vec().into()),
    };
    Tensor {
        shape: shape.into(),
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacked_rows_slice_back_to_each_request() {
        let a = Tensor::f32(vec![1, 2], vec![1.0, 2.0]);
        let b = Tensor::f32(vec![2, 2], vec![3.0, 4.0, 5.0, 6.0]);
        let both = concatenate_tensors(&[&a, &b]);
        assert_eq!(both.shape.as_slice(), &[3, 2]);
        assert_eq!(slice_rows(&both, 0, 1), a);
        assert_eq!(slice_rows(&both, 1, 3), b);
    }

    #[test]
    fn a_batch_fills_up_to_its_size_and_a_job_too_big_waits_for_the_next() {
        let (send, jobs) = channel::<Job>();
        let job = |rows| {
            let (reply, _answer) = oneshot::channel();
            Job {
                columns: Vec::new(),
                rows,
                wanted: Vec::new(),
                reply,
            }
        };
        for rows in [2, 3, 4, 1] {
            send.send(job(rows)).expect("queued");
        }
        let mut queue = Queue { jobs, held: None };
        let options = BatchingOptions {
            max_batch_size: 6,
            batch_timeout: Duration::from_millis(10),
        };
        let sizes = |b: Vec<Job>| b.iter().map(|j| j.rows).collect::<Vec<_>>();
        assert_eq!(sizes(gather(&mut queue, options).expect("batch")), [2, 3]);
        assert_eq!(sizes(gather(&mut queue, options).expect("batch")), [4, 1]);
        drop(send);
        assert!(gather(&mut queue, options).is_none(), "closed and empty");
    }
}
