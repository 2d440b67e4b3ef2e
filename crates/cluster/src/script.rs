//! The sbatch script of one stage's job array.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::plan::{Launch, StageJob};

/// Where a submission keeps its scripts, logs and task outcomes: `<run>/slurm/`.
#[derive(Debug, Clone)]
pub struct SlurmDir {
    root: PathBuf,
}

impl SlurmDir {
    /// `<run_dir>/slurm`.
    pub fn new(run_dir: &Path) -> Self {
        Self {
            root: run_dir.join("slurm"),
        }
    }

    /// `<stage>.sbatch`.
    pub fn script(&self, stage: &str) -> PathBuf {
        self.root.join(format!("{stage}.sbatch"))
    }

    /// `logs/`: one file per array task, `<stage>-<job>_<task>.out`.
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// The log of task `task` of `stage`'s array job `job`.
    pub fn log(&self, stage: &str, job: &str, task: usize) -> PathBuf {
        self.logs().join(format!("{stage}-{job}_{task}.out"))
    }

    /// `tasks/`: `<stage>.<job>_<task>.exit`, the exit status of a task's last attempt.
    pub fn tasks(&self) -> PathBuf {
        self.root.join("tasks")
    }

    /// The exit-status file of task `task` of `stage`'s array job `job` (named by the job, so
    /// that an earlier submission's record never speaks for a later one).
    pub fn exit_file(&self, stage: &str, job: &str, task: usize) -> PathBuf {
        self.tasks().join(format!("{stage}.{job}_{task}.exit"))
    }

    /// `jobs.json`: every submission's job ids.
    pub fn jobs(&self) -> PathBuf {
        self.root.join("jobs.json")
    }
}

/// `text` as one word for bash: in single quotes, each `'` written as `'\''`.
pub fn shell_quote(text: &str) -> String {
    if !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-=:,+@".contains(&b))
    {
        return text.to_string();
    }
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn path_word(path: &Path) -> String {
    shell_quote(&path.display().to_string())
}

/// A path for the inside of a double-quoted `#SBATCH` value, which sbatch reads itself, not
/// bash: `\` and `"` escaped, and `%` doubled (sbatch expands `%A`, `%a`, ... in file names).
fn sbatch_escape(path: &Path) -> String {
    let mut out = String::new();
    for c in path.display().to_string().chars() {
        match c {
            '\\' | '"' => {
                out.push('\\');
                out.push(c);
            }
            '%' => out.push_str("%%"),
            _ => out.push(c),
        }
    }
    out
}

/// The script: `#SBATCH` lines from the job's resources, an array of its tasks, requeueable,
/// logs appended across attempts; each task records its exit status in `tasks/` (removed when
/// an attempt starts, so a requeued task is not reported failed while it runs again) and runs
/// the stage command for its share from the submission's directory.
pub fn render(job: &StageJob, launch: &Launch, dir: &SlurmDir, pipeline_name: &str) -> String {
    let mut out = String::new();
    let tasks = job.tasks.len();
    let _ = writeln!(out, "#!/bin/bash");
    let _ = writeln!(
        out,
        "# emocycle: stage {} of pipeline {pipeline_name}, {tasks} task(s).",
        job.stage
    );
    let _ = writeln!(
        out,
        "# Written by `emocycle submit`; submitting the pipeline again rewrites it."
    );
    let resources = &job.resources;
    let mut sbatch = vec![
        format!(
            "--job-name={}",
            shell_quote(&format!("emocycle-{pipeline_name}-{}", job.stage))
        ),
        format!("--array=0-{}", tasks.saturating_sub(1)),
        // One log per array task (`%A` the array's job id, `%a` the task), every attempt
        // appended.
        format!(
            "--output=\"{}/{}-%A_%a.out\"",
            sbatch_escape(&dir.logs()),
            job.stage
        ),
        "--open-mode=append".to_string(),
        if job.requeue {
            "--requeue"
        } else {
            "--no-requeue"
        }
        .to_string(),
    ];
    let optional = [
        ("partition", &resources.partition),
        ("account", &resources.account),
        ("time", &resources.time),
        ("mem", &resources.memory),
    ];
    for (flag, value) in optional {
        if let Some(value) = value {
            sbatch.push(format!("--{flag}={value}"));
        }
    }
    if let Some(cpus) = resources.cpus {
        sbatch.push(format!("--cpus-per-task={cpus}"));
    }
    if let Some(gpus) = resources.gpus.filter(|&gpus| gpus > 0) {
        sbatch.push(format!("--gres=gpu:{gpus}"));
    }
    sbatch.extend(resources.extra.iter().map(|line| line.trim().to_string()));
    for line in sbatch {
        let _ = writeln!(out, "#SBATCH {line}");
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "set -uo pipefail");
    let _ = writeln!(out, "task=\"${{SLURM_ARRAY_TASK_ID:-0}}\"");
    let _ = writeln!(
        out,
        "status_file={}/{}.\"${{SLURM_ARRAY_JOB_ID:-${{SLURM_JOB_ID:-0}}}}_$task\".exit",
        path_word(&dir.tasks()),
        job.stage
    );
    let _ = writeln!(out, "mkdir -p {}", path_word(&dir.tasks()));
    let _ = writeln!(out, "rm -f \"$status_file\"");
    let _ = writeln!(out, "trap 'echo $? > \"$status_file\"' EXIT");
    let _ = writeln!(out, "cd {} || exit 1", path_word(&launch.workdir));
    let _ = writeln!(out, "case \"$task\" in");
    for (index, task) in job.tasks.iter().enumerate() {
        let args: Vec<String> = task.args.iter().map(|arg| shell_quote(arg)).collect();
        let _ = writeln!(
            out,
            "  {index}) args=({}) ;; # {}",
            args.join(" "),
            task.label.replace('\n', " ")
        );
    }
    let _ = writeln!(
        out,
        "  *) echo \"emocycle: no task $task in this array of {tasks}\" >&2; exit 2 ;;"
    );
    let _ = writeln!(out, "esac");
    let _ = writeln!(
        out,
        "echo \"emocycle {}: task $task, attempt $((${{SLURM_RESTART_COUNT:-0}} + 1)), on $(hostname), $(date -u +%FT%TZ)\"",
        job.stage
    );
    let threads = resources
        .cpus
        .map_or(String::new(), |cpus| format!(" --threads {cpus}"));
    let _ = writeln!(
        out,
        // `${args[@]+...}`: an empty array under `set -u` is an error before bash 4.4.
        "{}{threads} {} --config {} ${{args[@]+\"${{args[@]}}\"}}",
        path_word(&launch.executable),
        job.command,
        path_word(&launch.config)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Task;
    use emocycle_config::slurm::SlurmResources;

    #[test]
    fn words_are_quoted_only_when_needed() {
        assert_eq!(shell_quote("/runs/demo/x.json"), "/runs/demo/x.json");
        assert_eq!(shell_quote("fold1"), "fold1");
        assert_eq!(shell_quote("my runs"), "'my runs'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
        assert_eq!(
            sbatch_escape(Path::new(r#"/a b/50%"q\"#)),
            r#"/a b/50%%\"q\\"#
        );
    }

    #[test]
    fn a_script_asks_for_its_resources_and_runs_one_share_per_task() {
        let job = StageJob {
            stage: "train".into(),
            command: "train".into(),
            tasks: vec![
                Task {
                    label: "fold1 lambda_cls=0".into(),
                    args: vec!["--scope".into(), "fold1".into(), "--resume".into()],
                },
                Task {
                    label: "fold2 lambda_cls=0".into(),
                    args: vec!["--scope".into(), "fold2".into(), "--resume".into()],
                },
            ],
            after: vec!["pretrain".into()],
            requeue: true,
            resources: SlurmResources {
                partition: Some("gpu".into()),
                time: Some("2:00:00".into()),
                cpus: Some(4),
                gpus: Some(1),
                extra: vec!["--qos=short".into()],
                ..SlurmResources::default()
            },
        };
        let launch = Launch {
            executable: "/opt/emocycle/bin/emocycle".into(),
            workdir: "/home/me/my project".into(),
            config: "/home/me/my project/pipelines/demo.json".into(),
        };
        let dir = SlurmDir::new(Path::new("/home/me/my project/runs/demo"));
        let script = render(&job, &launch, &dir, "demo");
        for line in [
            "#SBATCH --job-name=emocycle-demo-train",
            "#SBATCH --array=0-1",
            "#SBATCH --output=\"/home/me/my project/runs/demo/slurm/logs/train-%A_%a.out\"",
            "#SBATCH --requeue",
            "#SBATCH --open-mode=append",
            "#SBATCH --partition=gpu",
            "#SBATCH --time=2:00:00",
            "#SBATCH --cpus-per-task=4",
            "#SBATCH --gres=gpu:1",
            "#SBATCH --qos=short",
            "cd '/home/me/my project' || exit 1",
            "  1) args=(--scope fold2 --resume) ;; # fold2 lambda_cls=0",
            "/opt/emocycle/bin/emocycle --threads 4 train --config '/home/me/my project/pipelines/demo.json' ${args[@]+\"${args[@]}\"}",
        ] {
            assert!(script.contains(line), "{line}\n{script}");
        }
        assert!(!script.contains("--account"), "{script}");
    }
}
