//! Seeds: one `random_seed` per run, split into independent, named streams.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

/// A seed for the stream `name` (a variable, an input, a step), derived from the run's seed
/// by hashing, so streams do not depend on the order in which they are created.
pub fn derive(seed: u64, name: &str) -> u64 {
    let digest = Sha256::new()
        .chain_update(seed.to_le_bytes())
        .chain_update(name.as_bytes())
        .finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(bytes)
}

/// A deterministic, portable random number generator for the stream `name`.
pub fn rng(seed: u64, name: &str) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(derive(seed, name))
}

/// The seed model_fn receives at `step`: cheap to compute (it runs every step), and
/// different for every step and run seed (SplitMix64's finalizer).
pub fn step_seed(seed: u64, step: i64) -> u64 {
    let mut z = seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seed for a run that did not set `random_seed`.
pub fn fresh() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    derive(nanos as u64, &std::process::id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_differ_by_name_and_repeat_by_seed() {
        assert_eq!(derive(42, "a"), derive(42, "a"));
        assert_ne!(derive(42, "a"), derive(42, "b"));
        assert_ne!(derive(42, "a"), derive(43, "a"));
    }
}
