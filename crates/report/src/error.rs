use std::path::PathBuf;

/// What can stop a report. Every variant names the file; optional inputs that are missing or
/// unreadable do not stop it (the report says so instead, see `ReportOutcome::notes`).
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The evaluation has not run: the report has nothing to summarise.
    #[error("{path} does not exist: run `emocycle evaluate --config {config}` first")]
    MissingResults {
        /// The expected `eval/results.parquet`.
        path: PathBuf,
        /// The pipeline file, for the command.
        config: PathBuf,
    },
    /// `results.parquet` exists but cannot be read.
    #[error(transparent)]
    Eval(#[from] emocycle_eval::EvalError),
    /// An artifact could not be read or written.
    #[error(transparent)]
    Artifact(#[from] emocycle_artifact::ArtifactError),
    /// A file system operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
    /// A figure could not be drawn or written.
    #[error(transparent)]
    Plot(#[from] emocycle_plot::PlotError),
}

impl ReportError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
