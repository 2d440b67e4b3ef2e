//! The feature stage: every corpus of a pipeline from openSMILE files and label manifests to
//! parquet, with folds, splits and normalisation statistics.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use emocycle_artifact::{Metadata, ParquetCompression, ParquetStream, keys, write_parquet};
use emocycle_config::layout::Scope;
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::column_stats::{column_pair_stats, column_stats};
use crate::emotion::{Emotion, LabelMap};
use crate::error::{FeatureError, FeatureMismatch, Result};
use crate::folds::{Fold, Part, leave_one_session_out, stratified_split};
use crate::manifest::{Manifest, read_manifest};
use crate::normalise::{Normaliser, RunningStats};
use crate::reader::{
    ColumnChunk, FeatureReader, Layout, NanPolicy, ReadOptions, UtteranceIds, read_header,
};

/// How a corpus is cut into folds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FoldScheme {
    /// No folds.
    #[default]
    None,
    /// One fold per session: that session is the test part, the others the training part.
    LeaveOneSessionOut,
}

/// A seeded, per-class stratified dev/test split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitSpec {
    /// Fraction of each class that goes to dev (the paper: 0.3).
    #[serde(default = "default_dev_fraction")]
    pub dev_fraction: f64,
    /// Seed of the shuffle.
    #[serde(default)]
    pub seed: u64,
}

fn default_dev_fraction() -> f64 {
    0.3
}

fn default_label_map() -> LabelMap {
    LabelMap::Names
}

/// One corpus of a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpusSpec {
    /// Short name, used in file names and the `corpus` column (letters, digits, `_`, `-`).
    pub name: String,
    /// The openSMILE feature file (any supported layout, optionally gzip-compressed).
    pub features: PathBuf,
    /// The label manifest; absent for an unlabelled corpus.
    #[serde(default)]
    pub labels: Option<PathBuf>,
    /// How the manifest's (or ARFF class's) codes map to the four emotions.
    #[serde(default = "default_label_map")]
    pub label_map: LabelMap,
    /// For header-less files: a text file with one feature name per line.
    #[serde(default)]
    pub feature_names: Option<PathBuf>,
    /// Fold scheme.
    #[serde(default)]
    pub folds: FoldScheme,
    /// Dev/test split, for a cross-corpus test set.
    #[serde(default)]
    pub split: Option<SplitSpec>,
    /// What to do with NaN, infinite or missing values.
    #[serde(default)]
    pub nan_policy: NanPolicy,
    /// The utterance ids of an opensmile-python CSV: `stem` (default: the audio file's name
    /// without directories and extension), `path` (the `file` column as written) or `segment`
    /// (the stem and the segment's start and end). Other layouts' ids are used as written.
    #[serde(default)]
    pub utterance_ids: UtteranceIds,
}

impl CorpusSpec {
    /// Resolves relative paths against `base` (the pipeline file's directory).
    pub fn resolved(&self, base: &Path) -> Self {
        let resolve = |path: &PathBuf| {
            if path.is_absolute() {
                path.clone()
            } else {
                base.join(path)
            }
        };
        Self {
            features: resolve(&self.features),
            labels: self.labels.as_ref().map(resolve),
            feature_names: self.feature_names.as_ref().map(resolve),
            ..self.clone()
        }
    }

    /// Checks what can be checked without reading the data.
    pub fn validate(&self) -> Result<()> {
        let config = |message: String| {
            Err(FeatureError::Config(format!(
                "corpus {:?}: {message}",
                self.name
            )))
        };
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return config("the name must be non-empty letters, digits, '_' or '-'".to_string());
        }
        for (key, path) in [
            ("features", Some(&self.features)),
            ("feature_names", self.feature_names.as_ref()),
        ] {
            if let Some(path) = path
                && !path.is_file()
            {
                return config(format!("{key}: no such file: {}", path.display()));
            }
        }
        // Labels may also be a directory of IEMOCAP's own label files.
        if let Some(path) = &self.labels
            && !path.exists()
        {
            return config(format!(
                "labels: no such file or directory: {}",
                path.display()
            ));
        }
        if let Some(split) = &self.split
            && !(split.dev_fraction > 0.0 && split.dev_fraction < 1.0)
        {
            return config(format!(
                "split.dev_fraction must be between 0 and 1, got {}",
                split.dev_fraction
            ));
        }
        if (self.folds != FoldScheme::None || self.split.is_some()) && self.labels.is_none() {
            return config("folds and splits need a label manifest (labels)".to_string());
        }
        Ok(())
    }
}

/// The feature stage's configuration: the corpora, all of which must share one feature set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeaturesConfig {
    /// The corpora; the first is the reference for the feature-set check.
    pub corpora: Vec<CorpusSpec>,
}

impl FeaturesConfig {
    /// Resolves relative paths against `base` (the pipeline file's directory).
    pub fn resolved(&self, base: &Path) -> Self {
        Self {
            corpora: self
                .corpora
                .iter()
                .map(|corpus| corpus.resolved(base))
                .collect(),
        }
    }

    /// Checks names, files and values without reading the data.
    pub fn validate(&self) -> Result<()> {
        if self.corpora.is_empty() {
            return Err(FeatureError::Config("no corpora configured".to_string()));
        }
        let mut seen = std::collections::HashSet::new();
        for corpus in &self.corpora {
            corpus.validate()?;
            if !seen.insert(&corpus.name) {
                return Err(FeatureError::Config(format!(
                    "corpus name {:?} is used twice",
                    corpus.name
                )));
            }
        }
        Ok(())
    }

    /// The corpus called `name`.
    pub fn corpus(&self, name: &str) -> Option<&CorpusSpec> {
        self.corpora.iter().find(|corpus| corpus.name == name)
    }
}

/// Where the feature stage puts its outputs, below one directory.
#[derive(Debug, Clone)]
pub struct FeatureLayout {
    root: PathBuf,
}

impl FeatureLayout {
    /// Outputs below `root` (a pipeline run's `features/` directory).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// `<corpus>.parquet`: one row per utterance.
    pub fn corpus(&self, corpus: &str) -> PathBuf {
        self.root.join(format!("{corpus}.parquet"))
    }

    /// `<corpus>.folds.parquet`: `utterance_id, session, fold`.
    pub fn folds(&self, corpus: &str) -> PathBuf {
        self.root.join(format!("{corpus}.folds.parquet"))
    }

    /// `<corpus>.split.parquet`: `utterance_id, emotion, split`.
    pub fn split(&self, corpus: &str) -> PathBuf {
        self.root.join(format!("{corpus}.split.parquet"))
    }

    /// `norm/<corpus>.<subset>.parquet`; subsets: `all`, `fold<k>-train`.
    pub fn normalisation(&self, corpus: &str, subset: &str) -> PathBuf {
        self.root
            .join("norm")
            .join(format!("{corpus}.{subset}.parquet"))
    }
}

/// What happened to one corpus.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CorpusReport {
    /// Corpus name.
    pub name: String,
    /// Layout the feature file was read as.
    pub layout: Option<Layout>,
    /// Utterances written.
    pub rows: usize,
    /// Features per utterance.
    pub width: usize,
    /// Utterances per emotion (labelled corpora).
    pub class_counts: BTreeMap<String, usize>,
    /// Utterances dropped because their code is outside the four classes, per code.
    pub dropped_out_of_scope: BTreeMap<String, usize>,
    /// Utterances in the feature file that the manifest does not list (dropped).
    pub features_without_labels: usize,
    /// Manifest rows with no utterance in the feature file.
    pub labels_without_features: usize,
    /// Utterances dropped by the `drop-row` NaN policy.
    pub dropped_non_finite: usize,
    /// Folds made.
    pub folds: Vec<Fold>,
    /// Files written.
    pub outputs: Vec<PathBuf>,
}

/// Per-row metadata of a corpus after the join with its labels.
#[derive(Debug, Default)]
struct RowLabels {
    emotion: Vec<Option<Emotion>>,
    session: Vec<Option<String>>,
    speaker: Vec<Option<String>>,
    extras: Vec<Vec<String>>,
}

/// Runs the feature stage: checks every corpus's header against the first, then reads, labels,
/// folds, normalises and writes each corpus. Returns one report per corpus.
pub fn run_features(
    config: &FeaturesConfig,
    layout: &FeatureLayout,
    chunk_rows: usize,
) -> Result<Vec<CorpusReport>> {
    check_corpora(config)?;
    config
        .corpora
        .iter()
        .map(|corpus| ingest_corpus(corpus, layout, chunk_rows))
        .collect()
}

/// Validates the configuration and checks that every corpus has the first one's feature list,
/// reading only the files' headers, so a mismatch is found before anything is written.
pub fn check_corpora(config: &FeaturesConfig) -> Result<()> {
    config.validate()?;
    let mut reference: Option<(PathBuf, Vec<String>)> = None;
    for corpus in &config.corpora {
        let (_, names) = read_header(&corpus.features, &read_options(corpus, 1)?)?;
        match &reference {
            None => reference = Some((corpus.features.clone(), names)),
            Some((reference_path, reference_names)) => {
                check_same_features(&corpus.features, &names, reference_path, reference_names)?
            }
        }
    }
    Ok(())
}

fn read_options(corpus: &CorpusSpec, chunk_rows: usize) -> Result<ReadOptions> {
    let feature_names = match &corpus.feature_names {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|source| FeatureError::io(path, source))?;
            Some(
                text.lines()
                    .map(str::trim)
                    .filter(|line| !line.is_empty())
                    .map(str::to_string)
                    .collect(),
            )
        }
        None => None,
    };
    Ok(ReadOptions {
        feature_names,
        nan_policy: corpus.nan_policy,
        chunk_rows,
        utterance_ids: corpus.utterance_ids,
        ..ReadOptions::default()
    })
}

/// The openSMILE feature set a list of functional names is, by its length and a name only that
/// set has: `emobase2010`, `IS10`, `IS09`, `emobase`, `eGeMAPS`, `GeMAPS` or `ComParE`; `None`
/// for anything else (a set of one's own, or LLDs).
pub fn feature_set_of(names: &[String]) -> Option<&'static str> {
    let has = |name: &str| names.iter().any(|n| n == name);
    match names.len() {
        1582 if has("pcm_fftMag_mfcc_sma[0]_amean") => Some("emobase2010"),
        1582 if has("mfcc_sma[0]_amean") => Some("IS10"),
        384 if has("pcm_RMSenergy_sma_max") => Some("IS09"),
        988 if has("pcm_intensity_sma_max") => Some("emobase"),
        88 if has("F0semitoneFrom27.5Hz_sma3nz_amean") => Some("eGeMAPS"),
        62 if has("F0semitoneFrom27.5Hz_sma3nz_amean") => Some("GeMAPS"),
        6373 if has("audspec_lengthL1norm_sma_range") => Some("ComParE"),
        _ => None,
    }
}

/// Fails with the first differing feature when two files' feature lists differ.
pub fn check_same_features(
    path: &Path,
    names: &[String],
    reference: &Path,
    reference_names: &[String],
) -> Result<()> {
    if names == reference_names {
        return Ok(());
    }
    let index = names
        .iter()
        .zip(reference_names)
        .position(|(ours, theirs)| ours != theirs)
        .unwrap_or(names.len().min(reference_names.len()));
    Err(FeatureError::IncompatibleFeatures(Box::new(
        FeatureMismatch {
            path: path.to_path_buf(),
            reference: reference.to_path_buf(),
            index,
            ours: names.get(index).cloned().unwrap_or_default(),
            theirs: reference_names.get(index).cloned().unwrap_or_default(),
            widths: (names.len(), reference_names.len()),
            sets: (feature_set_of(names), feature_set_of(reference_names)),
        },
    )))
}

/// Reads, labels, folds, normalises and writes one corpus.
pub fn ingest_corpus(
    corpus: &CorpusSpec,
    layout: &FeatureLayout,
    chunk_rows: usize,
) -> Result<CorpusReport> {
    corpus.validate()?;
    let manifest = corpus
        .labels
        .as_ref()
        .map(|path| read_manifest(path, &corpus.label_map))
        .transpose()?;
    let reader = FeatureReader::open(&corpus.features, &read_options(corpus, chunk_rows)?)?;
    let file_layout = reader.layout();
    let names = reader.names().to_vec();
    let mut report = CorpusReport {
        name: corpus.name.clone(),
        layout: Some(file_layout),
        width: names.len(),
        ..CorpusReport::default()
    };
    let extra_columns = manifest
        .as_ref()
        .map(|m| m.extra_columns.clone())
        .unwrap_or_default();
    for extra in &extra_columns {
        if ["utterance_id", "corpus", "session", "speaker", "emotion"].contains(&extra.as_str())
            || names.contains(extra)
        {
            return Err(FeatureError::parse(
                corpus.labels.as_deref().unwrap_or(Path::new("")),
                1,
                Some(extra.clone()),
                "this extra manifest column clashes with a feature or metadata column name",
            ));
        }
    }

    // One pass over the file: each chunk of rows is checked, labelled, filtered, added to the
    // normalisation statistics and handed to the parquet writer, which encodes and writes it
    // while the next chunk is parsed. Only ids and labels stay in memory. An error anywhere
    // (a bad line, a duplicate id, no label matching) drops the half-written file.
    let path = layout.corpus(&corpus.name);
    let by_session = corpus.folds == FoldScheme::LeaveOneSessionOut;
    let id_column = if file_layout == Layout::OpensmilePython {
        "file"
    } else {
        "name"
    };
    let mut first_lines: HashMap<String, u64> = HashMap::new();
    let mut joiner = LabelJoin::new(corpus, manifest.as_ref());
    let mut labels = RowLabels::default();
    let mut ids: Vec<String> = Vec::new();
    let mut stats = SessionStats::new(names.len());
    let mut stream: Option<ParquetStream> = None;
    let summary = reader.read_chunks(|chunk| {
        for (id, &line) in chunk.ids.iter().zip(&chunk.lines) {
            if let Some(first) = first_lines.insert(id.clone(), line) {
                return Err(FeatureError::parse(
                    &corpus.features,
                    line,
                    Some(id_column.to_string()),
                    format!("duplicate utterance id {id:?} (first on line {first})"),
                ));
            }
        }
        let keep = joiner.join(&chunk.ids, chunk.classes.as_deref(), &mut labels, &mut report);
        let first_new = ids.len();
        ids.extend(
            chunk
                .ids
                .into_iter()
                .zip(&keep)
                .filter_map(|(id, &kept)| kept.then_some(id)),
        );
        let kept_rows = ids.len() - first_new;
        if kept_rows == 0 {
            return Ok(());
        }
        let sessions = &labels.session[first_new..];
        if by_session && let Some(row) = sessions.iter().position(Option::is_none) {
            return Err(FeatureError::Labels {
                message: format!(
                    "{}: utterance {:?} has no session, but leave-one-session-out folds need one for every utterance",
                    corpus.labels.as_deref().unwrap_or(Path::new("")).display(),
                    ids[first_new + row]
                ),
            });
        }
        let runs = stats.runs(kept_rows, by_session.then_some(sessions));
        // Each band of columns is summarised as soon as the transposition has filled it, while
        // it is still in cache: read back from memory afterwards, the statistics cost the
        // stage 0.02-0.03 s more (the fifth round in docs/benchmarks.md's history).
        let (values, band_stats) = chunk.values.into_columns_inspected(
            (kept_rows < keep.len()).then_some(&keep[..]),
            |_, band| run_stats(&runs, band),
        );
        stats.add(&runs, band_stats.into_iter().flatten());
        let frame = chunk_frame(
            &corpus.name,
            &ids[first_new..],
            &labels,
            first_new,
            &extra_columns,
            &names,
            values,
        )?;
        let stream = match &mut stream {
            Some(stream) => stream,
            None => stream.insert(ParquetStream::create(
                &path,
                frame.schema(),
                // openSMILE functionals are float noise to a compressor: zstd saved 10% of the
                // bytes and cost a fifth of the stage's time, LZ4 saved 2.6% and cost about
                // 0.03 s of 0.6 (docs/benchmarks.md's history).
                ParquetCompression::None,
            )?),
        };
        stream.write(frame)?;
        Ok(())
    })?;
    joiner.finish(&corpus.features, &labels, &mut report)?;
    report.dropped_non_finite = summary.dropped_non_finite;
    let Some(stream) = stream else {
        return Err(FeatureError::Labels {
            message: format!(
                "corpus {}: no utterance is left after matching labels",
                corpus.name
            ),
        });
    };
    let features_sha256 = summary.sha256;
    report.rows = ids.len();
    for emotion in labels.emotion.iter().flatten() {
        *report.class_counts.entry(emotion.to_string()).or_insert(0) += 1;
    }

    // Folds and splits.
    let folds = match corpus.folds {
        FoldScheme::None => Vec::new(),
        FoldScheme::LeaveOneSessionOut => {
            // Every kept row has a session: checked chunk by chunk while reading.
            leave_one_session_out(labels.session.iter().flatten().map(String::as_str)).map_err(
                |message| FeatureError::Labels {
                    message: format!("corpus {:?}: {message}", corpus.name),
                },
            )?
        }
    };
    report.folds = folds.clone();

    let mut base_metadata = Metadata::for_stage("features", crate::CODE_FINGERPRINT);
    base_metadata.insert("emocycle.corpus", &corpus.name);
    base_metadata.insert_json(keys::CONFIG, corpus);
    let mut inputs = BTreeMap::new();
    inputs.insert(corpus.features.display().to_string(), features_sha256);
    if let Some(manifest) = &manifest {
        for file in &manifest.files {
            inputs.insert(
                file.display().to_string(),
                emocycle_artifact::sha256_file(file)?,
            );
        }
    }
    if let Some(path) = &corpus.feature_names {
        inputs.insert(
            path.display().to_string(),
            emocycle_artifact::sha256_file(path)?,
        );
    }
    base_metadata.insert_json(keys::INPUTS, &inputs);

    // Normalisation statistics: per session in one pass, merged per subset.
    let sessions: Vec<String> = {
        let mut distinct: Vec<String> = labels.session.iter().flatten().cloned().collect();
        distinct.sort();
        distinct.dedup();
        distinct
    };
    let group_stats = if by_session {
        stats.in_order(&sessions)
    } else {
        stats.in_order(&[String::new()])
    };
    let groups = group_stats.len();
    let merged = |include: &dyn Fn(usize) -> bool| -> Vec<RunningStats> {
        (0..names.len())
            .map(|feature| {
                (0..groups)
                    .filter(|&group| include(group))
                    .fold(RunningStats::default(), |total, group| {
                        total.merge(&group_stats[group][feature])
                    })
            })
            .collect()
    };
    let mut normalisations = vec![(
        "all".to_string(),
        "the whole corpus".to_string(),
        merged(&|_| true),
    )];
    for fold in &folds {
        let test = sessions.binary_search(&fold.test_session).expect("listed");
        normalisations.push((
            Scope::Fold(fold.number).training_subset(),
            format!(
                "fold {} training part (all sessions but {})",
                fold.number, fold.test_session
            ),
            merged(&|group| group != test),
        ));
    }

    // The corpus itself: its rows are written; the footer completes it.
    let mut metadata = base_metadata.clone();
    metadata.insert(
        "emocycle.layout",
        serde_json::to_value(file_layout)
            .map(|v| v.as_str().unwrap_or("").to_string())
            .unwrap_or_default(),
    );
    metadata.insert("emocycle.feature_count", names.len().to_string());
    if let Some(set) = feature_set_of(&names) {
        metadata.insert("emocycle.feature_set", set.to_string());
    }
    metadata.insert_json("emocycle.features", &names);
    metadata.insert_json("emocycle.label_map", &corpus.label_map);
    metadata.insert_json("emocycle.counts", &report);
    stream.finish(&metadata)?;
    report.outputs.push(path);

    if !folds.is_empty() {
        let path = layout.folds(&corpus.name);
        let fold_of_session: HashMap<&str, u32> = folds
            .iter()
            .map(|fold| (fold.test_session.as_str(), fold.number as u32))
            .collect();
        let fold_column: Vec<u32> = labels
            .session
            .iter()
            .map(|session| fold_of_session[session.as_deref().expect("checked above")])
            .collect();
        let mut frame = DataFrame::new(
            ids.len(),
            vec![
                Column::new("utterance_id".into(), &ids),
                Column::new("session".into(), &labels.session),
                Column::new("fold".into(), fold_column),
            ],
        )
        .map_err(FeatureError::frame(format!("folds of {}", corpus.name)))?;
        let mut metadata = base_metadata.clone();
        metadata.insert_json("emocycle.folds", &folds);
        write_parquet(&path, &mut frame, &metadata)?;
        report.outputs.push(path);
    }

    if let Some(split) = &corpus.split {
        let emotions: Vec<Emotion> = labels
            .emotion
            .iter()
            .map(|emotion| emotion.expect("labelled corpora keep labelled rows only"))
            .collect();
        let parts = stratified_split(&emotions, split.dev_fraction, split.seed);
        let path = layout.split(&corpus.name);
        let mut frame = DataFrame::new(
            ids.len(),
            vec![
                Column::new("utterance_id".into(), &ids),
                Column::new(
                    "emotion".into(),
                    emotions.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
                ),
                Column::new(
                    "split".into(),
                    parts.iter().map(|part| part.as_str()).collect::<Vec<_>>(),
                ),
            ],
        )
        .map_err(FeatureError::frame(format!("split of {}", corpus.name)))?;
        let mut metadata = base_metadata.clone();
        metadata.insert_json(keys::SEEDS, &serde_json::json!({ "split": split.seed }));
        metadata.insert(
            "emocycle.split.dev_rows",
            parts
                .iter()
                .filter(|&&part| part == Part::Dev)
                .count()
                .to_string(),
        );
        write_parquet(&path, &mut frame, &metadata)?;
        report.outputs.push(path);
    }

    for (subset, description, stats) in normalisations {
        let path = layout.normalisation(&corpus.name, &subset);
        let mut metadata = base_metadata.clone();
        metadata.insert("emocycle.normalisation.subset", &subset);
        metadata.insert("emocycle.normalisation.description", description);
        Normaliser::from_stats(names.clone(), &stats).write(&path, &metadata)?;
        report.outputs.push(path);
    }

    tracing::info!(
        corpus = %corpus.name,
        rows = report.rows,
        width = report.width,
        classes = ?report.class_counts,
        "features written"
    );
    if !report.dropped_out_of_scope.is_empty() {
        tracing::info!(corpus = %corpus.name, dropped = ?report.dropped_out_of_scope, "utterances outside the four emotions dropped");
    }
    if report.features_without_labels > 0 || report.labels_without_features > 0 {
        tracing::warn!(
            corpus = %corpus.name,
            features_without_labels = report.features_without_labels,
            labels_without_features = report.labels_without_features,
            "features and labels do not cover the same utterances"
        );
    }
    if report.dropped_non_finite > 0 {
        tracing::warn!(corpus = %corpus.name, dropped = report.dropped_non_finite, "utterances with NaN or Inf dropped");
    }
    Ok(report)
}

/// Matches rows to labels chunk by chunk: the manifest when there is one, else an ARFF file's
/// own class, else nothing (an unlabelled corpus). Counts what it drops in the report.
struct LabelJoin<'a> {
    corpus: &'a CorpusSpec,
    manifest: Option<&'a Manifest>,
    matched: usize,
    rows_seen: usize,
    first_id: Option<String>,
    by_class: bool,
}

impl<'a> LabelJoin<'a> {
    fn new(corpus: &'a CorpusSpec, manifest: Option<&'a Manifest>) -> Self {
        Self {
            corpus,
            manifest,
            matched: 0,
            rows_seen: 0,
            first_id: None,
            by_class: false,
        }
    }

    /// Which of `ids` to keep; appends the kept rows' labels to `labels`.
    fn join(
        &mut self,
        ids: &[String],
        classes: Option<&[Option<String>]>,
        labels: &mut RowLabels,
        report: &mut CorpusReport,
    ) -> Vec<bool> {
        if self.first_id.is_none() {
            self.first_id = ids.first().cloned();
        }
        self.rows_seen += ids.len();
        let mut keep = vec![true; ids.len()];
        if let Some(manifest) = self.manifest {
            for (row, id) in ids.iter().enumerate() {
                let Some(label) = manifest.rows.get(id) else {
                    report.features_without_labels += 1;
                    keep[row] = false;
                    continue;
                };
                self.matched += 1;
                let Some(emotion) = label.emotion else {
                    *report
                        .dropped_out_of_scope
                        .entry(label.code.clone())
                        .or_insert(0) += 1;
                    keep[row] = false;
                    continue;
                };
                labels.emotion.push(Some(emotion));
                labels.session.push(label.session.clone());
                labels.speaker.push(label.speaker.clone());
                labels.extras.push(label.extras.clone());
            }
        } else if let Some(classes) = classes {
            // An ARFF file with a nominal class and no manifest: the class is the label.
            self.by_class = true;
            for (row, class) in classes.iter().enumerate() {
                match class
                    .as_deref()
                    .and_then(|code| self.corpus.label_map.map(code))
                {
                    Some(emotion) => {
                        labels.emotion.push(Some(emotion));
                        labels.session.push(None);
                        labels.speaker.push(None);
                    }
                    None => {
                        *report
                            .dropped_out_of_scope
                            .entry(class.clone().unwrap_or_else(|| "?".to_string()))
                            .or_insert(0) += 1;
                        keep[row] = false;
                    }
                }
            }
        } else {
            labels.emotion.extend(std::iter::repeat_n(None, ids.len()));
            labels.session.extend(std::iter::repeat_n(None, ids.len()));
            labels.speaker.extend(std::iter::repeat_n(None, ids.len()));
        }
        keep
    }

    /// After the last chunk: the errors that need the whole file, and the remaining counts.
    fn finish(&self, features: &Path, labels: &RowLabels, report: &mut CorpusReport) -> Result<()> {
        if let Some(manifest) = self.manifest {
            report.labels_without_features = manifest.rows.len() - self.matched;
            if self.matched == 0 {
                return Err(FeatureError::Labels {
                    message: format!(
                        "no utterance of {} ({} rows) is listed in {} ({} rows): check that the ids match (e.g. {:?} vs {:?})",
                        features.display(),
                        self.rows_seen,
                        manifest.path.display(),
                        manifest.rows.len(),
                        self.first_id.as_deref().unwrap_or(""),
                        manifest
                            .rows
                            .keys()
                            .next()
                            .map(String::as_str)
                            .unwrap_or("")
                    ),
                });
            }
            if labels.emotion.is_empty() {
                return Err(FeatureError::Labels {
                    message: format!(
                        "{}: none of the matched utterances has one of the four emotions under label map {:?} (codes seen: {:?})",
                        manifest.path.display(),
                        self.corpus.label_map,
                        report.dropped_out_of_scope.keys().collect::<Vec<_>>()
                    ),
                });
            }
        } else if self.by_class && labels.emotion.is_empty() {
            return Err(FeatureError::Labels {
                message: format!(
                    "{}: no row's class maps to one of the four emotions under label map {:?}",
                    features.display(),
                    self.corpus.label_map
                ),
            });
        }
        Ok(())
    }
}

/// Rows `rows` of a chunk, all of statistics group `group`.
struct Run {
    group: usize,
    rows: std::ops::Range<usize>,
}

/// Each column's statistics over each run, `[column][run]`, two columns at a time
/// (`column_stats.rs`).
fn run_stats(runs: &[Run], columns: &[Vec<f32>]) -> Vec<Vec<RunningStats>> {
    let mut per_column = Vec::with_capacity(columns.len());
    for pair in columns.chunks(2) {
        match pair {
            [first, second] => {
                let (first, second) = runs
                    .iter()
                    .map(|run| {
                        let rows = run.rows.clone();
                        let [a, b] = column_pair_stats(&first[rows.clone()], &second[rows]);
                        (a, b)
                    })
                    .unzip();
                per_column.push(first);
                per_column.push(second);
            }
            [only] => per_column.push(
                runs.iter()
                    .map(|run| column_stats(&only[run.rows.clone()]))
                    .collect(),
            ),
            _ => unreachable!("chunks(2) gives one or two columns"),
        }
    }
    per_column
}

/// Per-session (or whole-corpus), per-feature running statistics, added to chunk by chunk.
struct SessionStats {
    width: usize,
    group_of_session: HashMap<String, usize>,
    groups: Vec<Vec<RunningStats>>,
}

impl SessionStats {
    fn new(width: usize) -> Self {
        Self {
            width,
            group_of_session: HashMap::new(),
            groups: Vec::new(),
        }
    }

    fn group(&mut self, session: &str) -> usize {
        if let Some(&group) = self.group_of_session.get(session) {
            return group;
        }
        self.groups.push(vec![RunningStats::default(); self.width]);
        self.group_of_session
            .insert(session.to_string(), self.groups.len() - 1);
        self.groups.len() - 1
    }

    /// The runs of consecutive rows of one group in a chunk of `rows` rows, grouped by
    /// `sessions` (one per row) or all in one group. Sessions usually come in blocks; an
    /// unlabelled corpus is one run per chunk.
    fn runs(&mut self, rows: usize, sessions: Option<&[Option<String>]>) -> Vec<Run> {
        let mut runs: Vec<Run> = Vec::new();
        for row in 0..rows {
            let session =
                sessions.map_or("", |sessions| sessions[row].as_deref().unwrap_or_default());
            let group = self.group(session);
            match runs.last_mut() {
                Some(run) if run.group == group => run.rows.end = row + 1,
                _ => runs.push(Run {
                    group,
                    rows: row..row + 1,
                }),
            }
        }
        runs
    }

    /// Adds a chunk's statistics, `per_column[feature][run]` (from [`run_stats`]), to its
    /// groups' totals: runs are summarised two-pass and merged, with no division per value.
    fn add(&mut self, runs: &[Run], per_column: impl Iterator<Item = Vec<RunningStats>>) {
        for (feature, column_runs) in per_column.enumerate() {
            for (run, stats) in runs.iter().zip(column_runs) {
                let total = &mut self.groups[run.group][feature];
                *total = total.merge(&stats);
            }
        }
    }

    /// The groups' statistics in the order of `sessions` (one empty name: the whole corpus).
    fn in_order(&self, sessions: &[String]) -> Vec<Vec<RunningStats>> {
        sessions
            .iter()
            .map(|session| match self.group_of_session.get(session) {
                Some(&group) => self.groups[group].clone(),
                None => vec![RunningStats::default(); self.width],
            })
            .collect()
    }
}

/// One row group of the corpus file: rows `first..first + ids.len()` of `labels`, moving (not
/// copying) the feature vectors.
fn chunk_frame(
    corpus: &str,
    ids: &[String],
    labels: &RowLabels,
    first: usize,
    extra_columns: &[String],
    names: &[String],
    values: ColumnChunk,
) -> Result<DataFrame> {
    let rows = values.rows;
    let range = first..first + rows;
    let mut columns = Vec::with_capacity(5 + extra_columns.len() + names.len());
    columns.push(Column::new("utterance_id".into(), ids));
    columns.push(Column::new("corpus".into(), vec![corpus; rows]));
    columns.push(Column::new(
        "session".into(),
        &labels.session[range.clone()],
    ));
    columns.push(Column::new(
        "speaker".into(),
        &labels.speaker[range.clone()],
    ));
    let emotions: Vec<Option<&str>> = labels.emotion[range.clone()]
        .iter()
        .map(|e| e.map(Emotion::as_str))
        .collect();
    columns.push(Column::new("emotion".into(), emotions));
    for (index, extra) in extra_columns.iter().enumerate() {
        let values: Vec<&str> = labels.extras[range.clone()]
            .iter()
            .map(|row| row[index].as_str())
            .collect();
        columns.push(Column::new(extra.as_str().into(), values));
    }
    for (name, values) in names.iter().zip(values.columns) {
        columns.push(Float32Chunked::from_vec(name.as_str().into(), values).into_column());
    }
    DataFrame::new(rows, columns).map_err(FeatureError::frame(format!("features of {corpus}")))
}
