//! Reading the optional artifacts of a run directory: the quality table, the GAN loss logs,
//! the synthetic sets' footers and the stage records. Each reader returns a message instead of
//! an error, because a report with one section marked unreadable beats no report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use emocycle_artifact::{read_parquet, read_parquet_metadata};
use polars::prelude::{DataFrame, DataType};
use serde::Deserialize;

/// The stages whose records `stages/<stage>.json` the wall-time table lists, in pipeline order.
pub const STAGES: [&str; 7] = [
    "features", "augment", "pretrain", "train", "generate", "quality", "evaluate",
];

/// One `stages/<stage>.json`: how the last run of a stage that did work went. Written by the
/// command line after each stage; unknown keys are ignored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StageRecord {
    /// `features`, `train`, ...
    pub stage: String,
    /// Wall-clock seconds of the command.
    pub wall_seconds: f64,
    /// When it finished, seconds since 1970-01-01 UTC.
    pub finished_unix: u64,
    /// Where models ran (`cpu`, `cuda:0`).
    pub device: String,
    /// libtorch threads per process.
    pub threads: usize,
    /// Parallel processes or workers.
    pub jobs: usize,
    /// The code version of the command.
    pub code_version: String,
    /// The command line.
    pub command: String,
}

/// Reads every stage's record; a stage without one is `None`, an unreadable record is `None`
/// plus a note.
pub(crate) fn read_stage_records(
    run_dir: &Path,
    notes: &mut Vec<String>,
) -> Vec<(&'static str, Option<StageRecord>)> {
    STAGES
        .iter()
        .map(|&stage| {
            let path = run_dir.join("stages").join(format!("{stage}.json"));
            if !path.is_file() {
                return (stage, None);
            }
            let parsed = std::fs::read_to_string(&path)
                .map_err(|error| error.to_string())
                .and_then(|text| {
                    serde_json::from_str::<StageRecord>(&text).map_err(|error| error.to_string())
                });
            match parsed {
                Ok(record) => (stage, Some(record)),
                Err(error) => {
                    notes.push(format!(
                        "{}: unreadable stage record: {error}",
                        path.display()
                    ));
                    (stage, None)
                }
            }
        })
        .collect()
}

fn column_error(path: &Path, name: &str) -> impl Fn(polars::error::PolarsError) -> String {
    let path = path.display().to_string();
    let name = name.to_string();
    move |error| format!("{path}: column {name:?}: {error}")
}

fn floats(frame: &DataFrame, path: &Path, name: &str) -> Result<Vec<Option<f64>>, String> {
    let fail = column_error(path, name);
    let column = frame
        .column(name)
        .map_err(&fail)?
        .cast(&DataType::Float64)
        .map_err(&fail)?;
    Ok(column.f64().map_err(&fail)?.iter().collect())
}

fn strings(frame: &DataFrame, path: &Path, name: &str) -> Result<Vec<Option<String>>, String> {
    let fail = column_error(path, name);
    let column = frame.column(name).map_err(&fail)?;
    Ok(column
        .str()
        .map_err(&fail)?
        .iter()
        .map(|value| value.map(str::to_string))
        .collect())
}

fn read_frame(path: &Path) -> Result<DataFrame, String> {
    read_parquet(path)
        .map(|(frame, _)| frame)
        .map_err(|error| error.to_string())
}

/// One row of `synth/quality.parquet`, the columns the report shows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct QualityRecord {
    pub scope: String,
    pub method: String,
    pub lambda_cls: Option<f64>,
    /// The CycleGAN set's generator seed (`None` for baselines and older files).
    pub gan_seed: Option<f64>,
    pub comparison: String,
    pub emotion: String,
    pub mean_abs_diff: f64,
    pub frechet_distance: f64,
    pub c2st_accuracy: f64,
    pub knn_precision: f64,
    pub knn_recall: f64,
    pub dcr_ratio: f64,
    pub copied_share: f64,
}

pub(crate) fn read_quality(path: &Path) -> Result<Vec<QualityRecord>, String> {
    let frame = read_frame(path)?;
    let scope = strings(&frame, path, "scope")?;
    let method = strings(&frame, path, "method")?;
    let lambda_cls = floats(&frame, path, "lambda_cls")?;
    let comparison = strings(&frame, path, "comparison")?;
    let emotion = strings(&frame, path, "emotion")?;
    let metric = |name: &str| floats(&frame, path, name);
    let (mad, fd, c2st, precision, recall) = (
        metric("mean_abs_diff")?,
        metric("frechet_distance")?,
        metric("c2st_accuracy")?,
        metric("knn_precision")?,
        metric("knn_recall")?,
    );
    // Quality files written before the memorisation columns existed show them as unknown.
    let optional = |name: &str| {
        if frame.column(name).is_ok() {
            metric(name)
        } else {
            Ok(vec![None; frame.height()])
        }
    };
    let (dcr, copies) = (optional("dcr_ratio")?, optional("copied_share")?);
    let gan_seed = optional("gan_seed")?;
    let value = |column: &[Option<f64>], row: usize| column[row].unwrap_or(f64::NAN);
    Ok((0..frame.height())
        .map(|row| QualityRecord {
            scope: scope[row].clone().unwrap_or_default(),
            method: method[row].clone().unwrap_or_default(),
            lambda_cls: lambda_cls[row],
            gan_seed: gan_seed[row],
            comparison: comparison[row].clone().unwrap_or_default(),
            emotion: emotion[row].clone().unwrap_or_default(),
            mean_abs_diff: value(&mad, row),
            frechet_distance: value(&fd, row),
            c2st_accuracy: value(&c2st, row),
            knn_precision: value(&precision, row),
            knn_recall: value(&recall, row),
            dcr_ratio: value(&dcr, row),
            copied_share: value(&copies, row),
        })
        .collect())
}

/// Which set of a scope a quality figure describes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum SetKey<'a> {
    /// The untransformed source corpus (`target-source` rows).
    Source,
    /// One half of the target's training part against the other (`target-halves` rows).
    Reference,
    /// The CycleGAN set of a lambda_cls.
    CycleGan(f64),
    /// A baseline's set.
    Baseline(&'a str),
}

/// A set's quality in one scope: MAD averaged over the four emotions (the paper's Table 1
/// figure), the other metrics from the pooled row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SetMetrics {
    pub mad: f64,
    pub frechet_distance: f64,
    pub c2st_accuracy: f64,
    pub knn_precision: f64,
    pub knn_recall: f64,
    pub dcr_ratio: f64,
    pub copied_share: f64,
}

impl SetMetrics {
    fn mean(all: &[SetMetrics]) -> Option<SetMetrics> {
        if all.is_empty() {
            return None;
        }
        let mean =
            |pick: fn(&SetMetrics) -> f64| all.iter().map(pick).sum::<f64>() / all.len() as f64;
        Some(SetMetrics {
            mad: mean(|m| m.mad),
            frechet_distance: mean(|m| m.frechet_distance),
            c2st_accuracy: mean(|m| m.c2st_accuracy),
            knn_precision: mean(|m| m.knn_precision),
            knn_recall: mean(|m| m.knn_recall),
            dcr_ratio: mean(|m| m.dcr_ratio),
            copied_share: mean(|m| m.copied_share),
        })
    }
}

/// `fold<k>` by k, then `all`, then anything else by name.
pub(crate) fn scope_order(name: &str) -> (u8, usize, String) {
    match name
        .strip_prefix("fold")
        .and_then(|k| k.parse::<usize>().ok())
    {
        Some(k) => (0, k, String::new()),
        None if name == "all" => (1, 0, String::new()),
        None => (2, 0, name.to_string()),
    }
}

/// The scopes measured, in [`scope_order`].
pub(crate) fn quality_scopes(rows: &[QualityRecord]) -> Vec<String> {
    let mut scopes: Vec<String> = Vec::new();
    for row in rows {
        if !scopes.contains(&row.scope) {
            scopes.push(row.scope.clone());
        }
    }
    scopes.sort_by_key(|scope| scope_order(scope));
    scopes
}

pub(crate) fn scope_metrics(
    rows: &[QualityRecord],
    scope: &str,
    key: SetKey,
) -> Option<SetMetrics> {
    let in_scope = rows.iter().filter(|row| row.scope == scope);
    let group: Vec<&QualityRecord> = match key {
        SetKey::Source | SetKey::Reference => {
            // The target-source and target-halves rows repeat once per set of the scope:
            // take one copy.
            let comparison = if key == SetKey::Source {
                "target-source"
            } else {
                "target-halves"
            };
            let mut rows = in_scope.filter(|row| row.comparison == comparison);
            let first = rows.next()?;
            std::iter::once(first)
                .chain(rows.filter(|row| {
                    row.method == first.method
                        && row.lambda_cls == first.lambda_cls
                        && row.gan_seed == first.gan_seed
                }))
                .collect()
        }
        SetKey::CycleGan(lambda_cls) => in_scope
            .filter(|row| {
                row.comparison == "target-synthetic"
                    && row.method == emocycle_eval::CYCLEGAN
                    && row.lambda_cls == Some(lambda_cls)
            })
            .collect(),
        SetKey::Baseline(name) => in_scope
            .filter(|row| {
                row.comparison == "target-synthetic"
                    && row.method == name
                    && row.lambda_cls.is_none()
            })
            .collect(),
    };
    // A CycleGAN trained from several generator seeds: each seed's set measured on its own,
    // then averaged.
    let mut seeds: Vec<Option<u64>> = group
        .iter()
        .map(|row| row.gan_seed.map(|s| s as u64))
        .collect();
    seeds.sort_unstable();
    seeds.dedup();
    let per_seed: Vec<SetMetrics> = seeds
        .iter()
        .filter_map(|&seed| {
            let rows: Vec<&QualityRecord> = group
                .iter()
                .copied()
                .filter(|row| row.gan_seed.map(|s| s as u64) == seed)
                .collect();
            set_metrics(&rows)
        })
        .collect();
    if per_seed.len() < seeds.len() {
        return None;
    }
    SetMetrics::mean(&per_seed)
}

/// One set's metrics from its rows of one scope.
fn set_metrics(group: &[&QualityRecord]) -> Option<SetMetrics> {
    let emotions: Vec<f64> = group
        .iter()
        .filter(|row| row.emotion != "pooled")
        .map(|row| row.mean_abs_diff)
        .collect();
    let pooled = group.iter().find(|row| row.emotion == "pooled")?;
    if emotions.is_empty() {
        return None;
    }
    Some(SetMetrics {
        mad: emotions.iter().sum::<f64>() / emotions.len() as f64,
        frechet_distance: pooled.frechet_distance,
        c2st_accuracy: pooled.c2st_accuracy,
        knn_precision: pooled.knn_precision,
        knn_recall: pooled.knn_recall,
        dcr_ratio: pooled.dcr_ratio,
        copied_share: pooled.copied_share,
    })
}

/// The mean of a set's metrics over the scopes that measured it, and how many did.
pub(crate) fn mean_over_scopes(rows: &[QualityRecord], key: SetKey) -> Option<(SetMetrics, usize)> {
    let all: Vec<SetMetrics> = quality_scopes(rows)
        .iter()
        .filter_map(|scope| scope_metrics(rows, scope, key))
        .collect();
    SetMetrics::mean(&all).map(|mean| (mean, all.len()))
}

/// The baselines measured, by name.
pub(crate) fn quality_baselines(rows: &[QualityRecord]) -> Vec<String> {
    let mut names: Vec<String> = rows
        .iter()
        .filter(|row| row.comparison == "target-synthetic" && row.lambda_cls.is_none())
        .map(|row| row.method.clone())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The CycleGAN lambda_cls values measured, ascending.
pub(crate) fn quality_lambdas(rows: &[QualityRecord]) -> Vec<f64> {
    let mut values: Vec<f64> = rows
        .iter()
        .filter(|row| row.comparison == "target-synthetic" && row.method == emocycle_eval::CYCLEGAN)
        .filter_map(|row| row.lambda_cls)
        .collect();
    values.sort_by(f64::total_cmp);
    values.dedup();
    values
}

/// Points of one curve, `(epoch, loss)`.
pub(crate) type Curve = Vec<(f64, f64)>;

/// The pretraining log of a scope: one cycle-loss curve per generator pair.
#[derive(Debug, Clone, Default)]
pub(crate) struct PretrainLog {
    /// `(emotion, curve)` in pair order.
    pub pairs: Vec<(String, Curve)>,
}

/// One joint training's log, losses averaged over the four emotions' CycleGANs.
#[derive(Debug, Clone)]
pub(crate) struct TrainLog {
    pub lambda_cls: f64,
    pub d: Curve,
    pub g: Curve,
    pub cycle: Curve,
    pub cls: Curve,
}

/// A scope's loss logs.
#[derive(Debug, Clone)]
pub(crate) struct ScopeLogs {
    pub scope: String,
    pub pretrain: Option<PretrainLog>,
    pub train: Vec<TrainLog>,
}

fn read_pretrain(path: &Path) -> Result<PretrainLog, String> {
    let frame = read_frame(path)?;
    let pair = floats(&frame, path, "pair")?;
    let emotion = strings(&frame, path, "emotion")?;
    let epoch = floats(&frame, path, "epoch")?;
    let cycle = floats(&frame, path, "cycle")?;
    let mut by_pair: BTreeMap<u64, (String, Curve)> = BTreeMap::new();
    for row in 0..frame.height() {
        let (Some(number), Some(epoch), Some(cycle)) = (pair[row], epoch[row], cycle[row]) else {
            continue;
        };
        let entry = by_pair.entry(number as u64).or_insert_with(|| {
            let name = emotion[row]
                .clone()
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| format!("pair {number}"));
            (name, Vec::new())
        });
        entry.1.push((epoch, cycle));
    }
    Ok(PretrainLog {
        pairs: by_pair.into_values().collect(),
    })
}

fn read_train(path: &Path, lambda_cls: f64) -> Result<TrainLog, String> {
    let frame = read_frame(path)?;
    let epoch = floats(&frame, path, "epoch")?;
    let names: Vec<String> = frame
        .get_column_names()
        .iter()
        .map(|name| name.to_string())
        .collect();
    // The loss of the four CycleGANs, averaged per epoch over the columns `<prefix>_<emotion>`.
    let averaged = |prefix: &str| -> Result<Curve, String> {
        let columns: Vec<Vec<Option<f64>>> = names
            .iter()
            .filter(|name| {
                name.strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('_'))
            })
            .map(|name| floats(&frame, path, name))
            .collect::<Result<_, _>>()?;
        if columns.is_empty() {
            return Err(format!("{}: no {prefix}_<emotion> columns", path.display()));
        }
        Ok((0..frame.height())
            .filter_map(|row| {
                let values: Vec<f64> = columns.iter().filter_map(|column| column[row]).collect();
                let epoch = epoch[row]?;
                (!values.is_empty())
                    .then(|| (epoch, values.iter().sum::<f64>() / values.len() as f64))
            })
            .collect())
    };
    let cls = floats(&frame, path, "cls")?;
    Ok(TrainLog {
        lambda_cls,
        d: averaged("d")?,
        g: averaged("g")?,
        cycle: averaged("cycle")?,
        cls: (0..frame.height())
            .filter_map(|row| Some((epoch[row]?, cls[row]?)))
            .collect(),
    })
}

fn sorted_entries(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut list: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.path().is_dir())
        .map(|entry| {
            (
                entry.file_name().to_string_lossy().into_owned(),
                entry.path(),
            )
        })
        .collect();
    list.sort_by_key(|(name, _)| scope_order(name));
    list
}

/// Every scope below `gan/` with a loss log, in [`scope_order`]; the joint trainings by
/// lambda_cls. Only the first generator seed's logs: the curves show how one training went,
/// and the tables carry the spread over seeds.
pub(crate) fn read_gan_logs(gan_dir: &Path, notes: &mut Vec<String>) -> Vec<ScopeLogs> {
    let mut scopes = Vec::new();
    for (scope, dir) in sorted_entries(gan_dir) {
        let mut logs = ScopeLogs {
            scope,
            pretrain: None,
            train: Vec::new(),
        };
        let pretrain = dir.join("pretrain").join("loss_log.parquet");
        if pretrain.is_file() {
            match read_pretrain(&pretrain) {
                Ok(log) => logs.pretrain = Some(log),
                Err(error) => notes.push(error),
            }
        }
        for (name, run) in sorted_entries(&dir) {
            let Some((lambda_cls, 0)) = emocycle_config::layout::parse_cyclegan_dir(&name) else {
                continue;
            };
            let path = run.join("loss_log.parquet");
            if !path.is_file() {
                continue;
            }
            match read_train(&path, lambda_cls) {
                Ok(log) => logs.train.push(log),
                Err(error) => notes.push(error),
            }
        }
        logs.train
            .sort_by(|a, b| a.lambda_cls.total_cmp(&b.lambda_cls));
        if logs.pretrain.is_some() || !logs.train.is_empty() {
            scopes.push(logs);
        }
    }
    scopes
}

/// How many vectors per class a synthetic set holds, from its footer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SetSize {
    /// The same count for every emotion (a CycleGAN set).
    Each(u64),
    /// Per emotion (a baseline's set).
    PerClass(BTreeMap<String, u64>),
}

impl SetSize {
    /// The emotions with no vectors.
    pub(crate) fn missing(&self) -> Vec<String> {
        match self {
            Self::Each(0) => emocycle_features::Emotion::ALL
                .iter()
                .map(|emotion| emotion.as_str().to_string())
                .collect(),
            Self::Each(_) => Vec::new(),
            Self::PerClass(counts) => emocycle_features::Emotion::ALL
                .iter()
                .map(|emotion| emotion.as_str())
                .filter(|emotion| counts.get(*emotion).copied().unwrap_or(0) == 0)
                .map(str::to_string)
                .collect(),
        }
    }

    /// `300 each` or `angry 12, happy 0, ...`.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Each(count) => format!("{count} each"),
            Self::PerClass(counts) => emocycle_features::Emotion::ALL
                .iter()
                .map(|emotion| {
                    format!(
                        "{} {}",
                        emotion.as_str(),
                        counts.get(emotion.as_str()).copied().unwrap_or(0)
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// The footer key `emocycle.rows_per_emotion` of a synthetic set: a number (CycleGAN) or an
/// object emotion -> count (baselines).
pub(crate) fn read_set_size(path: &Path) -> Result<SetSize, String> {
    let metadata = read_parquet_metadata(path).map_err(|error| error.to_string())?;
    let text = metadata.get("emocycle.rows_per_emotion").ok_or_else(|| {
        format!(
            "{}: no footer key emocycle.rows_per_emotion",
            path.display()
        )
    })?;
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|error| format!("{}: emocycle.rows_per_emotion: {error}", path.display()))?;
    match value {
        serde_json::Value::Number(number) => number.as_u64().map(SetSize::Each).ok_or_else(|| {
            format!(
                "{}: emocycle.rows_per_emotion is not a count",
                path.display()
            )
        }),
        serde_json::Value::Object(map) => Ok(SetSize::PerClass(
            map.into_iter()
                .map(|(emotion, count)| (emotion, count.as_u64().unwrap_or(0)))
                .collect(),
        )),
        other => Err(format!(
            "{}: emocycle.rows_per_emotion is {other}, not a count or an object",
            path.display()
        )),
    }
}
