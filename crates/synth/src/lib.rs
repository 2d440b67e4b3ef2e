//! The synthetic-data stage of emocycle: the trained CycleGANs turn the source corpus into
//! synthetic angry, happy, neutral and sad feature vectors, and a report measures how close
//! they come to the real target data (the paper's Table 1 and Figure 2, plus modern metrics).
//!
//! # What it reads and writes
//!
//! [`generate_set`] reads the source corpus `features/<source>.parquet`, its min-max statistics
//! `features/norm/<source>.all.parquet`, a trained model
//! `gan/<scope>/lambda_cls-<value>[-seed-<s>]/model.safetensors` and, for raw-unit output, the
//! target training part's statistics `features/norm/<target>.<all|fold<k>-train>.parquet`. It
//! writes `synth/<scope>/lambda_cls-<value>[-seed-<s>]/synthetic.parquet`
//! ([`SynthLayout::synthetic`]; `-seed-<s>` for the later generator seeds of `gan.seeds`): one row
//! per synthetic vector, `synthetic_id` (`<source_utterance_id>@<emotion>`),
//! `source_utterance_id`, `emotion`, `fold` (the scope: `fold<k>` or `all`), `lambda_cls`
//! (f64), `seed` (u64: the seed that drew the source rows, the generator's own seed),
//! `checkpoint_sha256`, then the features as float32 under the corpus's
//! names and order. The footer holds the stage (`generate`), config, seeds, inputs with their
//! sha256, `emocycle.features` (the feature names as JSON, so that
//! `emocycle_features::FeatureMatrix::read` reads the set) and `emocycle.feature_space`
//! (`minmax`: the target's min-max space, the published code's choice and the default; or
//! `raw`: feature units).
//!
//! [`quality_report`] reads those sets and every scope's feature-stage files, and writes
//! `synth/quality.parquet`, `synth/quality.md`, `synth/figure2.png` and
//! `synth/figure2_<emotion>.png` (see its docs for the columns).
//!
//! Every file is written atomically: a crash leaves the previous file or none.
//!
//! The metrics ([`mean_abs_difference`], [`std_abs_difference`], [`frechet_distance`],
//! [`c2st_accuracy`], [`knn_precision_recall`]) are public for tests and other stages.
//!
//! [`plan_generate`] and [`plan_quality`] give the stages' units of work
//! ([`emocycle_artifact::WorkUnit`]): one per synthetic set, and the quality report as one.

mod error;
mod figure;
mod generate;
mod metrics;
mod plan;
mod quality;

/// The code part of this stage's freshness keys: a sha256 over the sources that shape its
/// outputs (this crate, the workspace crates it depends on, `Cargo.lock`), fixed at build time
/// (see the `emocycle-fingerprint` crate). Every artifact the stage writes records it.
pub const CODE_FINGERPRINT: &str = env!("EMOCYCLE_CODE_FINGERPRINT");

pub use emocycle_config::layout::SynthLayout;
pub use emocycle_config::synth::{FeatureSpace, SynthConfig};
pub use error::SynthError;
pub use figure::{
    DEFAULT_FIGURE_FEATURES, FigureSeries, draw_figure2, emobase2010_to_is10, is10_to_emobase2010,
    resolve_features,
};
pub use generate::{
    GenerateProgress, GenerateReport, GenerateRequest, generate_set, selected_rows,
};
pub use metrics::{
    ColumnMoments, KnnPrecisionRecall, Memorisation, Rows, c2st_accuracy, frechet_distance,
    knn_precision_recall, mean_abs_difference, memorisation, std_abs_difference,
};
pub use plan::{GenerateUnit, QualityUnit, plan_generate, plan_quality};
pub use quality::{
    CYCLEGAN_METHOD, Comparison, QualityReport, QualityRow, QualitySet, quality_report,
    recorded_config as quality_config,
};
