//! Cycle-only pretraining and joint training, with checkpoints, resume and progress reports.

use std::cell::Cell;
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use emocycle_rng::SplitMix64;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::checkpoint::{
    SettingsKey, config_differences, corrupt, read_safetensors, tensor_f64s, tensor_i64s,
    tensor_text, text_tensor, write_safetensors_atomic,
};
use crate::data::{DataShape, EpochPlan, Phase, TrainingData, derived_seed, plan_epoch};
use crate::grid::{GridPretrain, GridRun, pretrain_grid, train_grid};
use crate::model::{CycleGanModel, Nets, PretrainedGenerators, generator_stack};
use crate::{GanConfig, GanError, ModelLayout};
use emocycle_torch::{Acts, Leaf, MlpStack};
use emocycle_torch::{Adam, AdamPart, AdamStep};

/// File name of the pretraining checkpoint inside [`RunOptions::checkpoint_dir`].
pub const PRETRAIN_CHECKPOINT: &str = "pretrain.ckpt.safetensors";
/// File name of the joint-training checkpoint inside [`RunOptions::checkpoint_dir`].
pub const TRAIN_CHECKPOINT: &str = "train.ckpt.safetensors";
const FORMAT_VERSION: i64 = 1;

/// How a run executes (none of it changes the method).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Where checkpoints go; `None` writes none.
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue from the checkpoint in `checkpoint_dir` when one exists.
    pub resume: bool,
    /// Stop (after writing a checkpoint) once this call has run this many epochs.
    pub stop_after_epochs: Option<usize>,
}

/// Pretraining losses of one epoch of one pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainEpochRecord {
    /// The CycleGAN (emotion) index.
    pub pair: usize,
    /// 0-based epoch of that pair.
    pub epoch: usize,
    /// Mean over the epoch's iterations of `mse(s, F(G(s))) + mse(t, G(F(t)))`.
    pub cycle: f64,
}

/// Joint-training losses of one epoch, means over its iterations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainEpochRecord {
    /// 0-based epoch.
    pub epoch: usize,
    /// The epoch's learning rate.
    pub learning_rate: f64,
    /// Discriminator loss of every CycleGAN (mean over the D steps).
    pub d: Vec<f64>,
    /// Generator loss of every CycleGAN including `lambda_cyc * cycle` (mean over the G steps).
    pub g: Vec<f64>,
    /// Unweighted cycle loss of every CycleGAN (mean over the G steps).
    pub cycle: Vec<f64>,
    /// C's cross-entropy (mean over the G steps; 0 without C).
    pub cls: f64,
}

impl TrainEpochRecord {
    /// Whether every loss of the epoch is a number: false once training has diverged.
    pub(crate) fn is_finite(&self) -> bool {
        let losses = self.d.iter().chain(&self.g).chain(&self.cycle);
        losses
            .chain(std::iter::once(&self.cls))
            .all(|v| v.is_finite())
    }
}

/// One finished epoch, for progress bars.
#[derive(Debug, Clone, PartialEq)]
pub enum EpochReport {
    /// A pretraining epoch.
    Pretrain {
        /// Its losses.
        record: PretrainEpochRecord,
        /// Configured epochs per pair.
        epochs: usize,
        /// Configured pairs.
        pairs: usize,
    },
    /// A joint-training epoch.
    Train {
        /// Its losses.
        record: TrainEpochRecord,
        /// Configured epochs.
        epochs: usize,
    },
}

/// What a run did, for the stage's JSON manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunManifest {
    /// `pretrain` or `train`.
    pub phase: String,
    /// The configuration.
    pub config: GanConfig,
    /// The seed (also inside `config`).
    pub seed: u64,
    /// Epochs done: one entry per pair for pretraining, one entry for joint training.
    pub epochs_done: Vec<usize>,
    /// Whether every configured epoch is done.
    pub complete: bool,
    /// Training wall time over all resumed parts, seconds; for a run trained in a grid, the
    /// time of the grid it trained in.
    pub wall_seconds: f64,
    /// Device name (`cpu`, `cuda:0`).
    pub device: String,
    /// `separate` for the per-run trainer on the CPU, `grid` for the grid engine (which is also
    /// how a run trains alone on CUDA); `batched` in manifests of earlier versions.
    pub layout: String,
    /// Shapes of the data.
    pub data: DataShape,
    /// Trainable parameters of the phase's networks.
    pub parameters: i64,
    /// The last checkpoint written, if any.
    pub checkpoint: Option<PathBuf>,
}

/// Result of [`pretrain`].
#[derive(Debug)]
pub struct PretrainOutcome {
    /// The (G_i, F_i) pairs.
    pub generators: PretrainedGenerators,
    /// Per-pair, per-epoch losses, including epochs of resumed-from runs.
    pub log: Vec<PretrainEpochRecord>,
    /// What was done.
    pub manifest: RunManifest,
}

/// Result of [`train`].
pub struct TrainOutcome {
    /// The networks after the last epoch run.
    pub model: CycleGanModel,
    /// Per-epoch losses, including epochs of resumed-from runs.
    pub log: Vec<TrainEpochRecord>,
    /// What was done.
    pub manifest: RunManifest,
}

pub(crate) struct DeviceData {
    pub(crate) source: Tensor,
    pub(crate) targets: Tensor,
    pub(crate) offsets: Vec<i64>,
    pub(crate) shape: DataShape,
}

impl DeviceData {
    pub(crate) fn new(
        data: &TrainingData,
        config: &GanConfig,
        device: Device,
    ) -> Result<Self, GanError> {
        let shape = data.validate(config.batch_size)?;
        let mut offsets = Vec::with_capacity(shape.target_rows.len());
        let mut offset = 0;
        for rows in &shape.target_rows {
            offsets.push(offset);
            offset += rows;
        }
        Ok(Self {
            source: data.source.to_device(device),
            targets: Tensor::cat(&data.targets, 0).to_device(device),
            offsets,
            shape,
        })
    }

    pub(crate) fn models(&self) -> usize {
        self.shape.target_rows.len()
    }
}

pub(crate) fn values(tensor: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(
        tensor
            .to_kind(Kind::Double)
            .to_device(Device::Cpu)
            .flatten(0, -1),
    )
    .unwrap_or_default()
}

pub(crate) fn check_checkpoint_meta(
    path: &Path,
    tensors: &HashMap<String, Tensor>,
    config: &GanConfig,
    shape: &DataShape,
    key: SettingsKey,
    epochs: &str,
) -> Result<(), GanError> {
    let format = tensor_i64s(tensors, "meta.format", path)?;
    if format != [FORMAT_VERSION] {
        return Err(corrupt(
            path,
            format!("format {format:?}, this build reads {FORMAT_VERSION}"),
        ));
    }
    let saved: GanConfig = serde_json::from_str(&tensor_text(tensors, "meta.config_json", path)?)
        .map_err(|e| corrupt(path, format!("meta.config_json: {e}")))?;
    let mut differences = config_differences(&saved, config, key, epochs);
    let saved_shape: DataShape =
        serde_json::from_str(&tensor_text(tensors, "meta.data_json", path)?)
            .map_err(|e| corrupt(path, format!("meta.data_json: {e}")))?;
    if &saved_shape != shape {
        differences.push(format!(
            "data shapes: checkpoint {saved_shape:?}, this run {shape:?}"
        ));
    }
    if differences.is_empty() {
        Ok(())
    } else {
        Err(GanError::CheckpointMismatch {
            path: path.to_path_buf(),
            differences: differences.join("; "),
        })
    }
}

/// Where a run's dropout masks come from, recorded in its checkpoints as `meta.dropout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MaskSource {
    /// libtorch's process-wide generator (every checkpoint without `meta.dropout`).
    Libtorch,
    /// Per-CycleGAN (or per-pair) SplitMix64 streams: CycleGANs trained side by side.
    Streams,
}

impl MaskSource {
    pub(crate) fn name(self) -> &'static str {
        match self {
            MaskSource::Libtorch => "libtorch",
            MaskSource::Streams => "streams",
        }
    }
}

pub(crate) fn meta_tensors(
    config: &GanConfig,
    shape: &DataShape,
    layout: &str,
    masks: MaskSource,
    wall: f64,
) -> Vec<(String, Tensor)> {
    vec![
        ("meta.format".into(), Tensor::from_slice(&[FORMAT_VERSION])),
        (
            "meta.config_json".into(),
            text_tensor(&serde_json::to_string(config).unwrap_or_default()),
        ),
        (
            "meta.data_json".into(),
            text_tensor(&serde_json::to_string(shape).unwrap_or_default()),
        ),
        ("meta.layout".into(), text_tensor(layout)),
        ("meta.dropout".into(), text_tensor(masks.name())),
        ("meta.wall_seconds".into(), Tensor::from_slice(&[wall])),
    ]
}

/// A checkpoint whose masks came from elsewhere (one written before the CycleGANs trained side
/// by side, or on another device) resumes validly, but not bit-identically.
pub(crate) fn warn_on_mask_change(
    tensors: &HashMap<String, Tensor>,
    path: &Path,
    masks: MaskSource,
) {
    let saved = tensor_text(tensors, "meta.dropout", path)
        .unwrap_or_else(|_| MaskSource::Libtorch.name().to_string());
    if saved != masks.name() {
        tracing::warn!(
            path = %path.display(),
            saved,
            now = masks.name(),
            "resuming with dropout masks from another source: the run stays valid but is no longer bit-identical to an uninterrupted one"
        );
    }
}

pub(crate) fn warn_on_layout_change(tensors: &HashMap<String, Tensor>, path: &Path, layout: &str) {
    if let Ok(saved) = tensor_text(tensors, "meta.layout", path)
        && saved != layout
    {
        tracing::warn!(
            saved,
            now = layout,
            "resuming with another layout: the run stays valid but is no longer bit-identical to an uninterrupted one"
        );
    }
}

/// Epochs this call may still run before `stop_after_epochs` stops it.
pub(crate) struct Budget(pub(crate) Option<usize>);

impl Budget {
    pub(crate) fn exhausted(&self) -> bool {
        self.0 == Some(0)
    }

    fn left(&self) -> usize {
        self.0.unwrap_or(usize::MAX)
    }

    pub(crate) fn spend(&mut self) {
        if let Some(left) = self.0.as_mut() {
            *left = left.saturating_sub(1);
        }
    }
}

/// One (G_i, F_i) pair of pretraining and its optimiser.
pub(crate) struct Pair {
    pub g: MlpStack,
    pub f: MlpStack,
    pub adam: Adam,
}

/// One pretraining epoch of one pair, ready to run on any thread.
struct PretrainEpoch<'a> {
    pair: &'a mut Pair,
    plan: EpochPlan,
    source: Tensor,
    targets: Tensor,
    /// Seed of the pair's dropout streams; `None` draws masks from libtorch's generator.
    dropout_seed: Option<u64>,
}

impl<'a> PretrainEpoch<'a> {
    fn new(
        pair: &'a mut Pair,
        (plan, dropout_seed): (EpochPlan, Option<u64>),
        data: &DeviceData,
    ) -> Self {
        PretrainEpoch {
            pair,
            plan,
            source: data.source.shallow_clone(),
            targets: data.targets.shallow_clone(),
            dropout_seed,
        }
    }

    /// Runs the epoch; returns the mean cycle loss of its iterations.
    fn run(self, lr: f64) -> f64 {
        let Self {
            pair,
            plan,
            source,
            targets,
            dropout_seed,
        } = self;
        if let Some(seed) = dropout_seed {
            let mut mixer = SplitMix64::new(seed);
            pair.g
                .set_dropout_streams(vec![SplitMix64::new(mixer.next_u64())]);
            pair.f
                .set_dropout_streams(vec![SplitMix64::new(mixer.next_u64())]);
        }
        let mut sum = Tensor::zeros([], (Kind::Float, source.device()));
        for it in 0..plan.iterations {
            let s = Acts::List(vec![source.index_select(0, &plan.source_rows.get(it))]);
            let t = Acts::List(vec![targets.index_select(0, &plan.target_rows.get(it))]);
            let gs = pair.g.forward(&s, true);
            let ft = pair.f.forward(&t, true);
            let loss = (s.mse(&pair.f.forward(&gs, true)) + t.mse(&pair.g.forward(&ft, true)))
                .sum(Kind::Float);
            pair.adam.minimise(&loss, lr);
            sum += loss.detach();
        }
        sum.double_value(&[]) / plan.iterations as f64
    }
}

/// What a pretraining checkpoint records besides the pairs' state.
pub(crate) struct PretrainCheckpoint<'a> {
    pub config: &'a GanConfig,
    pub shape: &'a DataShape,
    pub masks: MaskSource,
}

impl PretrainCheckpoint<'_> {
    /// Writes every pair's G and F, its optimiser (`adam.pre.<k>`), the epochs done per pair and
    /// the loss log, atomically.
    pub(crate) fn write(
        &self,
        path: &Path,
        pairs: &[Pair],
        done: &[usize],
        log: &[PretrainEpochRecord],
        wall: f64,
    ) -> Result<(), GanError> {
        // A pair is one model, which both engines name as the separate layout does.
        let layout = ModelLayout::Separate.name();
        let mut tensors = meta_tensors(self.config, self.shape, layout, self.masks, wall);
        let epochs: Vec<i64> = done.iter().map(|&e| e as i64).collect();
        tensors.push(("meta.epochs_done".into(), Tensor::from_slice(&epochs)));
        let rows: Vec<f64> = log
            .iter()
            .flat_map(|r| [r.pair as f64, r.epoch as f64, r.cycle])
            .collect();
        tensors.push((
            "log.pretrain".into(),
            Tensor::from_slice(&rows).view([-1, 3]),
        ));
        for (k, pair) in pairs.iter().enumerate() {
            for leaf in pair.g.leaves().into_iter().chain(pair.f.leaves()) {
                tensors.extend(leaf.export("", &leaf.tensor));
            }
            tensors.extend(pair.adam.export(&format!("adam.pre.{k}")));
        }
        write_safetensors_atomic(path, &tensors)
    }

    /// Restores what [`PretrainCheckpoint::write`] wrote into `pairs`, after checking that it
    /// belongs to this run; returns the epochs done per pair, the loss log and the wall time so
    /// far.
    pub(crate) fn read(
        &self,
        path: &Path,
        pairs: &mut [Pair],
    ) -> Result<(Vec<usize>, Vec<PretrainEpochRecord>, f64), GanError> {
        let tensors = read_safetensors(path)?;
        check_checkpoint_meta(
            path,
            &tensors,
            self.config,
            self.shape,
            GanConfig::pretraining_key,
            "pretrain_epochs",
        )?;
        warn_on_mask_change(&tensors, path, self.masks);
        for (k, pair) in pairs.iter_mut().enumerate() {
            for leaf in pair.g.leaves().into_iter().chain(pair.f.leaves()) {
                leaf.import("", &tensors, &leaf.tensor)
                    .map_err(|r| corrupt(path, r))?;
            }
            pair.adam
                .import(&format!("adam.pre.{k}"), &tensors)
                .map_err(|r| corrupt(path, r))?;
        }
        let done: Vec<usize> = tensor_i64s(&tensors, "meta.epochs_done", path)?
            .into_iter()
            .map(|e| usize::try_from(e).unwrap_or(0))
            .collect();
        if done.len() != pairs.len() {
            return Err(corrupt(path, "meta.epochs_done has the wrong length"));
        }
        let log = tensor_f64s(&tensors, "log.pretrain", path)?
            .chunks_exact(3)
            .map(|r| PretrainEpochRecord {
                pair: r[0] as usize,
                epoch: r[1] as usize,
                cycle: r[2],
            })
            .collect();
        let wall = tensor_f64s(&tensors, "meta.wall_seconds", path)?
            .first()
            .copied()
            .unwrap_or(0.0);
        Ok((done, log, wall))
    }
}

/// Cycle-only pretraining of every (G_i, F_i) pair on its own: source batches against emotion
/// i's batches, `mse(s, F(G(s))) + mse(t, G(F(t)))`, constant learning rate, dropout active.
///
/// Every epoch reseeds libtorch from (seed, pair, epoch) before drawing its permutations, so
/// the pairs are independent of each other and of the order they run in. The epochs run in
/// rounds, one epoch of every unfinished pair per round. On the CPU a round's epochs run side
/// by side (min(T, K) threads for T libtorch threads, as `Spread` says) and each pair draws
/// its dropout masks from SplitMix64 streams seeded per epoch, so the result is the same for 1
/// to K threads. On CUDA the run pretrains as a grid of one ([`crate::pretrain_grid`]), its
/// pairs stacked; on other devices the pairs run one after the other with libtorch's masks.
pub fn pretrain(
    config: &GanConfig,
    data: &TrainingData,
    device: Device,
    options: &RunOptions,
    progress: &mut dyn FnMut(&EpochReport),
) -> Result<PretrainOutcome, GanError> {
    if device.is_cuda() {
        let run = GridPretrain {
            label: "pretraining".into(),
            config,
            data,
            options: options.clone(),
        };
        return alone(pretrain_grid(&[run], device, &mut |_, r| progress(r)));
    }
    config.validate()?;
    let data = DeviceData::new(data, config, device)?;
    let models = data.models();
    let features = data.shape.features;
    let started = Instant::now();
    let masks = match device {
        Device::Cpu => MaskSource::Streams,
        _ => MaskSource::Libtorch,
    };
    let mut pairs: Vec<Pair> = (0..models)
        .map(|k| {
            emocycle_torch::seed_everything(derived_seed(config.seed, Phase::PretrainInit, k, 0));
            // One pair is one model: the layouts coincide, so Separate avoids the stacking.
            let g = generator_stack(
                config,
                "g",
                vec![k],
                features,
                ModelLayout::Separate,
                device,
            );
            let f = generator_stack(
                config,
                "f",
                vec![k],
                features,
                ModelLayout::Separate,
                device,
            );
            let leaves: Vec<Leaf> = g.leaves().into_iter().chain(f.leaves()).collect();
            let adam = Adam::new(
                leaves,
                config.adam_beta1,
                config.adam_beta2,
                config.adam_epsilon,
            );
            Pair { g, f, adam }
        })
        .collect();
    let mut done = vec![0usize; models];
    let mut log = Vec::new();
    let mut earlier_wall = 0.0;
    let path = options
        .checkpoint_dir
        .as_ref()
        .map(|dir| dir.join(PRETRAIN_CHECKPOINT));
    let checkpoint = PretrainCheckpoint {
        config,
        shape: &data.shape,
        masks,
    };
    if let Some(path) = path.as_ref().filter(|p| options.resume && p.exists()) {
        (done, log, earlier_wall) = checkpoint.read(path, &mut pairs)?;
        tracing::info!(path = %path.display(), epochs_done = ?done, "resuming pretraining");
    }
    let parameters: i64 = pairs
        .iter()
        .map(|p| p.g.parameter_count() + p.f.parameter_count())
        .sum();
    tracing::info!(pairs = models, epochs = config.pretrain_epochs, parameters, device = %emocycle_torch::device_name(device), "pretraining starts");

    let save = |pairs: &[Pair],
                done: &[usize],
                log: &[PretrainEpochRecord],
                wall: f64|
     -> Result<(), GanError> {
        let Some(path) = path.as_ref() else {
            return Ok(());
        };
        checkpoint.write(path, pairs, done, log, wall)?;
        tracing::debug!(path = %path.display(), "pretraining checkpoint written");
        Ok(())
    };

    let batch = config.batch_size as i64;
    let mut budget = Budget(options.stop_after_epochs);
    let mut dirty = false;
    let lr = config.learning_rate;
    let side_by_side = match masks {
        MaskSource::Streams => {
            let spread = Spread::for_threads(tch::get_num_threads(), models);
            Some((
                group_pool(spread)?,
                spread.threads_per_group,
                CallerThreads::set(spread.threads_per_group),
            ))
        }
        _ => None,
    };
    // Epoch `epoch` of pair `k`: its own seed, then its permutations and dropout seed.
    let prepare = |k: usize, epoch: usize| -> (EpochPlan, Option<u64>) {
        emocycle_torch::seed_everything(derived_seed(config.seed, Phase::Pretrain, k, epoch));
        let plan = plan_epoch(
            data.shape.source_rows,
            &data.shape.target_rows[k..=k],
            &data.offsets[k..=k],
            batch,
            device,
        );
        (plan, side_by_side.is_some().then(|| dropout_seeds(1)[0]))
    };
    loop {
        let round: Vec<usize> = (0..models)
            .filter(|&k| done[k] < config.pretrain_epochs)
            .take(budget.left())
            .collect();
        if round.is_empty() {
            break;
        }
        let chosen = pairs
            .iter_mut()
            .enumerate()
            .filter(|(k, _)| round.contains(k));
        let cycles: Vec<f64> = match &side_by_side {
            Some((pool, threads, _)) => {
                let epochs: Vec<PretrainEpoch> = chosen
                    .map(|(k, pair)| PretrainEpoch::new(pair, prepare(k, done[k]), &data))
                    .collect();
                pool.install(|| {
                    epochs
                        .into_par_iter()
                        .map(|epoch| {
                            use_libtorch_threads(*threads);
                            epoch.run(lr)
                        })
                        .collect()
                })
            }
            // Each epoch draws its masks from libtorch's generator right after its own
            // reseed: prepared and run one at a time.
            None => chosen
                .map(|(k, pair)| PretrainEpoch::new(pair, prepare(k, done[k]), &data).run(lr))
                .collect(),
        };
        let mut checkpoint_due = false;
        for (&k, cycle) in round.iter().zip(cycles) {
            let epoch = done[k];
            if !cycle.is_finite() {
                return Err(GanError::Diverged {
                    phase: "pretrain",
                    epoch,
                    pair: Some(k),
                });
            }
            let record = PretrainEpochRecord {
                pair: k,
                epoch,
                cycle,
            };
            tracing::debug!(pair = k, epoch, cycle, "pretraining epoch");
            progress(&EpochReport::Pretrain {
                record: record.clone(),
                epochs: config.pretrain_epochs,
                pairs: models,
            });
            log.push(record);
            done[k] += 1;
            budget.spend();
            dirty = true;
            checkpoint_due |= done[k].is_multiple_of(config.checkpoint_every);
        }
        // Pair by pair, as a run that trains the pairs one after the other would list them.
        log.sort_by_key(|record| (record.pair, record.epoch));
        if checkpoint_due {
            save(
                &pairs,
                &done,
                &log,
                earlier_wall + started.elapsed().as_secs_f64(),
            )?;
            dirty = false;
        }
    }
    let wall = earlier_wall + started.elapsed().as_secs_f64();
    if dirty {
        save(&pairs, &done, &log, wall)?;
    }
    let complete = done.iter().all(|&e| e >= config.pretrain_epochs);
    tracing::info!(epochs_done = ?done, complete, wall_seconds = wall, "pretraining ends");
    let tensors = pairs
        .iter()
        .flat_map(|pair| pair.g.leaves().into_iter().chain(pair.f.leaves()))
        .flat_map(|leaf| leaf.export("", &leaf.tensor))
        .collect();
    Ok(PretrainOutcome {
        generators: PretrainedGenerators { tensors },
        log,
        manifest: RunManifest {
            phase: "pretrain".into(),
            config: config.clone(),
            seed: config.seed,
            epochs_done: done,
            complete,
            wall_seconds: wall,
            device: emocycle_torch::device_name(device),
            layout: ModelLayout::Separate.name().into(),
            data: data.shape.clone(),
            parameters,
            checkpoint: path.filter(|p| p.exists()),
        },
    })
}

/// Joint training state: the networks and both optimisers.
pub(crate) struct Trainer {
    pub nets: Nets,
    pub adam_d: Adam,
    pub adam_g: Adam,
    labels: Tensor,
    /// Set on the CPU: the CycleGANs train in groups, side by side.
    groups: Option<Groups>,
}

/// How the CycleGANs of a model on the CPU are spread over threads.
///
/// Every group runs whole steps of its CycleGANs (forward, backward and Adam) on libtorch
/// threads of its own. The products of one CycleGAN are too small (64 or 128 rows) for two
/// threads to share well: on two cores, two groups of one thread each beat one group of two
/// (docs/benchmarks.md's history). Results depend on `threads_per_group` only, not on `groups`: every
/// CycleGAN draws its dropout masks from streams of its own and computes the same kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spread {
    pub groups: usize,
    pub threads_per_group: i32,
}

impl Spread {
    /// One group per libtorch thread of the caller, at most one per CycleGAN, and
    /// `threads / groups` (rounded down) libtorch threads per group. With more CycleGANs than
    /// groups, the groups hold `K / groups` or one more each.
    pub(crate) fn for_threads(threads: i32, models: usize) -> Spread {
        let threads = usize::try_from(threads).unwrap_or(1).max(1);
        let groups = threads.min(models).max(1);
        Spread {
            groups,
            threads_per_group: i32::try_from(threads / groups).unwrap_or(1),
        }
    }

    /// The spread on `device`: `None` unless the CPU.
    pub(crate) fn default_for(device: Device, models: usize) -> Option<Spread> {
        (device == Device::Cpu).then(|| Spread::for_threads(tch::get_num_threads(), models))
    }
}

/// Some of the CycleGANs, with their parts of both optimisers.
struct Group {
    models: Range<usize>,
    nets: Nets,
    adam_d: AdamPart,
    adam_g: AdamPart,
}

struct Groups {
    pool: rayon::ThreadPool,
    groups: Vec<Group>,
    threads_per_group: i32,
    /// C's part of the G optimiser; C runs on the calling thread.
    classifier_adam: Option<AdamPart>,
    _caller: CallerThreads,
}

/// While it lives, the calling thread runs on a group's libtorch thread count: the little work
/// it does between the groups' phases would otherwise leave an idle OpenMP team spin-waiting
/// on cores the groups need. Dropping it gives the caller its count back.
struct CallerThreads {
    before: i32,
}

impl CallerThreads {
    fn set(threads: i32) -> Self {
        let before = tch::get_num_threads();
        set_libtorch_threads(threads);
        Self { before }
    }
}

impl Drop for CallerThreads {
    fn drop(&mut self) {
        // Setting a thread's count also sets the count libtorch gives threads it meets later.
        set_libtorch_threads(self.before);
    }
}

/// A pool of `spread.groups` threads for CycleGANs trained side by side.
fn group_pool(spread: Spread) -> Result<rayon::ThreadPool, GanError> {
    Ok(rayon::ThreadPoolBuilder::new()
        .num_threads(spread.groups)
        .thread_name(|i| format!("emocycle-gan-{i}"))
        .build()?)
}

thread_local! {
    /// The libtorch thread count [`use_libtorch_threads`] last gave this thread (0: none).
    static LIBTORCH_THREADS: Cell<i32> = const { Cell::new(0) };
}

/// Gives the calling thread `threads` libtorch threads.
fn set_libtorch_threads(threads: i32) {
    emocycle_torch::set_libtorch_threads(threads);
    LIBTORCH_THREADS.with(|current| current.set(threads));
}

/// [`set_libtorch_threads`] for the pool's threads, which only this module sets: once per
/// thread and count.
fn use_libtorch_threads(threads: i32) {
    if LIBTORCH_THREADS.with(Cell::get) != threads {
        set_libtorch_threads(threads);
    }
}

/// One dropout seed per CycleGAN for the next step, drawn from libtorch's generator (which
/// every epoch reseeds), so the run's seed decides every mask whatever the threads.
pub(crate) fn dropout_seeds(models: usize) -> Vec<u64> {
    let drawn = Tensor::randint(i64::MAX, [models as i64], (Kind::Int64, Device::Cpu));
    Vec::<i64>::try_from(&drawn)
        .expect("an int64 vector converts")
        .into_iter()
        .map(|seed| seed as u64)
        .collect()
}

impl Groups {
    fn new(
        nets: &Nets,
        adam_d: &Adam,
        adam_g: &Adam,
        quirk: bool,
        spread: Spread,
    ) -> Result<Self, GanError> {
        let params = |stacks: &[&MlpStack]| -> Vec<Tensor> {
            stacks
                .iter()
                .flat_map(|stack| stack.leaves())
                .map(|leaf| leaf.tensor)
                .collect()
        };
        let models = nets.models;
        let count = spread.groups.clamp(1, models.max(1));
        let groups = (0..count)
            .map(|i| {
                let range = i * models / count..(i + 1) * models / count;
                let share = nets.share(range.clone());
                let mut d_stacks = vec![&share.d_t, &share.d_s];
                if quirk {
                    d_stacks.push(&share.g);
                }
                Group {
                    adam_d: adam_d.part(&params(&d_stacks)),
                    adam_g: adam_g.part(&params(&[&share.g, &share.f])),
                    models: range,
                    nets: share,
                }
            })
            .collect::<Vec<_>>();
        let classifier_adam = nets.c.as_ref().map(|c| adam_g.part(&params(&[c])));
        let covered = |parts: &mut dyn Iterator<Item = &AdamPart>| -> usize {
            parts.map(|part| part.params().len()).sum()
        };
        assert_eq!(
            covered(&mut groups.iter().map(|g| &g.adam_d)),
            adam_d.parameter_tensors(),
            "the groups hold every D-step parameter once"
        );
        assert_eq!(
            covered(&mut groups.iter().map(|g| &g.adam_g).chain(&classifier_adam)),
            adam_g.parameter_tensors(),
            "the groups and C hold every G-step parameter once"
        );
        let pool = group_pool(Spread {
            groups: count,
            ..spread
        })?;
        Ok(Self {
            pool,
            groups,
            threads_per_group: spread.threads_per_group,
            classifier_adam,
            // C and the bookkeeping between the groups' phases run on the calling thread.
            _caller: CallerThreads::set(spread.threads_per_group),
        })
    }

    /// Runs `work` once per group on the pool, each group with its own inputs, and returns the
    /// results in group order.
    fn run<I: Send, R: Send>(
        &mut self,
        inputs: Vec<I>,
        work: impl Fn(&mut Group, I) -> R + Sync,
    ) -> Vec<R> {
        let threads = self.threads_per_group;
        let jobs: Vec<(&mut Group, I)> = self.groups.iter_mut().zip(inputs).collect();
        self.pool.install(|| {
            jobs.into_par_iter()
                .map(|(group, input)| {
                    use_libtorch_threads(threads);
                    work(group, input)
                })
                .collect()
        })
    }

    /// [`Trainer::discriminator_step`] in groups: each group's whole step on its own thread.
    fn discriminator_step(
        &mut self,
        config: &GanConfig,
        s: &Acts,
        t: &Acts,
        step: AdamStep,
    ) -> Tensor {
        let quirk = config.d_step_updates_generator;
        let seeds = dropout_seeds(s.tensors().len());
        let inputs = self.split(s, t);
        let losses = self.run(inputs, |group, (s, t)| {
            group.nets.set_dropout_seeds(&seeds[group.models.clone()]);
            let losses = group.nets.discriminator_losses(config, &s, &t, quirk);
            group.adam_d.minimise(&losses.sum(Kind::Float), step);
            losses.detach()
        });
        Tensor::cat(&losses, 0)
    }

    /// [`Trainer::generator_step`] in groups: each group's forward pass, then C with its labels
    /// (`classifier`) on the calling thread, as it sees every CycleGAN's G(s), then each group's
    /// backward pass and update with C's gradient of its G(s) added. The gradients are those of
    /// the one-graph step.
    fn generator_step(
        &mut self,
        config: &GanConfig,
        classifier: Option<(&MlpStack, &Tensor)>,
        s: &Acts,
        t: &Acts,
        step: AdamStep,
        sums: &mut EpochSums,
    ) {
        let seeds = dropout_seeds(s.tensors().len());
        let inputs = self.split(s, t);
        let forwards = self.run(inputs, |group, (s, t)| {
            group.nets.set_dropout_seeds(&seeds[group.models.clone()]);
            group.nets.cycle_gan_losses(config, &s, &t)
        });
        // C's gradient with respect to each G(s), from detached copies: the groups' graphs stay
        // with the groups.
        let generated_grads: Vec<Option<Vec<Tensor>>> = match (classifier, &self.classifier_adam) {
            (Some((c, labels)), Some(classifier_adam)) => {
                let generated: Vec<Vec<Tensor>> = forwards
                    .iter()
                    .map(|forward| {
                        forward
                            .generated
                            .tensors()
                            .iter()
                            .map(|x| x.detach().set_requires_grad(true))
                            .collect()
                    })
                    .collect();
                let all: Vec<&Tensor> = generated.iter().flatten().collect();
                let cls = c
                    .forward_one(0, &Tensor::cat(&all, 0), true)
                    .cross_entropy_for_logits(labels);
                let params = classifier_adam.params();
                let inputs: Vec<&Tensor> = params.iter().chain(all.iter().copied()).collect();
                let grads =
                    Tensor::run_backward(&[&cls * config.lambda_cls], &inputs, false, false);
                let (classifier_grads, mut rest) = grads.split_at(params.len());
                classifier_adam.apply(classifier_grads, step);
                sums.cls += cls.detach();
                generated
                    .iter()
                    .map(|group| {
                        let (own, others) = rest.split_at(group.len());
                        rest = others;
                        Some(own.iter().map(Tensor::shallow_clone).collect())
                    })
                    .collect()
            }
            _ => forwards.iter().map(|_| None).collect(),
        };
        let inputs: Vec<_> = forwards.into_iter().zip(generated_grads).collect();
        let losses = self.run(inputs, |group, (forward, generated_grads)| {
            let mut total = forward.g.sum(Kind::Float);
            if let Some(grads) = generated_grads {
                // d/dx of sum(x * grad) is grad: C's gradient enters G's graph here.
                for (x, grad) in forward.generated.tensors().iter().zip(&grads) {
                    total += (x * grad).sum(Kind::Float);
                }
            }
            group.adam_g.minimise(&total, step);
            (forward.g.detach(), forward.cycle.detach())
        });
        let (g, cycle): (Vec<Tensor>, Vec<Tensor>) = losses.into_iter().unzip();
        sums.g += Tensor::cat(&g, 0);
        sums.cycle += Tensor::cat(&cycle, 0);
    }

    /// Each group's share of `s` and `t`.
    fn split(&self, s: &Acts, t: &Acts) -> Vec<(Acts, Acts)> {
        self.groups
            .iter()
            .map(|g| (s.select(g.models.clone()), t.select(g.models.clone())))
            .collect()
    }
}

/// Sums of one epoch's losses, kept on the device so that steps never wait for the host.
pub(crate) struct EpochSums {
    pub d: Tensor,
    pub g: Tensor,
    pub cycle: Tensor,
    pub cls: Tensor,
}

impl EpochSums {
    pub(crate) fn zeros(models: usize, device: Device) -> Self {
        let per_model = || Tensor::zeros([models as i64], (Kind::Float, device));
        Self {
            d: per_model(),
            g: per_model(),
            cycle: per_model(),
            cls: Tensor::zeros([], (Kind::Float, device)),
        }
    }
}

impl Trainer {
    pub(crate) fn new(
        config: &GanConfig,
        models: usize,
        features: i64,
        device: Device,
        spread: Option<Spread>,
    ) -> Result<Self, GanError> {
        let nets = Nets::new(config, models, features, ModelLayout::Separate, device);
        let mut d_leaves: Vec<Leaf> = nets
            .d_t
            .leaves()
            .into_iter()
            .chain(nets.d_s.leaves())
            .collect();
        if config.d_step_updates_generator {
            d_leaves.extend(nets.g.leaves());
        }
        let g_leaves: Vec<Leaf> = nets
            .g
            .leaves()
            .into_iter()
            .chain(nets.f.leaves())
            .chain(nets.c.iter().flat_map(MlpStack::leaves))
            .collect();
        let adam = |leaves| {
            Adam::new(
                leaves,
                config.adam_beta1,
                config.adam_beta2,
                config.adam_epsilon,
            )
        };
        let adam_d = adam(d_leaves);
        let adam_g = adam(g_leaves);
        let groups = spread
            .map(|spread| {
                Groups::new(
                    &nets,
                    &adam_d,
                    &adam_g,
                    config.d_step_updates_generator,
                    spread,
                )
            })
            .transpose()?;
        let batch = config.batch_size as i64;
        let labels = Tensor::arange(models as i64, (Kind::Int64, device))
            .repeat_interleave_self_int(batch, 0, None);
        Ok(Self {
            adam_d,
            adam_g,
            nets,
            labels,
            groups,
        })
    }

    /// One discriminator step (which with the quirk also moves G); returns the `[K]` D losses.
    pub(crate) fn discriminator_step(
        &mut self,
        config: &GanConfig,
        s: &Acts,
        t: &Acts,
        lr: f64,
    ) -> Tensor {
        match self.groups.as_mut() {
            Some(groups) => {
                let step = self.adam_d.begin_step(lr);
                groups.discriminator_step(config, s, t, step)
            }
            None => {
                let quirk = config.d_step_updates_generator;
                let losses = self.nets.discriminator_losses(config, s, t, quirk);
                self.adam_d.minimise(&losses.sum(Kind::Float), lr);
                losses.detach()
            }
        }
    }

    /// One generator step (G, F and C together).
    fn generator_step(
        &mut self,
        config: &GanConfig,
        s: &Acts,
        t: &Acts,
        lr: f64,
        sums: &mut EpochSums,
    ) {
        // D is constant here: skipping its weight gradients saves a third of its backward pass.
        self.nets.d_t.set_requires_grad(false);
        self.nets.d_s.set_requires_grad(false);
        match self.groups.as_mut() {
            Some(groups) => {
                let step = self.adam_g.begin_step(lr);
                let classifier = self.nets.c.as_ref().map(|c| (c, &self.labels));
                groups.generator_step(config, classifier, s, t, step, sums);
            }
            None => {
                let losses = self.nets.generator_losses(config, s, t, &self.labels);
                self.adam_g.minimise(&losses.total, lr);
                sums.g += losses.g.detach();
                sums.cycle += losses.cycle.detach();
                sums.cls += losses.cls.detach();
            }
        }
        self.nets.d_t.set_requires_grad(true);
        self.nets.d_s.set_requires_grad(true);
    }

    fn iteration(
        &mut self,
        config: &GanConfig,
        data: &DeviceData,
        source_rows: &Tensor,
        target_rows: &Tensor,
        lr: f64,
        sums: &mut EpochSums,
    ) {
        let models = self.nets.models;
        let s = Acts::from_rows(
            &data.source.index_select(0, source_rows),
            models,
            self.nets.layout,
        );
        let t = Acts::from_rows(
            &data.targets.index_select(0, target_rows),
            models,
            self.nets.layout,
        );
        self.steps(config, &s, &t, lr, sums);
    }

    /// One D step, then `generator_steps` G steps on the same batches.
    pub(crate) fn steps(
        &mut self,
        config: &GanConfig,
        s: &Acts,
        t: &Acts,
        lr: f64,
        sums: &mut EpochSums,
    ) {
        sums.d += self.discriminator_step(config, s, t, lr);
        for _ in 0..config.generator_steps {
            self.generator_step(config, s, t, lr, sums);
        }
    }
}

/// What a joint-training checkpoint records besides the state: which run and how it trained.
pub(crate) struct TrainCheckpoint<'a> {
    pub config: &'a GanConfig,
    pub shape: &'a DataShape,
    /// `separate`, `batched` or `grid`.
    pub layout: &'a str,
    pub masks: MaskSource,
}

impl TrainCheckpoint<'_> {
    /// Writes the networks, both optimisers (`adam.d`, `adam.g`), the epochs done and the loss
    /// log, atomically.
    pub(crate) fn write(
        &self,
        path: &Path,
        nets: &Nets,
        [adam_d, adam_g]: [&Adam; 2],
        done: usize,
        log: &[TrainEpochRecord],
        wall: f64,
    ) -> Result<(), GanError> {
        let models = nets.models as i64;
        let mut tensors = meta_tensors(self.config, self.shape, self.layout, self.masks, wall);
        tensors.push((
            "meta.epochs_done".into(),
            Tensor::from_slice(&[done as i64]),
        ));
        let rows: Vec<f64> = log
            .iter()
            .flat_map(|r| {
                std::iter::once(r.learning_rate)
                    .chain(r.d.iter().copied())
                    .chain(r.g.iter().copied())
                    .chain(r.cycle.iter().copied())
                    .chain(std::iter::once(r.cls))
            })
            .collect();
        tensors.push((
            "log.train".into(),
            Tensor::from_slice(&rows).view([-1, 2 + 3 * models]),
        ));
        tensors.extend(nets.export());
        tensors.extend(adam_d.export("adam.d"));
        tensors.extend(adam_g.export("adam.g"));
        write_safetensors_atomic(path, &tensors)
    }

    /// Restores what [`TrainCheckpoint::write`] wrote into `nets` and the optimisers, after
    /// checking that it belongs to this run; returns the epochs done, the loss log and the wall
    /// time so far.
    pub(crate) fn read(
        &self,
        path: &Path,
        nets: &Nets,
        adam_d: &mut Adam,
        adam_g: &mut Adam,
    ) -> Result<(usize, Vec<TrainEpochRecord>, f64), GanError> {
        let tensors = read_safetensors(path)?;
        check_checkpoint_meta(
            path,
            &tensors,
            self.config,
            self.shape,
            GanConfig::training_key,
            "train_epochs",
        )?;
        warn_on_layout_change(&tensors, path, self.layout);
        warn_on_mask_change(&tensors, path, self.masks);
        nets.import(&tensors).map_err(|r| corrupt(path, r))?;
        adam_d
            .import("adam.d", &tensors)
            .map_err(|r| corrupt(path, r))?;
        adam_g
            .import("adam.g", &tensors)
            .map_err(|r| corrupt(path, r))?;
        let done = tensor_i64s(&tensors, "meta.epochs_done", path)?
            .first()
            .map_or(0, |&e| usize::try_from(e).unwrap_or(0));
        let models = nets.models;
        let log: Vec<TrainEpochRecord> = tensor_f64s(&tensors, "log.train", path)?
            .chunks_exact(2 + 3 * models)
            .enumerate()
            .map(|(epoch, row)| TrainEpochRecord {
                epoch,
                learning_rate: row[0],
                d: row[1..1 + models].to_vec(),
                g: row[1 + models..1 + 2 * models].to_vec(),
                cycle: row[1 + 2 * models..1 + 3 * models].to_vec(),
                cls: row[1 + 3 * models],
            })
            .collect();
        if log.len() != done {
            return Err(corrupt(
                path,
                "log.train does not hold one row per epoch done",
            ));
        }
        let wall = tensor_f64s(&tensors, "meta.wall_seconds", path)?
            .first()
            .copied()
            .unwrap_or(0.0);
        Ok((done, log, wall))
    }
}

/// Joint training of the K CycleGANs and C: per iteration one D step, then
/// `generator_steps` G steps on the same minibatches; learning rate
/// `lr * decay^floor(epoch / every)`; G_i and F_i start from `pretrained`, D and C fresh. Each
/// epoch reseeds libtorch from (seed, epoch).
///
/// On the CPU the K CycleGANs keep separate weight matrices and train in groups side by side;
/// on CUDA the run trains as a grid of one ([`crate::train_grid`]), whose stacked CycleGANs
/// share every kernel launch.
pub fn train(
    config: &GanConfig,
    data: &TrainingData,
    pretrained: &PretrainedGenerators,
    device: Device,
    options: &RunOptions,
    progress: &mut dyn FnMut(&EpochReport),
) -> Result<TrainOutcome, GanError> {
    if device.is_cuda() {
        let run = GridRun {
            label: format!("lambda_cls {}", config.lambda_cls),
            config,
            data,
            pretrained,
            options: options.clone(),
        };
        return alone(train_grid(&[run], device, &mut |_, r| progress(r)));
    }
    config.validate()?;
    let data = DeviceData::new(data, config, device)?;
    let models = data.models();
    let layout = ModelLayout::Separate;
    let started = Instant::now();
    emocycle_torch::seed_everything(derived_seed(config.seed, Phase::TrainInit, 0, 0));
    let spread = Spread::default_for(device, models);
    let masks = match spread {
        Some(_) => MaskSource::Streams,
        None => MaskSource::Libtorch,
    };
    let mut trainer = Trainer::new(config, models, data.shape.features, device, spread)?;
    for leaf in trainer
        .nets
        .g
        .leaves()
        .into_iter()
        .chain(trainer.nets.f.leaves())
    {
        leaf.import("", &pretrained.tensors, &leaf.tensor)
            .map_err(GanError::PretrainedMismatch)?;
    }
    let mut done = 0usize;
    let mut log: Vec<TrainEpochRecord> = Vec::new();
    let mut earlier_wall = 0.0;
    let path = options
        .checkpoint_dir
        .as_ref()
        .map(|dir| dir.join(TRAIN_CHECKPOINT));
    let checkpoint = TrainCheckpoint {
        config,
        shape: &data.shape,
        layout: layout.name(),
        masks,
    };
    if let Some(path) = path.as_ref().filter(|p| options.resume && p.exists()) {
        (done, log, earlier_wall) = checkpoint.read(
            path,
            &trainer.nets,
            &mut trainer.adam_d,
            &mut trainer.adam_g,
        )?;
        tracing::info!(path = %path.display(), epochs_done = done, "resuming joint training");
    }
    let parameters = trainer.nets.counts().total;
    tracing::info!(
        epochs = config.train_epochs,
        parameters,
        layout = layout.name(),
        device = %emocycle_torch::device_name(device),
        "joint training starts"
    );

    let save = |trainer: &Trainer,
                done: usize,
                log: &[TrainEpochRecord],
                wall: f64|
     -> Result<(), GanError> {
        let Some(path) = path.as_ref() else {
            return Ok(());
        };
        checkpoint.write(
            path,
            &trainer.nets,
            [&trainer.adam_d, &trainer.adam_g],
            done,
            log,
            wall,
        )?;
        tracing::debug!(path = %path.display(), "training checkpoint written");
        Ok(())
    };

    let batch = config.batch_size as i64;
    let mut budget = Budget(options.stop_after_epochs);
    let mut dirty = false;
    while done < config.train_epochs && !budget.exhausted() {
        let epoch = done;
        emocycle_torch::seed_everything(derived_seed(config.seed, Phase::Train, 0, epoch));
        let lr = config.learning_rate_at(epoch);
        let plan = plan_epoch(
            data.shape.source_rows,
            &data.shape.target_rows,
            &data.offsets,
            batch,
            device,
        );
        let mut sums = EpochSums::zeros(models, device);
        for it in 0..plan.iterations {
            trainer.iteration(
                config,
                &data,
                &plan.source_rows.get(it),
                &plan.target_rows.get(it),
                lr,
                &mut sums,
            );
        }
        let d_steps = plan.iterations as f64;
        let g_steps = d_steps * config.generator_steps.max(1) as f64;
        let record = TrainEpochRecord {
            epoch,
            learning_rate: lr,
            d: values(&sums.d).iter().map(|v| v / d_steps).collect(),
            g: values(&sums.g).iter().map(|v| v / g_steps).collect(),
            cycle: values(&sums.cycle).iter().map(|v| v / g_steps).collect(),
            cls: sums.cls.double_value(&[]) / g_steps,
        };
        if !record.is_finite() {
            return Err(GanError::Diverged {
                phase: "train",
                epoch,
                pair: None,
            });
        }
        tracing::debug!(epoch, lr, d = ?record.d, g = ?record.g, cycle = ?record.cycle, cls = record.cls, "training epoch");
        progress(&EpochReport::Train {
            record: record.clone(),
            epochs: config.train_epochs,
        });
        log.push(record);
        done += 1;
        budget.spend();
        dirty = true;
        if done.is_multiple_of(config.checkpoint_every) {
            save(
                &trainer,
                done,
                &log,
                earlier_wall + started.elapsed().as_secs_f64(),
            )?;
            dirty = false;
        }
    }
    let wall = earlier_wall + started.elapsed().as_secs_f64();
    if dirty {
        save(&trainer, done, &log, wall)?;
    }
    let complete = done >= config.train_epochs;
    tracing::info!(
        epochs_done = done,
        complete,
        wall_seconds = wall,
        "joint training ends"
    );
    Ok(TrainOutcome {
        model: CycleGanModel { nets: trainer.nets },
        log,
        manifest: RunManifest {
            phase: "train".into(),
            config: config.clone(),
            seed: config.seed,
            epochs_done: vec![done],
            complete,
            wall_seconds: wall,
            device: emocycle_torch::device_name(device),
            layout: layout.name().into(),
            data: data.shape.clone(),
            parameters,
            checkpoint: path.filter(|p| p.exists()),
        },
    })
}

/// The outcome of a grid of one run, its errors without the grid's naming of the run.
pub(crate) fn alone<T>(grid: Result<Vec<Result<T, GanError>>, GanError>) -> Result<T, GanError> {
    let unnamed = |error| match error {
        GanError::InRun { source, .. } => *source,
        other => other,
    };
    let mut outcomes = grid.map_err(unnamed)?;
    outcomes
        .pop()
        .expect("a grid returns one result per run")
        .map_err(unnamed)
}

/// Times the per-run trainer's joint-training iterations (one D step and `generator_steps` G
/// steps on K random batches of `features` columns; on the CPU the CycleGANs in groups side by
/// side) with freshly initialised networks, after `warmup` untimed ones. Returns the median
/// time of one iteration.
pub fn time_training_iterations(
    config: &GanConfig,
    emotions: usize,
    features: i64,
    device: Device,
    warmup: usize,
    iterations: usize,
) -> Result<Duration, GanError> {
    config.validate()?;
    emocycle_torch::seed_everything(config.seed);
    let rows = config.batch_size as i64;
    let random = || Tensor::rand([rows, features], (Kind::Float, Device::Cpu));
    let data = TrainingData::new(random(), (0..emotions).map(|_| random()).collect());
    let data = DeviceData::new(&data, config, device)?;
    let spread = Spread::default_for(device, emotions);
    let mut trainer = Trainer::new(config, emotions, features, device, spread)?;
    let plan = plan_epoch(rows, &data.shape.target_rows, &data.offsets, rows, device);
    let mut sums = EpochSums::zeros(emotions, device);
    let lr = config.learning_rate;
    let (source_rows, target_rows) = (plan.source_rows.get(0), plan.target_rows.get(0));
    let sync = || {
        if let Device::Cuda(index) = device {
            tch::Cuda::synchronize(index as i64);
        }
    };
    for _ in 0..warmup {
        trainer.iteration(config, &data, &source_rows, &target_rows, lr, &mut sums);
    }
    sync();
    // The median, not the mean: on a shared machine one iteration that a neighbour's burst slowed
    // down would otherwise decide the result.
    let mut times: Vec<Duration> = (0..iterations.max(1))
        .map(|_| {
            let start = Instant::now();
            trainer.iteration(config, &data, &source_rows, &target_rows, lr, &mut sums);
            sync();
            start.elapsed()
        })
        .collect();
    times.sort();
    Ok(times[times.len() / 2])
}
