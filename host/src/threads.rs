//! How many threads the heavy ops use, decided in one place.
//!
//! The heavy ops are the matmuls of model_fns, which run inside the plugins' SDK through
//! ndarray's `matrixmultiply` (with its `threading` feature). Its thread pool is sized once
//! per library, at the library's first matmul, from the `MATMUL_NUM_THREADS` environment
//! variable; the process sets that variable here before any plugin runs, so every
//! library loaded later uses the same count. `matrixmultiply` splits a product over rows
//! and columns of the result, never over the summed dimension, so each element is summed
//! in the same order whatever the thread count: results are bit-identical across counts.

use std::sync::OnceLock;

/// The variable `matrixmultiply` reads its thread count from.
const MATMUL_THREADS_VAR: &str = "MATMUL_NUM_THREADS";

/// `matrixmultiply`'s own limit: more threads are taken as this many.
pub const MAX_MATMUL_THREADS: usize = 4;

/// The count set for this process, once.
static CONFIGURED: OnceLock<usize> = OnceLock::new();

/// The threads per op: `requested` (the run config's `intra_op_parallelism_threads`),
/// else the machine's cores shared among `local_processes` on this machine (at least
/// one each), so they never oversubscribe it.
pub fn intra_op_threads(requested: Option<usize>, local_processes: usize) -> usize {
    requested.unwrap_or_else(|| (machine_cores() / local_processes.max(1)).max(1))
}

/// The cores this process may run on.
pub fn machine_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Makes every matmul of this process use `threads`. It takes effect for libraries that
/// have not multiplied yet, so the CLI calls it right after reading the manifest, before
/// any plugin is loaded. A process keeps its first count: a later, different one is
/// ignored with a warning.
pub fn configure(threads: usize) {
    let threads = threads.max(1);
    let first = *CONFIGURED.get_or_init(|| {
        // Set while the process has no other thread reading the environment: the CLI
        // calls this before it starts any.
        std::env::set_var(MATMUL_THREADS_VAR, threads.to_string());
        if threads > MAX_MATMUL_THREADS {
            tracing::warn!(
                "intra_op_parallelism_threads is {threads}, but matmuls use at most {MAX_MATMUL_THREADS} threads"
            );
        }
        tracing::debug!("matmuls use {} thread(s)", threads.min(MAX_MATMUL_THREADS));
        threads
    });
    if first != threads {
        tracing::warn!(
            "matmuls already use {first} thread(s) in this process; {threads} is ignored"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_configs_count_wins_else_cores_are_shared_among_local_processes() {
        assert_eq!(intra_op_threads(Some(3), 1), 3);
        assert_eq!(intra_op_threads(Some(3), 8), 3);
        assert_eq!(intra_op_threads(None, 1), machine_cores());
        assert_eq!(intra_op_threads(None, 2), (machine_cores() / 2).max(1));
        assert_eq!(intra_op_threads(None, 1000), 1, "never zero");
    }
}
