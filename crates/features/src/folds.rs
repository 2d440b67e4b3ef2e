//! Leave-one-session-out folds and the seeded, stratified dev/test split of a cross-corpus set.

use serde::{Deserialize, Serialize};

use crate::emotion::Emotion;

/// One leave-one-session-out fold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fold {
    /// 1-based fold number (sessions in sorted order).
    pub number: usize,
    /// The held-out session.
    pub test_session: String,
    /// Every other session.
    pub train_sessions: Vec<String>,
}

impl Fold {
    /// Whether a row of `session` belongs to this fold's training part.
    pub fn is_train(&self, session: &str) -> bool {
        session != self.test_session
    }
}

/// Leave-one-session-out folds over the distinct sessions, in sorted order.
/// Needs at least two sessions.
pub fn leave_one_session_out<'a>(
    sessions: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<Fold>, String> {
    let mut distinct: Vec<String> = sessions.into_iter().map(str::to_string).collect();
    distinct.sort();
    distinct.dedup();
    if distinct.len() < 2 {
        return Err(format!(
            "leave-one-session-out needs at least two sessions, found {}",
            distinct.len()
        ));
    }
    Ok(distinct
        .iter()
        .enumerate()
        .map(|(index, test)| Fold {
            number: index + 1,
            test_session: test.clone(),
            train_sessions: distinct
                .iter()
                .filter(|session| *session != test)
                .cloned()
                .collect(),
        })
        .collect())
}

/// Which part of a split set a row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    /// Development part (hyper-parameter tuning).
    Dev,
    /// Test part.
    Test,
}

impl Part {
    /// `dev` or `test`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dev => "dev",
            Self::Test => "test",
        }
    }
}

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

/// Splits rows into dev and test per class: within each emotion, a seeded shuffle puts
/// `round(n * dev_fraction)` rows into dev and the rest into test, so both parts keep the class
/// proportions. The same rows, order and seed always give the same split.
pub fn stratified_split(emotions: &[Emotion], dev_fraction: f64, seed: u64) -> Vec<Part> {
    let mut parts = vec![Part::Test; emotions.len()];
    let mut generator = SplitMix64::new(seed);
    for emotion in Emotion::ALL {
        let mut members: Vec<usize> = (0..emotions.len())
            .filter(|&row| emotions[row] == emotion)
            .collect();
        generator.shuffle(&mut members);
        let dev_count = (members.len() as f64 * dev_fraction).round() as usize;
        for &row in &members[..dev_count.min(members.len())] {
            parts[row] = Part::Dev;
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_fold_per_session_and_disjoint() {
        let sessions = ["Ses02", "Ses01", "Ses02", "Ses03", "Ses01"];
        let folds = leave_one_session_out(sessions).unwrap();
        assert_eq!(folds.len(), 3);
        assert_eq!(folds[0].test_session, "Ses01");
        assert_eq!(folds[0].train_sessions, ["Ses02", "Ses03"]);
        for fold in &folds {
            assert!(!fold.train_sessions.contains(&fold.test_session));
            assert!(!fold.is_train(&fold.test_session));
        }
        assert!(leave_one_session_out(["only"]).is_err());
    }

    #[test]
    fn split_is_stratified_seeded_and_exhaustive() {
        let mut emotions = Vec::new();
        for (emotion, count) in [
            (Emotion::Angry, 10),
            (Emotion::Happy, 33),
            (Emotion::Neutral, 47),
            (Emotion::Sad, 7),
        ] {
            emotions.extend(std::iter::repeat_n(emotion, count));
        }
        let split = stratified_split(&emotions, 0.3, 42);
        for (emotion, count) in [
            (Emotion::Angry, 10),
            (Emotion::Happy, 33),
            (Emotion::Neutral, 47),
            (Emotion::Sad, 7),
        ] {
            let dev = (0..emotions.len())
                .filter(|&i| emotions[i] == emotion && split[i] == Part::Dev)
                .count();
            assert_eq!(dev, (count as f64 * 0.3).round() as usize, "{emotion}");
        }
        assert_eq!(split, stratified_split(&emotions, 0.3, 42));
        assert_ne!(split, stratified_split(&emotions, 0.3, 43));
    }

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
