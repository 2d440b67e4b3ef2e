//! The one random generator of emocycle: SplitMix64, small, fast and fixed forever, so that a
//! seed means the same folds, splits, shuffles, dropout masks and samples in every version and
//! on every machine. Every stage draws from it (and never from libtorch's process-wide
//! generator where the order of draws could depend on threads).
//!
//! # What it reads and writes
//!
//! Nothing.

/// SplitMix64: small, fast, and fixed forever, so a seed means the same split in every version.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform integer in `0..bound` (`bound > 0`), without modulo bias.
    pub fn below(&mut self, bound: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % bound;
        loop {
            let value = self.next_u64();
            if value < zone {
                return value % bound;
            }
        }
    }

    /// Shuffles a slice in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for last in (1..items.len()).rev() {
            let other = self.below(last as u64 + 1) as usize;
            items.swap(last, other);
        }
    }

    /// Fills `out` with an inverted-dropout mask: `1 / keep` with probability `keep`, else 0,
    /// two 32-bit draws per 64-bit output. Models draw their masks here rather than from
    /// libtorch's process-wide generator so that threads sharing a process cannot reorder them.
    pub fn fill_dropout_mask(&mut self, keep: f64, out: &mut [f32]) {
        let threshold = (keep * 4_294_967_296.0).round() as u64;
        let scale = (1.0 / keep) as f32;
        let mut chunks = out.chunks_exact_mut(2);
        for pair in &mut chunks {
            let bits = self.next_u64();
            pair[0] = if (bits & 0xFFFF_FFFF) < threshold {
                scale
            } else {
                0.0
            };
            pair[1] = if (bits >> 32) < threshold { scale } else { 0.0 };
        }
        if let [last] = chunks.into_remainder() {
            *last = if (self.next_u64() & 0xFFFF_FFFF) < threshold {
                scale
            } else {
                0.0
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropout_masks_keep_the_expected_fraction_scaled_by_one_over_keep() {
        let mut generator = SplitMix64::new(3);
        let mut mask = vec![0f32; 100_001];
        generator.fill_dropout_mask(0.2, &mut mask);
        let kept = mask.iter().filter(|&&m| m > 0.0).count() as f64 / mask.len() as f64;
        assert!((kept - 0.2).abs() < 0.01, "{kept}");
        assert!(mask.iter().all(|&m| m == 0.0 || (m - 5.0).abs() < 1e-6));
        // Odd lengths use a last draw of their own; every element is written.
        let mut odd = vec![f32::NAN; 3];
        SplitMix64::new(3).fill_dropout_mask(0.5, &mut odd);
        assert!(odd.iter().all(|&m| m == 0.0 || m == 2.0));
    }

    #[test]
    fn splitmix_known_values_and_unbiased_range() {
        // Reference values of SplitMix64 seeded with 0.
        let mut generator = SplitMix64::new(0);
        assert_eq!(generator.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(generator.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        let mut generator = SplitMix64::new(5);
        assert!((0..1000).all(|_| generator.below(7) < 7));
    }
}
