//! Leave-one-session-out folds and the seeded, stratified dev/test split of a cross-corpus set.

use emocycle_rng::SplitMix64;
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
}
