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
//! So the thread keeps off the step's core: once the step has recorded where it runs, the
//! thread narrows its own affinity to the other cores it may use, which moves it at once
//! if it was there, and keeps the scheduler from waking it there later (it wakes a
//! sleeping thread on its waker's core when it can). Should the step move, the thread
//! leaves out the step's new core instead. A process allowed a single core never narrows.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The least time between two changes of the thread's affinity, so a step that keeps
/// changing cores (several processes sharing them) costs at most one system call per this.
const CHANGE_INTERVAL: Duration = Duration::from_millis(1);

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

/// The prefetch thread's side: keeps its affinity off the step's core.
#[derive(Debug)]
pub struct CoreKeeper {
    step: StepCore,
    /// The cores the process may use, as the thread started.
    allowed: Vec<usize>,
    /// The step's core the thread's affinity leaves out now.
    avoided: Option<usize>,
    last_change: Option<Instant>,
}

impl CoreKeeper {
    /// For a thread about to be started from this one (it inherits this affinity).
    pub fn new(step: StepCore) -> Self {
        CoreKeeper {
            step,
            allowed: os::allowed_cores(),
            avoided: None,
            last_change: None,
        }
    }

    /// Narrows the calling thread's affinity to the allowed cores bar the step's, when the
    /// step's core is known and differs from the one left out so far. Cheap when nothing
    /// changed: called before every batch. Returns whether the affinity changed.
    pub fn keep_off_step_core(&mut self) -> bool {
        let Some(step) = self.step.get() else {
            return false;
        };
        if self.avoided == Some(step) {
            return false;
        }
        let now = Instant::now();
        if !may_change(self.last_change, now) {
            return false;
        }
        let Some(others) = cores_besides(&self.allowed, step) else {
            return false;
        };
        if !os::set_affinity(&others) {
            return false;
        }
        self.avoided = Some(step);
        self.last_change = Some(now);
        true
    }
}

/// Whether the affinity may change now, given when it last did.
fn may_change(last_change: Option<Instant>, now: Instant) -> bool {
    last_change.is_none_or(|last| now.duration_since(last) >= CHANGE_INTERVAL)
}

/// The cores in `allowed` other than the step's `core`, or `None` when there is nothing to
/// leave out (the step runs on no allowed core) or nothing would be left.
fn cores_besides(allowed: &[usize], core: usize) -> Option<Vec<usize>> {
    if !allowed.contains(&core) {
        return None;
    }
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

    /// Restricts the calling thread to `cores`; the kernel moves it at once if it runs on
    /// another. Returns whether it took.
    pub fn set_affinity(cores: &[usize]) -> bool {
        let set = set_of(cores);
        // SAFETY: the kernel reads `size_of::<cpu_set_t>()` bytes from a valid set.
        unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) == 0 }
    }

    /// The cores the calling thread may run on (none if the kernel will not say).
    pub fn allowed_cores() -> Vec<usize> {
        affinity().map(|set| cores(&set)).unwrap_or_default()
    }

    fn affinity() -> Option<libc::cpu_set_t> {
        // SAFETY: a zeroed cpu_set_t is a valid empty set; the kernel writes at most its
        // size.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            (libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) == 0).then_some(set)
        }
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
}

#[cfg(not(target_os = "linux"))]
mod os {
    pub fn current_core() -> Option<usize> {
        None
    }

    pub fn set_affinity(_cores: &[usize]) -> bool {
        false
    }

    pub fn allowed_cores() -> Vec<usize> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_at_most_once_per_interval() {
        let now = Instant::now();
        assert!(may_change(None, now));
        assert!(!may_change(Some(now), now + CHANGE_INTERVAL / 2));
        assert!(may_change(Some(now), now + CHANGE_INTERVAL));
    }

    #[test]
    fn the_other_cores_leave_out_the_steps_if_any_remain() {
        assert_eq!(cores_besides(&[0, 1, 3], 1), Some(vec![0, 3]));
        assert_eq!(cores_besides(&[0, 1], 5), None, "the step is elsewhere");
        assert_eq!(cores_besides(&[2], 2), None, "nothing would remain");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_thread_keeps_off_the_steps_core_once_recorded() {
        std::thread::spawn(|| {
            let allowed = os::allowed_cores();
            let step = StepCore::unknown();
            let mut keeper = CoreKeeper::new(step.clone());
            assert!(!keeper.keep_off_step_core(), "no step core recorded yet");
            // This thread stands in for the step, then for the prefetch thread.
            step.record();
            let core = step.get().expect("sched_getcpu");
            assert_eq!(
                keeper.keep_off_step_core(),
                allowed.len() > 1,
                "{allowed:?}"
            );
            if allowed.len() > 1 {
                assert_ne!(os::current_core(), Some(core), "moved off at once");
                assert_eq!(Some(os::allowed_cores()), cores_besides(&allowed, core));
                assert!(
                    !keeper.keep_off_step_core(),
                    "the same core changes nothing"
                );
            } else {
                assert_eq!(os::allowed_cores(), allowed);
            }
        })
        .join()
        .expect("the test thread");
    }
}
