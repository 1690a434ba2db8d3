//! The replica context: how the training loop sees the other processes of a data-parallel
//! run. On one process (no `mpirun`, one rank, or a build without the `mpi` feature) every
//! call is a no-op and the loop is exactly the single-process one. Under `mpirun -np N` in
//! a build with `--features estimator-host/mpi`, the calls are MPI collectives (`mpi.rs`).
//!
//! - `slice`: each rank's contiguous rows of a global batch;
//! - `gradients`: averaging a step's loss, gradients and updates over the ranks, weighted
//!   by their rows, dense ones by one fused allreduce and row-sparse ones by allgather;
//! - `predictions`: a batch's predictions, computed by each rank on its rows, on rank 0;
//! - `mpi`: the collectives, the only file that names MPI.

mod gradients;
#[cfg(feature = "mpi")]
mod mpi;
mod predictions;
mod slice;

pub use gradients::average_over_ranks;
pub use predictions::gather_predictions;
pub use slice::{rows_of_rank, BatchSlicer};

use crate::error::{Error, Result};

/// The processes of this run and the collectives between them.
pub struct Replicas {
    backend: Backend,
    /// Set once [`Replicas::agree`] has ended the run on every rank: the job can then
    /// finish as usual instead of being aborted.
    failure_agreed: std::cell::Cell<bool>,
}

enum Backend {
    Single,
    #[cfg(feature = "mpi")]
    Mpi(mpi::MpiWorld),
}

impl Default for Replicas {
    fn default() -> Self {
        Replicas::single()
    }
}

impl std::fmt::Debug for Replicas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Replicas(rank {} of {})", self.rank(), self.size())
    }
}

/// How many processes the launcher started, from the variables OpenMPI's `mpirun` (or
/// a PMI launcher) sets; 1 without one.
pub fn launched_ranks() -> usize {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
        .unwrap_or(1)
}

/// How many processes of this run share this machine (OpenMPI's local size); 1 without a
/// launcher.
pub fn local_ranks() -> usize {
    std::env::var("OMPI_COMM_WORLD_LOCAL_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

impl Replicas {
    /// One process: every collective is the identity.
    pub fn single() -> Self {
        Replicas {
            backend: Backend::Single,
            failure_agreed: std::cell::Cell::new(false),
        }
    }

    /// Joins the job the launcher started this process in; one process without one.
    pub fn from_launcher() -> Result<Self> {
        if launched_ranks() <= 1 {
            return Ok(Replicas::single());
        }
        #[cfg(feature = "mpi")]
        {
            Ok(Replicas {
                backend: Backend::Mpi(mpi::MpiWorld::join()?),
                failure_agreed: std::cell::Cell::new(false),
            })
        }
        #[cfg(not(feature = "mpi"))]
        Err(Error::Usage(format!(
            "started as one of {} processes, but this estimator was built without MPI: build it with `cargo build --release --features estimator-host/mpi`",
            launched_ranks()
        )))
    }

    pub fn rank(&self) -> usize {
        match &self.backend {
            Backend::Single => 0,
            #[cfg(feature = "mpi")]
            Backend::Mpi(w) => w.rank(),
        }
    }

    pub fn size(&self) -> usize {
        match &self.backend {
            Backend::Single => 1,
            #[cfg(feature = "mpi")]
            Backend::Mpi(w) => w.size(),
        }
    }

    /// Rank 0: the one process that writes model_dir and logs.
    pub fn is_chief(&self) -> bool {
        self.rank() == 0
    }

    pub fn is_distributed(&self) -> bool {
        self.size() > 1
    }

    /// Adds `values` element-wise over the ranks, in place.
    pub fn sum(&self, values: &mut [f32]) {
        match &self.backend {
            // One process: its values are the sum.
            Backend::Single => {
                let _ = values;
            }
            #[cfg(feature = "mpi")]
            Backend::Mpi(w) => w.sum(values),
        }
    }

    /// `local` on every rank if it is `Ok` on every rank; otherwise every rank fails: a
    /// failed rank with its own error, the others with [`Error::OtherRank`] naming the
    /// first failed rank and taking its exit code. So a failure one rank meets alone (a
    /// plugin error on its rows, a chief's write) ends the run on all of them at the same
    /// point, and no rank waits in a collective the others left.
    pub fn agree<T>(&self, local: Result<T>) -> Result<T> {
        self.agree_with(local, []).map(|(value, [])| value)
    }

    /// [`Replicas::agree`], and each of `flags` set on any rank, on every rank: how the
    /// ranks agree on a decision, in one collective.
    pub fn agree_with<T, const N: usize>(
        &self,
        local: Result<T>,
        flags: [bool; N],
    ) -> Result<(T, [bool; N])> {
        let (failed, flags) = match &self.backend {
            Backend::Single => (None, flags),
            #[cfg(feature = "mpi")]
            Backend::Mpi(w) => {
                let code = local.as_ref().err().map_or(0, Error::exit_code);
                w.first_failure(code, flags)
            }
        };
        if local.is_err() || failed.is_some() {
            self.failure_agreed.set(self.is_distributed());
        }
        match (local, failed) {
            (Ok(value), None) => Ok((value, flags)),
            (Ok(_), Some((rank, code))) => Err(Error::OtherRank { rank, code }),
            (Err(e), _) => Err(e),
        }
    }

    /// Whether every rank has learnt of a failure through [`Replicas::agree`], so each can
    /// end as usual with it.
    pub fn failure_agreed(&self) -> bool {
        self.failure_agreed.get()
    }

    /// The chief's `bytes`, on every rank (the others' are ignored).
    pub fn broadcast(&self, bytes: Vec<u8>) -> Vec<u8> {
        match &self.backend {
            Backend::Single => bytes,
            #[cfg(feature = "mpi")]
            Backend::Mpi(w) => w.broadcast(bytes),
        }
    }

    /// The chief's `value`, on every rank (a seed, a global step).
    pub fn broadcast_u64(&self, value: u64) -> u64 {
        match &self.backend {
            Backend::Single => value,
            #[cfg(feature = "mpi")]
            Backend::Mpi(w) => w.broadcast_u64(value),
        }
    }

    /// The chief's `values`, in place on every rank; the buffers have the same length on
    /// every rank.
    pub fn broadcast_f32(&self, values: &mut [f32]) {
        match &self.backend {
            // One process: its values are the chief's.
            Backend::Single => {
                let _ = values;
            }
            #[cfg(feature = "mpi")]
            Backend::Mpi(w) => w.broadcast_f32(values),
        }
    }

    /// Every rank's `(rows, values)` joined in rank order, on every rank.
    pub fn gather_rows(&self, rows: &[i64], values: &[f32]) -> (Vec<i64>, Vec<f32>) {
        match &self.backend {
            Backend::Single => (rows.to_vec(), values.to_vec()),
            #[cfg(feature = "mpi")]
            Backend::Mpi(w) => w.gather_rows(rows, values),
        }
    }

    /// Every rank's `bytes`, in rank order, on every rank.
    pub fn gather_bytes(&self, bytes: &[u8]) -> Vec<Vec<u8>> {
        match &self.backend {
            Backend::Single => vec![bytes.to_vec()],
            #[cfg(feature = "mpi")]
            Backend::Mpi(w) => w.gather_bytes(bytes),
        }
    }

    /// Every rank's `bytes`, in rank order, on rank 0; nothing on the others.
    pub fn gather_bytes_to_chief(&self, bytes: &[u8]) -> Vec<Vec<u8>> {
        match &self.backend {
            Backend::Single => vec![bytes.to_vec()],
            #[cfg(feature = "mpi")]
            Backend::Mpi(w) => w.gather_bytes_to_chief(bytes),
        }
    }

    /// Ends the whole job at once with `code`: for a failure one rank meets alone (a
    /// chief's write), so that no rank is left waiting in a collective.
    pub fn abort(&self, code: i32) -> ! {
        match &self.backend {
            Backend::Single => std::process::exit(code),
            #[cfg(feature = "mpi")]
            Backend::Mpi(w) => w.abort(code),
        }
    }
}
