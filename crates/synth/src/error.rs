//! The synthetic-data stage's errors. Every variant that concerns a file names it.

use std::path::PathBuf;

/// Everything that can go wrong generating synthetic sets or measuring them.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// A configuration value is impossible.
    #[error("invalid synth configuration: {0}")]
    InvalidConfig(String),
    /// A setting is impossible (`validate` of the configuration).
    #[error(transparent)]
    Config(#[from] emocycle_config::ConfigError),
    /// A feature-stage artifact is missing or malformed.
    #[error(transparent)]
    Features(#[from] emocycle_features::FeatureError),
    /// An artifact could not be read or written.
    #[error(transparent)]
    Artifact(#[from] emocycle_artifact::ArtifactError),
    /// The model could not be loaded or run.
    #[error("{path}: {source}")]
    Model {
        /// The model file.
        path: PathBuf,
        /// The GAN crate's error.
        #[source]
        source: emocycle_gan::GanError,
    },
    /// The GAN stage's inputs of a scope could not be loaded.
    #[error(transparent)]
    Stage(#[from] emocycle_gan::StageError),
    /// An input file does not fit the others (features, normalisation subset, scope).
    #[error("{path}: {message}")]
    Input {
        /// The offending file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A feature named in the configuration exists in neither naming of the feature set.
    #[error(
        "figure feature {feature:?} is not a feature of {path} (tried it as given and under its \
         IS10/emobase2010 name)"
    )]
    UnknownFeature {
        /// The configured name.
        feature: String,
        /// The file whose feature list was searched.
        path: PathBuf,
    },
    /// Metric inputs have unusable shapes (too few rows, differing widths).
    #[error("metric input: {0}")]
    Shape(String),
    /// libtorch refused an operation.
    #[error("libtorch: {context}: {source}")]
    Torch {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: tch::TchError,
    },
    /// polars could not assemble a table.
    #[error("{context}: {source}")]
    Frame {
        /// Which table.
        context: String,
        /// The cause.
        #[source]
        source: polars::error::PolarsError,
    },
    /// A figure could not be drawn or written.
    #[error(transparent)]
    Plot(#[from] emocycle_plot::PlotError),
}

impl SynthError {
    pub(crate) fn input(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Input {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn torch(context: impl Into<String>) -> impl FnOnce(tch::TchError) -> Self {
        let context = context.into();
        move |source| Self::Torch { context, source }
    }

    pub(crate) fn frame(
        context: impl Into<String>,
    ) -> impl FnOnce(polars::error::PolarsError) -> Self {
        let context = context.into();
        move |source| Self::Frame { context, source }
    }
}
