//! The resampling methods on plain in-memory data: random oversampling, SMOTE and Gaussian
//! noise, plus the per-class counts and the synthetic rows' shared shape. Deterministic given a
//! seed: every class draws from its own SplitMix64 stream, so one class's count never changes
//! another class's vectors.

use emocycle_features::Emotion;
use emocycle_rng::SplitMix64;

use crate::{AugmentError, Size};

/// Real labelled vectors a method draws from.
#[derive(Debug, Clone, Copy)]
pub struct RealRows<'a> {
    values: &'a [f32],
    width: usize,
    labels: &'a [Emotion],
}

impl<'a> RealRows<'a> {
    /// `labels.len()` rows of `width` features, row-major in `values`.
    pub fn new(
        values: &'a [f32],
        width: usize,
        labels: &'a [Emotion],
    ) -> Result<Self, AugmentError> {
        if width == 0 || values.len() != labels.len() * width {
            return Err(AugmentError::Data(format!(
                "{} values are not {} rows of {width} features",
                values.len(),
                labels.len()
            )));
        }
        Ok(Self {
            values,
            width,
            labels,
        })
    }

    /// Features per row.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.labels.len()
    }

    /// The row-major values.
    pub fn values(&self) -> &'a [f32] {
        self.values
    }

    /// The rows' emotions.
    pub fn labels(&self) -> &'a [Emotion] {
        self.labels
    }

    /// Row `row`'s features.
    pub fn row(&self, row: usize) -> &'a [f32] {
        &self.values[row * self.width..(row + 1) * self.width]
    }

    /// The rows of `emotion`, ascending.
    pub fn members(&self, emotion: Emotion) -> Vec<usize> {
        (0..self.rows())
            .filter(|&row| self.labels[row] == emotion)
            .collect()
    }
}

/// Synthetic vectors with their provenance, class by class (angry, happy, neutral, sad).
/// Parents and neighbours are row indices into the [`RealRows`] they were made from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyntheticRows {
    /// Features per row.
    pub width: usize,
    /// `labels.len() x width` values, row-major.
    pub values: Vec<f32>,
    /// Each row's emotion.
    pub labels: Vec<Emotion>,
    /// The real row each synthetic row was made from (none for the cGAN).
    pub parents: Vec<Option<usize>>,
    /// The second real row of SMOTE and mixup (none for the other methods).
    pub neighbours: Vec<Option<usize>>,
    /// The interpolation factor u of SMOTE and mixup: the row is `parent + u * (neighbour -
    /// parent)`.
    pub interpolation: Vec<Option<f32>>,
}

impl SyntheticRows {
    pub(crate) fn new(width: usize) -> Self {
        Self {
            width,
            ..Self::default()
        }
    }

    /// Appends `parent + u * (neighbour - parent)`, with its provenance (SMOTE, mixup).
    pub(crate) fn push_interpolated(
        &mut self,
        real: &RealRows,
        emotion: Emotion,
        parent: usize,
        neighbour: usize,
        u: f32,
    ) {
        let values = real
            .row(parent)
            .iter()
            .zip(real.row(neighbour))
            .map(|(&x, &n)| x + u * (n - x));
        self.push(emotion, values, Some(parent), Some(neighbour), Some(u));
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.labels.len()
    }

    /// Row `row`'s features.
    pub fn row(&self, row: usize) -> &[f32] {
        &self.values[row * self.width..(row + 1) * self.width]
    }

    /// Rows per emotion, in class-index order.
    pub fn counts(&self) -> [usize; 4] {
        class_counts(&self.labels)
    }

    pub(crate) fn push(
        &mut self,
        emotion: Emotion,
        values: impl IntoIterator<Item = f32>,
        parent: Option<usize>,
        neighbour: Option<usize>,
        interpolation: Option<f32>,
    ) {
        self.values.extend(values);
        self.labels.push(emotion);
        self.parents.push(parent);
        self.neighbours.push(neighbour);
        self.interpolation.push(interpolation);
        debug_assert_eq!(self.values.len(), self.labels.len() * self.width);
    }
}

/// Rows per emotion, in class-index order.
pub fn class_counts(labels: &[Emotion]) -> [usize; 4] {
    let mut counts = [0; 4];
    for label in labels {
        counts[label.index()] += 1;
    }
    counts
}

/// Synthetic rows per emotion for classes with `real` rows each: under [`Size::Balance`] each
/// class gets the difference to the largest class, under [`Size::PerClass`] every class gets
/// the same number.
pub fn synthetic_counts(size: Size, real: [usize; 4]) -> [usize; 4] {
    match size {
        Size::Balance => {
            let largest = real.iter().copied().max().unwrap_or(0);
            real.map(|count| largest - count)
        }
        Size::PerClass(count) => [count; 4],
    }
}

/// A random stream of its own for one (seed, method, class), so streams never overlap in
/// practice and adding a method or a class leaves the others' draws alone.
pub(crate) fn stream(seed: u64, method: u64, class: usize) -> SplitMix64 {
    let mut mixed = SplitMix64::new(seed).next_u64();
    for part in [method, class as u64] {
        mixed = SplitMix64::new(mixed ^ part.wrapping_mul(0xA24B_AED4_963E_E407)).next_u64();
    }
    SplitMix64::new(mixed)
}

/// A uniform float in [0, 1) with 24 random bits: exactly representable as f32, so a recorded
/// SMOTE factor reproduces its row exactly.
pub(crate) fn uniform_f32(rng: &mut SplitMix64) -> f32 {
    (rng.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
}

/// A uniform float in [0, 1) with 53 random bits.
pub(crate) fn uniform_f64(rng: &mut SplitMix64) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Two independent standard normal numbers (Box-Muller).
pub(crate) fn normal_pair(rng: &mut SplitMix64) -> (f64, f64) {
    // 1 - u lies in (0, 1], so the logarithm is finite.
    let radius = (-2.0 * (1.0 - uniform_f64(rng)).ln()).sqrt();
    let angle = std::f64::consts::TAU * uniform_f64(rng);
    (radius * angle.cos(), radius * angle.sin())
}

/// Fills `out` with standard normal numbers.
pub(crate) fn fill_normal(rng: &mut SplitMix64, out: &mut [f32]) {
    let mut pairs = out.chunks_exact_mut(2);
    for pair in &mut pairs {
        let (a, b) = normal_pair(rng);
        pair[0] = a as f32;
        pair[1] = b as f32;
    }
    if let [last] = pairs.into_remainder() {
        *last = normal_pair(rng).0 as f32;
    }
}

/// Tags of the methods' random streams.
pub(crate) mod tags {
    pub(crate) const OVERSAMPLING: u64 = 1;
    pub(crate) const SMOTE: u64 = 2;
    pub(crate) const NOISE: u64 = 3;
    pub(crate) const CGAN_INIT: u64 = 4;
    pub(crate) const CGAN_TRAIN: u64 = 5;
    pub(crate) const CGAN_GENERATE: u64 = 6;
    pub(crate) const CGAN_DROPOUT: u64 = 7;
    pub(crate) const MIXUP: u64 = 8;
}

/// A Gamma(shape, 1) number (Marsaglia and Tsang 2000; for shape < 1 the shape + 1 draw times
/// u^(1 / shape)).
fn gamma(rng: &mut SplitMix64, shape: f64) -> f64 {
    if shape < 1.0 {
        // 1 - u lies in (0, 1]: the power is finite.
        return gamma(rng, shape + 1.0) * (1.0 - uniform_f64(rng)).powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = normal_pair(rng).0;
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u = 1.0 - uniform_f64(rng);
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// A Beta(alpha, alpha) number, as the ratio of two Gamma(alpha) draws.
pub(crate) fn beta_symmetric(rng: &mut SplitMix64, alpha: f64) -> f64 {
    let a = gamma(rng, alpha);
    let b = gamma(rng, alpha);
    if a + b > 0.0 { a / (a + b) } else { 0.5 }
}

/// The rows of `emotion`, which must exist when the class is to get `count` synthetic rows.
pub(crate) fn parents_of(
    real: &RealRows,
    emotion: Emotion,
    count: usize,
    method: &str,
) -> Result<Vec<usize>, AugmentError> {
    let members = real.members(emotion);
    if count > 0 && members.is_empty() {
        return Err(AugmentError::Data(format!(
            "{method}: class {emotion} is to get {count} synthetic rows but the training part \
             has no {emotion} rows"
        )));
    }
    Ok(members)
}

/// Random oversampling: `counts[c]` copies of class c's rows, each parent drawn uniformly with
/// replacement (imbalanced-learn's `RandomOverSampler`).
pub fn random_oversampling(
    real: &RealRows,
    counts: [usize; 4],
    seed: u64,
) -> Result<SyntheticRows, AugmentError> {
    let mut out = SyntheticRows::new(real.width());
    for emotion in Emotion::ALL {
        let count = counts[emotion.index()];
        let members = parents_of(real, emotion, count, "random oversampling")?;
        let mut rng = stream(seed, tags::OVERSAMPLING, emotion.index());
        for _ in 0..count {
            let parent = members[rng.below(members.len() as u64) as usize];
            out.push(
                emotion,
                real.row(parent).iter().copied(),
                Some(parent),
                None,
                None,
            );
        }
    }
    Ok(out)
}

/// The `k` nearest neighbours (Euclidean) of every row in `members` among the other rows of
/// `members`, nearest first, as row indices of `values`. Equal distances go to the lower row
/// index. `k` must be below `members.len()`.
pub fn nearest_neighbours(
    values: &[f32],
    width: usize,
    members: &[usize],
    k: usize,
) -> Vec<Vec<usize>> {
    assert!(
        k < members.len(),
        "k = {k} neighbours need more than {} rows",
        members.len()
    );
    let row = |index: usize| &values[index * width..(index + 1) * width];
    let order = |a: &(f64, usize), b: &(f64, usize)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
    members
        .iter()
        .map(|&point| {
            let x = row(point);
            let mut candidates: Vec<(f64, usize)> = members
                .iter()
                .filter(|&&other| other != point)
                .map(|&other| {
                    // Squared distances in f64: same order as the distances, and exact for
                    // f32 inputs of moderate range, so near-ties resolve as in float64 tools.
                    let distance = x
                        .iter()
                        .zip(row(other))
                        .map(|(&a, &b)| {
                            let difference = f64::from(a) - f64::from(b);
                            difference * difference
                        })
                        .sum::<f64>();
                    (distance, other)
                })
                .collect();
            if k < candidates.len() {
                candidates.select_nth_unstable_by(k - 1, order);
                candidates.truncate(k);
            }
            candidates.sort_unstable_by(order);
            candidates.into_iter().map(|(_, other)| other).collect()
        })
        .collect()
}

/// SMOTE: each synthetic row is `x + u * (n - x)` for a parent x drawn uniformly from its
/// class, a neighbour n drawn uniformly from x's `k` nearest same-class neighbours
/// ([`nearest_neighbours`], the neighbours imbalanced-learn's SMOTE uses) and u uniform in
/// [0, 1). A class that gets rows needs at least 2 rows; with fewer than `k + 1`, k is clamped
/// to its size minus one (imbalanced-learn refuses instead), so small folds still work.
pub fn smote(
    real: &RealRows,
    counts: [usize; 4],
    k: usize,
    seed: u64,
) -> Result<SyntheticRows, AugmentError> {
    let mut out = SyntheticRows::new(real.width());
    for emotion in Emotion::ALL {
        let count = counts[emotion.index()];
        if count == 0 {
            continue;
        }
        let members = parents_of(real, emotion, count, "SMOTE")?;
        if members.len() < 2 {
            return Err(AugmentError::Data(format!(
                "SMOTE: class {emotion} has {} row in the training part; interpolating needs \
                 at least 2",
                members.len()
            )));
        }
        let k_used = k.min(members.len() - 1);
        if k_used < k {
            tracing::warn!(
                %emotion,
                rows = members.len(),
                k,
                k_used,
                "SMOTE: fewer rows than k + 1, using every other row of the class"
            );
        }
        let neighbours = nearest_neighbours(real.values(), real.width(), &members, k_used);
        let mut rng = stream(seed, tags::SMOTE, emotion.index());
        for _ in 0..count {
            let which = rng.below(members.len() as u64) as usize;
            let parent = members[which];
            let neighbour = neighbours[which][rng.below(k_used as u64) as usize];
            let u = uniform_f32(&mut rng);
            out.push_interpolated(real, emotion, parent, neighbour, u);
        }
    }
    Ok(out)
}

/// Class-conditional mixup: each synthetic row is `lambda x + (1 - lambda) y = x + u (y - x)`
/// with `u = 1 - lambda`, for a parent x and a partner y drawn uniformly (with replacement) from
/// the same class and lambda from Beta(alpha, alpha). The partner and u are recorded as SMOTE's
/// neighbour and u are. A class that gets rows needs at least one row.
pub fn mixup(
    real: &RealRows,
    counts: [usize; 4],
    alpha: f64,
    seed: u64,
) -> Result<SyntheticRows, AugmentError> {
    let mut out = SyntheticRows::new(real.width());
    for emotion in Emotion::ALL {
        let count = counts[emotion.index()];
        if count == 0 {
            continue;
        }
        let members = parents_of(real, emotion, count, "mixup")?;
        let mut rng = stream(seed, tags::MIXUP, emotion.index());
        for _ in 0..count {
            let parent = members[rng.below(members.len() as u64) as usize];
            let partner = members[rng.below(members.len() as u64) as usize];
            let u = (1.0 - beta_symmetric(&mut rng, alpha)) as f32;
            out.push_interpolated(real, emotion, parent, partner, u);
        }
    }
    Ok(out)
}

/// Population standard deviation of every feature over all rows.
pub fn feature_std(values: &[f32], width: usize) -> Vec<f64> {
    let rows = values.len() / width.max(1);
    if rows == 0 {
        return vec![0.0; width];
    }
    let mut mean = vec![0f64; width];
    for row in values.chunks_exact(width) {
        for (sum, &value) in mean.iter_mut().zip(row) {
            *sum += f64::from(value);
        }
    }
    mean.iter_mut().for_each(|sum| *sum /= rows as f64);
    let mut variance = vec![0f64; width];
    for row in values.chunks_exact(width) {
        for ((sum, &value), centre) in variance.iter_mut().zip(row).zip(&mean) {
            *sum += (f64::from(value) - centre).powi(2);
        }
    }
    variance
        .into_iter()
        .map(|sum| (sum / rows as f64).sqrt())
        .collect()
}

/// Gaussian noise: each synthetic row is a real row of its class plus independent noise
/// N(0, (sigma * std_j)^2) on every feature j, with std_j the population standard deviation
/// of feature j over all of `real` (constant features stay unchanged). Parents run through a
/// seeded permutation of the class, round after round, so they are used evenly.
pub fn gaussian_noise(
    real: &RealRows,
    counts: [usize; 4],
    sigma: f64,
    seed: u64,
) -> Result<SyntheticRows, AugmentError> {
    let scale: Vec<f64> = feature_std(real.values(), real.width())
        .into_iter()
        .map(|std| sigma * std)
        .collect();
    let mut out = SyntheticRows::new(real.width());
    let mut noise = vec![0f32; real.width()];
    for emotion in Emotion::ALL {
        let count = counts[emotion.index()];
        let mut order = parents_of(real, emotion, count, "Gaussian noise")?;
        let mut rng = stream(seed, tags::NOISE, emotion.index());
        rng.shuffle(&mut order);
        for made in 0..count {
            let parent = order[made % order.len()];
            fill_normal(&mut rng, &mut noise);
            let values = real
                .row(parent)
                .iter()
                .zip(&noise)
                .zip(&scale)
                .map(|((&x, &z), &scale)| (f64::from(x) + scale * f64::from(z)) as f32);
            out.push(emotion, values, Some(parent), None, None);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `counts` rows per class of `width` features, values from a seeded stream.
    fn data(counts: [usize; 4], width: usize, seed: u64) -> (Vec<f32>, Vec<Emotion>) {
        let mut rng = SplitMix64::new(seed);
        let mut values = Vec::new();
        let mut labels = Vec::new();
        // Interleave the classes so that class rows are not contiguous.
        let most = counts.iter().copied().max().unwrap();
        for take in 0..most {
            for emotion in Emotion::ALL {
                if take < counts[emotion.index()] {
                    labels.push(emotion);
                    values.extend((0..width).map(|_| uniform_f32(&mut rng) * 4.0 - 1.0));
                }
            }
        }
        (values, labels)
    }

    #[test]
    fn counts_balance_to_the_largest_class_or_give_every_class_n() {
        assert_eq!(
            class_counts(&[Emotion::Sad, Emotion::Angry, Emotion::Sad]),
            [1, 0, 0, 2]
        );
        assert_eq!(synthetic_counts(Size::Balance, [5, 9, 2, 9]), [4, 0, 7, 0]);
        assert_eq!(synthetic_counts(Size::Balance, [3, 3, 3, 3]), [0, 0, 0, 0]);
        assert_eq!(
            synthetic_counts(Size::PerClass(4), [5, 9, 2, 9]),
            [4, 4, 4, 4]
        );
    }

    #[test]
    fn oversampling_balances_exactly_and_copies_its_parents() {
        let (values, labels) = data([7, 20, 3, 11], 5, 1);
        let real = RealRows::new(&values, 5, &labels).unwrap();
        let real_counts = class_counts(&labels);
        let counts = synthetic_counts(Size::Balance, real_counts);
        let synthetic = random_oversampling(&real, counts, 9).unwrap();
        let total: Vec<usize> = (0..4)
            .map(|c| real_counts[c] + synthetic.counts()[c])
            .collect();
        assert_eq!(total, [20, 20, 20, 20]);
        for row in 0..synthetic.rows() {
            let parent = synthetic.parents[row].unwrap();
            assert_eq!(labels[parent], synthetic.labels[row]);
            assert_eq!(synthetic.row(row), real.row(parent));
            assert_eq!(synthetic.neighbours[row], None);
            assert_eq!(synthetic.interpolation[row], None);
        }
        // Seeded: the same seed gives the same rows, another seed other rows.
        assert_eq!(random_oversampling(&real, counts, 9).unwrap(), synthetic);
        assert_ne!(
            random_oversampling(&real, counts, 10).unwrap().parents,
            synthetic.parents
        );
        // Draws with replacement over the whole class: 17 copies of 3 neutral rows use them all.
        let neutral: std::collections::BTreeSet<usize> = synthetic
            .parents
            .iter()
            .zip(&synthetic.labels)
            .filter(|(_, label)| **label == Emotion::Neutral)
            .map(|(parent, _)| parent.unwrap())
            .collect();
        assert_eq!(neutral.len(), 3);
    }

    #[test]
    fn a_class_without_rows_cannot_get_synthetic_rows() {
        let (values, labels) = data([4, 4, 0, 4], 3, 2);
        let real = RealRows::new(&values, 3, &labels).unwrap();
        let counts = synthetic_counts(Size::Balance, class_counts(&labels));
        assert_eq!(counts, [0, 0, 4, 0]);
        for result in [
            random_oversampling(&real, counts, 1),
            smote(&real, counts, 5, 1),
            gaussian_noise(&real, counts, 0.1, 1),
        ] {
            let error = result.unwrap_err().to_string();
            assert!(error.contains("no neutral rows"), "{error}");
        }
        assert!(RealRows::new(&values[1..], 3, &labels).is_err());
    }

    /// Brute force reference: every other member by (distance, index).
    fn sorted_by_distance(real: &RealRows, members: &[usize], point: usize) -> Vec<usize> {
        let mut others: Vec<(f64, usize)> = members
            .iter()
            .filter(|&&other| other != point)
            .map(|&other| {
                let distance: f64 = real
                    .row(point)
                    .iter()
                    .zip(real.row(other))
                    .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                    .sum::<f64>()
                    .sqrt();
                (distance, other)
            })
            .collect();
        others.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        others.into_iter().map(|(_, other)| other).collect()
    }

    #[test]
    fn smote_points_lie_between_a_parent_and_one_of_its_k_nearest_same_class_neighbours() {
        let width = 4;
        let (values, labels) = data([30, 12, 25, 40], width, 3);
        let real = RealRows::new(&values, width, &labels).unwrap();
        let counts = synthetic_counts(Size::Balance, class_counts(&labels));
        let k = 5;
        let synthetic = smote(&real, counts, k, 11).unwrap();
        assert_eq!(synthetic.counts(), counts);
        let mut used_u = Vec::new();
        for row in 0..synthetic.rows() {
            let parent = synthetic.parents[row].unwrap();
            let neighbour = synthetic.neighbours[row].unwrap();
            let u = synthetic.interpolation[row].unwrap();
            let emotion = synthetic.labels[row];
            assert_eq!(labels[parent], emotion);
            assert_eq!(labels[neighbour], emotion);
            let nearest = sorted_by_distance(&real, &real.members(emotion), parent);
            assert!(nearest[..k].contains(&neighbour), "row {row}");
            assert!((0.0..1.0).contains(&u));
            used_u.push(u);
            // On the segment: the point equals parent + u (neighbour - parent) and so lies
            // between the two in every coordinate.
            for ((&s, &x), &n) in synthetic
                .row(row)
                .iter()
                .zip(real.row(parent))
                .zip(real.row(neighbour))
            {
                assert!((s - (x + u * (n - x))).abs() <= 1e-6, "row {row}");
                assert!(s >= x.min(n) - 1e-6 && s <= x.max(n) + 1e-6, "row {row}");
            }
        }
        // The factors spread over [0, 1), not a constant.
        let mean = used_u.iter().sum::<f32>() / used_u.len() as f32;
        assert!((mean - 0.5).abs() < 0.1, "mean u {mean}");
        assert_eq!(smote(&real, counts, k, 11).unwrap(), synthetic);
    }

    #[test]
    fn smote_clamps_k_to_the_class_size_and_needs_two_rows() {
        let (values, labels) = data([3, 10, 10, 10], 2, 4);
        let real = RealRows::new(&values, 2, &labels).unwrap();
        let counts = [50, 0, 0, 0];
        let synthetic = smote(&real, counts, 5, 1).unwrap();
        let members = real.members(Emotion::Angry);
        // With 3 rows, k = 5 becomes 2: each parent's neighbours are the two other rows, and
        // with 50 draws every (parent, neighbour) pair shows up.
        let pairs: std::collections::BTreeSet<(usize, usize)> = (0..synthetic.rows())
            .map(|row| {
                (
                    synthetic.parents[row].unwrap(),
                    synthetic.neighbours[row].unwrap(),
                )
            })
            .collect();
        assert_eq!(pairs.len(), 6);
        assert!(
            pairs
                .iter()
                .all(|(a, b)| a != b && members.contains(a) && members.contains(b))
        );

        let (values, labels) = data([1, 10, 10, 10], 2, 4);
        let real = RealRows::new(&values, 2, &labels).unwrap();
        let error = smote(&real, [1, 0, 0, 0], 5, 1).unwrap_err().to_string();
        assert!(error.contains("at least 2"), "{error}");
        // A class of one row that gets nothing is fine.
        assert_eq!(smote(&real, [0, 3, 0, 0], 5, 1).unwrap().rows(), 3);
    }

    #[test]
    fn neighbour_ties_go_to_the_lower_row() {
        // Points on a line at 0, 1, -1, 2, -2 (rows 0..5): row 0's neighbours at distance 1 are
        // rows 1 and 2, at distance 2 rows 3 and 4.
        let values = [0.0, 1.0, -1.0, 2.0, -2.0];
        let members = [0, 1, 2, 3, 4];
        let neighbours = nearest_neighbours(&values, 1, &members, 3);
        assert_eq!(neighbours[0], [1, 2, 3]);
        assert_eq!(neighbours[1], [0, 3, 2]);
        assert_eq!(neighbours[4], [2, 0, 1]);
    }

    #[test]
    fn smote_uses_the_neighbours_imbalanced_learn_uses() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/augment/smote_neighbours.csv"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let mut lines = text.lines().filter(|line| !line.starts_with('#'));
        assert_eq!(
            lines.next().unwrap(),
            "row,class,x0,x1,x2,nn0,nn1,nn2,nn3,nn4"
        );
        let mut values = Vec::new();
        let mut labels = Vec::new();
        let mut expected = Vec::new();
        for (index, line) in lines.enumerate() {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), 10, "{line}");
            assert_eq!(fields[0].parse::<usize>().unwrap(), index);
            labels.push(Emotion::from_index(fields[1].parse().unwrap()).unwrap());
            values.extend(fields[2..5].iter().map(|v| v.parse::<f32>().unwrap()));
            expected.push(
                fields[5..]
                    .iter()
                    .map(|v| v.parse::<usize>().unwrap())
                    .collect::<Vec<_>>(),
            );
        }
        assert_eq!(labels.len(), 30);
        let mut checked = 0;
        for emotion in [Emotion::Angry, Emotion::Happy] {
            let members: Vec<usize> = (0..labels.len())
                .filter(|&row| labels[row] == emotion)
                .collect();
            let found = nearest_neighbours(&values, 3, &members, 5);
            for (position, &row) in members.iter().enumerate() {
                assert_eq!(found[position], expected[row], "row {row}");
                checked += 1;
            }
        }
        assert_eq!(checked, 30);
    }

    #[test]
    fn noise_has_the_configured_scale_per_feature() {
        let width = 4;
        // Features with different spreads, one constant.
        let mut values = Vec::new();
        let mut labels = Vec::new();
        let mut rng = SplitMix64::new(5);
        for row in 0..40 {
            labels.push(Emotion::from_index(row % 4).unwrap());
            values.extend([
                uniform_f32(&mut rng),
                10.0 * uniform_f32(&mut rng),
                0.5,
                0.01 * uniform_f32(&mut rng),
            ]);
        }
        let real = RealRows::new(&values, width, &labels).unwrap();
        let std = feature_std(&values, width);
        assert_eq!(std[2], 0.0);
        let sigma = 0.2;
        let per_class = 5000;
        let synthetic = gaussian_noise(&real, [per_class; 4], sigma, 3).unwrap();
        assert_eq!(synthetic.counts(), [per_class; 4]);
        let n = synthetic.rows() as f64;
        for (feature, &feature_std) in std.iter().enumerate() {
            let differences: Vec<f64> = (0..synthetic.rows())
                .map(|row| {
                    let parent = synthetic.parents[row].unwrap();
                    f64::from(synthetic.row(row)[feature]) - f64::from(real.row(parent)[feature])
                })
                .collect();
            let mean = differences.iter().sum::<f64>() / n;
            let spread = (differences.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / n).sqrt();
            let expected = sigma * feature_std;
            if expected == 0.0 {
                assert!(differences.iter().all(|&d| d == 0.0), "feature {feature}");
                continue;
            }
            assert!(
                (spread / expected - 1.0).abs() < 0.03,
                "feature {feature}: std {spread}, expected {expected}"
            );
            assert!(
                mean.abs() < 0.05 * expected,
                "feature {feature}: mean {mean}"
            );
        }
        // Parents are used evenly: 10 rows per class, 5000 draws, 500 each.
        let mut uses = vec![0usize; labels.len()];
        for parent in &synthetic.parents {
            uses[parent.unwrap()] += 1;
        }
        assert!(
            uses.iter().all(|&count| count == per_class / 10),
            "{uses:?}"
        );
        assert_eq!(
            gaussian_noise(&real, [per_class; 4], sigma, 3).unwrap(),
            synthetic
        );
    }

    #[test]
    fn normal_numbers_are_standard() {
        let mut rng = SplitMix64::new(8);
        let mut values = vec![0f32; 100_001];
        fill_normal(&mut rng, &mut values);
        let n = values.len() as f64;
        let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let variance = values
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!(mean.abs() < 0.01, "{mean}");
        assert!((variance - 1.0).abs() < 0.02, "{variance}");
        assert_ne!(values[values.len() - 1], 0.0);
    }

    #[test]
    fn beta_numbers_have_the_distributions_moments() {
        // Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)); both branches of the Gamma sampler.
        for alpha in [0.2, 1.0, 4.0] {
            let mut rng = SplitMix64::new(11);
            let values: Vec<f64> = (0..200_000)
                .map(|_| beta_symmetric(&mut rng, alpha))
                .collect();
            assert!(values.iter().all(|v| (0.0..=1.0).contains(v)));
            let n = values.len() as f64;
            let mean = values.iter().sum::<f64>() / n;
            let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            let expected = 1.0 / (4.0 * (2.0 * alpha + 1.0));
            assert!((mean - 0.5).abs() < 0.005, "alpha {alpha}: mean {mean}");
            assert!(
                (variance - expected).abs() < 0.01 * expected + 5e-4,
                "alpha {alpha}: variance {variance}, expected {expected}"
            );
        }
    }

    #[test]
    fn mixup_stays_in_its_class_between_two_parents() {
        // Two classes on two lines of the plane; every synthetic row lies on the segment of its
        // recorded parents, inside its own class.
        let values = [0.0f32, 0.0, 1.0, 0.0, 2.0, 0.0, 0.0, 5.0, 0.0, 7.0];
        let labels = [
            Emotion::Angry,
            Emotion::Angry,
            Emotion::Angry,
            Emotion::Sad,
            Emotion::Sad,
        ];
        let real = RealRows::new(&values, 2, &labels).unwrap();
        let rows = mixup(&real, [50, 0, 0, 40], 0.2, 3).unwrap();
        assert_eq!(rows.counts(), [50, 0, 0, 40]);
        for row in 0..rows.rows() {
            let (parent, partner, u) = (
                rows.parents[row].unwrap(),
                rows.neighbours[row].unwrap(),
                rows.interpolation[row].unwrap(),
            );
            assert_eq!(labels[parent], rows.labels[row]);
            assert_eq!(labels[partner], rows.labels[row]);
            assert!((0.0..=1.0).contains(&u));
            for (feature, &value) in rows.row(row).iter().enumerate() {
                let (x, y) = (values[parent * 2 + feature], values[partner * 2 + feature]);
                assert!((value - (x + u * (y - x))).abs() < 1e-6);
            }
        }
        // Seeded: the same seed gives the same rows, another seed others.
        let again = mixup(&real, [50, 0, 0, 40], 0.2, 3).unwrap();
        assert_eq!(again.row(7), rows.row(7));
        let other = mixup(&real, [50, 0, 0, 40], 0.2, 4).unwrap();
        assert!((0..50).any(|row| other.row(row) != rows.row(row)));
        let empty = RealRows::new(&values[..6], 2, &labels[..3]).unwrap();
        assert!(mixup(&empty, [1, 0, 0, 1], 0.2, 3).is_err());
    }
}
