use std::path::PathBuf;

/// What can go wrong reading or writing an artifact. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// An operating-system error on a file or directory.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The producer of an atomic write failed; the old file, if any, is untouched.
    #[error("{path}: writing failed, previous contents kept: {source}")]
    Write {
        /// The artifact that was being written.
        path: PathBuf,
        /// What the producer reported.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// polars could not read or write the parquet file.
    #[error("{path}: {source}")]
    Parquet {
        /// The parquet file.
        path: PathBuf,
        /// The polars error.
        #[source]
        source: polars::error::PolarsError,
    },
    /// A column is missing or has the wrong type.
    #[error("{path}: column {column:?}: {problem}")]
    Schema {
        /// The parquet file.
        path: PathBuf,
        /// The offending column.
        column: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A footer metadata value is missing or malformed.
    #[error("{path}: footer metadata key {key:?}: {problem}")]
    Metadata {
        /// The parquet file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
}

impl ArtifactError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
