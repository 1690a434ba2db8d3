//! The collectives of a data-parallel run over MPI (rsmpi, over OpenMPI). The only file
//! that names MPI.

use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::traits::*;
use mpi::Count;

use crate::error::{Error, Result};

/// This process's place in the MPI job; finalizes MPI when dropped.
pub struct MpiWorld {
    universe: Universe,
    rank: usize,
    size: usize,
    /// The send side of `sum`, kept between steps: a gradient-sized allocation per step
    /// would cost page faults.
    sent: std::cell::RefCell<Vec<f32>>,
    /// This rank's and every rank's code and flags in `first_failure`, kept for the same
    /// reason: it runs every step.
    codes: std::cell::RefCell<(Vec<i32>, Vec<i32>)>,
}

impl MpiWorld {
    pub fn join() -> Result<Self> {
        let universe = mpi::initialize()
            .ok_or_else(|| Error::Internal("MPI was initialized twice in one process".into()))?;
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        Ok(MpiWorld {
            universe,
            rank,
            size,
            sent: std::cell::RefCell::new(Vec::new()),
            codes: std::cell::RefCell::new((Vec::new(), Vec::new())),
        })
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn sum(&self, values: &mut [f32]) {
        let world = self.universe.world();
        let mut sent = self.sent.borrow_mut();
        sent.clear();
        sent.extend_from_slice(values);
        world.all_reduce_into(&sent[..], values, SystemOperation::sum());
    }

    /// The first rank whose `code` is not 0, with its code, and each flag set on any
    /// rank: one allgather of every rank's code and flags.
    pub fn first_failure<const N: usize>(
        &self,
        code: i32,
        flags: [bool; N],
    ) -> (Option<(usize, i32)>, [bool; N]) {
        let mut codes = self.codes.borrow_mut();
        let (local, all) = &mut *codes;
        local.clear();
        local.push(code);
        local.extend(flags.map(i32::from));
        all.resize(local.len() * self.size, 0);
        self.universe
            .world()
            .all_gather_into(&local[..], &mut all[..]);
        let per_rank = all.chunks(local.len());
        let failed = per_rank
            .clone()
            .enumerate()
            .find(|(_, r)| r[0] != 0)
            .map(|(rank, r)| (rank, r[0]));
        let mut any = [false; N];
        for r in per_rank {
            for (a, f) in any.iter_mut().zip(&r[1..]) {
                *a |= *f != 0;
            }
        }
        (failed, any)
    }

    pub fn broadcast(&self, bytes: Vec<u8>) -> Vec<u8> {
        let world = self.universe.world();
        let root = world.process_at_rank(0);
        let mut len = bytes.len() as u64;
        root.broadcast_into(&mut len);
        if len == 0 {
            return Vec::new();
        }
        let mut out = if self.rank == 0 {
            bytes
        } else {
            vec![0u8; len as usize]
        };
        root.broadcast_into(&mut out[..]);
        out
    }

    pub fn broadcast_u64(&self, mut value: u64) -> u64 {
        self.universe
            .world()
            .process_at_rank(0)
            .broadcast_into(&mut value);
        value
    }

    pub fn broadcast_f32(&self, values: &mut [f32]) {
        if values.is_empty() {
            return;
        }
        self.universe
            .world()
            .process_at_rank(0)
            .broadcast_into(values);
    }

    pub fn gather_rows(&self, rows: &[i64], values: &[f32]) -> (Vec<i64>, Vec<f32>) {
        (self.all_gather(rows).0, self.all_gather(values).0)
    }

    pub fn gather_bytes(&self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let (all, counts) = self.all_gather(bytes);
        split(&all, &counts)
    }

    pub fn gather_bytes_to_chief(&self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let world = self.universe.world();
        let root = world.process_at_rank(0);
        let count = bytes.len() as Count;
        let spare = [0u8];
        let bytes = not_in_place(bytes, &spare);
        if self.rank != 0 {
            root.gather_into(&count);
            root.gather_varcount_into(bytes);
            return Vec::new();
        }
        let mut counts = vec![0 as Count; self.size];
        root.gather_into_root(&count, &mut counts[..]);
        let displs = offsets(&counts);
        // One spare element, so that the buffer is never empty (see `not_in_place`).
        let mut all = vec![0u8; counts.iter().sum::<Count>() as usize + 1];
        let mut partition = PartitionMut::new(&mut all[..], counts.clone(), displs);
        root.gather_varcount_into_root(bytes, &mut partition);
        split(&all, &counts)
    }

    /// Every rank's `local` joined in rank order, and each rank's length.
    fn all_gather<T: Equivalence + Default + Clone>(&self, local: &[T]) -> (Vec<T>, Vec<Count>) {
        let world = self.universe.world();
        let mut counts = vec![0 as Count; self.size];
        world.all_gather_into(&(local.len() as Count), &mut counts[..]);
        let displs = offsets(&counts);
        let total = counts.iter().sum::<Count>() as usize;
        // One spare element, so that the buffer is never empty (see `not_in_place`).
        let mut all = vec![T::default(); total + 1];
        let mut partition = PartitionMut::new(&mut all[..], counts.clone(), displs);
        let spare = [T::default()];
        world.all_gather_varcount_into(not_in_place(local, &spare), &mut partition);
        all.truncate(total);
        (all, counts)
    }

    pub fn abort(&self, code: i32) -> ! {
        self.universe.world().abort(code)
    }
}

/// `values`, or an empty slice of `spare` when it is empty. An empty slice's address is
/// the type's alignment, 1 for bytes, and OpenMPI's `MPI_IN_PLACE` is the address 1: a rank
/// with nothing to send would be read as sending in place. So empty buffers point into
/// real memory.
fn not_in_place<'a, T>(values: &'a [T], spare: &'a [T; 1]) -> &'a [T] {
    match values.is_empty() {
        true => &spare[..0],
        false => values,
    }
}

/// Where each rank's part starts in a buffer of parts of `counts` elements.
fn offsets(counts: &[Count]) -> Vec<Count> {
    counts
        .iter()
        .scan(0, |at, &c| {
            let start = *at;
            *at += c;
            Some(start)
        })
        .collect()
}

/// `all` cut into parts of `counts` bytes.
fn split(all: &[u8], counts: &[Count]) -> Vec<Vec<u8>> {
    let mut parts = Vec::with_capacity(counts.len());
    let mut at = 0;
    for &count in counts {
        let end = at + count as usize;
        parts.push(all[at..end].to_vec());
        at = end;
    }
    parts
}
