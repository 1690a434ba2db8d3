//! Keeping the prefetch thread off the core the training step runs on.
//!
//! A small model's step takes a batch every few µs, and the prefetch thread polls for the
//! slots it hands back (see `prefetch::SlotWait`). That pays only while the two threads
//! have a core each. The scheduler sometimes starts the thread on the step's core (when
//! the other core was busy at that instant) and then keeps the pair there: they hand the
//! core to each other in turn, so neither waits long enough to be moved. Run back to
//! back from a shell, about half of the wine DNN's 2,000-step runs spent most of their
//! time that way, in 30 ms instead of 13, with the step waiting for a batch at nearly
//! every step.
//!
//! So while it polls, the thread checks whether it shares the step's core, and if so it
//! leaves: it narrows its own affinity to the cores it may use bar the step's, which moves
//! it at once, then restores the affinity it had, so the scheduler stays free to place it
//! afterwards. A process allowed a single core never moves.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The least time between two moves, so a scheduler that keeps bringing the thread back
/// (several processes sharing the cores) costs at most two system calls per this.
const MOVE_INTERVAL: Duration = Duration::from_millis(1);

/// The core the step last ran on, recorded by the step's thread for the prefetch thread.
#[derive(Clone, Debug)]
pub struct StepCore(Arc<AtomicI32>);

impl StepCore {
    /// Nothing recorded yet.
    pub fn unknown() -> Self {
        StepCore(Arc::new(AtomicI32::new(-1)))
    }

    /// Records the calling thread's core as the step's.
    pub fn record(&self) {
        self.0.store(
            os::current_core().map_or(-1, |c| c as i32),
            Ordering::Relaxed,
        );
    }

    fn get(&self) -> Option<usize> {
        usize::try_from(self.0.load(Ordering::Relaxed)).ok()
    }
}

/// The prefetch thread's side: leaves the step's core when it finds itself on it.
#[derive(Debug)]
pub struct CoreKeeper {
    step: StepCore,
    last_move: Option<Instant>,
}

impl CoreKeeper {
    pub fn new(step: StepCore) -> Self {
        CoreKeeper {
            step,
            last_move: None,
        }
    }

    /// Moves the calling thread to another allowed core if it shares the step's. Returns
    /// whether it moved.
    pub fn keep_off_step_core(&mut self) -> bool {
        let now = Instant::now();
        if !may_move(self.last_move, now) {
            return false;
        }
        match (os::current_core(), self.step.get()) {
            (Some(own), Some(step)) if own == step && os::move_off(step) => {
                self.last_move = Some(now);
                true
            }
            _ => false,
        }
    }
}

/// Whether a move is allowed now, given when the last one was.
fn may_move(last_move: Option<Instant>, now: Instant) -> bool {
    last_move.is_none_or(|last| now.duration_since(last) >= MOVE_INTERVAL)
}

/// The cores in `allowed` other than `core`, or `None` when there are none.
fn cores_besides(allowed: &[usize], core: usize) -> Option<Vec<usize>> {
    let others: Vec<usize> = allowed.iter().copied().filter(|&c| c != core).collect();
    (!others.is_empty()).then_some(others)
}

#[cfg(target_os = "linux")]
mod os {
    use std::mem::size_of;

    /// The core the calling thread is on (glibc reads it from the kernel's rseq area:
    /// no system call).
    pub fn current_core() -> Option<usize> {
        // SAFETY: no arguments, no memory shared.
        usize::try_from(unsafe { libc::sched_getcpu() }).ok()
    }

    /// Moves the calling thread off `core` to another core its affinity allows, then
    /// restores that affinity. Returns whether it moved.
    pub fn move_off(core: usize) -> bool {
        let Some(allowed) = affinity() else {
            return false;
        };
        let Some(others) = super::cores_besides(&cores(&allowed), core) else {
            return false;
        };
        // Narrowing the affinity moves the thread before the call returns; restoring it
        // leaves the thread where it now is.
        let moved = set_affinity(&set_of(&others));
        set_affinity(&allowed);
        moved
    }

    fn affinity() -> Option<libc::cpu_set_t> {
        // SAFETY: a zeroed cpu_set_t is a valid empty set; the kernel writes at most its
        // size.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            (libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) == 0).then_some(set)
        }
    }

    fn set_affinity(set: &libc::cpu_set_t) -> bool {
        // SAFETY: the kernel reads `size_of::<cpu_set_t>()` bytes from a valid set.
        unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), set) == 0 }
    }

    fn cores(set: &libc::cpu_set_t) -> Vec<usize> {
        // SAFETY: CPU_ISSET reads within the set for any index below CPU_SETSIZE.
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| unsafe { libc::CPU_ISSET(c, set) })
            .collect()
    }

    fn set_of(cores: &[usize]) -> libc::cpu_set_t {
        // SAFETY: as in `affinity`; CPU_SET writes within the set for indexes from `cores`.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            for &c in cores {
                libc::CPU_SET(c, &mut set);
            }
            set
        }
    }

    #[cfg(test)]
    pub fn allowed_cores() -> Vec<usize> {
        affinity().map(|set| cores(&set)).unwrap_or_default()
    }
}

#[cfg(not(target_os = "linux"))]
mod os {
    pub fn current_core() -> Option<usize> {
        None
    }

    pub fn move_off(_core: usize) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_at_most_once_per_interval() {
        let now = Instant::now();
        assert!(may_move(None, now));
        assert!(!may_move(Some(now), now + MOVE_INTERVAL / 2));
        assert!(may_move(Some(now), now + MOVE_INTERVAL));
    }

    #[test]
    fn the_other_cores_exclude_the_steps_and_there_may_be_none() {
        assert_eq!(cores_besides(&[0, 1, 3], 1), Some(vec![0, 3]));
        assert_eq!(cores_besides(&[0, 1], 5), Some(vec![0, 1]));
        assert_eq!(cores_besides(&[2], 2), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_thread_on_the_steps_core_leaves_it_and_keeps_its_affinity() {
        std::thread::spawn(|| {
            let allowed = os::allowed_cores();
            let step = StepCore::unknown();
            let mut keeper = CoreKeeper::new(step.clone());
            assert!(!keeper.keep_off_step_core(), "no step core recorded yet");
            // This thread stands in for the step, then for the prefetch thread. The
            // scheduler may move it between the two: try a few times.
            let mut left = None;
            for _ in 0..100 {
                step.record();
                let shared = os::current_core().expect("sched_getcpu");
                if keeper.keep_off_step_core() {
                    left = Some(shared);
                    break;
                }
            }
            assert_eq!(
                left.is_some(),
                allowed.len() > 1,
                "allowed cores {allowed:?}"
            );
            if let Some(shared) = left {
                assert_ne!(os::current_core(), Some(shared));
            }
            assert_eq!(os::allowed_cores(), allowed, "the affinity is restored");
        })
        .join()
        .expect("the test thread");
    }
}
