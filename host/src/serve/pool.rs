//! The bounded pool that parses requests, runs model_fn and writes answers, off the async
//! runtime: the runtime's threads only move bytes, so status, metadata and health answer
//! at once however busy the models are.
//!
//! Small requests to a model measured fast run inline, on the network thread that took
//! them: for a call of tens of microseconds the hand-off would cost more than the work.
//! The rest run in two lanes, each of at most `size` at a time (`--tensorflow_inter_op_parallelism`,
//! by default the machine's cores): one for small requests, one for large ones, so that a
//! few large requests (megabytes of JSON to parse) never make the small ones queue behind
//! them; the system's scheduler shares the cores between the lanes' threads. The other jobs
//! wait for a slot in their lane. A job whose deadline passes while it
//! waits is dropped, never run; one whose deadline passes while it runs is answered 504 at
//! the deadline, and its thread finishes the call (a plugin call cannot be cut short)
//! before the slot is free again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tracing::debug;

/// Why a job gave no result.
#[derive(Debug, PartialEq, Eq)]
pub enum NotRun {
    /// Its deadline passed: before it started (it never ran), or while it ran.
    DeadlineExceeded,
    /// The job panicked (a bug in the host; a plugin's panics are caught at the ABI).
    Panicked,
}

pub struct Pool {
    small: Arc<Semaphore>,
    large: Arc<Semaphore>,
}

/// A request body up to this size is small: its job takes well under a millisecond.
pub const SMALL_REQUEST_BYTES: usize = 64 << 10;

/// A model whose warm call takes under this is fast: a small request to it runs where it
/// arrived, since handing it to the pool would cost more than the work (twice the
/// throughput for Iris-sized models).
pub const FAST_CALL: Duration = Duration::from_micros(500);

/// A call that held a network thread this long makes its version slow for good: its
/// small requests go to the pool from then on. Well above [`FAST_CALL`], so that a call
/// the system merely paused (a busy machine) does not count.
pub const STALL: Duration = Duration::from_millis(5);

/// Which lane a job waits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// Small requests to a fast model: run on the network thread that took them.
    Inline,
    Small,
    Large,
}

impl Lane {
    /// The lane of a request whose body has `bytes`, to a model measured fast or not.
    pub fn of(bytes: usize, fast: bool) -> Self {
        match (bytes <= SMALL_REQUEST_BYTES, fast) {
            (true, true) => Lane::Inline,
            (true, false) => Lane::Small,
            (false, _) => Lane::Large,
        }
    }
}

/// Whether a model whose call took `took` is fast.
pub fn measured_fast(took: Duration) -> bool {
    took < FAST_CALL
}

impl Pool {
    pub fn new(size: usize) -> Self {
        Pool {
            small: Arc::new(Semaphore::new(size.max(1))),
            large: Arc::new(Semaphore::new(size.max(1))),
        }
    }

    /// Runs `job` on a pool thread once a slot of `lane` is free, if `deadline` has not passed by
    /// then; waits for its result until `deadline`.
    pub async fn run<T: Send + 'static>(
        &self,
        lane: Lane,
        deadline: Instant,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, NotRun> {
        let until = tokio::time::Instant::from_std(deadline);
        let slots = match lane {
            Lane::Inline => return Ok(job()),
            Lane::Small => &self.small,
            Lane::Large => &self.large,
        };
        let slot = match tokio::time::timeout_at(until, Arc::clone(slots).acquire_owned()).await {
            Ok(Ok(slot)) => slot,
            // The semaphore is never closed.
            Ok(Err(_)) => return Err(NotRun::Panicked),
            Err(_) => {
                debug!("dropped a request whose deadline passed before it could run");
                return Err(NotRun::DeadlineExceeded);
            }
        };
        let running = tokio::task::spawn_blocking(move || {
            // The slot is held until the job ends, even when its client was answered 504.
            let _slot = slot;
            if Instant::now() >= deadline {
                debug!("dropped a request whose deadline passed before it could run");
                return None;
            }
            Some(job())
        });
        match tokio::time::timeout_at(until, running).await {
            Ok(Ok(Some(result))) => Ok(result),
            Ok(Ok(None)) | Err(_) => Err(NotRun::DeadlineExceeded),
            Ok(Err(_)) => Err(NotRun::Panicked),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn a_job_waiting_past_its_deadline_never_runs() {
        runtime().block_on(async {
            let pool = Arc::new(Pool::new(1));
            let ran = Arc::new(AtomicUsize::new(0));
            let far = Instant::now() + Duration::from_secs(30);
            let (release, hold) = std::sync::mpsc::channel::<()>();
            // The one slot is taken by a job that waits for the test's word.
            let busy = {
                let pool = Arc::clone(&pool);
                tokio::spawn(async move {
                    pool.run(Lane::Small, far, move || {
                        let _ = hold.recv();
                    })
                    .await
                })
            };
            tokio::time::sleep(Duration::from_millis(50)).await;
            let counted = Arc::clone(&ran);
            let soon = Instant::now() + Duration::from_millis(100);
            let late = pool
                .run(Lane::Small, soon, move || {
                    counted.fetch_add(1, Ordering::SeqCst)
                })
                .await;
            assert_eq!(late, Err(NotRun::DeadlineExceeded));
            release.send(()).expect("release");
            assert_eq!(busy.await.expect("joined"), Ok(()));
            assert_eq!(ran.load(Ordering::SeqCst), 0, "the late job never ran");
            // The slot is free again: the next job runs.
            let counted = Arc::clone(&ran);
            let next = pool
                .run(Lane::Small, far, move || {
                    counted.fetch_add(1, Ordering::SeqCst)
                })
                .await;
            assert_eq!(next, Ok(0));
        });
    }

    #[test]
    fn a_job_running_past_its_deadline_is_answered_at_the_deadline() {
        runtime().block_on(async {
            let pool = Pool::new(2);
            let (release, hold) = std::sync::mpsc::channel::<()>();
            // The job cannot end before the answer: the pool must not wait for it.
            let slow = pool
                .run(
                    Lane::Small,
                    Instant::now() + Duration::from_millis(100),
                    move || {
                        let _ = hold.recv();
                    },
                )
                .await;
            assert_eq!(slow, Err(NotRun::DeadlineExceeded));
            release
                .send(())
                .expect("the job still runs, holding its slot");
        });
    }

    #[test]
    fn a_large_request_never_takes_a_small_ones_slot() {
        runtime().block_on(async {
            let pool = Arc::new(Pool::new(1));
            let far = Instant::now() + Duration::from_secs(30);
            let (release, hold) = std::sync::mpsc::channel::<()>();
            let large = {
                let pool = Arc::clone(&pool);
                tokio::spawn(async move {
                    pool.run(Lane::Large, far, move || {
                        let _ = hold.recv();
                    })
                    .await
                })
            };
            tokio::time::sleep(Duration::from_millis(50)).await;
            // The large lane's one slot is held; a small job runs all the same.
            assert_eq!(pool.run(Lane::Small, far, || 1).await, Ok(1));
            release.send(()).expect("release");
            assert_eq!(large.await.expect("joined"), Ok(()));
            assert_eq!(Lane::of(SMALL_REQUEST_BYTES + 1, true), Lane::Large);
            assert_eq!(Lane::of(SMALL_REQUEST_BYTES, true), Lane::Inline);
            assert_eq!(Lane::of(SMALL_REQUEST_BYTES, false), Lane::Small);
            assert!(measured_fast(Duration::from_micros(100)));
            assert!(!measured_fast(FAST_CALL));
            assert!(STALL > FAST_CALL * 4);
        });
    }

    #[test]
    fn a_panicking_job_frees_its_slot() {
        runtime().block_on(async {
            let pool = Pool::new(1);
            let far = Instant::now() + Duration::from_secs(30);
            let panicked: Result<(), NotRun> = pool.run(Lane::Small, far, || panic!("a bug")).await;
            assert_eq!(panicked, Err(NotRun::Panicked));
            assert_eq!(pool.run(Lane::Small, far, || 7).await, Ok(7));
        });
    }
}
