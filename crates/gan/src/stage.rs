//! The GAN stage's files: reading the feature stage's parquet, writing checkpoints, loss logs
//! and manifests below a run's `gan/` directory.
//!
//! **Reads**: the source corpus `features/<source>.parquet` and its `norm/<source>.all.parquet`;
//! the target corpus `features/<target>.parquet`, its `<target>.folds.parquet` (fold scopes) and
//! the min-max statistics of the scope's training part (`norm/<target>.fold<k>-train.parquet`
//! or `norm/<target>.all.parquet`). The source is scaled on itself and the target on its training
//! part, all emotions pooled, as the published code does.
//!
//! **Writes**, for a scope (`fold<k>`: trained without fold k's test session; `all`: every
//! session) below `gan/<scope>/`:
//! - `pretrain/generators.safetensors`, `pretrain/loss_log.parquet` (`pair, emotion, epoch,
//!   cycle`), `pretrain/manifest.json`, and the resumable `pretrain/pretrain.ckpt.safetensors`
//!   (deleted when the run has finished, unless [`StageRun::keep_checkpoint`]);
//! - `lambda_cls-<value>/model.safetensors` (every network; names in the crate docs),
//!   `lambda_cls-<value>/loss_log.parquet` (`epoch, learning_rate, d_<emotion>, g_<emotion>,
//!   cycle_<emotion>, cls`), `lambda_cls-<value>/manifest.json`, and the resumable
//!   `train.ckpt.safetensors` (likewise deleted when the run has finished).

use std::collections::BTreeMap;
use std::path::Path;

use emocycle_artifact::{Metadata, keys, sha256_file, write_bytes_atomic, write_parquet};
use emocycle_config::layout::{Scope, ScopeDirs, StageInputs};
use emocycle_features::{
    Emotion, FeatureMatrix, Normaliser, Scaling, TargetPart, load_target_part,
};
use polars::prelude::{Column, DataFrame};
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use crate::{
    EpochReport, GanConfig, GanError, PRETRAIN_CHECKPOINT, PretrainOutcome, PretrainedGenerators,
    RunManifest, RunOptions, TRAIN_CHECKPOINT, TrainOutcome, TrainingData, pretrain, train,
};

/// Errors of the GAN stage's input and output.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// Training failed or was refused.
    #[error(transparent)]
    Gan(#[from] GanError),
    /// A feature-stage artifact is missing or malformed.
    #[error(transparent)]
    Features(#[from] emocycle_features::FeatureError),
    /// An artifact could not be read or written.
    #[error(transparent)]
    Artifact(#[from] emocycle_artifact::ArtifactError),
    /// The inputs do not fit together.
    #[error("{0}")]
    Input(String),
    /// Some runs of a grid failed; the outputs of the others are written.
    #[error("{failed} of {total} runs failed (the others' outputs are written): {details}")]
    RunsFailed {
        /// How many failed.
        failed: usize,
        /// How many the grid trained.
        total: usize,
        /// Each failure, with its cause.
        details: String,
    },
}

/// The GAN's training data for one scope, and the hashes of the files it came from.
pub struct ScopeData {
    /// Min-max normalised source and per-emotion targets.
    pub data: TrainingData,
    /// Input files and their sha256.
    pub inputs: BTreeMap<String, String>,
    /// The held-out session, for fold scopes.
    pub held_out_session: Option<String>,
    /// Target rows per emotion.
    pub target_rows: Vec<usize>,
}

fn tensor(values: &[f32], rows: usize, width: usize) -> Tensor {
    Tensor::from_slice(values).reshape([rows as i64, width as i64])
}

/// Reads and normalises one scope's data: the source corpus scaled on itself and the scope's
/// target training part ([`load_target_part`](emocycle_features::load_target_part)) split by emotion.
pub fn load_scope_data(inputs: &StageInputs, scope: &Scope) -> Result<ScopeData, StageError> {
    let source = FeatureMatrix::read(&inputs.source)?;
    let TargetPart {
        matrix: train_part,
        held_out_session,
        inputs: target_hashes,
    } = load_target_part(inputs, scope)?;
    if source.names != train_part.names {
        return Err(StageError::Input(format!(
            "{} and {} have different features",
            inputs.source.display(),
            inputs.target.display()
        )));
    }
    let source_norm = Normaliser::read_fitted(&inputs.source_normalisation, "all", &source.names)?;
    let width = source.width();
    let source_rows = source.rows();
    let mut source_values = source.values;
    source_norm.transform_rows(&mut source_values, Scaling::MinMax);
    let target_values = &train_part.values;
    let mut targets = Vec::with_capacity(Emotion::ALL.len());
    let mut target_rows = Vec::with_capacity(Emotion::ALL.len());
    for emotion in Emotion::ALL {
        let rows: Vec<usize> = (0..train_part.rows())
            .filter(|&row| train_part.emotions[row] == Some(emotion))
            .collect();
        let values: Vec<f32> = rows
            .iter()
            .flat_map(|&row| {
                target_values[row * width..(row + 1) * width]
                    .iter()
                    .copied()
            })
            .collect();
        target_rows.push(rows.len());
        targets.push(tensor(&values, rows.len(), width));
    }
    let mut hashes = target_hashes;
    for path in [&inputs.source, &inputs.source_normalisation] {
        hashes.insert(path.display().to_string(), sha256_file(path)?);
    }
    Ok(ScopeData {
        data: TrainingData::new(tensor(&source_values, source_rows, width), targets),
        inputs: hashes,
        held_out_session,
        target_rows,
    })
}

/// The JSON manifest of a GAN run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageManifest {
    /// `pretrain` or `train`.
    pub stage: String,
    /// The scope's name.
    pub scope: String,
    /// The session the scope never saw, for fold scopes.
    pub held_out_session: Option<String>,
    /// Code version of the writer.
    pub code_version: String,
    /// Input files and their sha256.
    pub inputs: BTreeMap<String, String>,
    /// What the run did (config, seed, epochs, wall time, device, layout).
    pub run: RunManifest,
}

/// Writes a run's `loss_log.parquet` and `manifest.json` into `directory`.
fn write_log_and_manifest(
    stage: &str,
    directory: &Path,
    log: &mut DataFrame,
    metadata: &Metadata,
    scope: &Scope,
    (held_out_session, inputs): (Option<String>, BTreeMap<String, String>),
    run: &RunManifest,
) -> Result<(), StageError> {
    write_parquet(&directory.join("loss_log.parquet"), log, metadata)?;
    let manifest = StageManifest {
        stage: stage.to_string(),
        scope: scope.name(),
        held_out_session,
        code_version: emocycle_artifact::CODE_VERSION.to_string(),
        inputs,
        run: run.clone(),
    };
    let text = serde_json::to_string_pretty(&manifest)
        .map_err(|error| StageError::Input(error.to_string()))?;
    write_bytes_atomic(&directory.join("manifest.json"), text.as_bytes())?;
    Ok(())
}

fn frame_error(error: polars::error::PolarsError) -> StageError {
    StageError::Input(format!("assembling a loss log: {error}"))
}

fn log_metadata(
    stage: &str,
    scope: &Scope,
    config: &GanConfig,
    inputs: &BTreeMap<String, String>,
) -> Metadata {
    let mut metadata = Metadata::for_stage(stage, crate::CODE_FINGERPRINT);
    metadata.insert("emocycle.scope", scope.name());
    metadata.insert_json(keys::CONFIG, config);
    metadata.insert_json(keys::SEEDS, &serde_json::json!({ "gan": config.seed }));
    metadata.insert_json(keys::INPUTS, inputs);
    metadata
}

/// How the stage functions run a scope; neither setting changes the numbers.
#[derive(Debug, Clone, Copy, Default)]
pub struct StageRun {
    /// Continue from the run's checkpoint when one exists.
    pub resume: bool,
    /// Keep the resumable checkpoint once the run's outputs are written, so that a later
    /// `--resume` with more epochs continues from it. By default it is deleted then: it holds the
    /// Adam moments, about 3.6 times the size of the model.
    pub keep_checkpoint: bool,
}

impl StageRun {
    /// Deletes the finished run's checkpoint unless it is to be kept. Failing to delete it loses
    /// nothing, so that is a warning, not an error.
    fn finish(self, checkpoint: &Path) {
        if self.keep_checkpoint {
            return;
        }
        match std::fs::remove_file(checkpoint) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => tracing::warn!(
                "could not delete the finished run's checkpoint {}: {error}",
                checkpoint.display()
            ),
        }
    }
}

/// Pretrains the scope's generator pairs and writes `pretrain/`.
pub fn run_pretrain(
    config: &GanConfig,
    inputs: &StageInputs,
    scope: &Scope,
    dirs: &ScopeDirs,
    device: Device,
    run: StageRun,
    progress: &mut dyn FnMut(&EpochReport),
) -> Result<PretrainOutcome, StageError> {
    let scope_data = load_scope_data(inputs, scope)?;
    let options = RunOptions {
        checkpoint_dir: Some(dirs.pretrain()),
        resume: run.resume,
        ..RunOptions::default()
    };
    let outcome = pretrain(config, &scope_data.data, device, &options, progress)?;
    let provenance = (scope_data.held_out_session, scope_data.inputs);
    write_pretrain(config, scope, dirs, provenance, &outcome, run)?;
    Ok(outcome)
}

/// Writes a finished pretraining's `pretrain/`: the generators, the loss log (its footer
/// records `provenance`'s input hashes) and the manifest; then deletes the checkpoint unless it
/// is to be kept.
pub(crate) fn write_pretrain(
    config: &GanConfig,
    scope: &Scope,
    dirs: &ScopeDirs,
    provenance: (Option<String>, BTreeMap<String, String>),
    outcome: &PretrainOutcome,
    run: StageRun,
) -> Result<(), StageError> {
    let directory = dirs.pretrain();
    outcome.generators.save(&dirs.generators())?;
    let mut frame = DataFrame::new(
        outcome.log.len(),
        vec![
            Column::new(
                "pair".into(),
                outcome
                    .log
                    .iter()
                    .map(|r| r.pair as u32)
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "emotion".into(),
                outcome
                    .log
                    .iter()
                    .map(|r| Emotion::from_index(r.pair).map_or("", Emotion::as_str))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "epoch".into(),
                outcome
                    .log
                    .iter()
                    .map(|r| r.epoch as u32)
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "cycle".into(),
                outcome.log.iter().map(|r| r.cycle).collect::<Vec<_>>(),
            ),
        ],
    )
    .map_err(frame_error)?;
    let metadata = log_metadata("pretrain", scope, config, &provenance.1);
    write_log_and_manifest(
        "pretrain",
        &directory,
        &mut frame,
        &metadata,
        scope,
        provenance,
        &outcome.manifest,
    )?;
    run.finish(&directory.join(PRETRAIN_CHECKPOINT));
    Ok(())
}

/// The scope's pretrained generators, and the input hashes of a joint training from them (the
/// scope's data and the generators file).
pub(crate) fn train_inputs(
    scope_data: &ScopeData,
    scope: &Scope,
    dirs: &ScopeDirs,
) -> Result<(PretrainedGenerators, BTreeMap<String, String>), StageError> {
    let generators_path = dirs.generators();
    if !generators_path.is_file() {
        return Err(StageError::Input(format!(
            "{} does not exist: pretrain scope {} first",
            generators_path.display(),
            scope.name()
        )));
    }
    let pretrained = PretrainedGenerators::load(&generators_path)?;
    let mut inputs = scope_data.inputs.clone();
    inputs.insert(
        generators_path.display().to_string(),
        sha256_file(&generators_path)?,
    );
    Ok((pretrained, inputs))
}

/// Trains the scope's CycleGANs jointly (one `lambda_cls`, from `config`) from the scope's
/// pretrained generators, and writes `lambda_cls-<value>/`.
pub fn run_train(
    config: &GanConfig,
    inputs: &StageInputs,
    scope: &Scope,
    dirs: &ScopeDirs,
    device: Device,
    run: StageRun,
    progress: &mut dyn FnMut(&EpochReport),
) -> Result<TrainOutcome, StageError> {
    let scope_data = load_scope_data(inputs, scope)?;
    let (pretrained, hashes) = train_inputs(&scope_data, scope, dirs)?;
    let options = RunOptions {
        checkpoint_dir: Some(dirs.train(config.lambda_cls)),
        resume: run.resume,
        ..RunOptions::default()
    };
    let outcome = train(
        config,
        &scope_data.data,
        &pretrained,
        device,
        &options,
        progress,
    )?;
    let provenance = (scope_data.held_out_session, hashes);
    write_train(config, scope, dirs, provenance, &outcome, run)?;
    Ok(outcome)
}

/// Writes a finished joint training's `lambda_cls-<value>/`: the model, the loss log (its
/// footer records `provenance`'s input hashes) and the manifest; then deletes the checkpoint
/// unless it is to be kept.
pub(crate) fn write_train(
    config: &GanConfig,
    scope: &Scope,
    dirs: &ScopeDirs,
    provenance: (Option<String>, BTreeMap<String, String>),
    outcome: &TrainOutcome,
    run: StageRun,
) -> Result<(), StageError> {
    let directory = dirs.train(config.lambda_cls);
    outcome.model.save_weights(&dirs.model(config.lambda_cls))?;
    let emotions: Vec<&str> = (0..outcome.model.emotions())
        .map(|index| Emotion::from_index(index).map_or("unknown", Emotion::as_str))
        .collect();
    let log = &outcome.log;
    let mut columns = vec![
        Column::new(
            "epoch".into(),
            log.iter().map(|r| r.epoch as u32).collect::<Vec<_>>(),
        ),
        Column::new(
            "learning_rate".into(),
            log.iter().map(|r| r.learning_rate).collect::<Vec<_>>(),
        ),
    ];
    for (prefix, pick) in [
        (
            "d",
            (|r: &crate::TrainEpochRecord| &r.d) as fn(&crate::TrainEpochRecord) -> &Vec<f64>,
        ),
        ("g", |r| &r.g),
        ("cycle", |r| &r.cycle),
    ] {
        for (index, emotion) in emotions.iter().enumerate() {
            columns.push(Column::new(
                format!("{prefix}_{emotion}").into(),
                log.iter().map(|r| pick(r)[index]).collect::<Vec<_>>(),
            ));
        }
    }
    columns.push(Column::new(
        "cls".into(),
        log.iter().map(|r| r.cls).collect::<Vec<_>>(),
    ));
    let mut frame = DataFrame::new(log.len(), columns).map_err(frame_error)?;
    let mut metadata = log_metadata("train", scope, config, &provenance.1);
    metadata.insert("emocycle.lambda_cls", config.lambda_cls.to_string());
    write_log_and_manifest(
        "train",
        &directory,
        &mut frame,
        &metadata,
        scope,
        provenance,
        &outcome.manifest,
    )?;
    run.finish(&directory.join(TRAIN_CHECKPOINT));
    Ok(())
}
