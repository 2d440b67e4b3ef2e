//! A pipeline as Slurm work: one job array per stage, one array task per independent run of
//! the stage (a scope, a lambda_cls, a generator seed, a baseline), each the stage's own
//! command for its share, and the stages chained by `afterok`. With the grid engine
//! (`gan.engine`), `pretrain` and `train` are one task each: the stage's runs as one grid.

use std::path::{Path, PathBuf};

use emocycle_config::device::DeviceChoice;
use emocycle_config::gan::Engine;
use emocycle_config::layout::run_label;
use emocycle_config::slurm::SlurmResources;
use emocycle_pipeline::Pipeline;

use crate::{ClusterError, Result};

/// Where the jobs run from and what they run.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The `emocycle` binary the tasks run (on a file system the nodes share).
    pub executable: PathBuf,
    /// The directory the tasks start in: where `submit` ran, so that the pipeline's relative
    /// output directory means the same on every node.
    pub workdir: PathBuf,
    /// The pipeline file, absolute.
    pub config: PathBuf,
}

impl Launch {
    /// The current binary, the current directory and `pipeline`'s file.
    pub fn current(pipeline: &Pipeline) -> Result<Self> {
        let io = |what: &str, path: &Path| {
            let what = what.to_string();
            let path = path.to_path_buf();
            move |source| ClusterError::Io { what, path, source }
        };
        let workdir =
            std::env::current_dir().map_err(io("the current directory", Path::new(".")))?;
        Ok(Self {
            executable: std::env::current_exe()
                .map_err(io("the emocycle binary", Path::new("emocycle")))?,
            config: std::fs::canonicalize(&pipeline.path)
                .map_err(io("the pipeline file", &pipeline.path))?,
            workdir,
        })
    }

    /// The run directory `runs/<name>` (or the pipeline's `output_dir`), absolute.
    pub fn run_dir(&self, pipeline: &Pipeline) -> PathBuf {
        self.workdir.join(pipeline.output_dir())
    }
}

/// One array task: a label for people and the stage command's arguments for its share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// `fold2 lambda_cls=2 gan_seed=1`, `all smote`, or the stage's name.
    pub label: String,
    /// Arguments after `emocycle <stage> --config <file>`.
    pub args: Vec<String>,
}

/// One stage's job array.
#[derive(Debug, Clone, PartialEq)]
pub struct StageJob {
    /// The stage (`train`), or `continue` for the job that submits the stages after the
    /// feature stage once it has run.
    pub stage: String,
    /// The subcommand the tasks run (`train`; `submit` for `continue`).
    pub command: String,
    /// The array's tasks, in array-index order.
    pub tasks: Vec<Task>,
    /// Stages of the same submission that must finish first (`afterok`).
    pub after: Vec<String>,
    /// Whether Slurm may requeue a task (preemption, `scontrol requeue`): every stage's, as
    /// each reruns to the same outputs, but not `continue`'s, which would submit again.
    pub requeue: bool,
    /// What each task asks for.
    pub resources: SlurmResources,
}

/// The first stage `submit` sends; `features` sends the whole pipeline.
pub const FIRST_STAGE: &str = "features";

/// The stages after the feature stage, whose tasks depend on the scopes it finds.
const LATER_STAGES: [&str; 7] = [
    "augment", "pretrain", "train", "generate", "quality", "evaluate", "report",
];

/// The stages each stage reads from.
fn predecessors(stage: &str) -> &'static [&'static str] {
    match stage {
        "augment" | "pretrain" => &["features"],
        "train" => &["pretrain"],
        "generate" => &["train"],
        "quality" | "evaluate" => &["generate", "augment"],
        "report" => &["quality", "evaluate"],
        _ => &[],
    }
}

/// Whether a stage's tasks run models (and get a GPU when the pipeline's device is CUDA).
fn runs_models(stage: &str) -> bool {
    !matches!(stage, "features" | "report" | "continue")
}

/// The job arrays that bring the pipeline up to date from stage `from` on (`features`: all).
///
/// The GAN and baseline stages have one task per scope, and the scopes come from the feature
/// stage's fold file, which the feature stage may be about to write or rewrite. So a plan
/// from `features` is the feature stage and a one-task `continue` job after it, which runs
/// `emocycle submit --from augment` to send the rest once the scopes are known; a plan from a
/// later stage reads the fold file at once, and its absence is an error.
pub fn plan(pipeline: &Pipeline, from: &str) -> Result<Vec<StageJob>> {
    let stages: Vec<&str> = std::iter::once(FIRST_STAGE)
        .chain(LATER_STAGES)
        .skip_while(|stage| *stage != from)
        .collect();
    if stages.is_empty() {
        return Err(ClusterError::UnknownStage(from.to_string()));
    }
    let slurm = &pipeline.config.slurm;
    let cuda = matches!(pipeline.config.device, DeviceChoice::Cuda(_));
    let resources = |stage: &str| {
        let mut resources = slurm.for_stage(stage);
        if resources.gpus.is_none() && cuda && runs_models(stage) {
            resources.gpus = Some(1);
        }
        resources
    };
    let whole = |stage: &str| Task {
        label: stage.to_string(),
        args: Vec::new(),
    };
    let scopes = if stages[0] == FIRST_STAGE {
        None
    } else {
        Some(pipeline.gan_scopes()?)
    };
    let mut jobs: Vec<StageJob> = Vec::new();
    let mut add = |stage: &str, command: &str, tasks: Vec<Task>| {
        if tasks.is_empty() {
            return;
        }
        jobs.push(StageJob {
            stage: stage.to_string(),
            command: command.to_string(),
            tasks,
            after: Vec::new(),
            requeue: stage != "continue",
            resources: resources(stage),
        });
    };
    let Some(scopes) = scopes else {
        add(FIRST_STAGE, FIRST_STAGE, vec![whole(FIRST_STAGE)]);
        add(
            "continue",
            "submit",
            vec![Task {
                label: "submit the stages after features".into(),
                args: vec!["--from".into(), LATER_STAGES[0].into()],
            }],
        );
        return Ok(chain(jobs));
    };
    let config = &pipeline.config;
    let several_seeds = config.gan.seeds > 1;
    // The grid engine trains a stage's GAN runs in one process, in groups that fit its memory
    // budget: one task per stage, which a requeue resumes from every run's checkpoint.
    let grid = config.gan.engine.resolve(cuda) == Engine::Grid;
    for stage in stages {
        let mut tasks = Vec::new();
        match stage {
            "pretrain" | "train" if grid && !config.gan.lambda_cls.is_empty() => {
                tasks.push(Task {
                    label: format!("{stage}: every run, as a grid"),
                    args: strings(&["--resume"]),
                });
            }
            "augment" => {
                for scope in &scopes {
                    for baseline in &config.baselines {
                        tasks.push(Task {
                            label: format!("{} {}", scope.name(), baseline.name()),
                            args: strings(&[
                                "--scope",
                                &scope.name(),
                                "--name",
                                baseline.name(),
                                "--jobs",
                                "1",
                            ]),
                        });
                    }
                }
            }
            "pretrain" if !config.gan.lambda_cls.is_empty() => {
                for scope in &scopes {
                    for gan_seed in pipeline.gan_seeds() {
                        tasks.push(Task {
                            label: run_label(scope, None, gan_seed, several_seeds),
                            args: strings(&[
                                "--scope",
                                &scope.name(),
                                "--gan-seed",
                                &gan_seed.to_string(),
                                "--jobs",
                                "1",
                                "--resume",
                            ]),
                        });
                    }
                }
            }
            "train" | "generate" => {
                for scope in &scopes {
                    for &lambda in &config.gan.lambda_cls {
                        for gan_seed in pipeline.gan_seeds() {
                            let mut args = strings(&[
                                "--scope",
                                &scope.name(),
                                "--lambda-cls",
                                &lambda.to_string(),
                                "--gan-seed",
                                &gan_seed.to_string(),
                            ]);
                            if stage == "train" {
                                // A requeued task continues from its last checkpoint.
                                args.extend(strings(&["--jobs", "1", "--resume"]));
                            }
                            tasks.push(Task {
                                label: run_label(scope, Some(lambda), gan_seed, several_seeds),
                                args,
                            });
                        }
                    }
                }
            }
            "pretrain" => {}
            whole_stage => tasks.push(whole(whole_stage)),
        }
        add(stage, stage, tasks);
    }
    Ok(chain(jobs))
}

/// Fills every job's `after` with the predecessors that are in the same submission; a
/// `continue` job waits for the feature stage.
fn chain(mut jobs: Vec<StageJob>) -> Vec<StageJob> {
    let present: Vec<String> = jobs.iter().map(|job| job.stage.clone()).collect();
    for job in &mut jobs {
        let wanted: &[&str] = if job.stage == "continue" {
            &[FIRST_STAGE]
        } else {
            predecessors(&job.stage)
        };
        job.after = wanted
            .iter()
            .filter(|stage| present.iter().any(|p| p == *stage))
            .map(|stage| stage.to_string())
            .collect();
    }
    jobs
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| item.to_string()).collect()
}
