//! Small, seedable, dependency-free hashing used by the extraction detector.
//!
//! The detector must be deterministic across processes and replicas (the Redis backend keys its
//! counters by these hashes), so `std`'s randomly seeded `RandomState` cannot be used here.

use std::hash::{BuildHasherDefault, Hasher};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Finaliser from SplitMix64: spreads FNV's weak low bits over the whole word before the
/// values are used as MinHash inputs or map keys.
#[inline]
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Deterministic stream of pseudo-random words for hash-function parameters.
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.0)
    }
}

/// Incremental FNV-1a; cheap for the short words it is fed.
#[derive(Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Fnv {
    pub(crate) const fn new() -> Self {
        Self(FNV_OFFSET)
    }

    pub(crate) fn with_seed(seed: u64) -> Self {
        Self(FNV_OFFSET ^ seed)
    }

    #[inline]
    pub(crate) fn byte(&mut self, b: u8) {
        self.0 = (self.0 ^ u64::from(b)).wrapping_mul(FNV_PRIME);
    }

    #[inline]
    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.byte(b);
        }
    }

    #[inline]
    pub(crate) fn char(&mut self, c: char) {
        let mut buf = [0u8; 4];
        self.bytes(c.encode_utf8(&mut buf).as_bytes());
    }

    #[inline]
    pub(crate) fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    pub(crate) fn finish(self) -> u64 {
        mix64(self.0)
    }
}

/// Pass-through hasher for keys that are already uniformly mixed 64-bit hashes: re-hashing
/// them with SipHash would only cost time on the hot path.
#[derive(Default)]
pub(crate) struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only reached for non-u64 keys, which this crate does not use; stay correct anyway.
        let mut h = Fnv::with_seed(self.0);
        h.bytes(bytes);
        self.0 = h.finish();
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }
}

pub(crate) type PreHashedMap<V> = std::collections::HashMap<u64, V, BuildHasherDefault<PreHashed>>;
