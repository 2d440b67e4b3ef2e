//! The feature stage of emocycle: openSMILE functionals to parquet.
//!
//! **Reads** per corpus an openSMILE feature file in any layout openSMILE or opensmile-python
//! writes ([`Layout`]: SMILExtract CSV with or without header, opensmile-python's pandas CSV,
//! ARFF; each optionally gzip-compressed; any width) and, for labelled corpora, a label manifest
//! (CSV: `utterance_id, emotion[, session][, speaker][, extra...]`, or the corpus's own files:
//! IEMOCAP's `EmoEvaluation/*.txt`, MSP-IMPROV's `Evaluation.txt`) whose codes a [`LabelMap`]
//! maps onto the four emotions (IEMOCAP and MSP-IMPROV codes built in).
//!
//! **Writes**, below a run's `features/` directory ([`FeatureLayout`]):
//! - `<corpus>.parquet`: `utterance_id, corpus, session, speaker, emotion` (strings; null where
//!   unknown), any extra manifest columns, then the features as float32 under their openSMILE
//!   names, in file order. Footer: config, input files with sha256, layout, feature names, the
//!   openSMILE set they are when recognised ([`feature_set_of`]), label map, counts, code version.
//! - `<corpus>.folds.parquet` (leave-one-session-out corpora): `utterance_id, session, fold`.
//! - `<corpus>.split.parquet` (cross-corpus sets): `utterance_id, emotion, split` (`dev`/`test`),
//!   per-class stratified and seeded.
//! - `norm/<corpus>.<subset>.parquet`: `feature, min, max, mean, std` (float64, population std)
//!   fitted on `all` rows and on each fold's training part (`fold<k>-train`), for
//!   [`Normaliser`] to apply and invert in later stages.
//!
//! A corpus is streamed: read, labelled, added to the statistics and written a chunk of rows at
//! a time, so memory holds a few chunks, not the corpus.
//!
//! Later stages read a scope's target training part back through [`load_target_part`] (the
//! selected rows, min-max normalised, with the check that no row of the fold's test session is
//! among them), so the GAN and the baselines learn from exactly the same rows.
//!
//! Bad input is rejected with the file, line and column ([`FeatureError`]), and nothing
//! half-written is left behind: every artifact is written atomically.
//!
//! [`plan`] gives the stage's units of work ([`emocycle_artifact::WorkUnit`]), one per corpus,
//! each of which knows whether its outputs are up to date.

mod column_stats;
mod emotion;
mod error;
mod extract;
mod folds;
mod iemocap;
mod manifest;
mod mapped;
mod matrix;
mod msp_improv;
mod normalise;
mod number;
mod plan;
mod reader;
mod stage;
#[cfg(feature = "testing")]
pub mod testing;
mod tile;
mod training_part;

/// The code part of this stage's freshness keys: a sha256 over the sources that shape its
/// outputs (this crate, the workspace crates it depends on, `Cargo.lock`), fixed at build time
/// (see the `emocycle-fingerprint` crate). Every artifact the stage writes records it.
pub const CODE_FINGERPRINT: &str = env!("EMOCYCLE_CODE_FINGERPRINT");

pub use emotion::{Emotion, LabelMap};
pub use error::{FeatureError, FeatureMismatch, Location, Result};
pub use extract::{
    AudioFile, ExtractReport, ExtractRequest, FeatureSet, audio_files, default_python, extract,
};
pub use folds::{Fold, Part, leave_one_session_out, stratified_split};
pub use manifest::{LabelRow, Manifest, label_files, read_manifest};
pub use matrix::FeatureMatrix;
pub use normalise::{Normaliser, RunningStats, Scaling};
pub use plan::{CorpusUnit, plan};
pub use reader::{
    ColumnChunk, FeatureReader, FeatureTable, Layout, NanPolicy, ReadOptions, ReadSummary,
    RowChunk, RowValues, UtteranceIds, read_feature_file, read_header,
};
pub use stage::{
    CorpusReport, CorpusSpec, FeatureLayout, FeaturesConfig, FoldScheme, SplitSpec, check_corpora,
    check_same_features, feature_set_of, ingest_corpus, run_features,
};
pub use training_part::{TargetPart, ensure_no_test_session, load_target_part};

/// Rows per column chunk and parquet row group written by the stage.
pub const DEFAULT_CHUNK_ROWS: usize = 4096;
