//! The augmentation stage's errors. Configuration errors name the offending key.

/// Everything that can go wrong making a baseline synthetic set.
#[derive(Debug, thiserror::Error)]
pub enum AugmentError {
    /// A configuration value is impossible; the error names the key.
    #[error(transparent)]
    Config(#[from] emocycle_config::ConfigError),
    /// The data cannot feed the method (a class with too few rows, mismatched lengths).
    #[error("{0}")]
    Data(String),
    /// A feature-stage artifact is missing or malformed.
    #[error(transparent)]
    Features(#[from] emocycle_features::FeatureError),
    /// An artifact could not be read or written.
    #[error(transparent)]
    Artifact(#[from] emocycle_artifact::ArtifactError),
    /// libtorch refused an operation.
    #[error("libtorch: {context}: {source}")]
    Torch {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: tch::TchError,
    },
    /// polars could not assemble the synthetic set's table.
    #[error("{context}: {source}")]
    Frame {
        /// Which table.
        context: String,
        /// The cause.
        #[source]
        source: polars::error::PolarsError,
    },
}

impl AugmentError {
    pub(crate) fn torch(context: impl Into<String>) -> impl FnOnce(tch::TchError) -> Self {
        let context = context.into();
        move |source| Self::Torch { context, source }
    }
}
