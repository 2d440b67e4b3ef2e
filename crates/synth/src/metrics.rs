//! Distances between a real and a synthetic (or source) set of feature vectors.
//!
//! Reads and writes nothing. Every function takes row-major float32 matrices ([`Rows`]) and
//! computes in float64: the paper's Table 1 figure ([`mean_abs_difference`], and
//! [`std_abs_difference`] for the spread), the Frechet distance between Gaussian fits
//! ([`frechet_distance`]), a classifier two-sample test ([`c2st_accuracy`]) and k-NN precision
//! and recall ([`knn_precision_recall`]). The tensor metrics run on the `device` passed in.

use emocycle_features::RunningStats;
use emocycle_rng::SplitMix64;
use tch::{Device, Kind, Tensor};

use crate::SynthError;

/// A borrowed row-major matrix: `values.len() / width` rows of `width` features.
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    values: &'a [f32],
    width: usize,
}

impl<'a> Rows<'a> {
    /// Views `values` as rows of `width` features; the length must be a multiple of `width`.
    pub fn new(values: &'a [f32], width: usize) -> Result<Self, SynthError> {
        if width == 0 || !values.len().is_multiple_of(width) {
            return Err(SynthError::Shape(format!(
                "{} values do not form rows of {width} features",
                values.len()
            )));
        }
        Ok(Self { values, width })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.values.len() / self.width
    }

    /// Features per row.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The values, row-major.
    pub fn values(&self) -> &'a [f32] {
        self.values
    }

    /// One row.
    pub fn row(&self, index: usize) -> &'a [f32] {
        &self.values[index * self.width..(index + 1) * self.width]
    }

    /// The given rows as a float64 `[len, width]` tensor on `device`.
    pub(crate) fn tensor(&self, indices: Option<&[usize]>, device: Device) -> Tensor {
        let gathered;
        let (values, rows) = match indices {
            None => (self.values, self.rows()),
            Some(indices) => {
                gathered = indices
                    .iter()
                    .flat_map(|&row| self.row(row).iter().copied())
                    .collect::<Vec<f32>>();
                (gathered.as_slice(), indices.len())
            }
        };
        Tensor::from_slice(values)
            .reshape([rows as i64, self.width as i64])
            .to_kind(Kind::Double)
            .to_device(device)
    }
}

fn same_width(a: &Rows, b: &Rows) -> Result<(), SynthError> {
    if a.width() != b.width() {
        return Err(SynthError::Shape(format!(
            "the sets have {} and {} features",
            a.width(),
            b.width()
        )));
    }
    Ok(())
}

fn at_least(set: &str, rows: &Rows, minimum: usize) -> Result<(), SynthError> {
    if rows.rows() < minimum {
        return Err(SynthError::Shape(format!(
            "the {set} set has {} rows, this metric needs at least {minimum}",
            rows.rows()
        )));
    }
    Ok(())
}

/// Per-feature running mean and population standard deviation of a set, mergeable, so that
/// sets streamed in batches and pooled over emotions need one pass.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnMoments {
    /// One entry per feature.
    pub stats: Vec<RunningStats>,
}

impl ColumnMoments {
    /// Empty statistics for `width` features.
    pub fn new(width: usize) -> Self {
        Self {
            stats: vec![RunningStats::default(); width],
        }
    }

    /// The statistics of `rows`.
    pub fn of(rows: Rows) -> Self {
        let mut moments = Self::new(rows.width());
        moments.add(rows);
        moments
    }

    /// Adds rows (their width must be this set's).
    pub fn add(&mut self, rows: Rows) {
        for row in rows.values().chunks_exact(rows.width()) {
            for (stats, &value) in self.stats.iter_mut().zip(row) {
                stats.push(f64::from(value));
            }
        }
    }

    /// The statistics of both sets together.
    pub fn merge(&self, other: &Self) -> Self {
        Self {
            stats: self
                .stats
                .iter()
                .zip(&other.stats)
                .map(|(a, b)| a.merge(b))
                .collect(),
        }
    }

    /// Rows seen.
    pub fn rows(&self) -> u64 {
        self.stats.first().map_or(0, |stats| stats.count)
    }

    /// Per-feature means.
    pub fn means(&self) -> Vec<f64> {
        self.stats.iter().map(|stats| stats.mean).collect()
    }

    /// Per-feature population standard deviations.
    pub fn stds(&self) -> Vec<f64> {
        self.stats.iter().map(RunningStats::std).collect()
    }

    /// Mean over features of |mean(self) - mean(other)|.
    pub fn mean_abs_difference(&self, other: &Self) -> f64 {
        mean_abs(&self.means(), &other.means())
    }

    /// Mean over features of |std(self) - std(other)| (population).
    pub fn std_abs_difference(&self, other: &Self) -> f64 {
        mean_abs(&self.stds(), &other.stds())
    }
}

fn mean_abs(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| (a - b).abs()).sum::<f64>() / a.len().max(1) as f64
}

/// The paper's Table 1 figure: the mean over features of |mean(a) - mean(b)|.
pub fn mean_abs_difference(a: Rows, b: Rows) -> Result<f64, SynthError> {
    same_width(&a, &b)?;
    at_least("first", &a, 1)?;
    at_least("second", &b, 1)?;
    Ok(ColumnMoments::of(a).mean_abs_difference(&ColumnMoments::of(b)))
}

/// The mean over features of |std(a) - std(b)|, population standard deviations.
pub fn std_abs_difference(a: Rows, b: Rows) -> Result<f64, SynthError> {
    same_width(&a, &b)?;
    at_least("first", &a, 1)?;
    at_least("second", &b, 1)?;
    Ok(ColumnMoments::of(a).std_abs_difference(&ColumnMoments::of(b)))
}

/// Streaming mean and scatter matrix (sum of outer products of deviations) of a set, in
/// float64 on a device; chunks are centred on their own mean before they are merged (Chan et
/// al.), which avoids the cancellation of the textbook sum-of-squares formula.
pub(crate) struct GaussianAccumulator {
    rows: i64,
    mean: Tensor,
    scatter: Tensor,
}

impl GaussianAccumulator {
    pub(crate) fn new(width: usize, device: Device) -> Self {
        let d = width as i64;
        Self {
            rows: 0,
            mean: Tensor::zeros([d], (Kind::Double, device)),
            scatter: Tensor::zeros([d, d], (Kind::Double, device)),
        }
    }

    pub(crate) fn add(&mut self, rows: Rows, device: Device) {
        if rows.rows() == 0 {
            return;
        }
        let x = rows.tensor(None, device);
        let mean = x.mean_dim(0, false, Kind::Double);
        let centred = x - &mean;
        let scatter = centred.tr().mm(&centred);
        self.merge_parts(rows.rows() as i64, &mean, &scatter);
    }

    pub(crate) fn merge(&mut self, other: &Self) {
        if other.rows > 0 {
            self.merge_parts(other.rows, &other.mean, &other.scatter);
        }
    }

    fn merge_parts(&mut self, rows: i64, mean: &Tensor, scatter: &Tensor) {
        if self.rows == 0 {
            self.rows = rows;
            self.mean = mean.copy();
            self.scatter = scatter.copy();
            return;
        }
        let total = self.rows + rows;
        let delta = mean - &self.mean;
        let weight = (self.rows as f64) * (rows as f64) / total as f64;
        self.scatter = &self.scatter + scatter + delta.outer(&delta) * weight;
        self.mean = &self.mean + delta * (rows as f64 / total as f64);
        self.rows = total;
    }

    /// Mean and unbiased covariance (divisor n - 1, as numpy's `cov` in the FID's reference
    /// code).
    pub(crate) fn fit(&self) -> Result<GaussianFit, SynthError> {
        if self.rows < 2 {
            return Err(SynthError::Shape(format!(
                "a Gaussian fit needs at least 2 rows, got {}",
                self.rows
            )));
        }
        Ok(GaussianFit {
            mean: self.mean.shallow_clone(),
            cov: &self.scatter / (self.rows - 1) as f64,
            sqrt_cov: None,
        })
    }
}

/// A Gaussian fit (mean and covariance, float64) of one set.
pub(crate) struct GaussianFit {
    mean: Tensor,
    cov: Tensor,
    sqrt_cov: Option<Tensor>,
}

impl GaussianFit {
    /// The symmetric square root of the covariance, kept for reuse: it is the expensive half
    /// of the distance, and a target set is compared with several others.
    pub(crate) fn prepare_sqrt(&mut self) -> Result<(), SynthError> {
        if self.sqrt_cov.is_none() {
            self.sqrt_cov = Some(psd_sqrt(&self.cov)?);
        }
        Ok(())
    }

    /// FD = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2). The product is
    /// symmetric positive semi-definite, so its square root's trace is the sum of the square
    /// roots of its eigenvalues; eigenvalues that rounding pushed below zero (singular
    /// covariances: fewer rows than features) count as zero.
    pub(crate) fn distance(&mut self, other: &GaussianFit) -> Result<f64, SynthError> {
        self.prepare_sqrt()?;
        let root = self.sqrt_cov.as_ref().expect("prepared above");
        let delta = &self.mean - &other.mean;
        let mean_term = delta.dot(&delta).double_value(&[]);
        let product = root.mm(&other.cov).mm(root);
        let product = (&product + product.tr()) * 0.5;
        let eigenvalues = product
            .f_linalg_eigvalsh("L")
            .map_err(SynthError::torch("eigenvalues of the covariance product"))?;
        let cross = eigenvalues.clamp_min(0.0).sqrt().sum(Kind::Double);
        let distance =
            mean_term + self.cov.trace().double_value(&[]) + other.cov.trace().double_value(&[])
                - 2.0 * cross.double_value(&[]);
        // The distance is a squared norm; a negative value is rounding around zero.
        Ok(distance.max(0.0))
    }
}

fn psd_sqrt(matrix: &Tensor) -> Result<Tensor, SynthError> {
    let symmetric = (matrix + matrix.tr()) * 0.5;
    let (values, vectors) = symmetric
        .f_linalg_eigh("L")
        .map_err(SynthError::torch("eigendecomposition of a covariance"))?;
    let roots = values.clamp_min(0.0).sqrt();
    Ok((&vectors * roots.unsqueeze(0)).mm(&vectors.tr()))
}

/// Frechet distance between Gaussian fits of `a` and `b` (means, unbiased full covariances),
/// computed in float64 on `device`. Singular covariances are fine.
///
/// When either set has fewer rows than features (the usual case: a few hundred utterances of
/// 1582 functionals), the distance comes from the rows themselves (`frechet_from_rows`),
/// which is exact and avoids every d x d eigendecomposition.
pub fn frechet_distance(a: Rows, b: Rows, device: Device) -> Result<f64, SynthError> {
    same_width(&a, &b)?;
    at_least("first", &a, 2)?;
    at_least("second", &b, 2)?;
    if a.rows().min(b.rows()) < a.width() {
        return frechet_from_rows(a, b, device);
    }
    let fit = |rows: Rows| {
        let mut accumulator = GaussianAccumulator::new(rows.width(), device);
        accumulator.add(rows, device);
        accumulator.fit()
    };
    let mut first = fit(a)?;
    first.distance(&fit(b)?)
}

/// The Frechet distance from every row of two sets, without covariance matrices.
///
/// With X, Y the centred rows (n x d, m x d), S1 = X'X/(n-1) and S2 = Y'Y/(m-1), the cross term
/// tr((S1^1/2 S2 S1^1/2)^1/2) is the sum of the square roots of the eigenvalues of S1 S2, whose
/// non-zero ones are those of X S2 X'/(n-1) = (X Y')(X Y')'/((n-1)(m-1)): the cross term is the
/// nuclear norm (sum of singular values) of the n x m matrix X Y' over sqrt((n-1)(m-1)), and
/// tr(S1) is the sum of squares of X over n-1. Cost O(n m d) instead of O(d^3).
pub(crate) fn frechet_from_rows(a: Rows, b: Rows, device: Device) -> Result<f64, SynthError> {
    same_width(&a, &b)?;
    at_least("first", &a, 2)?;
    at_least("second", &b, 2)?;
    let centred = |rows: Rows| {
        let x = Tensor::from_slice(rows.values())
            .reshape([rows.rows() as i64, rows.width() as i64])
            .to_device(device)
            .to_kind(Kind::Double);
        let mean = x.mean_dim(0, false, Kind::Double);
        (&x - mean.unsqueeze(0), mean)
    };
    let (x, mean_x) = centred(a);
    let (y, mean_y) = centred(b);
    let (n, m) = ((a.rows() - 1) as f64, (b.rows() - 1) as f64);
    let delta = &mean_x - &mean_y;
    let mean_term = delta.dot(&delta).double_value(&[]);
    let trace_x = x.square().sum(Kind::Double).double_value(&[]) / n;
    let trace_y = y.square().sum(Kind::Double).double_value(&[]) / m;
    let nuclear = x
        .mm(&y.tr())
        .f_linalg_norm_ord_str("nuc", None::<&[i64]>, false, None)
        .map_err(SynthError::torch("nuclear norm of the cross product"))?;
    let cross = nuclear.double_value(&[]) / (n * m).sqrt();
    Ok((mean_term + trace_x + trace_y - 2.0 * cross).max(0.0))
}

/// `count` distinct indices below `total`, in a seeded random order (the first `count` of a
/// SplitMix64 Fisher-Yates shuffle).
pub(crate) fn random_subset(total: usize, count: usize, rng: &mut SplitMix64) -> Vec<usize> {
    let mut indices: Vec<usize> = (0..total).collect();
    rng.shuffle(&mut indices);
    indices.truncate(count.min(total));
    indices
}

/// Full-batch steps, learning rate and L2 weight of the two-sample test's logistic regression:
/// enough for the loss to flatten on standardised features of a few thousand rows; the L2
/// term keeps the weights finite when the rows are separable (more features than rows).
const C2ST_STEPS: usize = 300;
const C2ST_LEARNING_RATE: f64 = 0.01;
const C2ST_L2: f64 = 1e-2;

/// Classifier two-sample test: the held-out accuracy of a logistic regression telling `real`
/// from `synthetic` rows. Both sets are subsampled (seeded) to the same size,
/// n = min(|real|, |synthetic|, `max_rows`), split 50/50 into training and test halves per
/// class, standardised on the training half, and the classifier is trained full-batch with
/// Adam from zero weights (deterministic). 0.5 means indistinguishable, 1.0 fully separable;
/// a test row scored exactly on the boundary counts as half right.
pub fn c2st_accuracy(
    real: Rows,
    synthetic: Rows,
    max_rows: usize,
    seed: u64,
    device: Device,
) -> Result<f64, SynthError> {
    same_width(&real, &synthetic)?;
    let n = real.rows().min(synthetic.rows()).min(max_rows);
    if n < 2 {
        return Err(SynthError::Shape(format!(
            "the two-sample test needs 2 rows per set, got {} and {} (max_rows {max_rows})",
            real.rows(),
            synthetic.rows()
        )));
    }
    let mut rng = SplitMix64::new(seed);
    let real_rows = random_subset(real.rows(), n, &mut rng);
    let synthetic_rows = random_subset(synthetic.rows(), n, &mut rng);
    let train = n / 2;
    let part = |range: std::ops::Range<usize>| {
        Tensor::cat(
            &[
                real.tensor(Some(&real_rows[range.clone()]), device),
                synthetic.tensor(Some(&synthetic_rows[range]), device),
            ],
            0,
        )
    };
    let labels = |count: usize| {
        Tensor::cat(
            &[
                Tensor::zeros([count as i64], (Kind::Double, device)),
                Tensor::ones([count as i64], (Kind::Double, device)),
            ],
            0,
        )
    };
    let x_train = part(0..train);
    let x_test = part(train..n);
    let y_train = labels(train);
    let y_test = labels(n - train);

    let mean = x_train.mean_dim(0, true, Kind::Double);
    let std = x_train.std_dim(0, false, true);
    // A constant feature carries no information; scaling it by 1 keeps it at 0, not NaN.
    let std = std.where_self(&std.gt(1e-12), &std.ones_like());
    let with_bias = |x: &Tensor| {
        let scaled = (x - &mean) / &std;
        let ones = Tensor::ones([scaled.size()[0], 1], (Kind::Double, device));
        Tensor::cat(&[scaled, ones], 1)
    };
    let x_train = with_bias(&x_train);
    let x_test = with_bias(&x_test);

    let width = real.width() as i64 + 1;
    // The bias (last parameter) is not penalised.
    let l2_mask = Tensor::ones([width], (Kind::Double, device)).narrow(0, 0, width - 1);
    let l2_mask = Tensor::cat(&[l2_mask, Tensor::zeros([1], (Kind::Double, device))], 0);
    let mut theta = Tensor::zeros([width], (Kind::Double, device));
    let mut m = theta.zeros_like();
    let mut v = theta.zeros_like();
    let (beta1, beta2, epsilon) = (0.9f64, 0.999f64, 1e-8);
    let rows = x_train.size()[0] as f64;
    for step in 1..=C2ST_STEPS {
        let residual = x_train.mv(&theta).sigmoid() - &y_train;
        let gradient = x_train.tr().mv(&residual) / rows + &theta * &l2_mask * C2ST_L2;
        m = &m * beta1 + &gradient * (1.0 - beta1);
        v = &v * beta2 + gradient.square() * (1.0 - beta2);
        let m_hat = &m / (1.0 - beta1.powi(step as i32));
        let v_hat = &v / (1.0 - beta2.powi(step as i32));
        theta -= m_hat / (v_hat.sqrt() + epsilon) * C2ST_LEARNING_RATE;
    }
    let logits = x_test.mv(&theta);
    let predicted = logits.gt(0.0).to_kind(Kind::Double);
    let ties = logits.eq(0.0).to_kind(Kind::Double);
    let misses_ties: Tensor = ties.ones_like() - &ties;
    let hits: Tensor =
        predicted.eq_tensor(&y_test).to_kind(Kind::Double) * misses_ties + ties * 0.5;
    Ok(hits.mean(Kind::Double).double_value(&[]))
}

/// k-NN precision and recall of a synthetic set against a real one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KnnPrecisionRecall {
    /// Fraction of synthetic rows inside the union of the real rows' k-NN balls.
    pub precision: f64,
    /// Fraction of real rows inside the union of the synthetic rows' k-NN balls.
    pub recall: f64,
}

/// Query rows per distance block: bounds the `[block, n]` distance matrix.
const DISTANCE_BLOCK: usize = 1024;

fn squared_distances(a: &Tensor, b: &Tensor) -> Tensor {
    let a_norms = a.square().sum_dim_intlist(1, true, Kind::Double);
    let b_norms = b.square().sum_dim_intlist(1, false, Kind::Double);
    (a_norms + b_norms.unsqueeze(0) - a.mm(&b.tr()) * 2.0).clamp_min(0.0)
}

/// Squared distance of every row to its k-th nearest other row (the row itself is the 0-th).
fn kth_radii(x: &Tensor, k: usize) -> Tensor {
    let n = x.size()[0];
    let blocks: Vec<Tensor> = (0..n)
        .step_by(DISTANCE_BLOCK)
        .map(|start| {
            let block = x.narrow(0, start, (DISTANCE_BLOCK as i64).min(n - start));
            squared_distances(&block, x)
                .kthvalue(k as i64 + 1, 1, false)
                .0
        })
        .collect();
    Tensor::cat(&blocks, 0)
}

/// Fraction of `queries` within the ball of at least one centre.
fn coverage(queries: &Tensor, centres: &Tensor, radii: &Tensor) -> f64 {
    let n = queries.size()[0];
    let mut inside = 0i64;
    for start in (0..n).step_by(DISTANCE_BLOCK) {
        let block = queries.narrow(0, start, (DISTANCE_BLOCK as i64).min(n - start));
        let hit = squared_distances(&block, centres)
            .le_tensor(&radii.unsqueeze(0))
            .any_dim(1, false);
        inside += hit.sum(Kind::Int64).int64_value(&[]);
    }
    inside as f64 / n as f64
}

/// k-NN precision and recall (Kynkaanniemi et al., NeurIPS 2019), Euclidean: each point's
/// ball reaches its k-th nearest neighbour within its own set; a point on a ball's boundary is
/// inside. Computed exactly on the rows given (subsample large sets first: the cost grows with
/// |real| x |synthetic|).
pub fn knn_precision_recall(
    real: Rows,
    synthetic: Rows,
    k: usize,
    device: Device,
) -> Result<KnnPrecisionRecall, SynthError> {
    same_width(&real, &synthetic)?;
    if k == 0 {
        return Err(SynthError::Shape("k must be positive".into()));
    }
    at_least("real", &real, k + 1)?;
    at_least("synthetic", &synthetic, k + 1)?;
    let real = real.tensor(None, device);
    let synthetic = synthetic.tensor(None, device);
    let real_radii = kth_radii(&real, k);
    let synthetic_radii = kth_radii(&synthetic, k);
    Ok(KnnPrecisionRecall {
        precision: coverage(&synthetic, &real, &real_radii),
        recall: coverage(&real, &synthetic, &synthetic_radii),
    })
}

/// How close a set's rows sit to the real rows they may have been copied from: the distance to
/// the closest record (DCR), as synthcity and SDV report it, with the scale that real data
/// itself gives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Memorisation {
    /// Median over the other set's rows of the Euclidean distance to the nearest real row.
    pub dcr_median: f64,
    /// Median over the real rows of the distance to the nearest other real row: how far a
    /// fresh draw from the real distribution would sit.
    pub real_median: f64,
    /// Fraction of the other set's rows within 1% of `real_median` of a real row: copies.
    pub copied_share: f64,
}

impl Memorisation {
    /// `dcr_median / real_median`: about 1 for rows as new as real ones, far below 1 for
    /// copies or near-copies of real rows.
    pub fn ratio(&self) -> f64 {
        if self.real_median > 0.0 {
            self.dcr_median / self.real_median
        } else {
            f64::NAN
        }
    }
}

/// Squared distance of each `queries` row to its nearest `centres` row; with `skip_self` the
/// two are the same rows and each row's zero distance to itself is skipped.
fn nearest_squared(queries: &Tensor, centres: &Tensor, skip_self: bool) -> Tensor {
    let n = queries.size()[0];
    let blocks: Vec<Tensor> = (0..n)
        .step_by(DISTANCE_BLOCK)
        .map(|start| {
            let block = queries.narrow(0, start, (DISTANCE_BLOCK as i64).min(n - start));
            let distances = squared_distances(&block, centres);
            if skip_self {
                distances.kthvalue(2, 1, false).0
            } else {
                distances.min_dim(1, false).0
            }
        })
        .collect();
    Tensor::cat(&blocks, 0)
}

fn median(values: &Tensor) -> f64 {
    let mut sorted: Vec<f64> =
        Vec::<f64>::try_from(values.to_kind(Kind::Double).sqrt()).unwrap_or_default();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Distances to the closest real record (see [`Memorisation`]), computed exactly on the rows
/// given: all the real rows (a subsample of them would miss the rows that were copied) and a
/// subsample of the other set, if it is large.
pub fn memorisation(real: Rows, other: Rows, device: Device) -> Result<Memorisation, SynthError> {
    same_width(&real, &other)?;
    at_least("real", &real, 2)?;
    at_least("synthetic", &other, 1)?;
    let real = real.tensor(None, device);
    let other = other.tensor(None, device);
    let to_real = nearest_squared(&other, &real, false);
    let real_median = median(&nearest_squared(&real, &real, true));
    let threshold = (0.01 * real_median).powi(2);
    let copied = to_real.le(threshold).sum(Kind::Int64).int64_value(&[]);
    Ok(Memorisation {
        dcr_median: median(&to_real),
        real_median,
        copied_share: copied as f64 / other.size()[0] as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(values: &[f32], width: usize) -> Rows<'_> {
        Rows::new(values, width).unwrap()
    }

    /// Deterministic standard-normal-ish values (sum of uniforms), for sampling tests.
    fn normal_sample(rng: &mut SplitMix64, count: usize) -> Vec<f32> {
        (0..count)
            .map(|_| {
                let sum: f64 = (0..12)
                    .map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
                    .sum();
                (sum - 6.0) as f32
            })
            .collect()
    }

    #[test]
    fn mean_and_std_differences_by_hand() {
        // Columns of a: [0, 2] (mean 1, std 1) and [1, 1] (mean 1, std 0).
        let a = [0.0, 1.0, 2.0, 1.0];
        // Columns of b: [1, 1, 1] (mean 1, std 0) and [0, 3, 6] (mean 3, std sqrt(6)).
        let b = [1.0, 0.0, 1.0, 3.0, 1.0, 6.0];
        let mad = mean_abs_difference(rows(&a, 2), rows(&b, 2)).unwrap();
        assert!((mad - (0.0 + 2.0) / 2.0).abs() < 1e-12, "{mad}");
        let sad = std_abs_difference(rows(&a, 2), rows(&b, 2)).unwrap();
        assert!((sad - (1.0 + 6f64.sqrt()) / 2.0).abs() < 1e-6, "{sad}");
        assert_eq!(mean_abs_difference(rows(&a, 2), rows(&a, 2)).unwrap(), 0.0);
        assert_eq!(std_abs_difference(rows(&a, 2), rows(&a, 2)).unwrap(), 0.0);
        assert!(mean_abs_difference(rows(&a, 2), rows(&a, 1)).is_err());
    }

    #[test]
    fn a_constant_shift_gives_its_size_and_d_c_squared() {
        let mut rng = SplitMix64::new(3);
        let width = 5;
        let a = normal_sample(&mut rng, 40 * width);
        let shift = 0.25f32;
        let b: Vec<f32> = a.iter().map(|v| v + shift).collect();
        let mad = mean_abs_difference(rows(&a, width), rows(&b, width)).unwrap();
        assert!((mad - 0.25).abs() < 1e-6, "{mad}");
        let sad = std_abs_difference(rows(&a, width), rows(&b, width)).unwrap();
        assert!(sad < 1e-6, "{sad}");
        let fd = frechet_distance(rows(&a, width), rows(&b, width), Device::Cpu).unwrap();
        assert!((fd - 5.0 * 0.0625).abs() < 1e-6, "{fd}");
        let same = frechet_distance(rows(&a, width), rows(&a, width), Device::Cpu).unwrap();
        assert!(same.abs() < 1e-8, "{same}");
    }

    #[test]
    fn frechet_distance_in_one_dimension_by_hand() {
        // a = {0, 2}: mean 1, unbiased variance 2; b = {0, 4}: mean 2, variance 8.
        // FD = (1 - 2)^2 + (sqrt 2 - sqrt 8)^2 = 1 + 2 = 3.
        let fd = frechet_distance(rows(&[0.0, 2.0], 1), rows(&[0.0, 4.0], 1), Device::Cpu).unwrap();
        assert!((fd - 3.0).abs() < 1e-9, "{fd}");
        assert!(frechet_distance(rows(&[0.0], 1), rows(&[0.0, 4.0], 1), Device::Cpu).is_err());
    }

    #[test]
    fn frechet_distance_with_singular_covariances_and_merged_chunks() {
        // 3 rows in 6 dimensions: rank-2 covariances. Identical sets are at distance 0, and
        // the streaming accumulator gives the one-shot fit.
        let mut rng = SplitMix64::new(11);
        let a = normal_sample(&mut rng, 18);
        let fd = frechet_distance(rows(&a, 6), rows(&a, 6), Device::Cpu).unwrap();
        assert!(fd.abs() < 1e-6, "{fd}");

        let b = normal_sample(&mut rng, 60);
        let mut whole = GaussianAccumulator::new(6, Device::Cpu);
        whole.add(rows(&b, 6), Device::Cpu);
        let mut first = GaussianAccumulator::new(6, Device::Cpu);
        first.add(rows(&b[..24], 6), Device::Cpu);
        let mut second = GaussianAccumulator::new(6, Device::Cpu);
        second.add(rows(&b[24..], 6), Device::Cpu);
        first.merge(&second);
        let (whole, merged) = (whole.fit().unwrap(), first.fit().unwrap());
        assert!(whole.cov.allclose(&merged.cov, 1e-12, 1e-12, false));
        assert!(whole.mean.allclose(&merged.mean, 1e-12, 1e-12, false));
    }

    #[test]
    fn the_row_formula_equals_the_covariance_formula() {
        // Fewer rows than features on one side, more on the other, and both larger than the
        // width: the exact row formula and the d x d eigen route agree.
        let mut rng = SplitMix64::new(21);
        for (n, m, width) in [(5, 9, 12), (30, 4, 7), (40, 50, 6)] {
            let a: Vec<f32> = normal_sample(&mut rng, n * width);
            let b: Vec<f32> = normal_sample(&mut rng, m * width)
                .iter()
                .map(|v| 1.5 * v + 0.3)
                .collect();
            let by_rows = frechet_from_rows(rows(&a, width), rows(&b, width), Device::Cpu).unwrap();
            let fit = |values: &[f32]| {
                let mut accumulator = GaussianAccumulator::new(width, Device::Cpu);
                accumulator.add(rows(values, width), Device::Cpu);
                accumulator.fit().unwrap()
            };
            let by_covariance = fit(&a).distance(&fit(&b)).unwrap();
            assert!(
                (by_rows - by_covariance).abs() < 1e-6 * by_covariance.max(1.0),
                "{n}x{m}x{width}: {by_rows} vs {by_covariance}"
            );
        }
    }

    #[test]
    fn moments_merge_like_one_pass() {
        let a = [1.0f32, 2.0, 3.0, 5.0, 8.0, 13.0];
        let whole = ColumnMoments::of(rows(&a, 2));
        let merged =
            ColumnMoments::of(rows(&a[..2], 2)).merge(&ColumnMoments::of(rows(&a[2..], 2)));
        assert_eq!(merged.rows(), 3);
        for (x, y) in whole.means().iter().zip(merged.means()) {
            assert!((x - y).abs() < 1e-12);
        }
        for (x, y) in whole.stds().iter().zip(merged.stds()) {
            assert!((x - y).abs() < 1e-12);
        }
    }

    #[test]
    fn c2st_is_chance_on_one_distribution_and_perfect_on_separated_ones() {
        let mut rng = SplitMix64::new(5);
        let width = 4;
        let a = normal_sample(&mut rng, 1000 * width);
        let b = normal_sample(&mut rng, 1000 * width);
        let same = c2st_accuracy(rows(&a, width), rows(&b, width), 1000, 1, Device::Cpu).unwrap();
        assert!((same - 0.5).abs() < 0.07, "{same}");
        let identical =
            c2st_accuracy(rows(&a, width), rows(&a, width), 1000, 1, Device::Cpu).unwrap();
        assert!((identical - 0.5).abs() < 0.07, "{identical}");
        let shifted: Vec<f32> = b.iter().map(|v| v + 3.0).collect();
        let far =
            c2st_accuracy(rows(&a, width), rows(&shifted, width), 1000, 1, Device::Cpu).unwrap();
        assert!(far > 0.97, "{far}");
        // Seeded: the same call gives the same number.
        let again = c2st_accuracy(rows(&a, width), rows(&b, width), 1000, 1, Device::Cpu).unwrap();
        assert_eq!(same, again);
        assert!(c2st_accuracy(rows(&a[..4], width), rows(&b, width), 10, 1, Device::Cpu).is_err());
    }

    #[test]
    fn knn_precision_and_recall_on_hand_made_points() {
        // Real points on a line: 0, 1, 3, 6. With k = 1 the radii are 1, 1, 2, 3.
        // Synthetic 0.5 (in 0's ball), 4.5 (in 3's ball: 1.5 <= 2), 10 (6's ball ends at 9),
        // -2 (0's ball ends at -1): precision 2/4.
        // Synthetic radii (k = 1): -2 -> 2.5, 0.5 -> 2.5, 4.5 -> 4, 10 -> 5.5; every real
        // point is within one of them: recall 1.
        let real = [0.0, 1.0, 3.0, 6.0];
        let synthetic = [0.5, 4.5, 10.0, -2.0];
        let result =
            knn_precision_recall(rows(&real, 1), rows(&synthetic, 1), 1, Device::Cpu).unwrap();
        assert_eq!(result.precision, 0.5);
        assert_eq!(result.recall, 1.0);

        // Two dimensions, k = 2. Real: a unit square's corners, radius sqrt 2 (the 2nd
        // nearest of a corner is at 1, 1: distances 1, 1, sqrt 2 -> 2nd is 1). Synthetic: a
        // far cluster, which covers nothing real and lies in no real ball.
        let real = [0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let synthetic = [10.0, 10.0, 10.5, 10.0, 10.0, 10.5, 0.5, 0.5];
        let result =
            knn_precision_recall(rows(&real, 2), rows(&synthetic, 2), 2, Device::Cpu).unwrap();
        // Only (0.5, 0.5) is inside a real ball (distance 0.707 <= 1).
        assert_eq!(result.precision, 0.25);
        // Synthetic radii: the cluster's 2nd neighbour is within 0.71; (0.5, 0.5)'s 2nd
        // nearest is about 13.4 away, so its ball holds every real corner.
        assert_eq!(result.recall, 1.0);

        let identical =
            knn_precision_recall(rows(&real, 2), rows(&real, 2), 3, Device::Cpu).unwrap();
        assert_eq!((identical.precision, identical.recall), (1.0, 1.0));
        assert!(knn_precision_recall(rows(&real, 2), rows(&real, 2), 4, Device::Cpu).is_err());
    }

    #[test]
    fn distances_to_the_closest_record_by_hand() {
        // Real rows on a line at 0, 1, 3, 7: nearest-other distances 1, 1, 2, 4, median 1.5.
        let real = [0.0f32, 0.0, 1.0, 0.0, 3.0, 0.0, 7.0, 0.0];
        // A copy of row 3, a row 0.5 from row 1 and one 3 above row 0: DCRs 0, 0.5, 3.
        let other = [3.0f32, 0.0, 1.5, 0.0, 0.0, 3.0];
        let found = memorisation(rows(&real, 2), rows(&other, 2), Device::Cpu).unwrap();
        assert!((found.real_median - 1.5).abs() < 1e-9, "{found:?}");
        assert!((found.dcr_median - 0.5).abs() < 1e-9, "{found:?}");
        assert!((found.copied_share - 1.0 / 3.0).abs() < 1e-12, "{found:?}");
        assert!((found.ratio() - 1.0 / 3.0).abs() < 1e-9);
        // Copies of every real row: all copied, ratio 0.
        let copies = memorisation(rows(&real, 2), rows(&real, 2), Device::Cpu).unwrap();
        assert_eq!((copies.copied_share, copies.ratio()), (1.0, 0.0));
        assert!(memorisation(rows(&real[..2], 2), rows(&other, 2), Device::Cpu).is_err());
    }
}
