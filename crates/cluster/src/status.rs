//! Where a submitted pipeline stands: each array task done, running, queued or failed, from the
//! run directory's task records and from Slurm (`squeue`, and `sacct` where the cluster keeps
//! accounting).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use emocycle_pipeline::Pipeline;

use crate::Result;
use crate::plan::Launch;
use crate::script::SlurmDir;
use crate::submit::read_submissions;

/// One array task's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    /// Its last attempt exited 0.
    Done,
    /// Running (or starting, or finishing) now.
    Running,
    /// Waiting in the queue (for its dependencies, resources, or a requeue).
    Queued,
    /// Its last attempt failed: the exit status or Slurm's state (`exit 1`, `TIMEOUT`).
    Failed(String),
    /// Neither queued nor finished with a record: cancelled before it started (a failed
    /// dependency), or killed without a chance to record its exit.
    Unknown,
}

impl TaskState {
    /// `done`, `running`, `queued`, `failed` or `unknown`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Running => "running",
            Self::Queued => "queued",
            Self::Failed(_) => "failed",
            Self::Unknown => "unknown",
        }
    }
}

/// One task of a stage.
#[derive(Debug, Clone)]
pub struct TaskStatus {
    /// Array index.
    pub index: usize,
    /// `fold2 lambda_cls=2`, ...
    pub label: String,
    /// Its state.
    pub state: TaskState,
    /// Its log (every attempt appended).
    pub log: PathBuf,
}

/// One stage's array.
#[derive(Debug, Clone)]
pub struct StageStatus {
    /// The stage (or `continue`).
    pub stage: String,
    /// The array's job id.
    pub job_id: String,
    /// Every task.
    pub tasks: Vec<TaskStatus>,
}

impl StageStatus {
    /// How many tasks are in each state, in the order done, running, queued, failed, unknown.
    pub fn counts(&self) -> [usize; 5] {
        let mut counts = [0; 5];
        for task in &self.tasks {
            let slot = match task.state {
                TaskState::Done => 0,
                TaskState::Running => 1,
                TaskState::Queued => 2,
                TaskState::Failed(_) => 3,
                TaskState::Unknown => 4,
            };
            counts[slot] += 1;
        }
        counts
    }
}

/// Slurm's view: `<job>_<task>` -> state word (`RUNNING`, `PENDING`, `COMPLETED`, ...).
pub type SlurmStates = BTreeMap<String, String>;

/// Parses `<jobid>|<state>` lines (`squeue -o %i|%T`, `sacct -P -o JobID,State`); a pending
/// array that Slurm has not split yet (`12_[0-3]`, `12_[1,4-5%2]`) stands for each of its tasks.
pub fn parse_states(text: &str) -> SlurmStates {
    let mut states = SlurmStates::new();
    for line in text.lines() {
        let Some((id, state)) = line.trim().split_once('|') else {
            continue;
        };
        // sacct writes `CANCELLED by 1000`; the first word is the state.
        let state = state
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        match id.split_once("_[") {
            Some((job, ranges)) => {
                let ranges = ranges.trim_end_matches(']');
                let ranges = ranges.split('%').next().unwrap_or_default();
                for part in ranges.split(',') {
                    let (low, high) = part.split_once('-').unwrap_or((part, part));
                    if let (Ok(low), Ok(high)) = (low.parse::<usize>(), high.parse::<usize>()) {
                        for task in low..=high {
                            states.insert(format!("{job}_{task}"), state.clone());
                        }
                    }
                }
            }
            None => {
                states.insert(id.to_string(), state);
            }
        }
    }
    states
}

/// A state from `squeue`: queued or running, or `None` for a state that means "over".
fn queue_state(state: &str) -> Option<TaskState> {
    match state {
        "RUNNING" | "COMPLETING" | "CONFIGURING" | "STAGE_OUT" | "SIGNALING" | "RESIZING" => {
            Some(TaskState::Running)
        }
        "PENDING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "SUSPENDED" | "RESV_DEL_HOLD"
        | "STOPPED" => Some(TaskState::Queued),
        _ => None,
    }
}

/// A state from `sacct` for a task that is no longer queued and left no exit record.
fn accounting_state(state: &str) -> TaskState {
    match state {
        "COMPLETED" => TaskState::Done,
        "" => TaskState::Unknown,
        other => queue_state(other).unwrap_or_else(|| TaskState::Failed(other.to_string())),
    }
}

/// Runs `program args`; its standard output when it succeeds, `None` when it cannot run or
/// fails (no Slurm on this machine, no accounting on the cluster).
fn query(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The state of every task of the latest submission of each stage, the stages in pipeline
/// order. Empty when nothing was submitted.
pub fn status(pipeline: &Pipeline, launch: &Launch) -> Result<Vec<StageStatus>> {
    let dir = SlurmDir::new(&launch.run_dir(pipeline));
    let submissions = read_submissions(&dir)?;
    // The latest array of each stage, in the order the stages were first submitted.
    let mut latest: Vec<crate::submit::SubmittedJob> = Vec::new();
    for job in submissions.iter().flat_map(|s| &s.jobs) {
        if job.job_id.is_none() {
            continue;
        }
        match latest.iter_mut().find(|seen| seen.stage == job.stage) {
            Some(seen) => *seen = job.clone(),
            None => latest.push(job.clone()),
        }
    }
    if latest.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = latest.iter().filter_map(|j| j.job_id.as_deref()).collect();
    let id_list = ids.join(",");
    // This user's jobs (`--me` exists only from Slurm 20.11 on); not `-j`, which fails
    // outright once one of the ids has left the controller's memory.
    let user = std::env::var("USER").ok().filter(|user| !user.is_empty());
    let mine = match &user {
        Some(user) => vec!["-u", user.as_str()],
        None => vec!["--me"],
    };
    let queued = query(
        "squeue",
        &[&["-h", "-r"], &mine[..], &["-o", "%i|%T"]].concat(),
    )
    .map(|text| parse_states(&text))
    .unwrap_or_default();
    let accounted = query(
        "sacct",
        &["-n", "-P", "-X", "-j", &id_list, "-o", "JobID,State"],
    )
    .map(|text| parse_states(&text))
    .unwrap_or_default();
    Ok(latest
        .iter()
        .map(|job| {
            let job_id = job.job_id.clone().unwrap_or_default();
            let tasks = job
                .tasks
                .iter()
                .enumerate()
                .map(|(index, label)| {
                    let key = format!("{job_id}_{index}");
                    let recorded =
                        std::fs::read_to_string(dir.exit_file(&job.stage, &job_id, index))
                            .ok()
                            .map(|text| text.trim().to_string());
                    let state = match (queued.get(&key).and_then(|s| queue_state(s)), recorded) {
                        (Some(state), _) => state,
                        (None, Some(code)) if code == "0" => TaskState::Done,
                        (None, Some(code)) => TaskState::Failed(format!("exit {code}")),
                        (None, None) => accounted
                            .get(&key)
                            .map_or(TaskState::Unknown, |state| accounting_state(state)),
                    };
                    TaskStatus {
                        index,
                        label: label.clone(),
                        state,
                        log: dir.log(&job.stage, &job_id, index),
                    }
                })
                .collect();
            StageStatus {
                stage: job.stage.clone(),
                job_id,
                tasks,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_lines_become_task_states() {
        let states = parse_states(
            "41_0|RUNNING\n41_[2-3,5%2]|PENDING\n42|PENDING\n43_1|CANCELLED by 1000\nnoise\n",
        );
        assert_eq!(states["41_0"], "RUNNING");
        for task in ["41_2", "41_3", "41_5"] {
            assert_eq!(states[task], "PENDING", "{task}");
        }
        assert!(!states.contains_key("41_4"));
        assert_eq!(states["42"], "PENDING");
        assert_eq!(states["43_1"], "CANCELLED");
        assert_eq!(states.len(), 6);
    }

    #[test]
    fn slurm_states_map_to_ours() {
        assert_eq!(queue_state("RUNNING"), Some(TaskState::Running));
        assert_eq!(queue_state("REQUEUED"), Some(TaskState::Queued));
        assert_eq!(queue_state("COMPLETED"), None);
        assert_eq!(accounting_state("COMPLETED"), TaskState::Done);
        assert_eq!(
            accounting_state("TIMEOUT"),
            TaskState::Failed("TIMEOUT".into())
        );
        assert_eq!(accounting_state("PENDING"), TaskState::Queued);
    }
}
