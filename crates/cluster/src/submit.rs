//! Writing the scripts, submitting them with `sbatch`, and recording the job ids.

use std::path::PathBuf;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use emocycle_artifact::write_bytes_atomic;
use emocycle_pipeline::Pipeline;
use serde::{Deserialize, Serialize};

use crate::plan::{Launch, StageJob, plan};
use crate::script::{SlurmDir, render};
use crate::{ClusterError, Result};

/// One stage's array as submitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmittedJob {
    /// The stage, or `continue`.
    pub stage: String,
    /// Slurm's job id of the array; `None` in a dry run.
    pub job_id: Option<String>,
    /// The stages it waits for.
    pub after: Vec<String>,
    /// The tasks' labels, in array-index order.
    pub tasks: Vec<String>,
    /// The script.
    pub script: PathBuf,
}

/// One `emocycle submit`: what went to Slurm, in submission order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    /// When, in seconds since the Unix epoch.
    pub submitted_unix: u64,
    /// The first stage sent.
    pub from: String,
    /// The arrays.
    pub jobs: Vec<SubmittedJob>,
}

/// What `submit` did, for the command line to show.
#[derive(Debug, Clone)]
pub struct SubmitOutcome {
    /// The arrays, with their scripts and (unless a dry run) job ids.
    pub submission: Submission,
    /// Each script's text, in the same order (for `--dry-run` to print).
    pub scripts: Vec<String>,
}

/// Writes one sbatch script per stage below `<run>/slurm/` and, unless `dry_run`, submits
/// them in order with `sbatch`, each depending (`afterok`) on the arrays it reads from, and
/// appends the job ids to `<run>/slurm/jobs.json` for `emocycle status`. When `sbatch` refuses
/// an array, the arrays already submitted are recorded and named in the error.
pub fn submit(
    pipeline: &Pipeline,
    launch: &Launch,
    from: &str,
    dry_run: bool,
) -> Result<SubmitOutcome> {
    let jobs = plan(pipeline, from)?;
    let dir = SlurmDir::new(&launch.run_dir(pipeline));
    for path in [dir.logs(), dir.tasks()] {
        std::fs::create_dir_all(&path).map_err(|source| ClusterError::Io {
            what: "the Slurm directory".into(),
            path: path.clone(),
            source,
        })?;
    }
    let mut scripts = Vec::new();
    for job in &jobs {
        let text = render(job, launch, &dir, &pipeline.config.name);
        write_bytes_atomic(&dir.script(&job.stage), text.as_bytes())?;
        scripts.push(text);
    }
    let mut submission = Submission {
        submitted_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        from: from.to_string(),
        jobs: Vec::new(),
    };
    for job in &jobs {
        let job_id = if dry_run {
            None
        } else {
            match sbatch(job, &dir, &submission) {
                Ok(id) => Some(id),
                Err(error) => {
                    if !submission.jobs.is_empty() {
                        record(&dir, &submission)?;
                    }
                    let submitted: Vec<String> = submission
                        .jobs
                        .iter()
                        .filter_map(|job| job.job_id.clone())
                        .collect();
                    return Err(ClusterError::Submit {
                        stage: job.stage.clone(),
                        message: error,
                        submitted,
                    });
                }
            }
        };
        submission.jobs.push(SubmittedJob {
            stage: job.stage.clone(),
            job_id,
            after: job.after.clone(),
            tasks: job.tasks.iter().map(|task| task.label.clone()).collect(),
            script: dir.script(&job.stage),
        });
    }
    if !dry_run {
        record(&dir, &submission)?;
    }
    Ok(SubmitOutcome {
        submission,
        scripts,
    })
}

/// `sbatch --parsable [--dependency=afterok:...] <script>`; the job id, or what went wrong.
fn sbatch(
    job: &StageJob,
    dir: &SlurmDir,
    submitted: &Submission,
) -> std::result::Result<String, String> {
    let dependencies: Vec<&str> = job
        .after
        .iter()
        .filter_map(|stage| {
            submitted
                .jobs
                .iter()
                .find(|job| &job.stage == stage)
                .and_then(|job| job.job_id.as_deref())
        })
        .collect();
    let mut command = Command::new("sbatch");
    command.arg("--parsable");
    if !dependencies.is_empty() {
        // A failed predecessor cancels its dependants instead of leaving them pending forever.
        command
            .arg(format!("--dependency=afterok:{}", dependencies.join(":")))
            .arg("--kill-on-invalid-dep=yes");
    }
    command.arg(dir.script(&job.stage));
    let output = command
        .output()
        .map_err(|error| format!("cannot run sbatch: {error}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "sbatch exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    // `--parsable` prints `<id>` or `<id>;<cluster>`.
    let id = stdout
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("sbatch printed {:?}, not a job id", stdout.trim()));
    }
    Ok(id)
}

/// Every submission recorded in `jobs.json`, oldest first (none when it does not exist).
pub fn read_submissions(dir: &SlurmDir) -> Result<Vec<Submission>> {
    let path = dir.jobs();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ClusterError::Io {
                what: "the job record".into(),
                path,
                source,
            });
        }
    };
    serde_json::from_str(&text).map_err(|source| ClusterError::Record { path, source })
}

fn record(dir: &SlurmDir, submission: &Submission) -> Result<()> {
    let mut all = read_submissions(dir)?;
    all.push(submission.clone());
    let text = serde_json::to_string_pretty(&all).expect("plain data serialises");
    write_bytes_atomic(&dir.jobs(), text.as_bytes())?;
    Ok(())
}
