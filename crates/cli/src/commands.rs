//! The subcommands: each loads the pipeline, picks what the user selected, has the stage crate
//! plan its units, and hands them to the one driver ([`Drive`]).

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use emocycle_artifact::{keys, read_parquet, read_parquet_metadata};
use emocycle_augment::BaselineConfig;
use emocycle_eval::EvalInputs;
use emocycle_features::NanPolicy;
use emocycle_gan::{Engine, GanRun, Phase, Scope, StageRun, run_label};
use emocycle_pipeline::Pipeline;
use emocycle_report::{ReportInputs, write_report};
use emocycle_synth::{CYCLEGAN_METHOD, FeatureSpace, GenerateRequest, QualitySet};
use emocycle_torch::{DeviceChoice, ResolveDevice};
use indicatif::{ProgressBar, ProgressStyle};

use crate::GanRunArgs;
use crate::drive::{Drive, StageOutcome};
use crate::parallel;

static THREAD_OVERRIDE: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();

/// Records the command line's `--threads`, which wins over the pipeline's `threads`.
pub(crate) fn set_thread_override(threads: Option<usize>) {
    let _ = THREAD_OVERRIDE.set(threads);
}

/// Loads the pipeline and applies its thread setting before any model runs.
fn load_for_models(config: &Path) -> Result<Pipeline> {
    let pipeline = Pipeline::load(config)?;
    if let Some(threads) = THREAD_OVERRIDE
        .get()
        .copied()
        .flatten()
        .or(pipeline.config.threads)
    {
        emocycle_torch::set_libtorch_threads(i32::try_from(threads).unwrap_or(i32::MAX));
        tracing::debug!(threads, "libtorch intra-op threads set");
    }
    Ok(pipeline)
}

/// A driver for a stage whose units all run in this process.
fn in_process<'a>(stage: &'static str, config: &'a Path, force: bool) -> Drive<'a> {
    Drive {
        stage,
        config,
        force,
        workers: 1,
        device: None,
        resume: false,
        child_threads: 1,
    }
}

/// A driver for a stage with long units, run `jobs` at a time in child processes: 0 means one
/// per core on a CPU and one on a GPU (the device serialises the work anyway).
fn with_children<'a>(
    stage: &'static str,
    config: &'a Path,
    force: bool,
    jobs: usize,
    device: (Option<DeviceChoice>, tch::Device),
    resume: bool,
) -> Drive<'a> {
    let workers = match (jobs, device.1) {
        (0, tch::Device::Cuda(_)) => 1,
        (jobs, _) => parallel::worker_count(jobs),
    };
    Drive {
        stage,
        config,
        force,
        workers,
        device: device.0,
        resume,
        // Side by side, one libtorch thread each unless --threads says otherwise.
        child_threads: THREAD_OVERRIDE.get().copied().flatten().unwrap_or(1),
    }
}

pub(crate) fn features(config: &Path, nan: Option<NanPolicy>, force: bool) -> Result<StageOutcome> {
    let pipeline = Pipeline::load(config)?;
    let mut features = pipeline.features();
    if let Some(policy) = nan {
        for corpus in &mut features.corpora {
            corpus.nan_policy = policy;
        }
    }
    let units = emocycle_features::plan(&features, &pipeline.feature_layout())?;
    in_process("features", config, force).run(units)
}

/// The options of `emocycle extract`.
pub(crate) struct ExtractArgs {
    pub(crate) feature_set: emocycle_features::FeatureSet,
    pub(crate) smile_config: Option<std::path::PathBuf>,
    pub(crate) jobs: usize,
    pub(crate) python: Option<std::path::PathBuf>,
    pub(crate) skip_unreadable: bool,
    pub(crate) force: bool,
}

pub(crate) fn extract(input: &Path, output: &Path, args: &ExtractArgs) -> Result<()> {
    let started = Instant::now();
    let files = emocycle_features::audio_files(input)?;
    let python = args
        .python
        .clone()
        .unwrap_or_else(emocycle_features::default_python);
    let bar = progress_bar(files.len() as u64, "extract".to_string());
    let request = emocycle_features::ExtractRequest {
        files: &files,
        feature_set: args.feature_set,
        smile_config: args.smile_config.as_deref(),
        output,
        python: &python,
        jobs: parallel::worker_count(args.jobs),
        skip_unreadable: args.skip_unreadable,
        force: args.force,
    };
    let report = emocycle_features::extract(&request, &|done| bar.set_position(done as u64))
        .with_context(|| format!("extracting {} into {}", input.display(), output.display()))?;
    bar.finish_and_clear();
    for (path, why) in &report.skipped {
        eprintln!("extract: left out {}: {why}", path.display());
    }
    eprintln!(
        "extract: {} rows x {} features in {} ({} extracted now, {} kept from before, {} left \
         out) in {:.1} s",
        report.rows,
        report.features,
        output.display(),
        report.extracted,
        report.kept,
        report.skipped.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn gan_scopes(pipeline: &Pipeline, only: Option<&str>) -> Result<Vec<Scope>> {
    let scopes = pipeline.gan_scopes()?;
    match only {
        None => Ok(scopes),
        Some(text) => {
            let wanted = Scope::parse(text)
                .with_context(|| format!("--scope {text:?}: expected fold<k> or all"))?;
            anyhow::ensure!(
                scopes.contains(&wanted),
                "--scope {text}: this pipeline's scopes are {}",
                scopes
                    .iter()
                    .map(Scope::name)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(vec![wanted])
        }
    }
}

/// The generator seeds to run: `--gan-seed` when given (checked against `gan.seeds`), else all.
fn gan_seeds(pipeline: &Pipeline, only: Option<u32>) -> Result<Vec<u32>> {
    let all = pipeline.gan_seeds();
    match only {
        None => Ok(all.collect()),
        Some(seed) => {
            anyhow::ensure!(
                all.contains(&seed),
                "--gan-seed {seed}: this pipeline trains gan.seeds = {} generator seeds, 0 to {}",
                all.end,
                all.end - 1
            );
            Ok(vec![seed])
        }
    }
}

fn progress_bar(length: u64, prefix: String) -> ProgressBar {
    let bar = ProgressBar::new(length).with_prefix(prefix);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} [{elapsed} < {eta}]")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

/// The lambda_cls values to run: `--lambda-cls` when given, else the pipeline's.
fn lambdas(pipeline: &Pipeline, only: Option<f64>) -> Vec<f64> {
    match only {
        Some(value) => vec![value],
        None => pipeline.config.gan.lambda_cls.clone(),
    }
}

/// One run of the GAN stage as the pipeline lays it out.
fn gan_run(pipeline: &Pipeline, phase: Phase, scope: &Scope, lambda: f64, gan_seed: u32) -> GanRun {
    GanRun {
        phase,
        scope: scope.clone(),
        gan_seed,
        config: pipeline.gan_config(lambda, gan_seed),
        inputs: pipeline.gan_inputs(scope),
        dirs: pipeline.gan_dirs(scope, gan_seed),
        name_seed: pipeline.config.gan.seeds > 1,
    }
}

/// The GAN stage's driver and how each run goes: `--resume`, and whether finished runs keep
/// their checkpoints (the pipeline's `gan.keep_checkpoints`).
fn gan_stage<'a>(
    stage: &'static str,
    config: &'a Path,
    pipeline: &Pipeline,
    run: &GanRunArgs,
) -> Result<(Drive<'a>, tch::Device, StageRun)> {
    let device = run.device.unwrap_or(pipeline.config.device).resolve()?;
    let drive = with_children(
        stage,
        config,
        run.force,
        run.jobs,
        (run.device, device),
        run.resume,
    );
    let stage_run = StageRun {
        resume: run.resume,
        keep_checkpoint: pipeline.config.gan.keep_checkpoints,
    };
    Ok((drive, device, stage_run))
}

pub(crate) fn pretrain(config: &Path, run: &GanRunArgs) -> Result<StageOutcome> {
    let pipeline = load_for_models(config)?;
    // Pretraining is cycle-only: it does not depend on lambda_cls.
    let Some(&first_lambda) = pipeline.config.gan.lambda_cls.first() else {
        eprintln!(
            "pretrain: gan.lambda_cls is empty: the pipeline trains no CycleGAN (nothing to do)"
        );
        return Ok(StageOutcome::default());
    };
    let (drive, device, stage_run) = gan_stage("pretrain", config, &pipeline, run)?;
    let seeds = gan_seeds(&pipeline, run.gan_seed)?;
    let mut runs = Vec::new();
    for scope in gan_scopes(&pipeline, run.scope.as_deref())? {
        for &gan_seed in &seeds {
            runs.push(gan_run(
                &pipeline,
                Phase::Pretrain,
                &scope,
                first_lambda,
                gan_seed,
            ));
        }
    }
    run_gan_stage(&drive, &pipeline, runs, device, stage_run, run)
}

pub(crate) fn train(
    config: &Path,
    lambda_cls: Option<f64>,
    run: &GanRunArgs,
) -> Result<StageOutcome> {
    let pipeline = load_for_models(config)?;
    let (drive, device, stage_run) = gan_stage("train", config, &pipeline, run)?;
    let seeds = gan_seeds(&pipeline, run.gan_seed)?;
    let mut runs = Vec::new();
    for scope in gan_scopes(&pipeline, run.scope.as_deref())? {
        for lambda_cls in lambdas(&pipeline, lambda_cls) {
            for &gan_seed in &seeds {
                let phase = Phase::Train { lambda_cls };
                runs.push(gan_run(&pipeline, phase, &scope, lambda_cls, gan_seed));
            }
        }
    }
    run_gan_stage(&drive, &pipeline, runs, device, stage_run, run)
}

/// Runs the stage's GAN runs with the engine `--engine` or the pipeline's `gan.engine` picks
/// for the device: one process per run, or the grid engine in groups within
/// `gan.grid_memory_gib`.
fn run_gan_stage(
    drive: &Drive,
    pipeline: &Pipeline,
    runs: Vec<GanRun>,
    device: tch::Device,
    stage_run: StageRun,
    args: &GanRunArgs,
) -> Result<StageOutcome> {
    let gan = &pipeline.config.gan;
    let engine = args.engine.map_or(gan.engine, Into::into);
    match engine.resolve(device.is_cuda()) {
        Engine::Grid => {
            let budget = (gan.grid_memory_gib * (1u64 << 30) as f64) as u64;
            drive.run(emocycle_gan::plan_grid(
                runs, device, stage_run, budget, args.force,
            ))
        }
        _ => drive.run(emocycle_gan::plan(runs, device, stage_run)),
    }
}

fn generate_request(
    pipeline: &Pipeline,
    scope: &Scope,
    lambda: f64,
    gan_seed: u32,
) -> GenerateRequest {
    let inputs = pipeline.gan_inputs(scope);
    let gan = pipeline.gan_config(lambda, gan_seed);
    GenerateRequest {
        source: inputs.source.clone(),
        inputs,
        model: pipeline.gan_dirs(scope, gan_seed).model(lambda),
        // The generator seed also draws the source rows, so that its spread covers the whole
        // making of a set; the first seed is the pipeline's, as before there were several.
        seed: gan.seed,
        gan,
        scope: scope.clone(),
        lambda_cls: lambda,
        output: pipeline.synth_layout().synthetic(scope, lambda, gan_seed),
    }
}

/// `emocycle generate`'s selection and options.
pub(crate) struct GenerateArgs<'a> {
    pub(crate) lambda_cls: Option<f64>,
    pub(crate) scope: Option<&'a str>,
    pub(crate) gan_seed: Option<u32>,
    pub(crate) device: Option<DeviceChoice>,
    pub(crate) force: bool,
}

pub(crate) fn generate(config: &Path, args: &GenerateArgs) -> Result<StageOutcome> {
    let pipeline = load_for_models(config)?;
    let device = args.device.unwrap_or(pipeline.config.device).resolve()?;
    let seeds = gan_seeds(&pipeline, args.gan_seed)?;
    let name_seed = pipeline.config.gan.seeds > 1;
    let mut requests = Vec::new();
    for scope in gan_scopes(&pipeline, args.scope)? {
        for lambda in lambdas(&pipeline, args.lambda_cls) {
            for &gan_seed in &seeds {
                requests.push((
                    run_label(&scope, Some(lambda), gan_seed, name_seed),
                    generate_request(&pipeline, &scope, lambda, gan_seed),
                ));
            }
        }
    }
    let units = emocycle_synth::plan_generate(requests, &pipeline.config.synth, device)?;
    in_process("generate", config, args.force).run(units)
}

pub(crate) fn quality(
    config: &Path,
    device: Option<DeviceChoice>,
    force: bool,
) -> Result<StageOutcome> {
    let pipeline = load_for_models(config)?;
    let device = device.unwrap_or(pipeline.config.device).resolve()?;
    let layout = pipeline.synth_layout();
    let mut sets = Vec::new();
    for scope in pipeline.gan_scopes()? {
        for lambda in lambdas(&pipeline, None) {
            for gan_seed in pipeline.gan_seeds() {
                sets.push(QualitySet {
                    inputs: pipeline.gan_inputs(&scope),
                    scope: scope.clone(),
                    method: CYCLEGAN_METHOD.into(),
                    lambda_cls: Some(lambda),
                    gan_seed: Some(gan_seed),
                    synthetic: layout.synthetic(&scope, lambda, gan_seed),
                });
            }
        }
        for baseline in &pipeline.config.baselines {
            sets.push(QualitySet {
                inputs: pipeline.gan_inputs(&scope),
                scope: scope.clone(),
                method: baseline.name().to_string(),
                lambda_cls: None,
                gan_seed: None,
                synthetic: pipeline.baseline_request(&scope, baseline).output,
            });
        }
    }
    let unit = emocycle_synth::plan_quality(sets, layout, &pipeline.config.synth, device)?;
    in_process("quality", config, force).run(vec![unit])
}

pub(crate) fn evaluate(
    config: &Path,
    device: Option<DeviceChoice>,
    force: bool,
) -> Result<StageOutcome> {
    let pipeline = load_for_models(config)?;
    let device = device.unwrap_or(pipeline.config.device).resolve()?;
    let roles = &pipeline.config.roles;
    let mut inputs = EvalInputs::for_run(
        &pipeline.output_dir(),
        &roles.target,
        roles.cross_corpus.as_deref(),
    );
    if pipeline.config.synth.feature_space == FeatureSpace::MinMax {
        // Synthetic vectors live in the scope's target min-max space; eval maps them back when
        // its z-normalisation needs one scale for real and synthetic rows.
        let layout = pipeline.feature_layout();
        let target = roles.target.clone();
        inputs.synthetic_minmax = Some(Box::new(move |scope: &str| {
            // An unknown scope name maps to a file that does not exist, which eval reports.
            let subset = Scope::parse(scope)
                .map_or_else(|| format!("{scope}-train"), |scope| scope.training_subset());
            layout.normalisation(&target, &subset)
        }));
    }
    // --force trains every classifier again, not only rewrites the tables; the old results
    // stay in place until the new ones replace them.
    inputs.reuse = !force;
    let unit = emocycle_eval::plan(inputs, pipeline.eval_config(), device);
    in_process("evaluate", config, force).run(vec![unit])
}

pub(crate) fn inspect(file: &Path, rows: usize) -> Result<()> {
    let metadata = read_parquet_metadata(file)?;
    let (frame, _) = read_parquet(file)?;
    println!(
        "{}: {} rows x {} columns",
        file.display(),
        frame.height(),
        frame.width()
    );
    let mut shown = 0;
    for column in frame.columns() {
        if shown < 12 {
            println!("  {:<40} {}", column.name(), column.dtype());
        }
        shown += 1;
    }
    if shown > 12 {
        println!("  ... and {} more columns", shown - 12);
    }
    println!("footer metadata:");
    for (key, value) in metadata.iter() {
        let mut value = value.to_string();
        if value.len() > 160 {
            value.truncate(157);
            value.push_str("...");
        }
        println!("  {key} = {value}");
    }
    if let Some(stage) = metadata.get(keys::STAGE) {
        tracing::debug!(stage, "artifact inspected");
    }
    if rows > 0 {
        println!("{}", frame.head(Some(rows)));
    }
    Ok(())
}

pub(crate) fn doctor(device: DeviceChoice) -> Result<()> {
    println!("emocycle {}", emocycle_artifact::CODE_VERSION);
    // The code part of each stage's freshness keys: a stage whose fingerprint is unchanged since
    // its outputs were made keeps them.
    println!(
        "code fingerprints: features {}, augment {}, gan {}, synth {}, eval {}",
        emocycle_features::CODE_FINGERPRINT,
        emocycle_augment::CODE_FINGERPRINT,
        emocycle_gan::CODE_FINGERPRINT,
        emocycle_synth::CODE_FINGERPRINT,
        emocycle_eval::CODE_FINGERPRINT
    );
    println!("libtorch threads: {}", tch::get_num_threads());
    let cuda = tch::Cuda::is_available();
    println!("CUDA available: {cuda}");
    if cuda {
        println!("CUDA devices: {}", tch::Cuda::device_count());
        println!("cuDNN available: {}", tch::Cuda::cudnn_is_available());
    }
    let resolved = device.resolve()?;
    println!(
        "--device {device} -> {}",
        emocycle_torch::device_name(resolved)
    );
    let probe = tch::Tensor::ones([2, 2], (tch::Kind::Float, resolved))
        .matmul(&tch::Tensor::ones([2, 2], (tch::Kind::Float, resolved)));
    let sum = probe.sum(tch::Kind::Float).double_value(&[]);
    anyhow::ensure!(
        sum == 8.0,
        "a 2x2 matmul on {device} gave {sum}, expected 8"
    );
    println!(
        "matmul check on {}: ok",
        emocycle_torch::device_name(resolved)
    );
    Ok(())
}

/// Options of `emocycle augment`.
pub(crate) struct AugmentArgs<'a> {
    pub name: Option<&'a str>,
    pub scope: Option<&'a str>,
    pub device: Option<DeviceChoice>,
    pub force: bool,
    pub jobs: usize,
}

pub(crate) fn augment(config: &Path, args: &AugmentArgs) -> Result<StageOutcome> {
    let pipeline = load_for_models(config)?;
    let device = args.device.unwrap_or(pipeline.config.device).resolve()?;
    let baselines: Vec<&BaselineConfig> = match args.name {
        Some(name) => vec![pipeline.baseline(name).with_context(|| {
            format!(
                "--name {name}: the pipeline's baselines are {}",
                pipeline
                    .config
                    .baselines
                    .iter()
                    .map(|b| b.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?],
        None => pipeline.config.baselines.iter().collect(),
    };
    if baselines.is_empty() {
        eprintln!("augment: the pipeline has no baselines (nothing to do)");
        return Ok(StageOutcome::default());
    }
    let mut requests = Vec::new();
    for scope in gan_scopes(&pipeline, args.scope)? {
        for &baseline in &baselines {
            requests.push(pipeline.baseline_request(&scope, baseline));
        }
    }
    let drive = with_children(
        "augment",
        config,
        args.force,
        args.jobs,
        (args.device, device),
        false,
    );
    drive.run(emocycle_augment::plan(requests, device))
}

pub(crate) fn report(config: &Path) -> Result<()> {
    let pipeline = Pipeline::load(config)?;
    let started = Instant::now();
    let outcome = write_report(&ReportInputs::for_pipeline(pipeline)).context("report")?;
    for note in &outcome.notes {
        eprintln!("report: {note}");
    }
    for finding in &outcome.findings {
        eprintln!("report: {finding}");
    }
    eprintln!(
        "report: {} ({} figures) in {:.1} s",
        outcome.report.display(),
        outcome.figures.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

pub(crate) fn submit(config: &Path, dry_run: bool, from: &str) -> Result<()> {
    let pipeline = Pipeline::load(config)?;
    let launch = emocycle_cluster::Launch::current(&pipeline)?;
    let outcome = emocycle_cluster::submit(&pipeline, &launch, from, dry_run)
        .context("submitting the pipeline to Slurm")?;
    for (job, script) in outcome.submission.jobs.iter().zip(&outcome.scripts) {
        let after = if job.after.is_empty() {
            String::new()
        } else {
            format!(", after {}", job.after.join(" and "))
        };
        match &job.job_id {
            Some(id) => eprintln!(
                "submit: {} as job {id}: {} task(s){after} ({})",
                job.stage,
                job.tasks.len(),
                job.script.display()
            ),
            None => {
                eprintln!(
                    "submit: {} would be {} task(s){after}: {}",
                    job.stage,
                    job.tasks.len(),
                    job.script.display()
                );
                println!("{script}");
            }
        }
    }
    if dry_run {
        eprintln!("submit: dry run, nothing submitted");
    } else {
        eprintln!(
            "submit: follow it with `emocycle status --config {}`",
            config.display()
        );
    }
    Ok(())
}

pub(crate) fn status(config: &Path) -> Result<()> {
    let pipeline = Pipeline::load(config)?;
    let launch = emocycle_cluster::Launch::current(&pipeline)?;
    let stages = emocycle_cluster::status(&pipeline, &launch)?;
    if stages.is_empty() {
        println!(
            "Nothing submitted for pipeline {} (no {}): run `emocycle submit --config {}`.",
            pipeline.config.name,
            emocycle_cluster::SlurmDir::new(&launch.run_dir(&pipeline))
                .jobs()
                .display(),
            config.display()
        );
        return Ok(());
    }
    println!(
        "{:<10} {:>8} {:>6} {:>6} {:>8} {:>7} {:>7} {:>8}",
        "stage", "job", "tasks", "done", "running", "queued", "failed", "unknown"
    );
    for stage in &stages {
        let [done, running, queued, failed, unknown] = stage.counts();
        println!(
            "{:<10} {:>8} {:>6} {done:>6} {running:>8} {queued:>7} {failed:>7} {unknown:>8}",
            stage.stage,
            stage.job_id,
            stage.tasks.len()
        );
    }
    for stage in &stages {
        for task in &stage.tasks {
            match &task.state {
                emocycle_cluster::TaskState::Failed(why) => println!(
                    "failed: {} task {} ({}): {why}; log {}",
                    stage.stage,
                    task.index,
                    task.label,
                    task.log.display()
                ),
                emocycle_cluster::TaskState::Unknown => println!(
                    "unknown: {} task {} ({}): not queued and no exit recorded (cancelled, or \
                     killed before it could record one); log {}",
                    stage.stage,
                    task.index,
                    task.label,
                    task.log.display()
                ),
                _ => {}
            }
        }
    }
    Ok(())
}
