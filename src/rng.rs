//! Randomness for backoff jitter, injected where it is used (the token
//! cache's retries, the retry policy) so that tests can fix it, as tower's
//! `util::rng` is for its backoff.

/// A source of numbers in `[0, 1)` for backoff jitter.
pub(crate) trait Jitter: Send {
    fn next_unit(&mut self) -> f64;
}

/// SplitMix64 seeded from the standard library's per-process random hasher keys:
/// enough to spread retries across replicas, no dependency on a random crate.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix(u64);

impl Default for SplitMix {
    fn default() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x5EED);
        SplitMix(h.finish())
    }
}

impl Jitter for SplitMix {
    fn next_unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}
