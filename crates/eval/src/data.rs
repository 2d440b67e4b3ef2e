//! Reading the evaluation's inputs and refusing any that would leak a test session.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use emocycle_artifact::{read_parquet, read_parquet_columns};
use emocycle_features::{Emotion, FeatureMatrix, Fold, Normaliser, RunningStats, Scaling};
use polars::prelude::{DataFrame, DataType};
use serde::Deserialize;

use crate::classifier::Dataset;
use crate::error::{EvalError, Result};
use crate::source::SyntheticSource;

/// A function from (scope name, synthetic source) to a path: the synthetic set of a scope.
pub type ScopePath = Box<dyn Fn(&str, &SyntheticSource) -> PathBuf + Send + Sync>;

/// A function from a scope name to a path, e.g. the min-max statistics a scope's synthetic
/// vectors are expressed in.
pub type ScopeNormalisation = Box<dyn Fn(&str) -> PathBuf + Send + Sync>;

/// The cross-corpus test set (MSP-IMPROV's role).
#[derive(Debug, Clone)]
pub struct CrossCorpusInputs {
    /// `features/<corpus>.parquet`.
    pub features: PathBuf,
    /// `features/<corpus>.split.parquet` (`utterance_id, emotion, split`).
    pub split: PathBuf,
}

/// Every file the evaluation reads, and where it writes.
pub struct EvalInputs {
    /// The labelled corpus, `features/<target>.parquet`.
    pub target: PathBuf,
    /// Its leave-one-session-out folds, `features/<target>.folds.parquet` (only read when the
    /// within-corpus experiment runs).
    pub target_folds: PathBuf,
    /// The cross-corpus set; `None` skips the cross-corpus experiment.
    pub cross_corpus: Option<CrossCorpusInputs>,
    /// The synthetic set of a scope (`fold<k>` or `all`) and source.
    pub synthetic: ScopePath,
    /// When the synthetic vectors are in the target's min-max space (the GAN's space), the
    /// min-max statistics of each scope (`norm/<target>.fold<k>-train.parquet` or
    /// `norm/<target>.all.parquet`): the vectors are mapped back to feature units before any
    /// z-normalisation. Under `per-dataset` z-normalisation this changes nothing (a per-feature
    /// affine map disappears in the z-score); under `train-statistics` it puts real and
    /// synthetic rows on one scale. `None`: use the values as stored.
    pub synthetic_minmax: Option<ScopeNormalisation>,
    /// A run's `gan/` directory: where present, `<scope>/lambda_cls-<v>/manifest.json` is
    /// checked against the fold the synthetic set is used for.
    pub gan_root: Option<PathBuf>,
    /// Where `results.parquet`, `tables.md` and the confusion PNGs go (a run's `eval/`).
    pub output_dir: PathBuf,
    /// Reuse the results of the previous `results.parquet` whose run key matches (default);
    /// `false` trains every classifier again.
    pub reuse: bool,
}

impl EvalInputs {
    /// The conventional layout of a pipeline run directory: `features/<target>.parquet`,
    /// `features/<target>.folds.parquet`, `features/<cross>.parquet` and `.split.parquet`,
    /// `synth/<scope>/<lambda_cls-<v> or baseline>/synthetic.parquet`, `gan/`, and `eval/` for
    /// the outputs.
    /// `synthetic_minmax` is left `None`; set it when the synthetic sets are in min-max space.
    pub fn for_run(run_dir: &Path, target: &str, cross_corpus: Option<&str>) -> Self {
        let features = run_dir.join("features");
        let synth = run_dir.join("synth");
        Self {
            target: features.join(format!("{target}.parquet")),
            target_folds: features.join(format!("{target}.folds.parquet")),
            cross_corpus: cross_corpus.map(|name| CrossCorpusInputs {
                features: features.join(format!("{name}.parquet")),
                split: features.join(format!("{name}.split.parquet")),
            }),
            synthetic: Box::new(move |scope, source| synthetic_path(&synth, scope, source)),
            synthetic_minmax: None,
            gan_root: Some(run_dir.join("gan")),
            output_dir: run_dir.join("eval"),
            reuse: true,
        }
    }
}

pub use emocycle_config::layout::synthetic_path;

fn strings(frame: &DataFrame, path: &Path, column: &str) -> Result<Vec<Option<String>>> {
    emocycle_artifact::require_column(frame, path, column, &DataType::String)?;
    let values = frame
        .column(column)
        .and_then(|c| {
            c.str()
                .map(|v| v.iter().map(|s| s.map(str::to_string)).collect())
        })
        .map_err(|source| EvalError::Artifact(parquet_error(path, source)))?;
    Ok(values)
}

fn parquet_error(
    path: &Path,
    source: polars::error::PolarsError,
) -> emocycle_artifact::ArtifactError {
    emocycle_artifact::ArtifactError::Parquet {
        path: path.to_path_buf(),
        source,
    }
}

/// The labelled rows of a feature matrix as class labels; a missing label is an error.
fn labels(matrix: &FeatureMatrix) -> Result<Vec<Emotion>> {
    matrix
        .emotions
        .iter()
        .enumerate()
        .map(|(row, emotion)| {
            emotion.ok_or_else(|| {
                EvalError::input(
                    &matrix.path,
                    format!(
                        "row {} ({:?}) has no emotion",
                        row + 1,
                        matrix.ids.get(row).map_or("", String::as_str)
                    ),
                )
            })
        })
        .collect()
}

/// Raw (not yet z-normalised) rows with labels.
#[derive(Debug, Clone)]
pub(crate) struct RawSet {
    pub names: Vec<String>,
    pub values: Vec<f32>,
    pub labels: Vec<Emotion>,
    /// Sessions, for the disjointness check (synthetic sets have none).
    pub sessions: Vec<Option<String>>,
}

impl RawSet {
    fn from_matrix(matrix: FeatureMatrix) -> Result<Self> {
        let labels = labels(&matrix)?;
        Ok(Self {
            names: matrix.names,
            values: matrix.values,
            labels,
            sessions: matrix.sessions,
        })
    }

    pub(crate) fn rows(&self) -> usize {
        self.labels.len()
    }

    pub(crate) fn width(&self) -> usize {
        self.names.len()
    }

    fn select(&self, keep: &[bool]) -> Self {
        let width = self.width();
        let mut out = Self {
            names: self.names.clone(),
            values: Vec::new(),
            labels: Vec::new(),
            sessions: Vec::new(),
        };
        for (row, _) in keep.iter().enumerate().filter(|(_, keep)| **keep) {
            out.values
                .extend_from_slice(&self.values[row * width..(row + 1) * width]);
            out.labels.push(self.labels[row]);
            out.sessions.push(self.sessions[row].clone());
        }
        out
    }

    /// Per-feature running statistics (for pooling several sets' statistics).
    fn stats(&self) -> Vec<RunningStats> {
        let width = self.width();
        let mut stats = vec![RunningStats::default(); width];
        for row in self.values.chunks_exact(width.max(1)) {
            for (stat, &value) in stats.iter_mut().zip(row) {
                stat.push(f64::from(value));
            }
        }
        stats
    }

    /// z-scored with `normaliser`.
    pub(crate) fn scaled(&self, normaliser: &Normaliser) -> Arc<Dataset> {
        let mut values = self.values.clone();
        normaliser.transform_rows(&mut values, Scaling::ZScore);
        Arc::new(Dataset {
            width: self.width(),
            values,
            labels: self.labels.clone(),
        })
    }

    /// z-scored on its own statistics (population std, constant features guarded).
    pub(crate) fn scaled_on_itself(&self) -> Arc<Dataset> {
        self.scaled(&Normaliser::fit_rows(self.names.clone(), &self.values))
    }

    /// [`RawSet::scaled_on_itself`] in place, for a set needed only scaled: a synthetic set
    /// can be gigabytes, and this avoids holding a raw and a scaled copy at once.
    pub(crate) fn into_scaled_on_itself(self) -> Arc<Dataset> {
        let normaliser = Normaliser::fit_rows(self.names.clone(), &self.values);
        let width = self.width();
        let mut values = self.values;
        normaliser.transform_rows(&mut values, Scaling::ZScore);
        Arc::new(Dataset {
            width,
            values,
            labels: self.labels,
        })
    }
}

/// Statistics pooled over several sets (the training set of real+syn under
/// `train-statistics`).
pub(crate) fn pooled_normaliser(sets: &[&RawSet]) -> Normaliser {
    let names = sets.first().map(|s| s.names.clone()).unwrap_or_default();
    let mut pooled = vec![RunningStats::default(); names.len()];
    for set in sets {
        for (total, part) in pooled.iter_mut().zip(set.stats()) {
            *total = total.merge(&part);
        }
    }
    Normaliser::from_stats(names, &pooled)
}

/// The labelled corpus and its utterance ids.
pub(crate) fn read_target(path: &Path) -> Result<(RawSet, Vec<String>)> {
    let matrix = FeatureMatrix::read(path)?;
    let ids = matrix.ids.clone();
    Ok((RawSet::from_matrix(matrix)?, ids))
}

/// One fold's training and test rows, checked disjoint by session.
pub(crate) struct FoldData {
    pub fold: Fold,
    pub train: RawSet,
    pub test: RawSet,
}

#[derive(Debug, Clone)]
struct FoldRow {
    session: Option<String>,
    fold: u32,
}

fn read_fold_file(path: &Path) -> Result<(Vec<Fold>, HashMap<String, FoldRow>)> {
    let (frame, metadata) = read_parquet(path)?;
    let folds: Vec<Fold> = metadata.get_json("emocycle.folds", path)?;
    let ids = strings(&frame, path, "utterance_id")?;
    let sessions = strings(&frame, path, "session")?;
    emocycle_artifact::require_column(&frame, path, "fold", &DataType::UInt32)?;
    let numbers: Vec<Option<u32>> = frame
        .column("fold")
        .and_then(|c| c.u32().map(|v| v.iter().collect()))
        .map_err(|source| EvalError::Artifact(parquet_error(path, source)))?;
    let mut rows = HashMap::with_capacity(ids.len());
    for (index, ((id, session), fold)) in ids.into_iter().zip(sessions).zip(numbers).enumerate() {
        let (Some(id), Some(fold)) = (id, fold) else {
            return Err(EvalError::input(
                path,
                format!("row {}: null utterance_id or fold", index + 1),
            ));
        };
        if rows.insert(id.clone(), FoldRow { session, fold }).is_some() {
            return Err(EvalError::input(
                path,
                format!("utterance {id:?} is listed twice"),
            ));
        }
    }
    Ok((folds, rows))
}

/// Splits the labelled corpus into its leave-one-session-out folds.
///
/// The fold file says which rows are tested in which fold; the sessions come from the corpus
/// file itself. A fold whose training and test rows share a session, or whose training rows
/// contain its test session, is a leakage error: the check runs on every fold, in release
/// builds too.
pub(crate) fn split_folds(
    target: &RawSet,
    target_path: &Path,
    ids: &[String],
    folds_path: &Path,
) -> Result<Vec<FoldData>> {
    let (folds, rows) = read_fold_file(folds_path)?;
    if folds.is_empty() {
        return Err(EvalError::input(folds_path, "the footer lists no folds"));
    }
    let mut fold_of_row = Vec::with_capacity(ids.len());
    for (row, id) in ids.iter().enumerate() {
        let entry = rows.get(id).ok_or_else(|| {
            EvalError::input(
                folds_path,
                format!("utterance {id:?} of {} has no fold", target_path.display()),
            )
        })?;
        if entry.session.is_some() && entry.session != target.sessions[row] {
            return Err(EvalError::input(
                folds_path,
                format!(
                    "utterance {id:?}: session {:?} here but {:?} in {}",
                    entry.session,
                    target.sessions[row],
                    target_path.display()
                ),
            ));
        }
        fold_of_row.push(entry.fold);
    }
    folds
        .into_iter()
        .map(|fold| {
            let is_test: Vec<bool> = fold_of_row
                .iter()
                .map(|&number| number as usize == fold.number)
                .collect();
            let is_train: Vec<bool> = is_test.iter().map(|test| !test).collect();
            let test = target.select(&is_test);
            let train = target.select(&is_train);
            check_disjoint(&fold, &train, &test, folds_path)?;
            Ok(FoldData { fold, train, test })
        })
        .collect()
}

/// The sessions of a fold's training and test rows never meet, and the held-out session is
/// not among the training sessions. Rows without a session cannot be checked: an error.
pub(crate) fn check_disjoint(
    fold: &Fold,
    train: &RawSet,
    test: &RawSet,
    path: &Path,
) -> Result<()> {
    let sessions = |set: &RawSet| -> Result<BTreeSet<String>> {
        set.sessions
            .iter()
            .map(|session| {
                session.clone().ok_or_else(|| {
                    EvalError::input(
                        path,
                        "a row has no session: fold disjointness cannot be checked",
                    )
                })
            })
            .collect()
    };
    let train_sessions = sessions(train)?;
    let test_sessions = sessions(test)?;
    if test.rows() == 0 {
        return Err(EvalError::input(
            path,
            format!("fold {} has no test rows", fold.number),
        ));
    }
    let shared: Vec<&String> = train_sessions.intersection(&test_sessions).collect();
    if !shared.is_empty() {
        return Err(EvalError::leakage(
            path,
            format!(
                "fold {}: session(s) {shared:?} are in both the training and the test rows",
                fold.number
            ),
        ));
    }
    if train_sessions.contains(&fold.test_session) {
        return Err(EvalError::leakage(
            path,
            format!(
                "fold {}: its test session {:?} is among the training rows",
                fold.number, fold.test_session
            ),
        ));
    }
    Ok(())
}

/// The cross-corpus set, split into its test and dev parts by the split file.
pub(crate) struct CrossData {
    /// The whole set (for per-dataset statistics).
    pub all: RawSet,
    /// `true` where the split file says `test`.
    pub is_test: Vec<bool>,
}

pub(crate) fn read_cross(inputs: &CrossCorpusInputs) -> Result<CrossData> {
    let matrix = FeatureMatrix::read(&inputs.features)?;
    let (frame, _) = read_parquet(&inputs.split)?;
    let ids = strings(&frame, &inputs.split, "utterance_id")?;
    let emotions = strings(&frame, &inputs.split, "emotion")?;
    let parts = strings(&frame, &inputs.split, "split")?;
    let mut split_of: HashMap<String, (Option<String>, String)> = HashMap::new();
    for (index, ((id, emotion), part)) in ids.into_iter().zip(emotions).zip(parts).enumerate() {
        let (Some(id), Some(part)) = (id, part) else {
            return Err(EvalError::input(
                &inputs.split,
                format!("row {}: null utterance_id or split", index + 1),
            ));
        };
        if part != "dev" && part != "test" {
            return Err(EvalError::input(
                &inputs.split,
                format!("row {}: split {part:?} is neither dev nor test", index + 1),
            ));
        }
        split_of.insert(id, (emotion, part));
    }
    let mut is_test = Vec::with_capacity(matrix.rows());
    for (row, id) in matrix.ids.iter().enumerate() {
        let (emotion, part) = split_of.get(id).ok_or_else(|| {
            EvalError::input(
                &inputs.split,
                format!(
                    "utterance {id:?} of {} is in neither dev nor test",
                    inputs.features.display()
                ),
            )
        })?;
        let own = matrix.emotions[row].map(|e| e.as_str());
        if emotion.as_deref() != own {
            return Err(EvalError::input(
                &inputs.split,
                format!(
                    "utterance {id:?}: emotion {emotion:?} here but {own:?} in {}",
                    inputs.features.display()
                ),
            ));
        }
        is_test.push(part == "test");
    }
    Ok(CrossData {
        all: RawSet::from_matrix(matrix)?,
        is_test,
    })
}

impl CrossData {
    /// (test, dev) parts of a scaled copy of the whole set.
    pub(crate) fn parts(&self, scaled: &Dataset) -> (Arc<Dataset>, Arc<Dataset>) {
        let width = scaled.width;
        let pick = |want_test: bool| {
            let mut out = Dataset {
                width,
                values: Vec::new(),
                labels: Vec::new(),
            };
            for (row, &test) in self.is_test.iter().enumerate() {
                if test == want_test {
                    out.values
                        .extend_from_slice(&scaled.values[row * width..(row + 1) * width]);
                    out.labels.push(scaled.labels[row]);
                }
            }
            Arc::new(out)
        };
        (pick(true), pick(false))
    }
}

/// `<gan_root>/<scope>/lambda_cls-<v>[-seed-<s>]/manifest.json`: the GAN stage's directory
/// of the run that made a CycleGAN set (named as the set's own directory).
pub(crate) fn gan_manifest_path(
    gan_root: &Path,
    scope: &str,
    lambda_cls: f64,
    gan_seed: u32,
) -> PathBuf {
    gan_root
        .join(scope)
        .join(emocycle_config::layout::cyclegan_dir(lambda_cls, gan_seed))
        .join("manifest.json")
}

/// The part of a GAN manifest the leakage check needs.
#[derive(Debug, Deserialize)]
struct GanManifest {
    scope: String,
    held_out_session: Option<String>,
}

/// Reads one synthetic set, refusing it unless it comes from `scope` (the `fold` column) and
/// `source` (the `lambda_cls` column of a CycleGAN set, the `method` column of a baseline's),
/// has the real corpus's features, and its model held out exactly `held_out` (a fold's test
/// session; `None` for scope `all`): checked against the GAN manifest where it exists, and
/// against a baseline set's footer `emocycle.held_out_session`.
pub(crate) fn read_synthetic(
    inputs: &EvalInputs,
    scope: &str,
    source: &SyntheticSource,
    held_out: Option<&str>,
    names: &[String],
) -> Result<RawSet> {
    let path = (inputs.synthetic)(scope, source);
    let provenance = match source {
        SyntheticSource::CycleGan {
            lambda_cls,
            gan_seed,
        } => {
            if let Some(gan_root) = &inputs.gan_root {
                let manifest_path = gan_manifest_path(gan_root, scope, *lambda_cls, *gan_seed);
                if manifest_path.is_file() {
                    check_manifest(&manifest_path, scope, held_out)?;
                }
            }
            "lambda_cls"
        }
        SyntheticSource::Baseline { .. } => {
            let metadata = emocycle_artifact::read_parquet_metadata(&path)?;
            let recorded = metadata.get("emocycle.held_out_session");
            if recorded != held_out {
                return Err(EvalError::leakage(
                    &path,
                    format!(
                        "the set was made without session {recorded:?}, this use needs \
                         {held_out:?} held out"
                    ),
                ));
            }
            "method"
        }
    };
    // Only the two provenance columns: the feature columns are read once, below.
    let frame = read_parquet_columns(&path, &["fold", provenance])?;
    let scopes = strings(&frame, &path, "fold")?;
    if let Some((row, found)) = scopes
        .iter()
        .enumerate()
        .find(|(_, found)| found.as_deref() != Some(scope))
    {
        return Err(EvalError::leakage(
            &path,
            format!(
                "row {} comes from scope {found:?}, but this use needs scope {scope:?}",
                row + 1
            ),
        ));
    }
    match source {
        SyntheticSource::CycleGan { lambda_cls, .. } => {
            check_lambda_column(&frame, &path, *lambda_cls)?
        }
        SyntheticSource::Baseline { name } => {
            let methods = strings(&frame, &path, "method")?;
            if let Some((row, found)) = methods
                .iter()
                .enumerate()
                .find(|(_, found)| found.as_deref() != Some(name.as_str()))
            {
                return Err(EvalError::input(
                    &path,
                    format!(
                        "row {}: method {found:?}, but this use needs {name:?}",
                        row + 1
                    ),
                ));
            }
        }
    }
    drop(frame);
    let matrix = FeatureMatrix::read(&path)?;
    if matrix.names != names {
        return Err(EvalError::input(
            &path,
            "the feature columns are not the labelled corpus's features",
        ));
    }
    let mut set = RawSet::from_matrix(matrix)?;
    if let Some(minmax) = &inputs.synthetic_minmax {
        let norm_path = minmax(scope);
        let normaliser = Normaliser::read(&norm_path)?;
        if normaliser.features != names {
            return Err(EvalError::input(
                &norm_path,
                "the normalisation's features are not the labelled corpus's features",
            ));
        }
        normaliser.inverse_rows(&mut set.values, Scaling::MinMax);
    }
    Ok(set)
}

fn check_manifest(path: &Path, scope: &str, held_out: Option<&str>) -> Result<()> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let manifest: GanManifest = serde_json::from_str(&text)
        .map_err(|error| EvalError::input(path, format!("not a GAN manifest: {error}")))?;
    if manifest.scope != scope {
        return Err(EvalError::leakage(
            path,
            format!(
                "the GAN's scope is {:?}, this use needs {scope:?}",
                manifest.scope
            ),
        ));
    }
    if manifest.held_out_session.as_deref() != held_out {
        return Err(EvalError::leakage(
            path,
            format!(
                "the GAN held out session {:?}, this use needs {held_out:?}",
                manifest.held_out_session
            ),
        ));
    }
    Ok(())
}

fn check_lambda_column(frame: &DataFrame, path: &Path, lambda_cls: f64) -> Result<()> {
    let Ok(column) = frame.column("lambda_cls") else {
        return Err(EvalError::input(path, "column \"lambda_cls\" is missing"));
    };
    let values: Vec<Option<f64>> = match column.dtype() {
        DataType::Float64 | DataType::Float32 => column
            .cast(&DataType::Float64)
            .and_then(|c| c.f64().map(|v| v.iter().collect()))
            .map_err(|source| EvalError::Artifact(parquet_error(path, source)))?,
        DataType::String => strings(frame, path, "lambda_cls")?
            .into_iter()
            .map(|text| text.and_then(|t| t.parse().ok()))
            .collect(),
        other => {
            return Err(EvalError::input(
                path,
                format!("column \"lambda_cls\" has type {other}, expected a float"),
            ));
        }
    };
    if let Some((row, found)) = values
        .iter()
        .enumerate()
        .find(|(_, value)| **value != Some(lambda_cls))
    {
        return Err(EvalError::input(
            path,
            format!(
                "row {}: lambda_cls {found:?}, but this use needs {lambda_cls}",
                row + 1
            ),
        ));
    }
    Ok(())
}
