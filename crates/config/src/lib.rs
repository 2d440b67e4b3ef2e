//! The settings of every emocycle stage and the names of a run directory's parts.
//!
//! # What it reads and writes
//!
//! Nothing: it holds the serde types that a pipeline file's sections deserialise into, each with
//! the paper's values as defaults and a `validate` that refuses impossible values before any
//! stage runs, and the run layout (scope and run directory names) that every stage uses to find
//! another stage's outputs. It depends on no stage crate and does not link libtorch, so the
//! pipeline's configuration, and anything that only reads settings, stays light; the stage crates
//! depend on it and re-export what their callers use.
//!
//! | module | settings of |
//! |---|---|
//! | [`gan`] | the CycleGANs (`gan.network` in a pipeline) |
//! | [`augment`] | the baseline augmentation methods (`baselines`) |
//! | [`synth`] | generation, quality and Figure 2 (`synth`) |
//! | [`eval`] | the classifiers of Tables 2 and 3 (`evaluation`) |
//! | [`device`] | where a model runs (`device`, `--device`) |
//! | [`fidelity`] | the paper's text or the published code, where they differ (`fidelity`) |
//! | [`layout`] | the run directory: scopes and the names of their parts |
//! | [`slurm`] | the Slurm jobs of `emocycle submit` (`slurm`) |

pub mod augment;
pub mod device;
pub mod eval;
pub mod fidelity;
pub mod gan;
pub mod layout;
pub mod slurm;
pub mod synth;

mod error;

pub use error::ConfigError;
