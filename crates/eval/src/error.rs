use std::path::PathBuf;

/// What can go wrong in the evaluation stage. Every variant about data names the file.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The configuration is impossible; the message names the key.
    #[error("eval config: {0}")]
    Config(String),
    /// A setting is impossible (`validate` of the configuration).
    #[error(transparent)]
    Settings(#[from] emocycle_config::ConfigError),
    /// A feature-stage or synthetic artifact is missing or malformed.
    #[error(transparent)]
    Features(#[from] emocycle_features::FeatureError),
    /// An artifact could not be read or written.
    #[error(transparent)]
    Artifact(#[from] emocycle_artifact::ArtifactError),
    /// An input file does not fit the others (ids, sessions, feature names, labels).
    #[error("{path}: {message}")]
    Input {
        /// The offending file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A test session would reach training data: fold rows overlap, or a synthetic set or GAN
    /// manifest belongs to another scope than the fold needs.
    #[error("{path}: leakage refused: {message}")]
    Leakage {
        /// The file whose content would leak.
        path: PathBuf,
        /// What would leak where.
        message: String,
    },
    /// libtorch failed while training or predicting.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// A figure could not be drawn or written.
    #[error(transparent)]
    Plot(#[from] emocycle_plot::PlotError),
    /// A polars frame could not be assembled.
    #[error("{what}: {source}")]
    Frame {
        /// What was being assembled.
        what: String,
        /// The polars error.
        #[source]
        source: polars::error::PolarsError,
    },
    /// A file system operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
}

impl EvalError {
    pub(crate) fn input(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Input {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn leakage(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Leakage {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Library result type.
pub type Result<T, E = EvalError> = std::result::Result<T, E>;
