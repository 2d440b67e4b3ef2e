//! The evaluation stage of emocycle: emotion classifiers trained on real, synthetic and
//! combined data, scored by unweighted average recall (UAR), as in Sections 4.3 and 4.4 of Bao,
//! Neumann and Vu (Interspeech 2019).
//!
//! # What it reads
//!
//! All paths come from [`EvalInputs`] ([`EvalInputs::for_run`] gives a run directory's
//! conventional layout):
//! - the labelled corpus `features/<target>.parquet` and its fold file
//!   `features/<target>.folds.parquet` (`utterance_id, session, fold`; footer `emocycle.folds`);
//! - optionally the cross-corpus set `features/<cross>.parquet` and its split file
//!   `features/<cross>.split.parquet` (`utterance_id, emotion, split` = `dev`/`test`);
//! - the synthetic sets `synth/<scope>/lambda_cls-<v>[-seed-<s>]/synthetic.parquet` (`synthetic_id,
//!   source_utterance_id, emotion, fold, lambda_cls, seed, checkpoint_sha256`, then the
//!   features; footer `emocycle.features`), one per scope (`fold<k>`, `all`), lambda_cls and
//!   generator seed ([`EvalConfig::gan_seeds`]);
//! - the baselines' sets `synth/<scope>/<name>/synthetic.parquet` (the same layout with a
//!   `method` column instead of `lambda_cls`; footer `emocycle.held_out_session`), one per
//!   scope and name in [`EvalConfig::baselines`];
//! - where present, the GAN manifests `gan/<scope>/lambda_cls-<v>[-seed-<s>]/manifest.json` (`scope`,
//!   `held_out_session`), and optionally min-max statistics to map synthetic vectors back to
//!   feature units ([`EvalInputs::synthetic_minmax`]).
//!
//! # What it computes
//!
//! For every fold of the leave-one-session-out split (within corpus) and for the whole corpus
//! against the cross-corpus set, three setups: `real`, `syn` and `real+syn`, the synthetic ones
//! once per synthetic source ([`SyntheticSource`]: the CycleGAN of each lambda_cls, then each
//! baseline). A `syn` setup whose set lacks a class is left out and said so. Each is an MLP (LeakyReLU, inverted dropout after every hidden layer,
//! linear output, softmax cross-entropy, no class weights, no early stopping) trained with
//! Adam in TensorFlow 1.x's form (the published code's optimiser; see [`AdamParams`]), from a
//! fresh Glorot-uniform initialisation in each of `repeats` repeats. An epoch is one pass over
//! the shuffled training rows in minibatches, the last partial batch kept.
//!
//! Leakage is refused, not just avoided: a fold whose training and test rows share a session is
//! an error, a synthetic set whose `fold` column is not the scope the fold needs is an error,
//! and a GAN manifest whose `held_out_session` is not the fold's test session is an error.
//!
//! # What it writes
//!
//! Below [`EvalInputs::output_dir`] (a run's `eval/`), atomically:
//! - `results.parquet`: one row per experiment (`within`, `cross-test`, `cross-dev`) x fold x
//!   setup x source x repeat: `experiment, fold (u32, null for cross-corpus), test_session,
//!   setup, method (cyclegan or a baseline's name; null for real), lambda_cls and gan_seed
//!   (CycleGAN rows only), synthetic_scope, repeat, seed, run_seed, train_rows, test_rows, uar, accuracy,
//!   recall_<emotion> (null when the class is absent), cm_<true>_<predicted> (16 counts),
//!   final_loss, seconds, run_key`; footer: config, seeds, input hashes, code version;
//! - `tables.md`: Table 2 and Table 3 analogues with the paper's numbers beside ours, the
//!   cross-corpus dev part, and per-fold UARs;
//! - `confusion_<experiment>_<setup>[_<lambda_cls-<v> or baseline>].png`: confusion counts summed over folds,
//!   averaged over repeats, row-normalised (the paper's Figure 3).
//!
//! # Reuse
//!
//! Every run has a `run_key`: the sha256 of the stage's [`CODE_FINGERPRINT`], the settings that
//! shape training, the setup's hyper-parameters, its seed and the sha256 of every file it reads.
//! A run whose key is in the previous `results.parquet` is not trained again: changing one
//! synthetic set, one lambda_cls or one setup's hyper-parameters retrains exactly the runs that
//! depend on it.
//!
//! # Aggregation
//!
//! For each repeat the UAR is averaged over folds; the tables show the mean and population
//! standard deviation of these per-repeat values ([`Summary`]). The generator seeds of a
//! lambda_cls share one row: their repeats pooled, and the spread split into a classifier and
//! a generator part ([`SpreadParts`]).
//!
//! # Reproducibility and parallelism
//!
//! Each classifier draws its initial weights, epoch orders and dropout masks from its own
//! SplitMix64 streams, seeded from `seed + repeat` and the run's identity (scope, setup,
//! lambda_cls), never from libtorch's global generator, and every run uses the same number of
//! libtorch intra-op threads (`intra_op_threads`, default 1), which fixes the order of the
//! floating-point sums in its matrix products. Runs are independent, so `parallel_jobs`
//! workers train them concurrently, and the numbers do not depend on the worker count or on
//! scheduling: bit for bit on a CPU. Workers take jobs from one queue ordered by scope and
//! lambda_cls (the presumably longest first within each); the first worker to need a scope's
//! data reads it, the last to finish with it drops it, so memory holds about one synthetic set
//! per worker.
//!
//! Measured on the 2-core development machine (release build, `examples/parallel_timing.rs`:
//! 5 sessions x 200 rows, 1582 features, 2,000 synthetic rows per fold, lambda_cls 2, 2
//! repeats, the paper's hyper-parameters with epochs x 0.2; 30 classifiers):
//!
//! | workers x libtorch threads | idle machine | another process busy on one core |
//! |---|---|---|
//! | 1 x 2 | 14.5 s | 157.5 s |
//! | 2 x 1 (default: `parallel_jobs` 0 = one per core, `intra_op_threads` 1) | 12.1 s | 20.2 s |
//! | 1 x 1 | 21.7 s | |
//!
//! Two libtorch threads speed up one large classifier (real+syn, 1000-1000) by about 1.6x, but
//! workers need no synchronisation at all, and libtorch's OpenMP threads stall badly when a core
//! is taken by another process.
//!
//! [`plan`] gives the stage as one unit of work ([`emocycle_artifact::WorkUnit`]).

mod classifier;
mod data;
mod error;
mod metrics;
mod plan;
mod report;
mod results;
mod run;
mod source;

/// The code part of this stage's freshness keys: a sha256 over the sources that shape its
/// outputs (this crate, the workspace crates it depends on, `Cargo.lock`), fixed at build time
/// (see the `emocycle-fingerprint` crate). Every artifact the stage writes records it.
pub const CODE_FINGERPRINT: &str = env!("EMOCYCLE_CODE_FINGERPRINT");

pub use data::{CrossCorpusInputs, EvalInputs, ScopeNormalisation, ScopePath, synthetic_path};
pub use emocycle_config::eval::{
    AdamParams, ClassifierParams, DEFAULT_PARALLEL_JOBS, EvalConfig, Setup, SetupParams,
    SyntheticScope, Znorm,
};
pub use error::{EvalError, Result};
pub use metrics::{CLASSES, ConfusionMatrix, confusion, mean_counts, mean_std, row_normalise, uar};
pub use plan::{EvalUnit, plan};
pub use report::{
    confusion_file_name, draw_confusion, paper_uar, read_results, results_frame, tables_markdown,
};
pub use results::{Experiment, RunResult, SpreadParts, Summary, summarise};
pub use run::{EvalProgress, EvalReport, run_evaluation};
pub use source::{CYCLEGAN, SyntheticSource};
