//! A seeded, platform-independent random source (ChaCha8), so the same seed gives the same
//! samples on every machine. Floats come from 53-bit integer draws (exact on every platform).

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// Seeded random numbers for sampling and mutation.
#[derive(Clone, Debug)]
pub struct Rng(ChaCha8Rng);

impl Rng {
    /// A generator from a 64-bit seed.
    pub fn seed(seed: u64) -> Self {
        Self(ChaCha8Rng::seed_from_u64(seed))
    }

    /// A raw 64-bit draw.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (`n` > 0), without modulo bias.
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "Rng::below(0)");
        self.below_u128(n as u128) as usize
    }

    /// Uniform in `0..n` (`n` > 0) for large ranges (space sizes).
    pub fn below_u128(&mut self, n: u128) -> u128 {
        assert!(n > 0, "Rng::below_u128(0)");
        let zone = u128::MAX - (u128::MAX % n);
        loop {
            let x = ((self.next_u64() as u128) << 64) | self.next_u64() as u128;
            if x < zone {
                return x % n;
            }
        }
    }

    /// Uniform in [0, 1), from 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability 1/2.
    pub fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }

    /// A uniformly chosen element (panics on an empty slice).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}
