//! Confusion matrices, per-class recall, unweighted average recall (UAR) and accuracy.

use emocycle_features::Emotion;

/// Number of emotion classes.
pub const CLASSES: usize = Emotion::ALL.len();

/// Counts of (true class, predicted class) pairs: `counts[true][predicted]`, class order
/// angry, happy, neutral, sad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConfusionMatrix {
    /// `counts[true][predicted]`.
    pub counts: [[u64; CLASSES]; CLASSES],
}

impl ConfusionMatrix {
    /// Rows of class `truth` (the class's support).
    pub fn support(&self, truth: Emotion) -> u64 {
        self.counts[truth.index()].iter().sum()
    }

    /// All rows.
    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// Recall of `class`: correct / support; `None` when the class is absent from the truth
    /// (a class that is present but never predicted has recall 0).
    pub fn recall(&self, class: Emotion) -> Option<f64> {
        let support = self.support(class);
        (support > 0).then(|| self.counts[class.index()][class.index()] as f64 / support as f64)
    }

    /// Unweighted average recall: the mean of the recalls of the classes present in the truth
    /// (sklearn's `recall_score(average="macro")` restricted to those classes, which is what it
    /// computes when the labels come from `y_true`). `None` for an empty matrix.
    pub fn uar(&self) -> Option<f64> {
        let recalls: Vec<f64> = Emotion::ALL
            .iter()
            .filter_map(|&c| self.recall(c))
            .collect();
        (!recalls.is_empty()).then(|| recalls.iter().sum::<f64>() / recalls.len() as f64)
    }

    /// Plain accuracy (the "weighted accuracy" of the SER literature); `None` when empty.
    pub fn accuracy(&self) -> Option<f64> {
        let total = self.total();
        let correct: u64 = (0..CLASSES).map(|c| self.counts[c][c]).sum();
        (total > 0).then(|| correct as f64 / total as f64)
    }

    /// Adds another matrix's counts (folds of one repeat, say).
    pub fn add(&mut self, other: &ConfusionMatrix) {
        for (row, other_row) in self.counts.iter_mut().zip(&other.counts) {
            for (count, other) in row.iter_mut().zip(other_row) {
                *count += other;
            }
        }
    }
}

/// The confusion matrix of predictions against the truth (equal lengths).
///
/// # Panics
/// If the slices differ in length: that is a programming error, not a data error.
pub fn confusion(truth: &[Emotion], predicted: &[Emotion]) -> ConfusionMatrix {
    assert_eq!(
        truth.len(),
        predicted.len(),
        "truth and predictions differ in length"
    );
    let mut matrix = ConfusionMatrix::default();
    for (t, p) in truth.iter().zip(predicted) {
        matrix.counts[t.index()][p.index()] += 1;
    }
    matrix
}

/// UAR of predictions against the truth; see [`ConfusionMatrix::uar`].
pub fn uar(truth: &[Emotion], predicted: &[Emotion]) -> Option<f64> {
    confusion(truth, predicted).uar()
}

/// Mean of several matrices' counts, element-wise (Figure 3 averages over repeats).
pub fn mean_counts(matrices: &[ConfusionMatrix]) -> [[f64; CLASSES]; CLASSES] {
    let mut mean = [[0.0; CLASSES]; CLASSES];
    if matrices.is_empty() {
        return mean;
    }
    for matrix in matrices {
        for (row, counts) in mean.iter_mut().zip(&matrix.counts) {
            for (value, &count) in row.iter_mut().zip(counts) {
                *value += count as f64;
            }
        }
    }
    let n = matrices.len() as f64;
    mean.iter_mut().flatten().for_each(|value| *value /= n);
    mean
}

/// Each row divided by its sum, so row `t` holds the fractions of class `t`'s utterances
/// predicted as each class. A row of zeros (class absent) stays zeros.
pub fn row_normalise(counts: &[[f64; CLASSES]; CLASSES]) -> [[f64; CLASSES]; CLASSES] {
    let mut out = *counts;
    for row in &mut out {
        let sum: f64 = row.iter().sum();
        if sum > 0.0 {
            row.iter_mut().for_each(|value| *value /= sum);
        }
    }
    out
}

/// Mean and population standard deviation (divisor n, as numpy's default); `(NaN, NaN)` when
/// empty.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, variance.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use Emotion::{Angry as A, Happy as H, Neutral as N, Sad as S};

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn hand_computed_uar_and_accuracy() {
        // angry 2/3, happy 1/2, neutral 1/1, sad 0/2 (never predicted) -> UAR 13/24.
        let truth = [A, A, A, H, H, N, S, S];
        let predicted = [A, A, H, H, N, N, A, N];
        let matrix = confusion(&truth, &predicted);
        assert_eq!(matrix.counts[0], [2, 1, 0, 0]);
        assert_eq!(matrix.counts[3], [1, 0, 1, 0]);
        assert!(close(matrix.recall(S).unwrap(), 0.0));
        assert!(close(
            uar(&truth, &predicted).unwrap(),
            (2.0 / 3.0 + 0.5 + 1.0 + 0.0) / 4.0
        ));
        assert!(close(matrix.accuracy().unwrap(), 4.0 / 8.0));
    }

    #[test]
    fn a_class_absent_from_the_truth_is_left_out_of_the_mean() {
        // No sad utterance in the test set, though sad is predicted once: UAR over 3 classes.
        let truth = [A, A, H, N, N];
        let predicted = [A, S, H, N, H];
        let matrix = confusion(&truth, &predicted);
        assert_eq!(matrix.recall(S), None);
        assert!(close(matrix.uar().unwrap(), (0.5 + 1.0 + 0.5) / 3.0));
        assert_eq!(uar(&[], &[]), None);
        assert_eq!(confusion(&[], &[]).accuracy(), None);
    }

    #[test]
    fn perfect_and_chance_predictions() {
        let truth = [A, H, N, S, A, H, N, S];
        assert!(close(uar(&truth, &truth).unwrap(), 1.0));
        let all_neutral = [N; 8];
        assert!(close(uar(&truth, &all_neutral).unwrap(), 0.25));
    }

    #[test]
    fn averaged_and_row_normalised_confusion() {
        let one = confusion(&[A, A, H, H], &[A, H, H, H]);
        let two = confusion(&[A, A, H, H], &[A, A, A, H]);
        let mean = mean_counts(&[one, two]);
        assert_eq!(mean[0], [1.5, 0.5, 0.0, 0.0]);
        assert_eq!(mean[1], [0.5, 1.5, 0.0, 0.0]);
        let normalised = row_normalise(&mean);
        assert_eq!(normalised[0], [0.75, 0.25, 0.0, 0.0]);
        assert_eq!(normalised[1], [0.25, 0.75, 0.0, 0.0]);
        // Absent classes stay zero rows, never NaN.
        assert_eq!(normalised[3], [0.0; 4]);
        for row in &normalised[..2] {
            assert!(close(row.iter().sum(), 1.0));
        }
        let mut summed = one;
        summed.add(&two);
        assert_eq!(summed.total(), 8);
    }

    #[test]
    fn population_std() {
        let (mean, std) = mean_std(&[1.0, 2.0, 3.0, 4.0]);
        assert!(close(mean, 2.5));
        assert!(close(std, 1.25f64.sqrt()));
        assert!(mean_std(&[]).0.is_nan());
    }
}
