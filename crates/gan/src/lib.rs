//! The GAN stage of emocycle: cycle-only pretraining of the K (= 4) generator pairs and joint
//! training of the K CycleGANs with the auxiliary classifier C, as the published TensorFlow code
//! of Bao, Neumann & Vu (Interspeech 2019) does it (see the project's method reference).
//!
//! # What it reads and writes
//!
//! The stage functions [`run_pretrain`] and [`run_train`] read the feature stage's parquet files
//! and write below a run's `gan/<scope>/` directory (see the `stage` module's list). The
//! training functions underneath read nothing from disk by themselves: the caller hands in [`TrainingData`], float32 tensors of
//! the min-max normalised source corpus `[n_s, d]` and one target set per emotion `[n_i, d]`
//! (order 0 angry, 1 happy, 2 neutral, 3 sad), and, for [`train`], the
//! [`PretrainedGenerators`] that [`pretrain`] returned (or [`PretrainedGenerators::load`] read).
//!
//! It writes safetensors files only, each atomically (temporary file in the same directory,
//! fsync, rename): the checkpoints [`PRETRAIN_CHECKPOINT`] and [`TRAIN_CHECKPOINT`] in
//! [`RunOptions::checkpoint_dir`] every `checkpoint_every` epochs (of each pair, in
//! pretraining, whose pairs advance together) and when a run ends or stops,
//! and whatever the caller asks for through [`CycleGanModel::save_weights`] and
//! [`PretrainedGenerators::save`]. Loss logs ([`PretrainEpochRecord`], [`TrainEpochRecord`]) and
//! the [`RunManifest`] come back as serde-serialisable Rust values for the caller to store.
//!
//! # Tensor names
//!
//! Network tensors are named like PyTorch `state_dict`s of a module holding
//! `layers = nn.ModuleList([nn.Linear, ...])`, so `safetensors.torch.load_file` loads them
//! directly; weights are `[out, in]`, biases `[out]`, float32; `j` counts the affine layers from 0:
//!
//! | name | network |
//! |---|---|
//! | `g.<i>.layers.<j>.weight`, `g.<i>.layers.<j>.bias` | G_i, source -> emotion i (d-1000-500-1000-d) |
//! | `f.<i>.layers.<j>.weight`, `.bias` | F_i, emotion i -> source |
//! | `d_t.<i>.layers.<j>.weight`, `.bias` | D_T_i, on emotion i's side (d-1000-1000-1) |
//! | `d_s.<i>.layers.<j>.weight`, `.bias` | D_S_i, on the source side |
//! | `c.layers.<j>.weight`, `.bias` | C (d-100-100-K); absent when `lambda_cls = 0` |
//!
//! A hidden layer's output is `dropout(leaky_relu(x W^T + b, 0.2))`; the last layer is linear.
//!
//! Checkpoints add (all names are plain safetensors tensors):
//!
//! | name | content |
//! |---|---|
//! | `meta.format` | int64 `[1]`, the checkpoint format version (1) |
//! | `meta.config_json` | uint8 bytes of the [`GanConfig`] as JSON |
//! | `meta.data_json` | uint8 bytes of the [`DataShape`] as JSON |
//! | `meta.layout` | uint8 bytes: `separate` (the per-run trainer on the CPU), `grid` (the grid engine, and a run alone on CUDA) or, from earlier versions, `batched` |
//! | `meta.dropout` | uint8 bytes, where the dropout masks come from: `streams` (per-CycleGAN streams, the CPU's side-by-side training) or `libtorch` (its generator; also assumed when absent) |
//! | `meta.wall_seconds` | float64 `[1]`, training time so far |
//! | `meta.epochs_done` | int64: `[1]` (training) or `[K]` per pair (pretraining) |
//! | `log.train` | float64 `[epochs, 2 + 3K]`: lr, d_0..d_K-1, g_0.., cycle_0.., cls |
//! | `log.pretrain` | float64 `[rows, 3]`: pair, epoch, cycle |
//! | `adam.<opt>.step` | int64 `[1]`, Adam steps taken |
//! | `adam.<opt>.m.<param>`, `adam.<opt>.v.<param>` | Adam moments, shaped like `<param>` |
//!
//! `<opt>` is `g` (all G_i, F_i and C) and `d` (all D_T_i, D_S_i and, with
//! `d_step_updates_generator`, every G_i again with moments of its own) in training checkpoints,
//! and `pre.<i>` (G_i and F_i) in pretraining checkpoints, which hold only `g.*` and `f.*`
//! network tensors.
//!
//! # Reproducibility
//!
//! One seed drives everything. Each phase initialises from a seed derived from
//! (seed, phase, pair) and every epoch reseeds libtorch from (seed, phase, pair, epoch) before
//! drawing its permutations and dropout masks, so a run resumed from a checkpoint ends with the
//! same tensors, bit for bit on the CPU, as one that never stopped. The per-run trainer and the
//! grid engine draw joint training's dropout masks differently, so bit-identity holds within one
//! engine (and, for the grid on a GPU, one group of runs). libtorch's generator is
//! global to the process: nothing else may draw from it while a phase runs, and the intra-op
//! thread count must stay the same across the resumed parts.
//!
//! # Threads
//!
//! Joint training on the CPU keeps every CycleGAN's weights separate and runs the K CycleGANs in
//! groups side by side: with T libtorch threads, min(T, K) groups of T / groups threads each,
//! every group running its CycleGANs' forward pass, backward pass and Adam update on threads of
//! its own (two groups of one thread are 1.14x faster than one group of two on two cores;
//! docs/benchmarks.md's history). C, which sees every CycleGAN's G(s), runs between the groups'
//! forward and backward passes on the calling thread and hands each group its gradient with
//! respect to G(s). In this mode each CycleGAN draws its dropout masks from SplitMix64 streams
//! seeded per step from libtorch's generator, so the numbers depend on the seed and the threads
//! per group, not on how many groups there are. Pretraining on the CPU runs in rounds of one
//! epoch per unfinished pair, min(T, K) pairs at a time, each pair's masks from streams seeded
//! per epoch.
//!
//! # The grid engine
//!
//! [`train_grid`] trains several joint trainings as one batched model (the fused grid engine):
//! the same inputs per run as [`train`], the same per-run checkpoints, and on the CPU the same
//! bits for a run whatever other runs share its grid (see the `grid` module); [`pretrain_grid`]
//! does the same for pretrainings. A run that diverges leaves its grid and the others finish.
//! On CUDA, [`train`] and [`pretrain`] train their run as a grid of one: its stacked CycleGANs
//! (pairs) share each kernel launch.
//! [`plan_grid`] gives the stage's runs as [`GridUnit`]s, groups whose estimated memory
//! ([`grid_bytes_per_run`]) fits a budget; each writes what [`run_pretrain`] or [`run_train`]
//! writes for each of its runs.
//!
//! [`plan`] gives the stage's units of work ([`emocycle_artifact::WorkUnit`]): one per [`GanRun`],
//! a pretraining of a scope or a joint training of a scope and lambda_cls, per generator seed;
//! each knows whether its outputs are up to date from the settings its phase depends on.

mod checkpoint;
mod data;
mod error;
mod grid;
mod model;
mod plan;
mod stage;
mod train;

#[cfg(test)]
mod tests;

/// Serialises the unit tests that seed or draw from libtorch's process-wide generator (building
/// networks draws their weights): tests run on parallel threads, and one test's draws would
/// shift another's sequence.
#[cfg(test)]
pub(crate) fn libtorch_rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The code part of this stage's freshness keys: a sha256 over the sources that shape its
/// outputs (this crate, the workspace crates it depends on, `Cargo.lock`), fixed at build time
/// (see the `emocycle-fingerprint` crate). Every artifact the stage writes records it.
pub const CODE_FINGERPRINT: &str = env!("EMOCYCLE_CODE_FINGERPRINT");

pub use data::{DataShape, TrainingData};
pub use emocycle_config::ConfigError;
pub use emocycle_config::gan::{Engine, GanConfig, ModelLayout};
pub use emocycle_config::layout::{Scope, ScopeDirs, StageInputs, run_label};
pub use error::GanError;
pub use grid::{
    GridPretrain, GridRun, compatible, grid_bytes_per_run, grid_groups, pretrain_grid, train_grid,
};
pub use model::{CycleGanModel, ParameterCounts, PretrainedGenerators};
pub use plan::{GanRun, GanUnit, GridUnit, Phase, plan, plan_grid};
pub use stage::{
    ScopeData, StageError, StageManifest, StageRun, load_scope_data, run_pretrain, run_train,
};
pub use train::{
    EpochReport, PRETRAIN_CHECKPOINT, PretrainEpochRecord, PretrainOutcome, RunManifest,
    RunOptions, TRAIN_CHECKPOINT, TrainEpochRecord, TrainOutcome, pretrain,
    time_training_iterations, train,
};
