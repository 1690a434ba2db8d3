//! The bounded pool that parses requests, runs model_fn and writes answers, off the async
//! runtime: the runtime's threads only move bytes, so status, metadata and health answer
//! at once however busy the models are.
//!
//! At most `size` jobs run at a time (`--tensorflow_inter_op_parallelism`, by default the
//! machine's cores); the others wait for a slot. A job whose deadline passes while it
//! waits is dropped, never run; one whose deadline passes while it runs is answered 504 at
//! the deadline, and its thread finishes the call (a plugin call cannot be cut short)
//! before the slot is free again.

use std::sync::Arc;
use std::time::Instant;

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
    slots: Arc<Semaphore>,
}

impl Pool {
    pub fn new(size: usize) -> Self {
        Pool {
            slots: Arc::new(Semaphore::new(size.max(1))),
        }
    }

    /// Runs `job` on a pool thread once a slot is free, if `deadline` has not passed by
    /// then; waits for its result until `deadline`.
    pub async fn run<T: Send + 'static>(
        &self,
        deadline: Instant,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, NotRun> {
        let until = tokio::time::Instant::from_std(deadline);
        let slot =
            match tokio::time::timeout_at(until, Arc::clone(&self.slots).acquire_owned()).await {
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
    use std::time::Duration;

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
                    pool.run(far, move || {
                        let _ = hold.recv();
                    })
                    .await
                })
            };
            tokio::time::sleep(Duration::from_millis(50)).await;
            let counted = Arc::clone(&ran);
            let soon = Instant::now() + Duration::from_millis(100);
            let late = pool
                .run(soon, move || counted.fetch_add(1, Ordering::SeqCst))
                .await;
            assert_eq!(late, Err(NotRun::DeadlineExceeded));
            release.send(()).expect("release");
            assert_eq!(busy.await.expect("joined"), Ok(()));
            assert_eq!(ran.load(Ordering::SeqCst), 0, "the late job never ran");
            // The slot is free again: the next job runs.
            let counted = Arc::clone(&ran);
            let next = pool
                .run(far, move || counted.fetch_add(1, Ordering::SeqCst))
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
                .run(Instant::now() + Duration::from_millis(100), move || {
                    let _ = hold.recv();
                })
                .await;
            assert_eq!(slow, Err(NotRun::DeadlineExceeded));
            release
                .send(())
                .expect("the job still runs, holding its slot");
        });
    }

    #[test]
    fn a_panicking_job_frees_its_slot() {
        runtime().block_on(async {
            let pool = Pool::new(1);
            let far = Instant::now() + Duration::from_secs(30);
            let panicked: Result<(), NotRun> = pool.run(far, || panic!("a bug")).await;
            assert_eq!(panicked, Err(NotRun::Panicked));
            assert_eq!(pool.run(far, || 7).await, Ok(7));
        });
    }
}
