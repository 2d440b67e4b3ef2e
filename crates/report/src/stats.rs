//! Paired comparisons for the findings section: an exact sign-flip permutation test of the
//! mean difference and a percentile bootstrap confidence interval of it.
//!
//! A finding compares two configurations measured on the same units (within corpus: the same
//! folds and repeats; Table 1: the same scopes), so each unit gives one difference. Under the
//! null hypothesis that the two configurations do not differ, every difference is as likely
//! positive as negative; the p-value is the share of the 2^n sign patterns whose mean is at
//! least as far from zero as the observed one (two-sided), counted exactly.

use emocycle_rng::SplitMix64;

/// Beyond this many pairs the 2^n sign patterns are sampled instead of enumerated.
const EXACT_PAIRS: usize = 25;
/// Sign patterns drawn when there are more pairs than [`EXACT_PAIRS`].
const SAMPLED_PATTERNS: u64 = 1 << 20;
/// Bootstrap resamples of the mean difference.
const RESAMPLES: usize = 10_000;

/// The outcome of a paired comparison of `n` differences `a_i - b_i`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Paired {
    /// Number of pairs.
    pub n: usize,
    /// Mean difference.
    pub mean: f64,
    /// Two-sided p-value of the sign-flip test.
    pub p: f64,
    /// The smallest p-value any data could give with `n` pairs (2 / 2^n): with five pairs no
    /// difference can reach p < 0.05.
    pub p_floor: f64,
    /// 95% percentile bootstrap interval of the mean difference.
    pub interval: (f64, f64),
}

/// Compares paired differences; `None` without any pair.
pub(crate) fn paired(differences: &[f64], seed: u64) -> Option<Paired> {
    let n = differences.len();
    if n == 0 || differences.iter().any(|d| !d.is_finite()) {
        return None;
    }
    let mean = differences.iter().sum::<f64>() / n as f64;
    Some(Paired {
        n,
        mean,
        p: sign_flip_p(differences, seed),
        p_floor: 2f64.powi(1 - i32::try_from(n).unwrap_or(i32::MAX)).min(1.0),
        interval: bootstrap_interval(differences, seed),
    })
}

/// Two-sided p-value: the share of sign patterns whose |sum| reaches the observed |sum|.
fn sign_flip_p(differences: &[f64], seed: u64) -> f64 {
    let observed = differences.iter().sum::<f64>().abs();
    // Sums equal up to rounding count as reached, so a pattern that reproduces the data exactly
    // is never lost to the order of additions.
    let reached = |sum: f64| sum.abs() >= observed - 1e-9 * (1.0 + observed);
    let n = differences.len();
    if n <= EXACT_PAIRS {
        // Gray-code order: each pattern differs from the previous one in one sign, so its sum
        // is one subtraction away.
        let mut sum: f64 = differences.iter().sum();
        let mut positive = vec![true; n];
        let mut hits = u64::from(reached(sum));
        for pattern in 1u64..(1u64 << n) {
            let flip = pattern.trailing_zeros() as usize;
            let value = differences[flip];
            sum += if positive[flip] {
                -2.0 * value
            } else {
                2.0 * value
            };
            positive[flip] = !positive[flip];
            hits += u64::from(reached(sum));
        }
        hits as f64 / (1u64 << n) as f64
    } else {
        let mut random = SplitMix64::new(seed);
        let mut hits = 1u64; // the observed pattern itself
        for _ in 0..SAMPLED_PATTERNS {
            let mut sum = 0.0;
            let mut bits = 0u64;
            for (index, value) in differences.iter().enumerate() {
                if index % 64 == 0 {
                    bits = random.next_u64();
                }
                sum += if bits & 1 == 1 { *value } else { -value };
                bits >>= 1;
            }
            hits += u64::from(reached(sum));
        }
        hits as f64 / (SAMPLED_PATTERNS + 1) as f64
    }
}

/// 95% percentile bootstrap interval of the mean of `differences`.
fn bootstrap_interval(differences: &[f64], seed: u64) -> (f64, f64) {
    let n = differences.len();
    let mut random = SplitMix64::new(seed ^ 0xB007_57A9);
    let mut means: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            (0..n)
                .map(|_| differences[random.below(n as u64) as usize])
                .sum::<f64>()
                / n as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((q * RESAMPLES as f64) as usize).min(RESAMPLES - 1)];
    (at(0.025), at(0.975))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_p_values_by_hand() {
        // Three positive differences: only "all +" and "all -" reach |sum| = 6 of 8 patterns.
        assert_eq!(sign_flip_p(&[1.0, 2.0, 3.0], 0), 0.25);
        // 1 - 2 + 4 = 3; the eight sums of ±1 ±2 ±4 are 7, -1, 3, -5, 5, -3, 1, -7, and six of
        // them reach |3|.
        assert_eq!(sign_flip_p(&[1.0, -2.0, 4.0], 0), 0.75);
        // A sum of zero is reached by every pattern.
        assert_eq!(sign_flip_p(&[1.0, 2.0, -3.0], 0), 1.0);
        // Balanced signs: nothing to see.
        assert_eq!(sign_flip_p(&[1.0, -1.0, 1.0, -1.0], 0), 1.0);
        // Five pairs all the same way: the smallest p five pairs can give, 2/32.
        let five = paired(&[0.5, 1.0, 0.2, 0.7, 0.1], 0).unwrap();
        assert_eq!(five.p, 0.0625);
        assert_eq!(five.p_floor, 0.0625);
        assert!((five.mean - 0.5).abs() < 1e-12);
        assert!(paired(&[], 0).is_none());
        assert!(paired(&[1.0, f64::NAN], 0).is_none());
    }

    /// Normal-ish noise from the project's generator (sum of 12 uniforms minus 6).
    fn noise(random: &mut SplitMix64) -> f64 {
        (0..12)
            .map(|_| (random.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
            .sum::<f64>()
            - 6.0
    }

    #[test]
    fn a_known_difference_is_found_and_none_is_not_invented() {
        let mut random = SplitMix64::new(7);
        // 25 pairs (5 folds x 5 repeats): a true difference of 2 points, noise of sd 1.
        let shifted: Vec<f64> = (0..25).map(|_| 2.0 + noise(&mut random)).collect();
        let found = paired(&shifted, 1).unwrap();
        assert!(found.p < 1e-4, "{found:?}");
        assert!(
            found.interval.0 > 1.0 && found.interval.1 < 3.0,
            "{found:?}"
        );
        assert!(found.interval.0 < found.mean && found.mean < found.interval.1);
        // No difference: over many data sets, p < 0.05 about 5% of the time, not more.
        let significant = (0..200)
            .filter(|&trial| {
                let null: Vec<f64> = (0..12).map(|_| noise(&mut random)).collect();
                paired(&null, trial).unwrap().p < 0.05
            })
            .count();
        assert!(
            significant <= 20,
            "{significant} of 200 null data sets were significant"
        );
    }

    #[test]
    fn many_pairs_are_sampled_and_agree_with_the_exact_count() {
        let mut random = SplitMix64::new(3);
        let differences: Vec<f64> = (0..EXACT_PAIRS).map(|_| 0.3 + noise(&mut random)).collect();
        let exact = sign_flip_p(&differences, 0);
        let mut longer = differences.clone();
        // One zero difference changes no sum: the p of one pair more is the same.
        longer.push(0.0);
        let sampled = sign_flip_p(&longer, 9);
        assert!((sampled - exact).abs() < 0.003, "{sampled} vs {exact}");
    }
}
