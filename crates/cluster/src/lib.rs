//! emocycle on a Slurm cluster: a pipeline as job arrays, one per stage, chained with `afterok`
//! dependencies, each array task running the stage's own command for its share of the grid
//! (`--scope`, `--lambda-cls`, `--gan-seed`, `--name`) on a run directory that every node
//! shares.
//!
//! # What it reads and writes
//!
//! [`submit`] reads the pipeline and, when it starts after the feature stage, the feature
//! stage's fold file `features/<target>.folds.parquet`, whose scopes decide the GAN and
//! baseline arrays. A submission that includes the feature stage cannot know them yet: it is
//! the feature stage and a one-task `continue` job after it, which submits the rest
//! (`emocycle submit --from augment`). It writes, below the run directory (`runs/<name>/`):
//! - `slurm/<stage>.sbatch`: one script per stage (and `continue.sbatch`), its `#SBATCH` lines
//!   from the pipeline's `slurm` section ([`emocycle_config::slurm::SlurmConfig`]);
//! - `slurm/jobs.json`: every submission's job ids, stages, dependencies and task labels
//!   ([`Submission`]), appended to on each submit.
//!
//! The array tasks themselves write:
//! - `slurm/logs/<stage>-<job>_<task>.out`: the task's output, every attempt appended;
//! - `slurm/tasks/<stage>.<job>_<task>.exit`: the exit status of its last attempt (removed
//!   when an attempt starts; named by the array's job id, so a record of an earlier
//!   submission never speaks for a later one);
//! - the stage's outputs, as a local run does: every task writes only its own share,
//!   atomically, so tasks never collide, and each stage's freshness checks make a task whose
//!   share is up to date exit at once, so resubmitting a pipeline redoes only what is missing.
//!
//! [`status`] reads `slurm/jobs.json`, the task records, `squeue` and, where the cluster keeps
//! accounting, `sacct`.
//!
//! # Preemption and time limits
//!
//! Every array but `continue` (which would submit twice) is requeueable, and the GAN tasks run
//! with `--resume`: a task that is preempted or requeued continues from its last checkpoint
//! (`gan.network.checkpoint_every`) and ends with the weights of an uninterrupted run. Other
//! stages are short or restart from their freshness checks.
//!
//! The scripts are plain bash (an empty argument list is spelled so that bash before 4.4
//! accepts it under `set -u`); `#SBATCH` values are quoted for sbatch's own parser.

mod plan;
mod script;
mod status;
mod submit;

use std::path::PathBuf;

pub use plan::{FIRST_STAGE, Launch, StageJob, Task, plan};
pub use script::{SlurmDir, render, shell_quote};
pub use status::{SlurmStates, StageStatus, TaskState, TaskStatus, parse_states, status};
pub use submit::{Submission, SubmitOutcome, SubmittedJob, read_submissions, submit};

/// What can go wrong when submitting or following a pipeline on Slurm.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The pipeline (or the feature stage's fold file) is not usable.
    #[error(transparent)]
    Pipeline(#[from] emocycle_pipeline::PipelineError),
    /// A file could not be written.
    #[error(transparent)]
    Artifact(#[from] emocycle_artifact::ArtifactError),
    /// A file or directory could not be read or made.
    #[error("{what} {path}: {source}")]
    Io {
        /// What it is.
        what: String,
        /// Where.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// `jobs.json` is not a submission record.
    #[error("{path}: not a record of submissions: {source}")]
    Record {
        /// The file.
        path: PathBuf,
        /// What serde found.
        #[source]
        source: serde_json::Error,
    },
    /// `--from` names no stage.
    #[error(
        "no stage is called {0:?}; the stages are features, augment, pretrain, train, generate, quality, evaluate, report"
    )]
    UnknownStage(String),
    /// `sbatch` refused an array.
    #[error(
        "submitting stage {stage}: {message}{}",
        if submitted.is_empty() {
            String::new()
        } else {
            format!(
                " (already submitted, recorded in slurm/jobs.json: jobs {}; `scancel` them or let them run)",
                submitted.join(", ")
            )
        }
    )]
    Submit {
        /// The stage whose array was refused.
        stage: String,
        /// sbatch's complaint.
        message: String,
        /// Job ids of the arrays submitted before it.
        submitted: Vec<String>,
    },
}

/// This crate's results.
pub type Result<T> = std::result::Result<T, ClusterError>;
