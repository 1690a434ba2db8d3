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

    pub fn any<const N: usize>(&self, flags: [bool; N]) -> [bool; N] {
        let local = flags.map(u8::from);
        let mut all = [0u8; N];
        self.universe
            .world()
            .all_reduce_into(&local[..], &mut all[..], SystemOperation::max());
        all.map(|f| f != 0)
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

    pub fn gather_rows(&self, rows: &[i64], values: &[f32]) -> (Vec<i64>, Vec<f32>) {
        (self.all_gather(rows).0, self.all_gather(values).0)
    }

    pub fn gather_bytes(&self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let (all, counts) = self.all_gather(bytes);
        let mut parts = Vec::with_capacity(counts.len());
        let mut at = 0;
        for count in counts {
            let end = at + count as usize;
            parts.push(all[at..end].to_vec());
            at = end;
        }
        parts
    }

    /// Every rank's `local` joined in rank order, and each rank's length.
    fn all_gather<T: Equivalence + Default + Clone>(&self, local: &[T]) -> (Vec<T>, Vec<Count>) {
        let world = self.universe.world();
        let mut counts = vec![0 as Count; self.size];
        world.all_gather_into(&(local.len() as Count), &mut counts[..]);
        let displs: Vec<Count> = counts
            .iter()
            .scan(0, |at, &c| {
                let d = *at;
                *at += c;
                Some(d)
            })
            .collect();
        let mut all = vec![T::default(); counts.iter().sum::<Count>() as usize];
        let mut partition = PartitionMut::new(&mut all[..], counts.clone(), displs);
        world.all_gather_varcount_into(local, &mut partition);
        (all, counts)
    }

    pub fn abort(&self, code: i32) -> ! {
        self.universe.world().abort(code)
    }
}
