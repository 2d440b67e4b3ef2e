//! Baseline augmentation methods of emocycle, against which the CycleGAN's synthetic data is
//! compared: random oversampling, SMOTE, Gaussian noise on real vectors, class-conditional mixup,
//! and a conditional GAN from Gaussian noise (Sahu et al., Interspeech 2018, the paper's published
//! GAN baseline).
//!
//! # What it reads and writes
//!
//! [`run_baseline`] reads, for one scope, the target corpus `features/<target>.parquet`, its
//! `features/<target>.folds.parquet` (fold scopes) and the min-max statistics of the scope's
//! training part `features/norm/<target>.<all|fold<k>-train>.parquet`: the same rows, scaled
//! the same way, as the GAN stage trains on (`emocycle_features::load_target_part`), so no fold's
//! test session ever feeds its own synthetic data. It writes one synthetic set,
//! `synth/<scope>/<name>/synthetic.parquet` ([`baseline_path`]), atomically: one row per
//! synthetic vector, `synthetic_id, emotion, fold, method, seed, parent_utterance_id,
//! neighbour_utterance_id, interpolation`, then the features as float32 in the training
//! part's min-max space, with the footer keys listed at [`run_baseline`]. The set is readable
//! by `emocycle_features::FeatureMatrix::read`, like the CycleGAN sets.
//!
//! The methods themselves ([`random_oversampling`], [`smote`], [`gaussian_noise`], [`mixup`],
//! [`Cgan`]) work on in-memory [`RealRows`], read and write nothing, and are deterministic given
//! a seed.
//!
//! # Configuration
//!
//! A [`BaselineConfig`] in JSON, every key but `method` optional:
//! `{"method": "random-oversampling"}`, `{"method": "smote", "k": 5, "size": "balance"}`,
//! `{"method": "gaussian-noise", "sigma": 0.1, "size": {"per_class": 1000}}`,
//! `{"method": "mixup", "alpha": 0.2}` (class-conditional mixup),
//! `{"method": "cgan", "noise_dim": 100, "generator_hidden": [256, 256], "epochs": 300}`,
//! plus `name` and `seed` for any method.
//!
//! [`plan`] gives the stage's units of work ([`emocycle_artifact::WorkUnit`]), one per scope and
//! baseline, each of which knows whether its set is up to date.

mod cgan;
mod error;
mod methods;
mod plan;
mod stage;

/// The code part of this stage's freshness keys: a sha256 over the sources that shape its
/// outputs (this crate, the workspace crates it depends on, `Cargo.lock`), fixed at build time
/// (see the `emocycle-fingerprint` crate). Every artifact the stage writes records it.
pub const CODE_FINGERPRINT: &str = env!("EMOCYCLE_CODE_FINGERPRINT");

pub use cgan::{Cgan, CganEpoch};
pub use emocycle_config::augment::{
    BaselineConfig, BaselineRequest, CganConfig, CganOutput, Method, Size, baseline_path,
};
pub use error::AugmentError;
pub use methods::{
    RealRows, SyntheticRows, class_counts, feature_std, gaussian_noise, mixup, nearest_neighbours,
    random_oversampling, smote, synthetic_counts,
};
pub use plan::{BaselineUnit, plan};
pub use stage::{BaselineProgress, BaselineReport, run_baseline};
