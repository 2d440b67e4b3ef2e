//! Reading a feature-stage parquet back as a dense matrix, for the model stages.

use std::path::{Path, PathBuf};

use emocycle_artifact::{ArtifactError, Metadata, read_parquet, require_column};
use polars::prelude::*;

use crate::emotion::Emotion;
use crate::error::{FeatureError, Result};

/// One corpus's utterances with their features as a row-major float32 matrix.
#[derive(Debug, Clone)]
pub struct FeatureMatrix {
    /// The parquet file it came from.
    pub path: PathBuf,
    /// Its footer metadata.
    pub metadata: Metadata,
    /// Utterance ids, one per row.
    pub ids: Vec<String>,
    /// Sessions (null where unknown).
    pub sessions: Vec<Option<String>>,
    /// Emotions (null for unlabelled corpora).
    pub emotions: Vec<Option<Emotion>>,
    /// Feature names, in column order.
    pub names: Vec<String>,
    /// `rows x names.len()` values, row-major.
    pub values: Vec<f32>,
}

fn strings(frame: &DataFrame, path: &Path, column: &str) -> Result<Vec<Option<String>>> {
    require_column(frame, path, column, &DataType::String)?;
    let values = frame
        .column(column)
        .and_then(|column| {
            column.str().map(|values| {
                values
                    .iter()
                    .map(|value| value.map(str::to_string))
                    .collect()
            })
        })
        .map_err(|source| ArtifactError::Parquet {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(values)
}

impl FeatureMatrix {
    /// Reads a `features/<corpus>.parquet` written by the feature stage, or any artifact with
    /// the same conventions: an id column (`utterance_id`, or `synthetic_id` for synthetic
    /// sets), an `emotion` column, an optional `session` column, and the feature names as JSON
    /// under the footer key `emocycle.features`.
    pub fn read(path: &Path) -> Result<Self> {
        let (frame, metadata) = read_parquet(path)?;
        let names: Vec<String> = metadata.get_json("emocycle.features", path)?;
        let id_column =
            if frame.column("utterance_id").is_err() && frame.column("synthetic_id").is_ok() {
                "synthetic_id"
            } else {
                "utterance_id"
            };
        let ids = strings(&frame, path, id_column)?
            .into_iter()
            .enumerate()
            .map(|(row, id)| {
                id.ok_or_else(|| {
                    FeatureError::parse(
                        path,
                        row as u64 + 1,
                        Some("utterance_id".into()),
                        "null utterance id (row number)",
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let sessions = if frame.column("session").is_ok() {
            strings(&frame, path, "session")?
        } else {
            vec![None; frame.height()]
        };
        let emotions = strings(&frame, path, "emotion")?
            .into_iter()
            .enumerate()
            .map(|(row, emotion)| {
                emotion
                    .map(|text| text.parse::<Emotion>())
                    .transpose()
                    .map_err(|message| {
                        FeatureError::parse(
                            path,
                            row as u64 + 1,
                            Some("emotion".into()),
                            format!("{message} (row number)"),
                        )
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let rows = frame.height();
        let width = names.len();
        let mut values = vec![0f32; rows * width];
        for (feature, name) in names.iter().enumerate() {
            require_column(&frame, path, name, &DataType::Float32)?;
            let column = frame
                .column(name)
                .and_then(|column| column.f32().cloned())
                .map_err(|source| ArtifactError::Parquet {
                    path: path.to_path_buf(),
                    source,
                })?;
            for (row, value) in column.iter().enumerate() {
                values[row * width + feature] = value.ok_or_else(|| {
                    FeatureError::parse(
                        path,
                        row as u64 + 1,
                        Some(name.clone()),
                        "null feature value (row number)",
                    )
                })?;
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            metadata,
            ids,
            sessions,
            emotions,
            names,
            values,
        })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.ids.len()
    }

    /// Feature count.
    pub fn width(&self) -> usize {
        self.names.len()
    }

    /// The rows for which `keep(row)` holds, in order.
    pub fn select(&self, keep: impl Fn(usize) -> bool) -> Self {
        let width = self.width();
        let kept: Vec<usize> = (0..self.rows()).filter(|&row| keep(row)).collect();
        Self {
            path: self.path.clone(),
            metadata: self.metadata.clone(),
            ids: kept.iter().map(|&row| self.ids[row].clone()).collect(),
            sessions: kept.iter().map(|&row| self.sessions[row].clone()).collect(),
            emotions: kept.iter().map(|&row| self.emotions[row]).collect(),
            names: self.names.clone(),
            values: kept
                .iter()
                .flat_map(|&row| self.values[row * width..(row + 1) * width].iter().copied())
                .collect(),
        }
    }
}
