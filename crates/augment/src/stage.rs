//! The stage: a scope's target training part in, one baseline synthetic set out.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use emocycle_artifact::{
    Metadata, ParquetCompression, ParquetEncoding, WriteOptions, float32_columns, keys,
    write_parquet_with,
};
use emocycle_features::{Emotion, TargetPart, load_target_part};
use polars::prelude::{Column, DataFrame};
use serde::{Deserialize, Serialize};
use tch::Device;

use crate::cgan::{Cgan, CganEpoch};
use crate::methods::{
    RealRows, SyntheticRows, class_counts, gaussian_noise, mixup, random_oversampling, smote,
    synthetic_counts,
};
use crate::{AugmentError, BaselineRequest, Method};

/// What [`run_baseline`] is doing, for a progress bar.
#[derive(Debug, Clone, PartialEq)]
pub enum BaselineProgress {
    /// The training part is loaded and the counts are known.
    Loaded {
        /// Real rows per emotion in the training part.
        real_rows_per_emotion: [usize; 4],
        /// Synthetic rows per emotion to make.
        rows_per_emotion: [usize; 4],
    },
    /// A cGAN training epoch ended.
    Epoch {
        /// The epoch's losses.
        record: CganEpoch,
        /// Epochs in all.
        epochs: usize,
    },
    /// The set is written.
    Written {
        /// Rows written.
        rows: usize,
    },
}

/// What [`run_baseline`] wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineReport {
    /// The parquet file.
    pub output: PathBuf,
    /// The set's name (its `method` column).
    pub name: String,
    /// The method (`smote`, ...).
    pub method: String,
    /// The seed it was made with.
    pub seed: u64,
    /// Synthetic rows per emotion, in class-index order.
    pub rows_per_emotion: [usize; 4],
    /// Real rows per emotion in the training part.
    pub real_rows_per_emotion: [usize; 4],
    /// Features per vector.
    pub features: usize,
    /// The fold's test session (none for scope `all`).
    pub held_out_session: Option<String>,
    /// Input files and their sha256, as in the footer.
    pub inputs: BTreeMap<String, String>,
    /// The cGAN's loss per epoch (empty for the other methods).
    pub cgan_log: Vec<CganEpoch>,
    /// Where the cGAN ran (`cpu`, `cuda:0`; `cpu` for the other methods).
    pub device: String,
    /// Wall time of the whole run.
    pub seconds: f64,
}

/// Makes one baseline synthetic set from the scope's target training part, exactly the
/// min-max normalised rows the GAN stage trains on ([`load_target_part`]), and writes it to
/// `request.output` atomically, LZ4-compressed like the CycleGAN sets.
///
/// Rows come emotion by emotion (angry, happy, neutral, sad). Columns: `synthetic_id`
/// (`<name>-<emotion>-<n>`, n counting from 0 within the emotion), `emotion`, `fold` (the
/// scope's name), `method` (the set's name), `seed` (u64), `parent_utterance_id` (the real row
/// it was made from; null for the cGAN), `neighbour_utterance_id` (the second row of SMOTE and
/// mixup, else null), `interpolation` (f32, their factor u, else null), then the features as
/// float32 in
/// the training part's min-max space under the corpus's names and order.
///
/// Footer: stage `augment`, `emocycle.config` ([`BaselineRequest::recorded_config`]),
/// `emocycle.seeds`, `emocycle.inputs`, `emocycle.features`, `emocycle.feature_count`,
/// `emocycle.feature_space` (`minmax`, as the CycleGAN sets), `emocycle.scope`,
/// `emocycle.method`, `emocycle.name`, `emocycle.held_out_session` (fold scopes only) and
/// `emocycle.rows_per_emotion` (JSON object emotion -> count).
///
/// `device` is where the cGAN trains; the other methods run on the CPU.
pub fn run_baseline(
    request: &BaselineRequest,
    device: Device,
    progress: &mut dyn FnMut(BaselineProgress),
) -> Result<BaselineReport, AugmentError> {
    let started = Instant::now();
    let config = &request.config;
    config.validate()?;
    let seed = request.effective_seed();
    let name = config.name().to_string();
    let TargetPart {
        matrix,
        held_out_session,
        inputs,
    } = load_target_part(&request.inputs, &request.scope)?;
    let labels: Vec<Emotion> = matrix
        .emotions
        .iter()
        .enumerate()
        .map(|(row, emotion)| {
            emotion.ok_or_else(|| {
                AugmentError::Data(format!(
                    "{}: utterance {:?} has no emotion",
                    request.inputs.target.display(),
                    matrix.ids[row]
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    let width = matrix.width();
    let real = RealRows::new(&matrix.values, width, &labels)?;
    let real_counts = class_counts(&labels);
    let counts = synthetic_counts(config.size, real_counts);
    progress(BaselineProgress::Loaded {
        real_rows_per_emotion: real_counts,
        rows_per_emotion: counts,
    });
    let mut cgan_log = Vec::new();
    let mut used_device = Device::Cpu;
    let synthetic = match &config.method {
        Method::RandomOversampling {} => random_oversampling(&real, counts, seed)?,
        Method::Smote { k } => smote(&real, counts, *k, seed)?,
        Method::GaussianNoise { sigma } => gaussian_noise(&real, counts, *sigma, seed)?,
        Method::Mixup { alpha } => mixup(&real, counts, *alpha, seed)?,
        Method::Cgan(cgan_config) => {
            for emotion in Emotion::ALL {
                if counts[emotion.index()] > 0 && real_counts[emotion.index()] == 0 {
                    return Err(AugmentError::Data(format!(
                        "cGAN: class {emotion} is to get {} synthetic rows but the training \
                         part has no {emotion} rows to learn it from",
                        counts[emotion.index()]
                    )));
                }
            }
            used_device = device;
            let mut cgan = Cgan::new(cgan_config, width, seed, device)?;
            let epochs = cgan_config.epochs;
            cgan_log = cgan.train(&real, seed, &mut |record| {
                progress(BaselineProgress::Epoch {
                    record: *record,
                    epochs,
                });
            })?;
            cgan.generate(counts, seed)?
        }
    };
    debug_assert_eq!(synthetic.counts(), counts);

    let mut metadata = Metadata::for_stage("augment", crate::CODE_FINGERPRINT);
    metadata.insert_json(keys::CONFIG, &request.recorded_config());
    metadata.insert_json(keys::SEEDS, &serde_json::json!({ "augment": seed }));
    metadata.insert_json(keys::INPUTS, &inputs);
    metadata.insert_json("emocycle.features", &matrix.names);
    metadata.insert("emocycle.feature_count", width.to_string());
    metadata.insert("emocycle.feature_space", "minmax");
    metadata.insert("emocycle.scope", request.scope.name());
    metadata.insert("emocycle.method", config.method.kind());
    metadata.insert("emocycle.name", name.clone());
    if let Some(session) = &held_out_session {
        metadata.insert("emocycle.held_out_session", session.clone());
    }
    let per_emotion: BTreeMap<&str, usize> = Emotion::ALL
        .iter()
        .map(|emotion| (emotion.as_str(), counts[emotion.index()]))
        .collect();
    metadata.insert_json("emocycle.rows_per_emotion", &per_emotion);

    let mut frame = set_frame(&SetColumns {
        synthetic: &synthetic,
        name: &name,
        scope: &request.scope.name(),
        seed,
        ids: &matrix.ids,
        names: &matrix.names,
    })
    .map_err(|source| AugmentError::Frame {
        context: format!("assembling {}", request.output.display()),
        source,
    })?;
    write_parquet_with(
        &request.output,
        &mut frame,
        &metadata,
        WriteOptions {
            // Features are float noise to a compressor: LZ4 is nearly free, as for the
            // CycleGAN sets.
            compression: ParquetCompression::Lz4,
            row_group_rows: None,
            encoding: ParquetEncoding::Plain,
        },
    )?;
    progress(BaselineProgress::Written {
        rows: synthetic.rows(),
    });
    // The CLI prints its own line per set; this one is for -v.
    tracing::debug!(
        output = %request.output.display(),
        rows = synthetic.rows(),
        method = config.method.kind(),
        "baseline synthetic set written"
    );
    Ok(BaselineReport {
        output: request.output.clone(),
        name,
        method: config.method.kind().to_string(),
        seed,
        rows_per_emotion: counts,
        real_rows_per_emotion: real_counts,
        features: width,
        held_out_session,
        inputs,
        cgan_log,
        device: emocycle_torch::device_name(used_device),
        seconds: started.elapsed().as_secs_f64(),
    })
}

struct SetColumns<'a> {
    synthetic: &'a SyntheticRows,
    name: &'a str,
    scope: &'a str,
    seed: u64,
    /// The real rows' utterance ids, for provenance.
    ids: &'a [String],
    names: &'a [String],
}

fn set_frame(set: &SetColumns) -> polars::error::PolarsResult<DataFrame> {
    let synthetic = set.synthetic;
    let count = synthetic.rows();
    let width = synthetic.width;
    let mut made = [0usize; 4];
    let synthetic_ids: Vec<String> = synthetic
        .labels
        .iter()
        .map(|emotion| {
            let n = &mut made[emotion.index()];
            *n += 1;
            format!("{}-{emotion}-{}", set.name, *n - 1)
        })
        .collect();
    let id_of = |rows: &[Option<usize>]| -> Vec<Option<&str>> {
        rows.iter()
            .map(|row| row.map(|row| set.ids[row].as_str()))
            .collect()
    };
    let mut columns = Vec::with_capacity(8 + width);
    columns.push(Column::new("synthetic_id".into(), synthetic_ids));
    columns.push(Column::new(
        "emotion".into(),
        synthetic
            .labels
            .iter()
            .map(|emotion| emotion.as_str())
            .collect::<Vec<_>>(),
    ));
    columns.push(Column::new("fold".into(), vec![set.scope; count]));
    columns.push(Column::new("method".into(), vec![set.name; count]));
    columns.push(Column::new("seed".into(), vec![set.seed; count]));
    columns.push(Column::new(
        "parent_utterance_id".into(),
        id_of(&synthetic.parents),
    ));
    columns.push(Column::new(
        "neighbour_utterance_id".into(),
        id_of(&synthetic.neighbours),
    ));
    columns.push(Column::new(
        "interpolation".into(),
        synthetic.interpolation.clone(),
    ));
    columns.extend(float32_columns(set.names, &synthetic.values));
    DataFrame::new(count, columns)
}
