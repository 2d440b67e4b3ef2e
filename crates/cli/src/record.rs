//! `stages/<stage>.json` in a run directory: how long the last run of a stage that did work
//! took, where, and with which command, for the report's wall-time table.
//!
//! A run that finds everything up to date writes nothing, so the record keeps describing the
//! run that made the current artifacts.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use emocycle_pipeline::Pipeline;
use emocycle_torch::ResolveDevice;

/// What a stage command ran with.
pub(crate) struct StageRun<'a> {
    /// `features`, `train`, ...
    pub stage: &'a str,
    /// The pipeline file.
    pub config: &'a Path,
    /// When the command started.
    pub started: Instant,
    /// Parallel processes or workers (1 when the stage has no such option).
    pub jobs: usize,
    /// libtorch threads per process (`--threads`, the pipeline's `threads`, or libtorch's).
    pub threads: usize,
}

/// Writes `stages/<stage>.json` below the pipeline's output directory, for a stage command
/// that made or replaced outputs.
pub(crate) fn finish(run: &StageRun) -> Result<()> {
    let pipeline = Pipeline::load(run.config)?;
    let device = pipeline
        .config
        .device
        .resolve()
        .map(emocycle_torch::device_name)
        .unwrap_or_else(|error| format!("unavailable ({error})"));
    let command: Vec<String> = std::env::args().collect();
    // The evaluation's workers and threads come from its config, not the command line.
    let (jobs, threads) = if run.stage == "evaluate" {
        let eval = pipeline.eval_config();
        let threads = match eval.intra_op_threads {
            0 => run.threads,
            n => n,
        };
        (eval.workers(), threads)
    } else {
        (run.jobs, run.threads)
    };
    let record = serde_json::json!({
        "stage": run.stage,
        "wall_seconds": run.started.elapsed().as_secs_f64(),
        "finished_unix": SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs(),
        "device": device,
        "threads": threads,
        "jobs": jobs,
        "code_version": emocycle_artifact::CODE_VERSION,
        "command": command.join(" "),
    });
    let path = pipeline
        .output_dir()
        .join("stages")
        .join(format!("{}.json", run.stage));
    emocycle_artifact::write_bytes_atomic(&path, serde_json::to_string_pretty(&record)?.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
