//! Independent model runs (one GAN scope, one lambda_cls) in child processes, several at once.
//!
//! libtorch's random generator is global to a process and the GAN stage reseeds it every
//! epoch, so two trainings cannot share a process without changing each other's numbers.
//! Separate processes can: each child is this binary run on one unit of work with one
//! intra-op thread, which on a small CPU beats one process with several threads (libtorch's
//! OpenMP threads stall whenever another process holds a core).

use std::ffi::OsString;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

/// One unit of work: this binary's arguments after the global options.
pub(crate) struct ChildJob {
    /// What the progress line calls it (`fold2 lambda_cls=2`).
    pub label: String,
    /// Subcommand and its arguments.
    pub args: Vec<OsString>,
}

/// How many units to run at once: `requested`, or with 0 one per core.
pub(crate) fn worker_count(requested: usize) -> usize {
    match requested {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

struct Finished {
    label: String,
    success: bool,
    stderr: String,
    seconds: f64,
}

/// Runs `jobs` as child processes, at most `workers` at a time, each with `threads` libtorch
/// threads. Each child's summary lines (those starting with `stage:`) are printed when it
/// ends; a failing child's whole error output is printed, no new child starts after a failure,
/// and the ones running are waited for (their outputs are written atomically either way).
pub(crate) fn run_children(
    stage: &str,
    jobs: Vec<ChildJob>,
    workers: usize,
    threads: usize,
) -> Result<()> {
    let exe = std::env::current_exe()?;
    let total = jobs.len();
    let bar = ProgressBar::new(total as u64).with_prefix(stage.to_string());
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} [{elapsed}]")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let (sender, receiver) = mpsc::channel::<Finished>();
    let mut pending = jobs.into_iter();
    let mut running: Vec<String> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let summary_prefix = format!("{stage}:");
    loop {
        while failures.is_empty() && running.len() < workers.max(1) {
            let Some(job) = pending.next() else { break };
            let mut command = Command::new(&exe);
            command
                .arg("--threads")
                .arg(threads.to_string())
                .args(&job.args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let child = command.spawn()?;
            running.push(job.label.clone());
            let sender = sender.clone();
            let label = job.label;
            std::thread::spawn(move || {
                let started = Instant::now();
                let (success, stderr) = match child.wait_with_output() {
                    Ok(output) => (
                        output.status.success(),
                        String::from_utf8_lossy(&output.stderr).into_owned(),
                    ),
                    Err(error) => (false, format!("waiting for the child failed: {error}")),
                };
                let _ = sender.send(Finished {
                    label,
                    success,
                    stderr,
                    seconds: started.elapsed().as_secs_f64(),
                });
            });
        }
        if running.is_empty() {
            break;
        }
        bar.set_message(format!("running {}", running.join(", ")));
        let Ok(finished) = receiver.recv() else { break };
        running.retain(|label| *label != finished.label);
        bar.inc(1);
        if finished.success {
            for line in finished
                .stderr
                .lines()
                .filter(|line| line.starts_with(&summary_prefix) && !line.contains(": done in"))
            {
                // `println` would print nothing where the bar is hidden (a log file, CI).
                bar.suspend(|| eprintln!("{line}"));
            }
        } else {
            bar.suspend(|| {
                eprintln!(
                    "{stage}: {} failed after {:.1} s:\n{}",
                    finished.label,
                    finished.seconds,
                    finished.stderr.trim_end()
                )
            });
            failures.push(finished.label);
        }
    }
    bar.finish_and_clear();
    if !failures.is_empty() {
        bail!(
            "{stage}: {} of {total} runs failed ({})",
            failures.len(),
            failures.join(", ")
        );
    }
    Ok(())
}
