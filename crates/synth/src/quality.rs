//! The quality report: how close each synthetic set (and, for reference, the source) is to the
//! target, per emotion and pooled, in the target's min-max space.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use emocycle_artifact::{
    ArtifactError, Metadata, keys, read_parquet_columns, read_parquet_metadata, sha256_file,
    write_bytes_atomic, write_parquet,
};
use emocycle_config::layout::{Scope, StageInputs};
use emocycle_features::{Emotion, Normaliser, Scaling};
use emocycle_gan::load_scope_data;
use emocycle_rng::SplitMix64;
use polars::prelude::{Column, DataFrame, DataType, ParquetReader, SerReader};
use serde::{Deserialize, Serialize};
use tch::Device;

use crate::SynthLayout;
use crate::figure::{FigureSeries, draw_figure2, resolve_features};
use crate::metrics::{
    ColumnMoments, GaussianAccumulator, GaussianFit, Rows, c2st_accuracy, knn_precision_recall,
    memorisation, random_subset,
};
use crate::{FeatureSpace, SynthConfig, SynthError};

/// The `method` of the CycleGAN's sets in `quality.parquet`.
pub const CYCLEGAN_METHOD: &str = "cyclegan";

/// One synthetic set to measure: the set and the inputs of the scope whose training part
/// made it (a CycleGAN's, or a baseline method's).
#[derive(Debug, Clone)]
pub struct QualitySet {
    /// The scope the CycleGANs (or the baseline) were trained on.
    pub scope: Scope,
    /// `cyclegan`, or the baseline's name.
    pub method: String,
    /// The CycleGAN's classification-loss weight; `None` for a baseline.
    pub lambda_cls: Option<f64>,
    /// The CycleGAN's generator seed (0-based, `gan.seeds`); `None` for a baseline.
    pub gan_seed: Option<u32>,
    /// The set, written by [`crate::generate_set`].
    pub synthetic: PathBuf,
    /// The scope's feature-stage files (target training part, source, normalisations).
    pub inputs: StageInputs,
}

/// Which two sets a row compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Comparison {
    /// The target training part against the source corpus (the starting point).
    TargetSource,
    /// The target training part against the synthetic set.
    TargetSynthetic,
    /// One half of the target training part against the other (a seeded split within each
    /// emotion): what a generator that samples the target's own distribution would score.
    TargetHalves,
}

impl Comparison {
    /// `target-source` or `target-synthetic`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TargetSource => "target-source",
            Self::TargetSynthetic => "target-synthetic",
            Self::TargetHalves => "target-halves",
        }
    }
}

/// One row of `quality.parquet`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityRow {
    /// The scope's name.
    pub scope: String,
    /// The synthetic set's method: `cyclegan` or a baseline's name (target-source rows repeat
    /// per set).
    pub method: String,
    /// The CycleGAN set's lambda_cls; `None` for a baseline.
    pub lambda_cls: Option<f64>,
    /// The CycleGAN set's generator seed; `None` for a baseline.
    pub gan_seed: Option<u32>,
    /// Which sets are compared.
    pub comparison: Comparison,
    /// `angry`, `happy`, `neutral`, `sad` or `pooled`.
    pub emotion: String,
    /// Target rows of this emotion (or all).
    pub target_rows: u64,
    /// Rows of the other set (the whole source for target-source rows).
    pub other_rows: u64,
    /// Mean over features of |mean difference| (the paper's Table 1 figure).
    pub mean_abs_diff: f64,
    /// Mean over features of |population std difference|.
    pub std_abs_diff: f64,
    /// Frechet distance of Gaussian fits.
    pub frechet_distance: f64,
    /// Held-out accuracy of a target-vs-other logistic regression (0.5 is best).
    pub c2st_accuracy: f64,
    /// k-NN precision (other rows inside the target's k-NN balls).
    pub knn_precision: f64,
    /// k-NN recall (target rows inside the other set's k-NN balls).
    pub knn_recall: f64,
    /// Rows per set that entered the two-sample test and the k-NN metrics.
    pub sample_rows: u64,
    /// Median distance of the other set's rows to the closest target row (DCR).
    pub dcr_median: f64,
    /// `dcr_median` over the target rows' median distance to their closest other target row:
    /// about 1 for rows as new as real ones, near 0 for copies of target rows.
    pub dcr_ratio: f64,
    /// Fraction of the other set's rows within 1% of that target scale of a target row.
    pub copied_share: f64,
}

/// What [`quality_report`] computed and wrote.
#[derive(Debug, Clone)]
pub struct QualityReport {
    /// Every row of `quality.parquet`, in file order.
    pub rows: Vec<QualityRow>,
    /// The files written.
    pub outputs: Vec<PathBuf>,
}

/// The paper's Table 1 values, for the markdown table.
const PAPER_TARGET_SOURCE: f64 = 0.084;
const PAPER_TARGET_SYNTHETIC: [(f64, f64); 2] = [(0.0, 0.013), (2.0, 0.049)];

/// Everything the metrics need of one set, gathered in a single pass: per-feature moments, a
/// Gaussian fit, and a seeded random subsample (in random order) for the pairwise metrics.
struct Summary {
    rows: usize,
    moments: ColumnMoments,
    gaussian: GaussianFit,
    sample: Vec<f32>,
    width: usize,
    /// Every row, kept for the target's groups only: a synthetic row is a copy of the target
    /// row it is closest to, which a subsample of the target would miss.
    all: Option<Vec<f32>>,
}

impl Summary {
    fn sample_rows(&self) -> usize {
        self.sample.len() / self.width
    }
}

struct SummaryBuilder {
    width: usize,
    seen: usize,
    moments: ColumnMoments,
    gaussian: GaussianAccumulator,
    /// Slot in `sample` of every row rank that was drawn, `usize::MAX` for the others.
    slot_of: Vec<usize>,
    sample: Vec<f32>,
    device: Device,
    /// False for a pooled set, whose moments and Gaussian are merged from its parts instead
    /// of computed again.
    track_statistics: bool,
}

impl SummaryBuilder {
    /// A builder for a set of `total` rows (known in advance, so the subsample can be drawn
    /// before the rows stream in).
    fn new(
        total: usize,
        width: usize,
        sample: usize,
        seed: u64,
        device: Device,
        track_statistics: bool,
    ) -> Self {
        let drawn = random_subset(total, sample, &mut SplitMix64::new(seed));
        let mut slot_of = vec![usize::MAX; total];
        for (slot, &rank) in drawn.iter().enumerate() {
            slot_of[rank] = slot;
        }
        Self {
            width,
            seen: 0,
            moments: ColumnMoments::new(width),
            gaussian: GaussianAccumulator::new(width, device),
            slot_of,
            sample: vec![0.0; drawn.len() * width],
            device,
            track_statistics,
        }
    }

    fn add(&mut self, rows: Rows) {
        if self.track_statistics {
            self.moments.add(rows);
            self.gaussian.add(rows, self.device);
        }
        for index in 0..rows.rows() {
            let slot = self.slot_of.get(self.seen + index).copied();
            if let Some(slot) = slot.filter(|&slot| slot != usize::MAX) {
                self.sample[slot * self.width..(slot + 1) * self.width]
                    .copy_from_slice(rows.row(index));
            }
        }
        self.seen += rows.rows();
    }

    /// Merges a part's moments and Gaussian into this (pooled) set.
    fn absorb(&mut self, part: &SummaryBuilder) {
        self.moments = self.moments.merge(&part.moments);
        self.gaussian.merge(&part.gaussian);
    }

    fn finish(self) -> Result<Summary, SynthError> {
        debug_assert_eq!(self.seen, self.slot_of.len());
        Ok(Summary {
            rows: self.seen,
            gaussian: self.gaussian.fit()?,
            moments: self.moments,
            sample: self.sample,
            width: self.width,
            all: None,
        })
    }
}

/// Feeds in-memory rows to a builder in chunks, which bound the float64 copy the covariance
/// update makes.
fn feed(
    builder: &mut SummaryBuilder,
    values: &[f32],
    config: &SynthConfig,
) -> Result<(), SynthError> {
    for chunk in values.chunks(config.batch_rows * builder.width) {
        builder.add(Rows::new(chunk, builder.width)?);
    }
    Ok(())
}

/// Seeds of the subsamples: one stream per role and emotion (index 4 = pooled), so that no two
/// subsamples share their draws.
fn sample_seed(config: &SynthConfig, role: u64, group: usize) -> u64 {
    config
        .metric_seed
        .wrapping_add(role.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(group as u64 + 1)
}

/// Two sets' row counts and [`compare`]'s metrics.
type Measured = ((usize, usize), [f64; 10]);

/// The target's training part in two halves, each emotion split by its own seeded shuffle (so
/// both halves keep the class balance), measured against each other as the other sets are
/// against the target: per group (the four emotions, then pooled) the two halves' row counts
/// and the metrics, or `None` for a group too small to measure. One pair of summaries is alive
/// at a time: each holds a feature-by-feature covariance.
fn target_halves(
    target: &[Summary],
    config: &SynthConfig,
    device: Device,
) -> Result<Vec<Option<Measured>>, SynthError> {
    let width = target[0].width;
    let mut halves: [Vec<Vec<f32>>; 2] = [Vec::new(), Vec::new()];
    for (group, summary) in target.iter().take(4).enumerate() {
        let all = summary.all.as_deref().unwrap_or(&summary.sample);
        let rows = all.len() / width;
        let order = random_subset(
            rows,
            rows,
            &mut SplitMix64::new(sample_seed(config, 3, group)),
        );
        for (half, ranks) in order.chunks(rows.div_ceil(2).max(1)).take(2).enumerate() {
            let values = ranks
                .iter()
                .flat_map(|&row| all[row * width..(row + 1) * width].iter().copied())
                .collect();
            halves[half].push(values);
        }
        for half in &mut halves {
            half.resize(group + 1, Vec::new());
        }
    }
    let pooled = |half: &Vec<Vec<f32>>| half.concat();
    let groups: Vec<[Vec<f32>; 2]> = (0..4)
        .map(|group| [halves[0][group].clone(), halves[1][group].clone()])
        .chain(std::iter::once([pooled(&halves[0]), pooled(&halves[1])]))
        .collect();
    let mut out = Vec::with_capacity(groups.len());
    for (group, [a, b]) in groups.into_iter().enumerate() {
        let (rows_a, rows_b) = (a.len() / width, b.len() / width);
        if rows_a.min(rows_b) <= config.knn_k {
            out.push(None);
            continue;
        }
        let mut summaries = Vec::with_capacity(2);
        for (half, values) in [a, b].into_iter().enumerate() {
            let mut builder = SummaryBuilder::new(
                values.len() / width,
                width,
                config.metric_rows,
                sample_seed(config, 4 + half as u64, group),
                device,
                true,
            );
            feed(&mut builder, &values, config)?;
            let mut summary = builder.finish()?;
            summary.all = Some(values);
            summaries.push(summary);
        }
        let second = summaries.pop().expect("two halves");
        let mut first = summaries.pop().expect("two halves");
        let metrics = compare(&mut first, &second, config, device)?;
        out.push(Some(((first.rows, second.rows), metrics)));
    }
    Ok(out)
}

/// The Frechet distance of two summaries: from their rows when both subsamples hold every row
/// of their set and one set is smaller than the feature count (exact and far cheaper at
/// d = 1582), else from their Gaussian fits.
fn frechet(target: &mut Summary, other: &Summary, device: Device) -> Result<f64, SynthError> {
    let width = target.width;
    let complete = |summary: &Summary| summary.sample_rows() == summary.rows;
    if complete(target) && complete(other) && target.rows.min(other.rows) < width {
        return crate::metrics::frechet_from_rows(
            Rows::new(&target.sample, width)?,
            Rows::new(&other.sample, width)?,
            device,
        );
    }
    target.gaussian.distance(&other.gaussian)
}

fn compare(
    target: &mut Summary,
    other: &Summary,
    config: &SynthConfig,
    device: Device,
) -> Result<[f64; 10], SynthError> {
    let frechet_distance = frechet(target, other, device)?;
    let width = target.width;
    let n = target.sample_rows().min(other.sample_rows());
    let target_sample = Rows::new(&target.sample[..n * width], width)?;
    let other_sample = Rows::new(&other.sample[..n * width], width)?;
    let knn = knn_precision_recall(target_sample, other_sample, config.knn_k, device)?;
    let target_all = match &target.all {
        Some(all) => Rows::new(all, width)?,
        None => target_sample,
    };
    let copies = memorisation(target_all, other_sample, device)?;
    Ok([
        target.moments.mean_abs_difference(&other.moments),
        target.moments.std_abs_difference(&other.moments),
        frechet_distance,
        c2st_accuracy(
            target_sample,
            other_sample,
            config.metric_rows,
            config.metric_seed,
            device,
        )?,
        knn.precision,
        knn.recall,
        n as f64,
        copies.dcr_median,
        copies.ratio(),
        copies.copied_share,
    ])
}

fn row(
    set: &QualitySet,
    comparison: Comparison,
    emotion: &str,
    (target_rows, other_rows): (usize, usize),
    metrics: [f64; 10],
) -> QualityRow {
    QualityRow {
        scope: set.scope.name(),
        method: set.method.clone(),
        lambda_cls: set.lambda_cls,
        gan_seed: set.gan_seed,
        comparison,
        emotion: emotion.to_string(),
        target_rows: target_rows as u64,
        other_rows: other_rows as u64,
        mean_abs_diff: metrics[0],
        std_abs_diff: metrics[1],
        frechet_distance: metrics[2],
        c2st_accuracy: metrics[3],
        knn_precision: metrics[4],
        knn_recall: metrics[5],
        sample_rows: metrics[6] as u64,
        dcr_median: metrics[7],
        dcr_ratio: metrics[8],
        copied_share: metrics[9],
    }
}

fn group_name(group: usize) -> &'static str {
    Emotion::from_index(group).map_or("pooled", Emotion::as_str)
}

/// The target training part and the source of one scope, summarised.
struct ScopeSummaries {
    /// Per emotion, then pooled.
    target: Vec<Summary>,
    source: Rc<Summary>,
    target_norm: Normaliser,
    inputs: BTreeMap<String, String>,
}

fn tensor_values(tensor: &tch::Tensor, context: &str) -> Result<Vec<f32>, SynthError> {
    Vec::<f32>::try_from(tensor.contiguous().view([-1])).map_err(SynthError::torch(context))
}

/// The source summary of every (source, source normalisation) pair seen: every scope shares
/// the source, and its pass is the expensive one on a large corpus.
type SourceCache = Vec<((PathBuf, PathBuf), Rc<Summary>)>;

fn summarise_scope(
    set: &QualitySet,
    config: &SynthConfig,
    device: Device,
    cache: &mut SourceCache,
) -> Result<ScopeSummaries, SynthError> {
    let data = load_scope_data(&set.inputs, &set.scope)?;
    let target_norm = Normaliser::read(&set.inputs.target_normalisation)?;
    let width = target_norm.features.len();
    let target_values = data
        .data
        .targets
        .iter()
        .map(|tensor| tensor_values(tensor, "reading the target set"))
        .collect::<Result<Vec<_>, _>>()?;
    let total: usize = target_values.iter().map(|v| v.len() / width).sum();
    let mut pooled = SummaryBuilder::new(
        total,
        width,
        config.metric_rows,
        sample_seed(config, 1, 4),
        device,
        false,
    );
    let mut target = Vec::with_capacity(5);
    for (index, values) in target_values.iter().enumerate() {
        let mut builder = SummaryBuilder::new(
            values.len() / width,
            width,
            config.metric_rows,
            sample_seed(config, 1, index),
            device,
            true,
        );
        feed(&mut builder, values, config)?;
        feed(&mut pooled, values, config)?;
        pooled.absorb(&builder);
        let mut summary = builder.finish()?;
        summary.all = Some(values.clone());
        target.push(summary);
    }
    let mut pooled = pooled.finish()?;
    pooled.all = Some(target_values.concat());
    target.push(pooled);
    drop(target_values);
    let key = (
        set.inputs.source.clone(),
        set.inputs.source_normalisation.clone(),
    );
    let source = match cache.iter().find(|(have, _)| *have == key) {
        Some((_, summary)) => Rc::clone(summary),
        None => {
            let source_values = tensor_values(&data.data.source, "reading the source set")?;
            drop(data.data);
            let mut source = SummaryBuilder::new(
                source_values.len() / width,
                width,
                config.metric_rows,
                sample_seed(config, 2, 4),
                device,
                true,
            );
            feed(&mut source, &source_values, config)?;
            let summary = Rc::new(source.finish()?);
            cache.push((key, Rc::clone(&summary)));
            summary
        }
    };
    Ok(ScopeSummaries {
        target,
        source,
        target_norm,
        inputs: data.inputs,
    })
}

/// Reads `len` rows from `offset` of a synthetic set's feature columns, row-major.
fn read_feature_rows(
    path: &Path,
    names: &[String],
    offset: usize,
    len: usize,
) -> Result<Vec<f32>, SynthError> {
    let parquet_error = |source| ArtifactError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(|source| {
        SynthError::input(path, format!("cannot open the synthetic set: {source}"))
    })?;
    let frame = ParquetReader::new(file)
        .with_slice(Some((offset, len)))
        .with_columns(Some(names.to_vec()))
        .finish()
        .map_err(parquet_error)?;
    let width = names.len();
    let mut values = vec![0f32; len * width];
    for (feature, name) in names.iter().enumerate() {
        emocycle_artifact::require_column(&frame, path, name, &DataType::Float32)?;
        let column = frame
            .column(name)
            .and_then(|column| column.f32().cloned())
            .map_err(parquet_error)?;
        for (row, value) in column.iter().enumerate() {
            values[row * width + feature] = value
                .ok_or_else(|| SynthError::input(path, format!("null value in column {name:?}")))?;
        }
    }
    Ok(values)
}

/// Streams a synthetic set into per-emotion and pooled summaries, converting raw-unit sets to
/// the target's min-max space first.
fn summarise_synthetic(
    set: &QualitySet,
    target_norm: &Normaliser,
    config: &SynthConfig,
    device: Device,
) -> Result<Vec<Option<Summary>>, SynthError> {
    let path = &set.synthetic;
    let metadata = read_parquet_metadata(path)?;
    let names: Vec<String> = metadata.get_json("emocycle.features", path)?;
    if names != target_norm.features {
        return Err(SynthError::input(
            path,
            format!(
                "its features are not those of {}",
                set.inputs.target_normalisation.display()
            ),
        ));
    }
    let space = metadata.get("emocycle.feature_space").unwrap_or("");
    let space = FeatureSpace::parse(space).ok_or_else(|| {
        SynthError::input(
            path,
            format!("feature space {space:?} is neither minmax nor raw"),
        )
    })?;
    if let Some(scope) = metadata.get("emocycle.scope")
        && scope != set.scope.name()
    {
        return Err(SynthError::input(
            path,
            format!(
                "the set was made by scope {scope}, not {}",
                set.scope.name()
            ),
        ));
    }
    let emotions = read_parquet_columns(path, &["emotion"])?;
    emocycle_artifact::require_column(&emotions, path, "emotion", &DataType::String)?;
    let emotions: Vec<Emotion> = emotions
        .column("emotion")
        .and_then(|column| column.str().cloned())
        .map_err(|source| ArtifactError::Parquet {
            path: path.clone(),
            source,
        })?
        .iter()
        .map(|emotion| {
            emotion
                .unwrap_or("")
                .parse::<Emotion>()
                .map_err(|message| SynthError::input(path, message))
        })
        .collect::<Result<_, _>>()?;
    let width = names.len();
    let mut counts = [0usize; 4];
    for emotion in &emotions {
        counts[emotion.index()] += 1;
    }
    let mut builders: Vec<SummaryBuilder> = counts
        .iter()
        .enumerate()
        .map(|(index, &count)| {
            SummaryBuilder::new(
                count,
                width,
                config.metric_rows,
                sample_seed(config, 3, index),
                device,
                true,
            )
        })
        .collect();
    builders.push(SummaryBuilder::new(
        emotions.len(),
        width,
        config.metric_rows,
        sample_seed(config, 3, 4),
        device,
        false,
    ));
    // Runs of one emotion (generate_set writes one run per emotion), read a batch at a time.
    let mut start = 0;
    while start < emotions.len() {
        let emotion = emotions[start];
        let mut end = start + 1;
        while end < emotions.len() && emotions[end] == emotion && end - start < config.batch_rows {
            end += 1;
        }
        let mut values = read_feature_rows(path, &names, start, end - start)?;
        if space == FeatureSpace::Raw {
            target_norm.transform_rows(&mut values, Scaling::MinMax);
        }
        let rows = Rows::new(&values, width)?;
        builders[emotion.index()].add(rows);
        builders[4].add(rows);
        start = end;
    }
    let mut pooled = builders.pop().expect("pushed above");
    for part in &builders {
        pooled.absorb(part);
    }
    builders.push(pooled);
    // A balancing baseline leaves the largest class without synthetic rows: no statistics.
    builders
        .into_iter()
        .map(|builder| {
            if builder.slot_of.len() < 2 {
                Ok(None)
            } else {
                builder.finish().map(Some)
            }
        })
        .collect()
}

/// Measures every synthetic set against its scope's target training part (and the source
/// against the target, for reference) and writes, below `layout`'s root:
/// - `quality.parquet`: one row per set x comparison (`target-source`, `target-halves`,
///   `target-synthetic`) x emotion (`angry`..`sad`, `pooled`), columns `scope, method,
///   lambda_cls, gan_seed, comparison, emotion, target_rows, other_rows, mean_abs_diff,
///   std_abs_diff, frechet_distance, c2st_accuracy, knn_precision, knn_recall, sample_rows,
///   dcr_median, dcr_ratio, copied_share` ([`QualityRow`]);
/// - `quality.md`: the paper's Table 1 figure per scope and set beside the paper's values;
/// - `figure2.png` (pooled) and `figure2_<emotion>.png`: mean +- std of the configured
///   features for the source, the target and each set of one scope (`all` when measured,
///   else the first set's scope).
///
/// Every set is compared in the target's min-max space: the target training part scaled by
/// its own statistics, the source by the source's (as the GAN saw both), and the synthetic set
/// as generated (a raw-unit set is scaled back first). `progress` hears one line per set.
pub fn quality_report(
    sets: &[QualitySet],
    layout: &SynthLayout,
    config: &SynthConfig,
    device: Device,
    progress: &mut dyn FnMut(&str),
) -> Result<QualityReport, SynthError> {
    config.validate()?;
    let first = sets
        .first()
        .ok_or_else(|| SynthError::InvalidConfig("no synthetic set to measure".into()))?;
    let figure_scope = sets
        .iter()
        .find(|set| set.scope == Scope::All)
        .unwrap_or(first)
        .scope
        .clone();
    // Fail on a misspelt figure feature before any work is done.
    let first_names: Vec<String> =
        read_parquet_metadata(&first.synthetic)?.get_json("emocycle.features", &first.synthetic)?;
    let figure_columns = resolve_features(&config.figure_features, &first_names, &first.synthetic)?;

    let mut rows = Vec::new();
    let mut inputs = BTreeMap::new();
    let mut source_cache = SourceCache::new();
    let mut figure: Option<(Vec<FigureSeries>, Vec<Vec<FigureSeries>>)> = None;
    let mut scopes: Vec<&Scope> = Vec::new();
    for set in sets {
        if !scopes.contains(&&set.scope) {
            scopes.push(&set.scope);
        }
    }
    for scope in scopes {
        let scope_sets: Vec<&QualitySet> = sets.iter().filter(|s| &s.scope == scope).collect();
        let mut summaries = summarise_scope(scope_sets[0], config, device, &mut source_cache)?;
        // The target normalisation must be the scope's training part's.
        Normaliser::read_fitted(
            &scope_sets[0].inputs.target_normalisation,
            &scope.training_subset(),
            &summaries.target_norm.features,
        )?;
        inputs.append(&mut summaries.inputs);
        let mut reference = Vec::with_capacity(5);
        for group in 0..5 {
            reference.push(compare(
                &mut summaries.target[group],
                &summaries.source,
                config,
                device,
            )?);
        }
        let calibration = target_halves(&summaries.target, config, device)?;
        progress(&format!("{}: target against source measured", scope.name()));
        let mut synthetic_moments = Vec::new();
        for set in scope_sets {
            inputs.insert(
                set.synthetic.display().to_string(),
                sha256_file(&set.synthetic)?,
            );
            let synthetic = summarise_synthetic(set, &summaries.target_norm, config, device)?;
            for (group, metrics) in reference.iter().enumerate() {
                rows.push(row(
                    set,
                    Comparison::TargetSource,
                    group_name(group),
                    (summaries.target[group].rows, summaries.source.rows),
                    *metrics,
                ));
            }
            for (group, measured) in calibration.iter().enumerate() {
                if let Some((counts, metrics)) = measured {
                    rows.push(row(
                        set,
                        Comparison::TargetHalves,
                        group_name(group),
                        *counts,
                        *metrics,
                    ));
                }
            }
            for (group, other) in synthetic.iter().enumerate() {
                let Some(other) = other else { continue };
                let metrics = compare(&mut summaries.target[group], other, config, device)?;
                rows.push(row(
                    set,
                    Comparison::TargetSynthetic,
                    group_name(group),
                    (summaries.target[group].rows, other.rows),
                    metrics,
                ));
            }
            // Figure 2 shows the CycleGAN's sets, as the paper's does: the first generator
            // seed's, one curve per lambda_cls.
            if let (Some(lambda_cls), Some(0)) = (set.lambda_cls, set.gan_seed) {
                let moments: Option<Vec<ColumnMoments>> = synthetic
                    .into_iter()
                    .map(|s| s.map(|s| s.moments))
                    .collect();
                if let Some(moments) = moments {
                    synthetic_moments.push((lambda_cls, moments));
                }
            }
            progress(&format!(
                "{} {}: synthetic set measured",
                scope.name(),
                set_label(set.lambda_cls, set.gan_seed, &set.method)
            ));
        }
        if *scope == figure_scope {
            let series = |label: String, moments: &ColumnMoments| {
                let (means, stds) = (moments.means(), moments.stds());
                FigureSeries {
                    label,
                    means: figure_columns.iter().map(|&c| means[c]).collect(),
                    stds: figure_columns.iter().map(|&c| stds[c]).collect(),
                }
            };
            let for_group = |group: usize| {
                let mut list = vec![
                    series("source".into(), &summaries.source.moments),
                    series("target".into(), &summaries.target[group].moments),
                ];
                for (lambda_cls, moments) in &synthetic_moments {
                    list.push(series(
                        format!("synthetic lcls={lambda_cls}"),
                        &moments[group],
                    ));
                }
                list
            };
            figure = Some((for_group(4), (0..4).map(for_group).collect()));
        }
    }

    let mut outputs = Vec::new();
    let mut frame = quality_frame(&rows)?;
    let mut metadata = Metadata::for_stage("quality", crate::CODE_FINGERPRINT);
    metadata.insert_json(keys::CONFIG, &recorded_config(sets, config));
    metadata.insert_json(
        keys::SEEDS,
        &serde_json::json!({ "metric": config.metric_seed }),
    );
    metadata.insert_json(keys::INPUTS, &inputs);
    write_parquet(&layout.quality(), &mut frame, &metadata)?;
    outputs.push(layout.quality());
    write_bytes_atomic(&layout.quality_markdown(), markdown(&rows).as_bytes())?;
    outputs.push(layout.quality_markdown());

    let figure_names: Vec<String> = figure_columns
        .iter()
        .map(|&c| first_names[c].clone())
        .collect();
    if let Some((pooled, per_emotion)) = figure {
        let title = |what: &str| {
            format!(
                "Source, target and synthetic features ({what}, scope {})",
                figure_scope.name()
            )
        };
        draw_figure2(
            &layout.figure(),
            &title("mean of the four emotions"),
            &figure_names,
            &pooled,
        )?;
        outputs.push(layout.figure());
        for (emotion, series) in Emotion::ALL.into_iter().zip(&per_emotion) {
            let path = layout.figure_for(emotion);
            draw_figure2(&path, &title(emotion.as_str()), &figure_names, series)?;
            outputs.push(path);
        }
    }
    Ok(QualityReport { rows, outputs })
}

/// What `quality.parquet` records under `emocycle.config`: the settings and the list of sets
/// measured, so that a report is stale when a set is added or removed, not only when one
/// changes (the input hashes cover that).
pub fn recorded_config(sets: &[QualitySet], config: &SynthConfig) -> serde_json::Value {
    let sets: Vec<serde_json::Value> = sets
        .iter()
        .map(|set| {
            serde_json::json!({
                "scope": set.scope.name(),
                "method": set.method,
                "lambda_cls": set.lambda_cls,
                "gan_seed": set.gan_seed,
                "synthetic": set.synthetic.display().to_string(),
            })
        })
        .collect();
    serde_json::json!({ "synth": config, "sets": sets })
}

fn quality_frame(rows: &[QualityRow]) -> Result<DataFrame, SynthError> {
    fn strings<'a>(rows: &'a [QualityRow], pick: fn(&'a QualityRow) -> &'a str) -> Vec<&'a str> {
        rows.iter().map(pick).collect()
    }
    fn floats(rows: &[QualityRow], pick: fn(&QualityRow) -> f64) -> Vec<f64> {
        rows.iter().map(pick).collect()
    }
    fn counts(rows: &[QualityRow], pick: fn(&QualityRow) -> u64) -> Vec<u64> {
        rows.iter().map(pick).collect()
    }
    DataFrame::new(
        rows.len(),
        vec![
            Column::new("scope".into(), strings(rows, |r| r.scope.as_str())),
            Column::new("method".into(), strings(rows, |r| r.method.as_str())),
            Column::new(
                "lambda_cls".into(),
                rows.iter().map(|r| r.lambda_cls).collect::<Vec<_>>(),
            ),
            Column::new(
                "gan_seed".into(),
                rows.iter().map(|r| r.gan_seed).collect::<Vec<_>>(),
            ),
            Column::new(
                "comparison".into(),
                strings(rows, |r| r.comparison.as_str()),
            ),
            Column::new("emotion".into(), strings(rows, |r| r.emotion.as_str())),
            Column::new("target_rows".into(), counts(rows, |r| r.target_rows)),
            Column::new("other_rows".into(), counts(rows, |r| r.other_rows)),
            Column::new("mean_abs_diff".into(), floats(rows, |r| r.mean_abs_diff)),
            Column::new("std_abs_diff".into(), floats(rows, |r| r.std_abs_diff)),
            Column::new(
                "frechet_distance".into(),
                floats(rows, |r| r.frechet_distance),
            ),
            Column::new("c2st_accuracy".into(), floats(rows, |r| r.c2st_accuracy)),
            Column::new("knn_precision".into(), floats(rows, |r| r.knn_precision)),
            Column::new("knn_recall".into(), floats(rows, |r| r.knn_recall)),
            Column::new("sample_rows".into(), counts(rows, |r| r.sample_rows)),
            Column::new("dcr_median".into(), floats(rows, |r| r.dcr_median)),
            Column::new("dcr_ratio".into(), floats(rows, |r| r.dcr_ratio)),
            Column::new("copied_share".into(), floats(rows, |r| r.copied_share)),
        ],
    )
    .map_err(SynthError::frame("the quality table"))
}

fn paper_value(comparison: Comparison, lambda_cls: Option<f64>) -> String {
    match comparison {
        Comparison::TargetSource => format!("{PAPER_TARGET_SOURCE}"),
        Comparison::TargetHalves => "–".to_string(),
        Comparison::TargetSynthetic => PAPER_TARGET_SYNTHETIC
            .iter()
            .find(|(lambda, _)| Some(*lambda) == lambda_cls)
            .map_or("–".to_string(), |(_, value)| format!("{value}")),
    }
}

/// `lcls=<v>` for a CycleGAN set (`lcls=<v> seed <s>` for a later generator seed), the name
/// for a baseline's.
fn set_label(lambda_cls: Option<f64>, gan_seed: Option<u32>, method: &str) -> String {
    match (lambda_cls, gan_seed) {
        (None, _) => method.to_string(),
        (Some(value), None | Some(0)) => format!("lcls={value}"),
        (Some(value), Some(seed)) => format!("lcls={value} seed {seed}"),
    }
}

/// The markdown summary: per scope the target-source line once, then one line per synthetic
/// set. "MAD" is the paper's Table 1 figure, averaged over the four emotions (the paper
/// computes it per emotion and reports one number); the other columns are the pooled rows.
pub(crate) fn markdown(rows: &[QualityRow]) -> String {
    let mut text = String::from(
        "# Synthetic data quality\n\n\
         All values in the min-max space of each scope's target training part. MAD: mean over \
         features of |mean(target) - mean(other)|, averaged over the four emotions (the paper's \
         Table 1); std: the same for standard deviations; FD: Frechet distance of Gaussian fits; \
         C2ST: held-out accuracy of a target-vs-other classifier (0.5 is best); precision and \
         recall: k-NN (Kynkaanniemi et al. 2019); DCR: median distance of the other set's rows \
         to the closest target row, over the target rows' own median distance to their closest \
         other target row (about 1 for rows as new as real ones, near 0 for copies); copies: \
         the share of rows within 1% of that scale of a target row. FD, C2ST, precision, \
         recall, DCR and copies are pooled over emotions. The reference row compares two halves \
         of the target's training part (each emotion split in two by a seeded shuffle): what a \
         generator that samples the target's own distribution would score, with half the \
         rows.\n\n\
         | scope | comparison | MAD | MAD pooled | std | FD | C2ST | precision | recall | DCR | copies | paper MAD |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut seen_reference: Vec<String> = Vec::new();
    type Key = (String, String, Option<f64>, Option<u32>, Comparison);
    let mut keys: Vec<Key> = Vec::new();
    for row in rows {
        let key = (
            row.scope.clone(),
            row.method.clone(),
            row.lambda_cls,
            row.gan_seed,
            row.comparison,
        );
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    for (scope, method, lambda_cls, gan_seed, comparison) in keys {
        if comparison != Comparison::TargetSynthetic {
            let once = format!("{scope} {}", comparison.as_str());
            if seen_reference.contains(&once) {
                continue;
            }
            seen_reference.push(once);
        }
        let group: Vec<&QualityRow> = rows
            .iter()
            .filter(|r| {
                r.scope == scope
                    && r.method == method
                    && r.lambda_cls == lambda_cls
                    && r.gan_seed == gan_seed
                    && r.comparison == comparison
            })
            .collect();
        let per_emotion: Vec<f64> = group
            .iter()
            .filter(|r| r.emotion != "pooled")
            .map(|r| r.mean_abs_diff)
            .collect();
        let mad = per_emotion.iter().sum::<f64>() / per_emotion.len().max(1) as f64;
        let Some(pooled) = group.iter().find(|r| r.emotion == "pooled") else {
            continue;
        };
        let label = match comparison {
            Comparison::TargetSource => "\\|target - source\\|".to_string(),
            Comparison::TargetHalves => "\\|half - half\\| (reference)".to_string(),
            Comparison::TargetSynthetic => {
                format!(
                    "\\|target - syn({})\\|",
                    set_label(lambda_cls, gan_seed, &method)
                )
            }
        };
        text.push_str(&format!(
            "| {scope} | {label} | {mad:.3} | {:.3} | {:.3} | {:.2} | {:.3} | {:.3} | {:.3} | {:.2} | {:.2} | {} |\n",
            pooled.mean_abs_diff,
            pooled.std_abs_diff,
            pooled.frechet_distance,
            pooled.c2st_accuracy,
            pooled.knn_precision,
            pooled.knn_recall,
            pooled.dcr_ratio,
            pooled.copied_share,
            paper_value(comparison, lambda_cls),
        ));
    }
    text
}
