//! Server-side batching, TF Serving's `--enable_batching`: concurrent requests to one
//! version wait up to `batch_timeout` for others, and up to `max_batch_size` examples run
//! in one model_fn call; each request gets its own rows back.
//!
//! Each version with batching has a queue and one batching thread per core. A thread takes
//! the first waiting request, gathers more until the batch is full or the timeout passes,
//! and predicts; a request larger than `max_batch_size` runs alone.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use estimator_plugin_api::abi::{ErrorKind, EstimatorSpec, Tensor, TensorBuf};
use tokio::sync::oneshot;
use tracing::{debug, error};

use super::metrics::METRICS;
use super::rest::ApiError;
use crate::error::Error;
use crate::export::Servable;
use crate::input::concatenate_tensors;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchingOptions {
    pub max_batch_size: usize,
    pub batch_timeout: Duration,
    /// Batches that may wait in a version's queue (TF Serving's `max_enqueued_batches`):
    /// past `max_enqueued_batches * max_batch_size` waiting examples, a request gets 503.
    pub max_enqueued_batches: usize,
    /// Split a request larger than `max_batch_size` into batches (TF Serving's
    /// `enable_large_batch_splitting`) rather than refuse it.
    pub split_large_batches: bool,
    /// Threads that gather and predict a version's batches (TF Serving's
    /// `num_batch_threads`).
    pub threads: usize,
}

/// Why a batched prediction gave no answer.
#[derive(Debug)]
pub enum BatchError {
    /// The request's deadline passed while it waited; it was never run.
    DeadlineExceeded,
    /// The queue holds as many examples as it may.
    QueueFull { limit: usize },
    /// A request larger than a batch, without splitting.
    TooLarge { rows: usize, max: usize },
    /// The model failed on the batch.
    Model(Error),
    /// A batching thread stopped without answering (a bug).
    Stopped,
}

impl BatchError {
    /// TF Serving's answer for each: 503 (`UNAVAILABLE`) for a full queue, 400
    /// (`INVALID_ARGUMENT`) for a request too large, a model's failure as an unbatched
    /// one's, 504 past the deadline, 500 for the rest.
    pub fn into_api_error(self) -> ApiError {
        match self {
            BatchError::QueueFull { limit } => ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("The batch scheduling queue is full ({limit} examples waiting; --max_enqueued_batches): try again later"),
            ),
            BatchError::TooLarge { rows, max } => ApiError::bad_request(format!(
                "Task size {rows} is larger than maximum input batch size {max} (--max_batch_size; --enable_large_batch_splitting splits it)"
            )),
            BatchError::Model(e) => super::call::model_error(&e),
            BatchError::DeadlineExceeded => ApiError(
                StatusCode::GATEWAY_TIMEOUT,
                "DEADLINE_EXCEEDED: the request's deadline passed in the batch queue".into(),
            ),
            BatchError::Stopped => {
                ApiError::internal("internal error: a batching thread stopped without answering (a bug)")
            }
        }
    }
}

/// One request (or one part of a split request) waiting in a batch queue.
struct Job {
    columns: Vec<Tensor>,
    rows: usize,
    /// The predictions the request answers with; only these are copied out of the batch.
    wanted: Arc<[String]>,
    /// Past this, the job is dropped rather than run.
    deadline: Instant,
    reply: oneshot::Sender<Result<EstimatorSpec, BatchError>>,
}

/// A version's batch queue. Dropping it stops its threads once the queue is empty.
pub struct Batcher {
    queue: Sender<Job>,
    /// Examples queued and not yet taken into a batch.
    waiting: Arc<AtomicUsize>,
    options: BatchingOptions,
}

impl Batcher {
    /// Starts the batching threads of a version of model `model`.
    pub fn start(servable: Arc<Servable>, options: BatchingOptions, model: &str) -> Self {
        let model: Arc<str> = model.into();
        let (queue, jobs) = channel::<Job>();
        let waiting = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(Mutex::new(Queue {
            jobs,
            held: None,
            waiting: Arc::clone(&waiting),
        }));
        for _ in 0..options.threads.max(1) {
            let (servable, shared) = (Arc::clone(&servable), Arc::clone(&shared));
            let model = Arc::clone(&model);
            std::thread::spawn(move || run(&servable, &shared, options, &model));
        }
        Batcher {
            queue,
            waiting,
            options,
        }
    }

    /// Examples waiting in the queue now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Predicts `rows` examples as part of a batch (or of several, when a request larger
    /// than a batch is split); the spec holds this request's rows of the `wanted`
    /// predictions.
    pub async fn predict(
        &self,
        columns: Vec<Tensor>,
        rows: usize,
        wanted: Vec<String>,
        deadline: Instant,
    ) -> Result<EstimatorSpec, BatchError> {
        let max = self.options.max_batch_size;
        if rows > max && !self.options.split_large_batches {
            return Err(BatchError::TooLarge { rows, max });
        }
        let limit = self.options.max_enqueued_batches.saturating_mul(max);
        let before = self.waiting.fetch_add(rows, Ordering::Relaxed);
        if before + rows > limit {
            self.waiting.fetch_sub(rows, Ordering::Relaxed);
            return Err(BatchError::QueueFull { limit });
        }
        let wanted: Arc<[String]> = wanted.into();
        let mut answers = Vec::new();
        for (columns, part_rows) in split(columns, rows, max) {
            let (reply, answer) = oneshot::channel();
            let job = Job {
                columns,
                rows: part_rows,
                wanted: Arc::clone(&wanted),
                deadline,
                reply,
            };
            if self.queue.send(job).is_err() {
                return Err(BatchError::Stopped);
            }
            answers.push(answer);
        }
        let mut parts = Vec::with_capacity(answers.len());
        for answer in answers {
            parts.push(answer.await.map_err(|_| BatchError::Stopped)??);
        }
        Ok(join_parts(parts, &wanted))
    }
}

/// `columns` cut into parts of at most `max` rows (one part when it fits).
fn split(columns: Vec<Tensor>, rows: usize, max: usize) -> Vec<(Vec<Tensor>, usize)> {
    if rows <= max {
        return vec![(columns, rows)];
    }
    row_parts(&columns, rows, max).collect()
}

/// Copies of `columns` (of `rows` examples) cut into parts of at most `max` rows, in
/// order, each with its number of rows.
pub fn row_parts(
    columns: &[Tensor],
    rows: usize,
    max: usize,
) -> impl Iterator<Item = (Vec<Tensor>, usize)> + '_ {
    (0..rows).step_by(max.max(1)).map(move |start| {
        let end = (start + max).min(rows);
        let part = columns.iter().map(|c| slice_rows(c, start, end)).collect();
        (part, end - start)
    })
}

/// The parts of a split request's predictions, joined back in order.
pub fn join_parts(mut parts: Vec<EstimatorSpec>, wanted: &[String]) -> EstimatorSpec {
    if parts.len() == 1 {
        return parts.swap_remove(0);
    }
    let mut joined = EstimatorSpec::new(estimator_plugin_api::abi::ModeKeys::Predict);
    for name in wanted {
        let pieces: Vec<&Tensor> = parts.iter().filter_map(|p| p.prediction(name)).collect();
        if pieces.len() == parts.len() {
            joined.add_prediction(name.as_str(), concatenate_tensors(&pieces));
        }
    }
    joined
}

/// The queue as the batching threads share it: the receiver, and a job that did not fit
/// in the last batch, which starts the next one.
struct Queue {
    jobs: Receiver<Job>,
    held: Option<Job>,
    waiting: Arc<AtomicUsize>,
}

/// A batching thread: gather, predict, answer, until the queue closes. A panic while
/// answering (a bug in the host) fails that batch's requests and the thread goes on.
fn run(servable: &Servable, queue: &Mutex<Queue>, options: BatchingOptions, model: &str) {
    loop {
        let batch = {
            let mut queue = queue.lock().unwrap_or_else(PoisonError::into_inner);
            match gather(&mut queue, options) {
                Some(batch) => batch,
                None => return,
            }
        };
        let examples = batch.iter().map(|j| j.rows).sum();
        METRICS.batch(model, examples);
        let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            answer(servable, batch);
        }));
        if answered.is_err() {
            error!("answering a batch panicked (a bug): its requests got 500");
        }
    }
}

/// The next batch: the first job, then whatever arrives before the batch is full or the
/// timeout passes. Jobs whose deadline has passed are answered so and left out. `None`
/// once the queue is closed and empty.
fn gather(queue: &mut Queue, options: BatchingOptions) -> Option<Vec<Job>> {
    let first = loop {
        let job = match queue.held.take() {
            Some(job) => job,
            None => queue.take(queue.jobs.recv().ok()?),
        };
        if let Some(job) = live(job) {
            break job;
        }
    };
    let mut rows = first.rows;
    let mut batch = vec![first];
    let deadline = Instant::now() + options.batch_timeout;
    while rows < options.max_batch_size {
        let left = deadline.saturating_duration_since(Instant::now());
        match queue.jobs.recv_timeout(left) {
            Ok(job) => {
                let Some(job) = live(queue.take(job)) else {
                    continue;
                };
                if rows + job.rows <= options.max_batch_size {
                    rows += job.rows;
                    batch.push(job);
                } else {
                    queue.held = Some(job);
                    break;
                }
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
        }
    }
    Some(batch)
}

impl Queue {
    /// A job leaves the queue's count of waiting examples as it is taken.
    fn take(&self, job: Job) -> Job {
        self.waiting.fetch_sub(job.rows, Ordering::Relaxed);
        job
    }
}

/// `job`, unless its deadline has passed: then it is answered so, and never run.
fn live(job: Job) -> Option<Job> {
    if Instant::now() < job.deadline {
        return Some(job);
    }
    debug!("dropped a batched request whose deadline passed before it could run");
    let _ = job.reply.send(Err(BatchError::DeadlineExceeded));
    None
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
                let _ = job.reply.send(Err(BatchError::Model(copy_error(&e))));
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
        let _ = job.reply.send(predicted.map_err(BatchError::Model));
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

fn slice_rows(t: &Tensor, start: usize, end: usize) -> Tensor {
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

    fn options(max_batch_size: usize) -> BatchingOptions {
        BatchingOptions {
            max_batch_size,
            batch_timeout: Duration::from_millis(10),
            max_enqueued_batches: 10,
            split_large_batches: false,
            threads: 1,
        }
    }

    /// A queue holding jobs of `rows` examples with `deadline`, and the answers' ends.
    #[allow(clippy::type_complexity)]
    fn queued(
        rows: &[usize],
        deadline: Instant,
    ) -> (
        Sender<Job>,
        Queue,
        Vec<oneshot::Receiver<Result<EstimatorSpec, BatchError>>>,
    ) {
        let (send, jobs) = channel::<Job>();
        let mut answers = Vec::new();
        for &rows in rows {
            let (reply, answer) = oneshot::channel();
            let job = Job {
                columns: Vec::new(),
                rows,
                wanted: Vec::<String>::new().into(),
                deadline,
                reply,
            };
            send.send(job).expect("queued");
            answers.push(answer);
        }
        let waiting = Arc::new(AtomicUsize::new(rows.iter().sum()));
        let queue = Queue {
            jobs,
            held: None,
            waiting,
        };
        (send, queue, answers)
    }

    #[test]
    fn a_batch_fills_up_to_its_size_and_a_job_too_big_waits_for_the_next() {
        let far = Instant::now() + Duration::from_secs(60);
        let (send, mut queue, _answers) = queued(&[2, 3, 4, 1], far);
        let sizes = |b: Vec<Job>| b.iter().map(|j| j.rows).collect::<Vec<_>>();
        assert_eq!(
            sizes(gather(&mut queue, options(6)).expect("batch")),
            [2, 3]
        );
        assert_eq!(
            sizes(gather(&mut queue, options(6)).expect("batch")),
            [4, 1]
        );
        assert_eq!(queue.waiting.load(Ordering::Relaxed), 0);
        drop(send);
        assert!(gather(&mut queue, options(6)).is_none(), "closed and empty");
    }

    #[test]
    fn a_job_whose_deadline_passed_is_answered_so_and_never_batched() {
        let past = Instant::now();
        let (send, mut queue, mut answers) = queued(&[2, 3], past);
        let far = Instant::now() + Duration::from_secs(60);
        let (reply, _live_answer) = oneshot::channel();
        send.send(Job {
            columns: Vec::new(),
            rows: 1,
            wanted: Vec::<String>::new().into(),
            deadline: far,
            reply,
        })
        .expect("queued");
        queue.waiting.fetch_add(1, Ordering::Relaxed);
        let batch = gather(&mut queue, options(6)).expect("batch");
        assert_eq!(batch.iter().map(|j| j.rows).collect::<Vec<_>>(), [1]);
        for answer in &mut answers {
            assert!(matches!(
                answer.try_recv(),
                Ok(Err(BatchError::DeadlineExceeded))
            ));
        }
        assert_eq!(queue.waiting.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_request_larger_than_a_batch_is_split_in_order() {
        let a = Tensor::f32(vec![5, 1], vec![0.0, 1.0, 2.0, 3.0, 4.0]);
        let parts = split(vec![a.clone()], 5, 2);
        let rows: Vec<usize> = parts.iter().map(|(_, r)| *r).collect();
        assert_eq!(rows, [2, 2, 1]);
        let specs: Vec<EstimatorSpec> = parts
            .into_iter()
            .map(|(c, _)| {
                let mut spec = EstimatorSpec::new(estimator_plugin_api::abi::ModeKeys::Predict);
                spec.add_prediction("p", c[0].clone());
                spec
            })
            .collect();
        let joined = join_parts(specs, &["p".to_owned()]);
        assert_eq!(joined.prediction("p"), Some(&a));
    }
}
