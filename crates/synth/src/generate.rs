//! Generation: every G_i of a trained scope applied to the source vectors, streamed to parquet.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use emocycle_artifact::{
    ArtifactError, Metadata, ParquetCompression, ParquetStream, float32_columns, keys, sha256_file,
};
use emocycle_config::layout::{Scope, StageInputs};
use emocycle_features::{Emotion, FeatureMatrix, Normaliser, Scaling};
use emocycle_gan::{CycleGanModel, GanConfig, ModelLayout};
use emocycle_rng::SplitMix64;
use polars::prelude::{Column, DataFrame};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::metrics::random_subset;
use crate::{FeatureSpace, SynthConfig, SynthError};

/// The files and settings of one synthetic set.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    /// The source features parquet whose rows are transformed (normally `inputs.source`).
    pub source: PathBuf,
    /// The scope's feature-stage files: the source's normalisation always, the target's
    /// training-part normalisation for raw output.
    pub inputs: StageInputs,
    /// The trained model, `gan/<scope>/lambda_cls-<value>/model.safetensors`.
    pub model: PathBuf,
    /// The configuration the model was trained with (network sizes; its `lambda_cls` must be
    /// `lambda_cls`).
    pub gan: GanConfig,
    /// The scope the model was trained on.
    pub scope: Scope,
    /// The model's classification-loss weight.
    pub lambda_cls: f64,
    /// Seeds the choice of source rows when `per_emotion` is set; written to every row.
    pub seed: u64,
    /// Where the parquet goes (normally [`SynthLayout::synthetic`](crate::SynthLayout::synthetic)).
    pub output: PathBuf,
}

/// How far generation is, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerateProgress {
    /// Synthetic rows written so far.
    pub rows_done: usize,
    /// Synthetic rows in all.
    pub rows_total: usize,
}

/// What [`generate_set`] wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateReport {
    /// The parquet file.
    pub output: PathBuf,
    /// Rows written (4 x `rows_per_emotion`).
    pub rows: usize,
    /// Synthetic vectors per emotion.
    pub rows_per_emotion: usize,
    /// Features per vector.
    pub features: usize,
    /// Units of the written features.
    pub feature_space: FeatureSpace,
    /// sha256 of the model file.
    pub checkpoint_sha256: String,
    /// Input files and their sha256, as in the footer.
    pub inputs: BTreeMap<String, String>,
}

/// The source rows to transform, in file order: all of them, or the first `per_emotion` of a
/// SplitMix64 shuffle seeded with `seed`.
pub fn selected_rows(total: usize, per_emotion: Option<usize>, seed: u64) -> Vec<usize> {
    match per_emotion {
        Some(count) if count < total => {
            let mut rows = random_subset(total, count, &mut SplitMix64::new(seed));
            rows.sort_unstable();
            rows
        }
        _ => (0..total).collect(),
    }
}

fn model_features(model: &CycleGanModel, path: &Path) -> Result<i64, SynthError> {
    model
        .named_tensors()
        .iter()
        .find(|(name, _)| name == "g.0.layers.0.weight")
        .map(|(_, tensor)| tensor.size()[1])
        .ok_or_else(|| SynthError::input(path, "the model has no tensor g.0.layers.0.weight"))
}

/// Applies every G_i of a trained scope, dropout off, to the selected source vectors (min-max
/// normalised on the source as in training) and writes one row per synthetic vector to
/// `request.output`, atomically, emotion by emotion (angry, happy, neutral, sad), each in
/// source-file order.
///
/// Columns: `synthetic_id` (`<source_utterance_id>@<emotion>`), `source_utterance_id`,
/// `emotion`, `fold` (the scope's name), `lambda_cls` (f64), `seed` (u64),
/// `checkpoint_sha256`, then the features as float32 under the corpus's names and order.
impl GenerateRequest {
    /// The configuration a set records in its footer (`emocycle.config`): what its contents
    /// depend on besides the input files.
    pub fn recorded_config(&self, config: &SynthConfig) -> serde_json::Value {
        serde_json::json!({
            "per_emotion": config.per_emotion,
            "feature_space": config.feature_space,
            "batch_rows": config.batch_rows,
            "scope": self.scope.name(),
            "lambda_cls": self.lambda_cls,
            "gan": self.gan,
        })
    }

    /// The files a set is made from (their sha256 go to `emocycle.inputs`).
    pub fn input_files(&self, config: &SynthConfig) -> Vec<PathBuf> {
        let mut files = vec![
            self.source.clone(),
            self.inputs.source_normalisation.clone(),
            self.model.clone(),
        ];
        if config.feature_space == FeatureSpace::Raw {
            files.push(self.inputs.target_normalisation.clone());
        }
        files
    }
}

/// Generation runs in batches of `config.batch_rows` source rows on `device`, and every batch
/// is one parquet row group written as soon as it exists, so memory holds one batch, never
/// the set. `progress` hears after every batch.
pub fn generate_set(
    request: &GenerateRequest,
    config: &SynthConfig,
    device: Device,
    progress: &mut dyn FnMut(GenerateProgress),
) -> Result<GenerateReport, SynthError> {
    config.validate()?;
    if request.gan.lambda_cls != request.lambda_cls {
        return Err(SynthError::InvalidConfig(format!(
            "the GAN configuration has lambda_cls = {} but the set is for lambda_cls = {}",
            request.gan.lambda_cls, request.lambda_cls
        )));
    }
    let source = FeatureMatrix::read(&request.source)?;
    if source.rows() == 0 {
        return Err(SynthError::input(&request.source, "the source has no rows"));
    }
    let names = source.names.clone();
    let width = names.len();
    let source_norm = Normaliser::read_fitted(&request.inputs.source_normalisation, "all", &names)?;
    let target_norm = match config.feature_space {
        FeatureSpace::MinMax => None,
        FeatureSpace::Raw => Some(Normaliser::read_fitted(
            &request.inputs.target_normalisation,
            &request.scope.training_subset(),
            &names,
        )?),
    };
    let model_error = |source| SynthError::Model {
        path: request.model.clone(),
        source,
    };
    let model = CycleGanModel::load(&request.model, &request.gan, ModelLayout::Auto, device)
        .map_err(model_error)?;
    if model.emotions() != Emotion::ALL.len() {
        return Err(SynthError::input(
            &request.model,
            format!("the model has {} CycleGANs, expected 4", model.emotions()),
        ));
    }
    let model_width = model_features(&model, &request.model)?;
    if model_width != width as i64 {
        return Err(SynthError::input(
            &request.model,
            format!(
                "the model takes {model_width} features but {} has {width}",
                request.source.display()
            ),
        ));
    }

    debug_assert_eq!(
        target_norm.is_some(),
        config.feature_space == FeatureSpace::Raw
    );
    let mut inputs = BTreeMap::new();
    for path in request.input_files(config) {
        inputs.insert(path.display().to_string(), sha256_file(&path)?);
    }
    let checkpoint_sha256 = inputs[&request.model.display().to_string()].clone();

    let FeatureMatrix {
        ids, mut values, ..
    } = source;
    source_norm.transform_rows(&mut values, Scaling::MinMax);
    let rows = selected_rows(ids.len(), config.per_emotion, request.seed);
    let rows_total = rows.len() * Emotion::ALL.len();
    let scope_name = request.scope.name();

    let mut metadata = Metadata::for_stage("generate", crate::CODE_FINGERPRINT);
    metadata.insert_json(keys::CONFIG, &request.recorded_config(config));
    metadata.insert_json(
        keys::SEEDS,
        &serde_json::json!({ "generate": request.seed, "gan": request.gan.seed }),
    );
    metadata.insert_json(keys::INPUTS, &inputs);
    metadata.insert_json("emocycle.features", &names);
    metadata.insert("emocycle.feature_count", width.to_string());
    metadata.insert("emocycle.feature_space", config.feature_space.as_str());
    metadata.insert("emocycle.scope", scope_name.clone());
    metadata.insert("emocycle.lambda_cls", request.lambda_cls.to_string());
    metadata.insert("emocycle.rows_per_emotion", rows.len().to_string());
    metadata.insert("emocycle.checkpoint_sha256", checkpoint_sha256.clone());
    // Written a batch at a time with plain pages (generated features are float noise to a
    // compressor and to polars' dictionary probe, as the corpus's are); LZ4 is nearly free.
    let mut stream: Option<ParquetStream> = None;
    let mut rows_done = 0;
    for emotion in Emotion::ALL {
        for chunk in rows.chunks(config.batch_rows) {
            let mut batch = Vec::with_capacity(chunk.len() * width);
            for &row in chunk {
                batch.extend_from_slice(&values[row * width..(row + 1) * width]);
            }
            let input = Tensor::from_slice(&batch).reshape([chunk.len() as i64, width as i64]);
            let output = model
                .generate(emotion.index(), &input)
                .map_err(model_error)?
                .to_device(Device::Cpu)
                .to_kind(Kind::Float)
                .contiguous()
                .view([-1]);
            let mut generated = Vec::<f32>::try_from(&output).map_err(|error| {
                SynthError::input(
                    &request.model,
                    format!("reading a generated batch back: {error}"),
                )
            })?;
            if let Some(norm) = &target_norm {
                norm.inverse_rows(&mut generated, Scaling::MinMax);
            }
            let frame = batch_frame(BatchRows {
                ids: &ids,
                rows: chunk,
                emotion,
                scope: &scope_name,
                lambda_cls: request.lambda_cls,
                seed: request.seed,
                checkpoint_sha256: &checkpoint_sha256,
                names: &names,
                generated: &generated,
            })
            .map_err(|source| ArtifactError::Parquet {
                path: request.output.clone(),
                source,
            })?;
            let stream = match &mut stream {
                Some(stream) => stream,
                None => stream.insert(ParquetStream::create(
                    &request.output,
                    frame.schema(),
                    ParquetCompression::Lz4,
                )?),
            };
            stream.write(frame)?;
            rows_done += chunk.len();
            progress(GenerateProgress {
                rows_done,
                rows_total,
            });
        }
    }
    stream
        .ok_or_else(|| SynthError::input(&request.source, "no rows to generate from"))?
        .finish(&metadata)?;
    // The CLI prints its own line per set; this one is for -v.
    tracing::debug!(
        output = %request.output.display(),
        rows = rows_total,
        "synthetic set written"
    );
    Ok(GenerateReport {
        output: request.output.clone(),
        rows: rows_total,
        rows_per_emotion: rows.len(),
        features: width,
        feature_space: config.feature_space,
        checkpoint_sha256,
        inputs,
    })
}

struct BatchRows<'a> {
    ids: &'a [String],
    rows: &'a [usize],
    emotion: Emotion,
    scope: &'a str,
    lambda_cls: f64,
    seed: u64,
    checkpoint_sha256: &'a str,
    names: &'a [String],
    /// `rows.len() x names.len()`, row-major.
    generated: &'a [f32],
}

fn batch_frame(batch: BatchRows) -> polars::error::PolarsResult<DataFrame> {
    let count = batch.rows.len();
    let width = batch.names.len();
    let source_ids: Vec<&str> = batch
        .rows
        .iter()
        .map(|&row| batch.ids[row].as_str())
        .collect();
    let synthetic_ids: Vec<String> = source_ids
        .iter()
        .map(|id| format!("{id}@{}", batch.emotion))
        .collect();
    let mut columns = Vec::with_capacity(7 + width);
    columns.push(Column::new("synthetic_id".into(), synthetic_ids));
    columns.push(Column::new("source_utterance_id".into(), source_ids));
    columns.push(Column::new(
        "emotion".into(),
        vec![batch.emotion.as_str(); count],
    ));
    columns.push(Column::new("fold".into(), vec![batch.scope; count]));
    columns.push(Column::new(
        "lambda_cls".into(),
        vec![batch.lambda_cls; count],
    ));
    columns.push(Column::new("seed".into(), vec![batch.seed; count]));
    columns.push(Column::new(
        "checkpoint_sha256".into(),
        vec![batch.checkpoint_sha256; count],
    ));
    columns.extend(float32_columns(batch.names, batch.generated));
    DataFrame::new(count, columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_is_seeded_sorted_and_saturates() {
        let all = selected_rows(10, None, 1);
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(selected_rows(10, Some(10), 1), all);
        assert_eq!(selected_rows(10, Some(25), 1), all);
        let some = selected_rows(10, Some(4), 1);
        assert_eq!(some.len(), 4);
        assert!(some.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(some, selected_rows(10, Some(4), 1));
        assert_ne!(some, selected_rows(10, Some(4), 2));
        // The first n of one order: a larger count keeps the smaller count's rows.
        let more = selected_rows(10, Some(6), 1);
        assert!(some.iter().all(|row| more.contains(row)));
    }
}
