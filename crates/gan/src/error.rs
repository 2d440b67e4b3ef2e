//! The GAN stage's errors.

use std::path::PathBuf;

/// Everything that can go wrong in the GAN stage.
#[derive(Debug, thiserror::Error)]
pub enum GanError {
    /// A configuration value cannot train.
    #[error(transparent)]
    Config(#[from] emocycle_config::ConfigError),
    /// The data and the configuration do not fit together.
    #[error("invalid GAN configuration: {0}")]
    InvalidConfig(String),
    /// No emotion target sets were given.
    #[error("the GAN needs at least one target set, got none")]
    NoTargets,
    /// A data set is not a float32 matrix.
    #[error("{set}: expected a 2-D float32 tensor, got kind {kind} with shape {shape:?}")]
    NotAMatrix {
        /// Which set (`source` or `target 2`).
        set: String,
        /// Its element kind.
        kind: String,
        /// Its shape.
        shape: Vec<i64>,
    },
    /// A data set's feature dimension differs from the source's.
    #[error("{set} has {found} features but the source has {expected}")]
    DimensionMismatch {
        /// Which set.
        set: String,
        /// The source's dimension.
        expected: i64,
        /// This set's dimension.
        found: i64,
    },
    /// A data set has fewer rows than one minibatch.
    #[error("{set} has {rows} rows, fewer than one batch of {batch_size}")]
    NotEnoughRows {
        /// Which set.
        set: String,
        /// Its row count.
        rows: i64,
        /// The configured batch size.
        batch_size: usize,
    },
    /// A data set holds NaN or infinite values.
    #[error("{set} holds NaN or infinite values")]
    NonFinite {
        /// Which set.
        set: String,
    },
    /// Pretrained generators do not fit the configuration or data.
    #[error("pretrained generators do not fit: {0}")]
    PretrainedMismatch(String),
    /// A checkpoint was written by a run with different settings or data.
    #[error("checkpoint {path} does not match this run: {differences}")]
    CheckpointMismatch {
        /// The checkpoint file.
        path: PathBuf,
        /// What differs, in words.
        differences: String,
    },
    /// A checkpoint lacks a tensor or holds one of the wrong shape.
    #[error("checkpoint {path} is unusable: {reason}")]
    CheckpointCorrupt {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("I/O on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written atomically.
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
    /// The threads that train CycleGANs side by side could not be started.
    #[error("cannot start the training threads: {0}")]
    Threads(#[from] rayon::ThreadPoolBuildError),
    /// A training loss became NaN or infinite.
    #[error(
        "{phase} diverged: a loss became NaN or infinite in epoch {epoch}{}",
        pair.map(|pair| format!(" of pair {pair}")).unwrap_or_default()
    )]
    Diverged {
        /// `pretrain` or `train`.
        phase: &'static str,
        /// The 0-based epoch.
        epoch: usize,
        /// The (G_i, F_i) pair, in pretraining.
        pair: Option<usize>,
    },
    /// One run of a grid trained together failed (the cause follows in the error's chain).
    #[error("{run}")]
    InRun {
        /// The run's label.
        run: String,
        /// What went wrong.
        source: Box<GanError>,
    },
}

impl GanError {
    pub(crate) fn torch(context: impl Into<String>, source: tch::TchError) -> Self {
        Self::Torch {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divergence_names_the_pair_when_there_is_one() {
        let pretraining = GanError::Diverged {
            phase: "pretrain",
            epoch: 3,
            pair: Some(2),
        };
        assert_eq!(
            pretraining.to_string(),
            "pretrain diverged: a loss became NaN or infinite in epoch 3 of pair 2"
        );
        let training = GanError::Diverged {
            phase: "train",
            epoch: 0,
            pair: None,
        };
        assert_eq!(
            training.to_string(),
            "train diverged: a loss became NaN or infinite in epoch 0"
        );
    }
}
