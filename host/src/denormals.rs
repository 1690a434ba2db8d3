//! Subnormal floats flushed to zero while the loops run, as TF's runtime does
//! (`port::ScopedFlushDenormal` around its executor and thread-pool work).
//!
//! Late in training, updates and gradients shrink into the subnormal range, where x86
//! arithmetic takes a microcode path up to a hundred times slower; on Iris that alone
//! costs a fifth of the throughput for thousands of steps. Flushing them changes results
//! only below `f32::MIN_POSITIVE` (1.2e-38), and runs stay bit-for-bit reproducible.
//! The mode is per thread, so model_fn (called on the loop's thread) runs under it too.

/// Sets flush-to-zero and denormals-are-zero until dropped, then restores the previous
/// mode. A no-op on architectures other than x86-64.
pub struct FlushDenormals {
    #[cfg(target_arch = "x86_64")]
    saved: u32,
}

#[cfg(target_arch = "x86_64")]
mod mxcsr {
    /// MXCSR's flush-to-zero (bit 15) and denormals-are-zero (bit 6) flags.
    pub const FTZ_DAZ: u32 = 0x8040;

    #[allow(deprecated)] // The intrinsics are deprecated in favour of inline asm, not removed.
    pub fn get() -> u32 {
        // SAFETY: reading MXCSR has no preconditions; SSE is part of x86-64.
        unsafe { std::arch::x86_64::_mm_getcsr() }
    }

    #[allow(deprecated)]
    pub fn set(value: u32) {
        // SAFETY: only the FTZ/DAZ flags differ from a value read from MXCSR, and they
        // change rounding of subnormal results only; no exception is unmasked.
        unsafe { std::arch::x86_64::_mm_setcsr(value) }
    }
}

impl FlushDenormals {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let saved = mxcsr::get();
            mxcsr::set(saved | mxcsr::FTZ_DAZ);
            FlushDenormals { saved }
        }
        #[cfg(not(target_arch = "x86_64"))]
        FlushDenormals {}
    }
}

impl Drop for FlushDenormals {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        mxcsr::set(self.saved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnormal_results_are_flushed_only_while_the_guard_lives() {
        // black_box keeps the compiler from folding the product at build time.
        let tiny = std::hint::black_box(f32::MIN_POSITIVE);
        let half = std::hint::black_box(0.5f32);
        assert!((tiny * half).is_subnormal());
        {
            let _guard = FlushDenormals::new();
            let flushed = std::hint::black_box(tiny) * std::hint::black_box(half);
            if cfg!(target_arch = "x86_64") {
                assert_eq!(flushed, 0.0);
            }
        }
        assert!(
            (std::hint::black_box(tiny) * half).is_subnormal(),
            "mode restored"
        );
    }
}
