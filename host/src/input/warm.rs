//! Asking this core's cache for a batch the input thread wrote on another core, all at
//! once, before the step reads it.
//!
//! The step reads a small model's batch a column at a time, with work in between, so
//! each column's cache lines would come over from the other core one miss after another.
//! Prefetch hints for every line, issued together, let those transfers overlap.

use estimator_plugin_api::abi::TensorBuf;

/// At most this many bytes of a batch are prefetched: a small model's whole batch (Iris's
/// is 2.4 KB, a 30-column premade model's 4 KB). A large batch's step is long enough that
/// its reads' misses do not count.
const MAX_BYTES: usize = 32 * 1024;

const CACHE_LINE: usize = 64;

/// Hints the cache to fetch each buffer's data (for strings, their handles), in order,
/// up to [`MAX_BYTES`] in all; returns how many bytes.
pub(super) fn prefetch<'a>(buffers: impl IntoIterator<Item = &'a TensorBuf>) -> usize {
    let mut budget = MAX_BYTES;
    for buffer in buffers {
        if budget == 0 {
            break;
        }
        budget -= prefetch_buffer(buffer, budget);
    }
    MAX_BYTES - budget
}

/// Prefetches up to `budget` bytes of `buffer`; returns how many.
fn prefetch_buffer(buffer: &TensorBuf, budget: usize) -> usize {
    match buffer {
        TensorBuf::F32(values) => prefetch_slice(values.as_slice(), budget),
        TensorBuf::I64(values) => prefetch_slice(values.as_slice(), budget),
        TensorBuf::Str(values) => prefetch_slice(values.as_slice(), budget),
    }
}

/// Prefetches up to `budget` bytes of `values`; returns how many.
fn prefetch_slice<T>(values: &[T], budget: usize) -> usize {
    let bytes = std::mem::size_of_val(values).min(budget);
    let start = values.as_ptr().cast::<i8>();
    for offset in (0..bytes).step_by(CACHE_LINE) {
        hint(start.wrapping_add(offset));
    }
    bytes
}

#[cfg(target_arch = "x86_64")]
fn hint(line: *const i8) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    // SAFETY: a prefetch never faults and reads nothing the program sees; `line` lies
    // within a live buffer.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(line) }
}

#[cfg(not(target_arch = "x86_64"))]
fn hint(_line: *const i8) {}

#[cfg(test)]
mod tests {
    use super::*;
    use abi_stable::std_types::{RString, RVec};

    #[test]
    fn prefetches_whole_buffers_within_the_budget() {
        let values = vec![0f32; 1000];
        assert_eq!(prefetch_slice(&values, MAX_BYTES), 4000);
        assert_eq!(prefetch_slice(&values, 1000), 1000);
        assert_eq!(prefetch_slice::<f32>(&[], MAX_BYTES), 0);
    }

    #[test]
    fn a_batch_larger_than_the_budget_is_prefetched_up_to_it() {
        // Two 24 KB columns: the first whole, the second up to the 32 KB budget.
        let column = TensorBuf::F32(RVec::from(vec![0f32; 6 * 1024]));
        let strings = TensorBuf::Str(RVec::from(vec![RString::new(); 10]));
        assert_eq!(prefetch([&column]), 24 * 1024);
        assert_eq!(prefetch([&column, &column, &strings]), MAX_BYTES);
        assert_eq!(prefetch([&strings]), 10 * std::mem::size_of::<RString>());
    }
}
