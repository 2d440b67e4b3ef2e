//! The subcommands: each validates its inputs, runs one stage library, and reports.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use emocycle_artifact::{keys, read_parquet, read_parquet_metadata};
use emocycle_augment::{BaselineConfig, BaselineProgress, BaselineRequest, Method, run_baseline};
use emocycle_eval::{EvalInputs, run_evaluation};
use emocycle_features::{DEFAULT_CHUNK_ROWS, FoldScheme, NanPolicy, ingest_corpus};
use emocycle_gan::{EpochReport, GanConfig, Scope, StageRun, run_pretrain, run_train};
use emocycle_pipeline::Pipeline;
use emocycle_report::{ReportInputs, write_report};
use emocycle_synth::{
    CYCLEGAN_METHOD, FeatureSpace, GenerateRequest, QualitySet, generate_set, quality_report,
};
use emocycle_torch::{DeviceChoice, ResolveDevice};
use indicatif::{ProgressBar, ProgressStyle};

use crate::GanRunArgs;
use crate::freshness::{Expected, is_fresh, is_fresh_by_record, whole};
use crate::parallel::{self, ChildJob};
use crate::record;

/// What a stage command did: made or replaced some of its outputs, or found them all up to
/// date. Only a stage that worked writes its record (`stages/<stage>.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StageOutcome {
    /// Some output was made or replaced.
    Worked,
    /// Every output was up to date.
    UpToDate,
}

impl StageOutcome {
    fn from_worked(worked: bool) -> Self {
        if worked { Self::Worked } else { Self::UpToDate }
    }

    /// Whether it made or replaced an output.
    pub(crate) fn worked(self) -> bool {
        self == Self::Worked
    }
}

/// Compares recorded and expected GAN settings through `key` (one of [`GanConfig`]'s freshness
/// keys). A record whose settings no longer parse maps to `null`, which no expected key equals.
fn gan_key(
    key: fn(&GanConfig) -> serde_json::Value,
) -> impl Fn(serde_json::Value) -> serde_json::Value {
    move |recorded| {
        serde_json::from_value::<GanConfig>(recorded).map_or(serde_json::Value::Null, |c| key(&c))
    }
}

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

fn scope_input_files(pipeline: &Pipeline, scope: &Scope) -> Vec<std::path::PathBuf> {
    let inputs = pipeline.gan_inputs(scope);
    let mut files = vec![
        inputs.source,
        inputs.source_normalisation,
        inputs.target,
        inputs.target_normalisation,
    ];
    if matches!(scope, Scope::Fold(_)) {
        files.push(inputs.target_folds);
    }
    files
}

fn spinner(message: String) -> ProgressBar {
    let bar = ProgressBar::new_spinner().with_message(message);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("valid template"),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

pub(crate) fn features(config: &Path, nan: Option<NanPolicy>, force: bool) -> Result<StageOutcome> {
    let pipeline = Pipeline::load(config)?;
    let layout = pipeline.feature_layout();
    let started = Instant::now();
    let mut features = pipeline.features();
    if let Some(policy) = nan {
        for corpus in &mut features.corpora {
            corpus.nan_policy = policy;
        }
    }
    // Feature lists are compared before anything is written.
    emocycle_features::check_corpora(&features)?;
    let mut worked = false;
    for corpus in &features.corpora {
        let mut also = vec![layout.normalisation(&corpus.name, "all")];
        if corpus.folds != FoldScheme::None {
            also.push(layout.folds(&corpus.name));
        }
        if corpus.split.is_some() {
            also.push(layout.split(&corpus.name));
        }
        let expected = Expected {
            code: emocycle_features::CODE_FINGERPRINT,
            config: serde_json::to_value(corpus)?,
            inputs: std::iter::once(corpus.features.clone())
                .chain(match &corpus.labels {
                    Some(labels) => emocycle_features::label_files(labels)?,
                    None => Vec::new(),
                })
                .chain(corpus.feature_names.clone())
                .collect(),
        };
        if !force && is_fresh(&layout.corpus(&corpus.name), &expected, &also, whole)? {
            eprintln!(
                "features: {} is up to date (skipped; --force reruns it)",
                corpus.name
            );
            continue;
        }
        let bar = spinner(format!("features: {}", corpus.name));
        let corpus_started = Instant::now();
        worked = true;
        let report = ingest_corpus(corpus, &layout, DEFAULT_CHUNK_ROWS)
            .with_context(|| format!("feature stage, corpus {:?}", corpus.name))?;
        bar.finish_and_clear();
        eprintln!(
            "features: {} -> {} utterances x {} features in {:.1} s",
            corpus.name,
            report.rows,
            report.width,
            corpus_started.elapsed().as_secs_f64()
        );
    }
    record::closing_line("features", started, worked);
    Ok(StageOutcome::from_worked(worked))
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

/// `fold2`, `fold2 lambda_cls=2` or `fold2 lambda_cls=2 gan_seed=1`: how progress lines name a
/// run (the seed only where the pipeline has several).
fn run_label(pipeline: &Pipeline, scope: &Scope, lambda: Option<f64>, gan_seed: u32) -> String {
    let mut label = scope.name();
    if let Some(lambda) = lambda {
        label.push_str(&format!(" lambda_cls={lambda}"));
    }
    if pipeline.config.gan.seeds > 1 {
        label.push_str(&format!(" gan_seed={gan_seed}"));
    }
    label
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

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

fn on_epoch(bar: &ProgressBar) -> impl FnMut(&EpochReport) + '_ {
    move |report| match report {
        EpochReport::Pretrain {
            record,
            epochs,
            pairs,
        } => {
            bar.set_length((epochs * pairs) as u64);
            bar.inc(1);
            bar.set_message(format!("pair {} cycle {:.4}", record.pair, record.cycle));
        }
        EpochReport::Train { record, epochs } => {
            bar.set_length(*epochs as u64);
            bar.inc(1);
            bar.set_message(format!(
                "d {:.3} g {:.3} cycle {:.4} cls {:.3}",
                mean(&record.d),
                mean(&record.g),
                mean(&record.cycle),
                record.cls
            ));
            tracing::debug!(epoch = record.epoch, d = ?record.d, g = ?record.g, cycle = ?record.cycle, cls = record.cls, "epoch");
        }
    }
}

/// Processes to run at once: `--jobs`, where 0 means one per core on a CPU and one on a GPU
/// (the device serialises the work anyway); never more than there are runs.
fn child_workers(jobs: usize, device: tch::Device, runs: usize) -> usize {
    let requested = match (jobs, device) {
        (0, tch::Device::Cuda(_)) => 1,
        (jobs, _) => parallel::worker_count(jobs),
    };
    requested.min(runs).max(1)
}

/// The user's options every child run inherits.
struct ChildOptions {
    device: Option<DeviceChoice>,
    force: bool,
    resume: bool,
}

impl From<&GanRunArgs> for ChildOptions {
    fn from(run: &GanRunArgs) -> Self {
        Self {
            device: run.device,
            force: run.force,
            resume: run.resume,
        }
    }
}

/// A child's arguments for one scope of `stage` (plus `extra` flags naming the run within the
/// scope), passing the user's options on.
fn child_args(
    stage: &str,
    config: &Path,
    scope: &Scope,
    extra: &[(&str, String)],
    options: &ChildOptions,
) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec![
        stage.into(),
        "--config".into(),
        config.into(),
        "--scope".into(),
        scope.name().into(),
        "--jobs".into(),
        "1".into(),
    ];
    for (flag, value) in extra {
        args.extend([(*flag).into(), value.into()]);
    }
    if let Some(device) = options.device {
        args.extend(["--device".into(), device.to_string().into()]);
    }
    if options.force {
        args.push("--force".into());
    }
    if options.resume {
        args.push("--resume".into());
    }
    args
}

/// Runs `jobs` as child processes, `workers` at a time, and says how long they took.
fn run_in_children(stage: &str, jobs: Vec<ChildJob>, workers: usize) -> Result<StageOutcome> {
    let started = Instant::now();
    let runs = jobs.len();
    parallel::run_children(stage, jobs, workers, child_threads())?;
    eprintln!(
        "{stage}: {runs} runs done in {:.1} s, {workers} at a time",
        started.elapsed().as_secs_f64()
    );
    Ok(StageOutcome::Worked)
}

/// libtorch threads of each child: `--threads` when given, else one.
fn child_threads() -> usize {
    THREAD_OVERRIDE.get().copied().flatten().unwrap_or(1)
}

/// How the GAN stage runs each scope: `--resume` from the command line, whether finished runs
/// keep their checkpoints from the pipeline.
fn stage_run(pipeline: &Pipeline, run: &GanRunArgs) -> StageRun {
    StageRun {
        resume: run.resume,
        keep_checkpoint: pipeline.config.gan.keep_checkpoints,
    }
}

/// One run of the GAN stage: the pretraining of a scope (no lambda_cls) or a joint training of
/// a scope and lambda_cls, for one generator seed.
struct GanRun {
    scope: Scope,
    lambda_cls: Option<f64>,
    gan_seed: u32,
}

impl GanRun {
    fn label(&self, pipeline: &Pipeline) -> String {
        run_label(pipeline, &self.scope, self.lambda_cls, self.gan_seed)
    }

    /// The flags that name this run within its scope, for a child process.
    fn flags(&self) -> Vec<(&'static str, String)> {
        let mut flags = Vec::new();
        if let Some(lambda) = self.lambda_cls {
            flags.push(("--lambda-cls", lambda.to_string()));
        }
        flags.push(("--gan-seed", self.gan_seed.to_string()));
        flags
    }
}

/// What the GAN stage's driver needs of pretraining or joint training.
struct GanStep<'a> {
    /// `pretrain` or `train`.
    stage: &'static str,
    /// Whether a run's outputs are up to date.
    fresh: &'a dyn Fn(&GanRun) -> Result<bool>,
    /// Epochs of a run, for its progress bar.
    epochs: &'a dyn Fn(&GanRun) -> usize,
    /// Trains a run here; returns the end of its summary line.
    execute: &'a dyn Fn(&GanRun, &ProgressBar) -> Result<String>,
}

/// The GAN stage's one driver: says which runs are up to date, trains the others in child
/// processes when more than one can run at once (each child is this driver with one run), else
/// here with a progress bar, and prints each run's summary.
fn drive_gan_runs(
    config: &Path,
    pipeline: &Pipeline,
    run: &GanRunArgs,
    device: tch::Device,
    runs: Vec<GanRun>,
    step: &GanStep,
) -> Result<StageOutcome> {
    let started = Instant::now();
    let mut todo = Vec::new();
    for gan_run in runs {
        if !run.force && (step.fresh)(&gan_run)? {
            eprintln!(
                "{}: {} is up to date (skipped; --force reruns it)",
                step.stage,
                gan_run.label(pipeline)
            );
            continue;
        }
        todo.push(gan_run);
    }
    let workers = child_workers(run.jobs, device, todo.len());
    if workers > 1 {
        let jobs = todo
            .iter()
            .map(|gan_run| ChildJob {
                label: gan_run.label(pipeline),
                args: child_args(
                    step.stage,
                    config,
                    &gan_run.scope,
                    &gan_run.flags(),
                    &run.into(),
                ),
            })
            .collect();
        return run_in_children(step.stage, jobs, workers);
    }
    let worked = !todo.is_empty();
    for gan_run in todo {
        let label = gan_run.label(pipeline);
        let run_started = Instant::now();
        let bar = progress_bar(
            (step.epochs)(&gan_run) as u64,
            format!("{} {label}", step.stage),
        );
        let summary =
            (step.execute)(&gan_run, &bar).with_context(|| format!("{} {label}", step.stage))?;
        bar.finish_and_clear();
        eprintln!(
            "{}: {label} on {} in {:.1} s; {summary}",
            step.stage,
            emocycle_torch::device_name(device),
            run_started.elapsed().as_secs_f64(),
        );
    }
    record::closing_line(step.stage, started, worked);
    Ok(StageOutcome::from_worked(worked))
}

pub(crate) fn pretrain(config: &Path, run: &GanRunArgs) -> Result<StageOutcome> {
    let pipeline = load_for_models(config)?;
    let device = run.device.unwrap_or(pipeline.config.device).resolve()?;
    // Pretraining is cycle-only: it does not depend on lambda_cls.
    let Some(&first_lambda) = pipeline.config.gan.lambda_cls.first() else {
        eprintln!(
            "pretrain: gan.lambda_cls is empty: the pipeline trains no CycleGAN (nothing to do)"
        );
        return Ok(StageOutcome::UpToDate);
    };
    let seeds = gan_seeds(&pipeline, run.gan_seed)?;
    let mut runs = Vec::new();
    for scope in gan_scopes(&pipeline, run.scope.as_deref())? {
        for &gan_seed in &seeds {
            runs.push(GanRun {
                scope: scope.clone(),
                lambda_cls: None,
                gan_seed,
            });
        }
    }
    let gan_config = |gan_run: &GanRun| pipeline.gan_config(first_lambda, gan_run.gan_seed);
    let dirs = |gan_run: &GanRun| pipeline.gan_dirs(&gan_run.scope, gan_run.gan_seed);
    let fresh = |gan_run: &GanRun| -> Result<bool> {
        let dirs = dirs(gan_run);
        let expected = Expected {
            code: emocycle_gan::CODE_FINGERPRINT,
            config: serde_json::to_value(gan_config(gan_run))?,
            inputs: scope_input_files(&pipeline, &gan_run.scope),
        };
        is_fresh(
            &dirs.pretrain().join("loss_log.parquet"),
            &expected,
            &[dirs.generators()],
            gan_key(GanConfig::pretraining_key),
        )
    };
    let execute = |gan_run: &GanRun, bar: &ProgressBar| -> Result<String> {
        let outcome = run_pretrain(
            &gan_config(gan_run),
            &pipeline.gan_inputs(&gan_run.scope),
            &gan_run.scope,
            &dirs(gan_run),
            device,
            stage_run(&pipeline, run),
            &mut on_epoch(bar),
        )?;
        let last: Vec<String> = (0..4)
            .filter_map(|pair| outcome.log.iter().rev().find(|record| record.pair == pair))
            .map(|record| format!("{:.4}", record.cycle))
            .collect();
        Ok(format!("final cycle loss per pair {}", last.join(" ")))
    };
    drive_gan_runs(
        config,
        &pipeline,
        run,
        device,
        runs,
        &GanStep {
            stage: "pretrain",
            fresh: &fresh,
            epochs: &|gan_run| gan_config(gan_run).pretrain_epochs,
            execute: &execute,
        },
    )
}

pub(crate) fn train(
    config: &Path,
    lambda_cls: Option<f64>,
    run: &GanRunArgs,
) -> Result<StageOutcome> {
    let pipeline = load_for_models(config)?;
    let device = run.device.unwrap_or(pipeline.config.device).resolve()?;
    let seeds = gan_seeds(&pipeline, run.gan_seed)?;
    let mut runs = Vec::new();
    for scope in gan_scopes(&pipeline, run.scope.as_deref())? {
        for lambda in lambdas(&pipeline, lambda_cls) {
            for &gan_seed in &seeds {
                runs.push(GanRun {
                    scope: scope.clone(),
                    lambda_cls: Some(lambda),
                    gan_seed,
                });
            }
        }
    }
    let lambda = |gan_run: &GanRun| gan_run.lambda_cls.expect("joint trainings have one");
    let gan_config = |gan_run: &GanRun| pipeline.gan_config(lambda(gan_run), gan_run.gan_seed);
    let dirs = |gan_run: &GanRun| pipeline.gan_dirs(&gan_run.scope, gan_run.gan_seed);
    let fresh = |gan_run: &GanRun| -> Result<bool> {
        let dirs = dirs(gan_run);
        let mut inputs = scope_input_files(&pipeline, &gan_run.scope);
        inputs.push(dirs.generators());
        let expected = Expected {
            code: emocycle_gan::CODE_FINGERPRINT,
            config: serde_json::to_value(gan_config(gan_run))?,
            inputs,
        };
        Ok(dirs.generators().is_file()
            && is_fresh(
                &dirs.train(lambda(gan_run)).join("loss_log.parquet"),
                &expected,
                &[dirs.model(lambda(gan_run))],
                gan_key(GanConfig::training_key),
            )?)
    };
    let execute = |gan_run: &GanRun, bar: &ProgressBar| -> Result<String> {
        let outcome = run_train(
            &gan_config(gan_run),
            &pipeline.gan_inputs(&gan_run.scope),
            &gan_run.scope,
            &dirs(gan_run),
            device,
            stage_run(&pipeline, run),
            &mut on_epoch(bar),
        )?;
        let last = outcome.log.last();
        Ok(format!(
            "final d {:.3} g {:.3} cycle {:.4} cls {:.3}",
            last.map_or(f64::NAN, |r| mean(&r.d)),
            last.map_or(f64::NAN, |r| mean(&r.g)),
            last.map_or(f64::NAN, |r| mean(&r.cycle)),
            last.map_or(f64::NAN, |r| r.cls)
        ))
    };
    drive_gan_runs(
        config,
        &pipeline,
        run,
        device,
        runs,
        &GanStep {
            stage: "train",
            fresh: &fresh,
            epochs: &|gan_run| gan_config(gan_run).train_epochs,
            execute: &execute,
        },
    )
}

fn lambdas(pipeline: &Pipeline, only: Option<f64>) -> Vec<f64> {
    match only {
        Some(value) => vec![value],
        None => pipeline.config.gan.lambda_cls.clone(),
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
    let synth = &pipeline.config.synth;
    let seeds = gan_seeds(&pipeline, args.gan_seed)?;
    let started = Instant::now();
    let mut worked = false;
    for scope in gan_scopes(&pipeline, args.scope)? {
        for lambda in lambdas(&pipeline, args.lambda_cls) {
            for &gan_seed in &seeds {
                let label = run_label(&pipeline, &scope, Some(lambda), gan_seed);
                let request = generate_request(&pipeline, &scope, lambda, gan_seed);
                anyhow::ensure!(
                    request.model.is_file(),
                    "{} does not exist: train {label} first",
                    request.model.display(),
                );
                let expected = Expected {
                    code: emocycle_synth::CODE_FINGERPRINT,
                    config: request.recorded_config(synth),
                    inputs: request.input_files(synth),
                };
                if !args.force && is_fresh(&request.output, &expected, &[], whole)? {
                    eprintln!("generate: {label} is up to date (skipped; --force reruns it)");
                    continue;
                }
                let run_started = Instant::now();
                let bar = progress_bar(0, format!("generate {label}"));
                worked = true;
                let report = generate_set(&request, synth, device, &mut |progress| {
                    bar.set_length(progress.rows_total as u64);
                    bar.set_position(progress.rows_done as u64);
                })
                .with_context(|| format!("generating {label}"))?;
                bar.finish_and_clear();
                eprintln!(
                    "generate: {label} -> {} synthetic vectors in {:.1} s ({})",
                    report.rows,
                    run_started.elapsed().as_secs_f64(),
                    report.output.display()
                );
            }
        }
    }
    record::closing_line("generate", started, worked);
    Ok(StageOutcome::from_worked(worked))
}

pub(crate) fn quality(
    config: &Path,
    device: Option<DeviceChoice>,
    force: bool,
) -> Result<StageOutcome> {
    let pipeline = load_for_models(config)?;
    let device = device.unwrap_or(pipeline.config.device).resolve()?;
    let started = Instant::now();
    let layout = pipeline.synth_layout();
    let mut sets = Vec::new();
    for scope in pipeline.gan_scopes()? {
        for lambda in lambdas(&pipeline, None) {
            for gan_seed in pipeline.gan_seeds() {
                let synthetic = layout.synthetic(&scope, lambda, gan_seed);
                anyhow::ensure!(
                    synthetic.is_file(),
                    "{} does not exist: run `emocycle generate` first",
                    synthetic.display()
                );
                sets.push(QualitySet {
                    inputs: pipeline.gan_inputs(&scope),
                    scope: scope.clone(),
                    method: CYCLEGAN_METHOD.into(),
                    lambda_cls: Some(lambda),
                    gan_seed: Some(gan_seed),
                    synthetic,
                });
            }
        }
        for baseline in &pipeline.config.baselines {
            let synthetic = pipeline.baseline_request(&scope, baseline).output;
            anyhow::ensure!(
                synthetic.is_file(),
                "{} does not exist: run `emocycle augment` first",
                synthetic.display()
            );
            sets.push(QualitySet {
                inputs: pipeline.gan_inputs(&scope),
                scope: scope.clone(),
                method: baseline.name().to_string(),
                lambda_cls: None,
                gan_seed: None,
                synthetic,
            });
        }
    }
    let recorded = emocycle_synth::quality_config(&sets, &pipeline.config.synth);
    if !force
        && layout.quality_markdown().is_file()
        && is_fresh_by_record(
            &layout.quality(),
            &recorded,
            emocycle_synth::CODE_FINGERPRINT,
        )?
    {
        eprintln!("quality: up to date (skipped; --force reruns it)");
        return Ok(StageOutcome::UpToDate);
    }
    let bar = spinner("quality".to_string());
    let report = quality_report(
        &sets,
        &layout,
        &pipeline.config.synth,
        device,
        &mut |step| bar.set_message(format!("quality: {step}")),
    )
    .context("quality report")?;
    bar.finish_and_clear();
    eprintln!(
        "quality: {} rows over {} synthetic sets in {:.1} s; {}",
        report.rows.len(),
        sets.len(),
        started.elapsed().as_secs_f64(),
        layout.quality_markdown().display()
    );
    Ok(StageOutcome::Worked)
}

pub(crate) fn evaluate(
    config: &Path,
    device: Option<DeviceChoice>,
    force: bool,
) -> Result<StageOutcome> {
    let pipeline = load_for_models(config)?;
    let device = device.unwrap_or(pipeline.config.device).resolve()?;
    let eval_config = pipeline.eval_config();
    let roles = &pipeline.config.roles;
    let run_dir = pipeline.output_dir();
    let mut inputs = EvalInputs::for_run(&run_dir, &roles.target, roles.cross_corpus.as_deref());
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
    let record = inputs.output_dir.join("results.parquet");
    // --force trains every classifier again, not only rewrites the tables; the old results
    // stay in place until the new ones replace them.
    inputs.reuse = !force;
    if !force
        && is_fresh_by_record(
            &record,
            &serde_json::to_value(&eval_config)?,
            emocycle_eval::CODE_FINGERPRINT,
        )?
    {
        eprintln!("evaluate: up to date (skipped; --force reruns it)");
        return Ok(StageOutcome::UpToDate);
    }
    let started = Instant::now();
    let bar = progress_bar(0, "evaluate".to_string());
    let report = run_evaluation(&inputs, &eval_config, device, &mut |progress| {
        bar.set_length(progress.total as u64);
        bar.set_position(progress.done as u64);
        let source = progress
            .source
            .as_ref()
            .map_or(String::new(), |source| format!(" {source}"));
        bar.set_message(format!(
            "{} {}{source} UAR {:.3}{}",
            progress.scope,
            progress.setup,
            progress.uar,
            if progress.reused { " (reused)" } else { "" }
        ));
    })
    .context("evaluation")?;
    bar.finish_and_clear();
    for line in &report.skipped {
        eprintln!("evaluate: left out {line}");
    }
    eprintln!(
        "evaluate: {} classifiers trained, {} reused from the previous results, on {} worker(s) in {:.1} s; {}",
        report.trained,
        report.reused,
        report.workers,
        started.elapsed().as_secs_f64(),
        inputs.output_dir.join("tables.md").display()
    );
    Ok(StageOutcome::Worked)
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
    let started = Instant::now();
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
        return Ok(StageOutcome::UpToDate);
    }
    let mut worked = false;
    let mut todo = Vec::new();
    for scope in gan_scopes(&pipeline, args.scope)? {
        for &baseline in &baselines {
            let request = pipeline.baseline_request(&scope, baseline);
            let expected = Expected {
                code: emocycle_augment::CODE_FINGERPRINT,
                config: request.recorded_config(),
                inputs: request.input_files(),
            };
            if !args.force && is_fresh(&request.output, &expected, &[], whole)? {
                eprintln!(
                    "augment: {} {} is up to date (skipped; --force reruns it)",
                    scope.name(),
                    baseline.name()
                );
                continue;
            }
            todo.push(request);
        }
    }
    // The cGAN trains for a while: those runs go to child processes when there are several;
    // the other methods take milliseconds and run here.
    let is_cgan = |request: &BaselineRequest| matches!(request.config.method, Method::Cgan(_));
    let (trained, quick): (Vec<_>, Vec<_>) = todo.into_iter().partition(|r| is_cgan(r));
    let workers = child_workers(args.jobs, device, trained.len());
    let mut in_process = quick;
    if workers > 1 {
        let options = ChildOptions {
            device: args.device,
            force: args.force,
            resume: false,
        };
        let jobs = trained
            .iter()
            .map(|request| ChildJob {
                label: format!("{} {}", request.scope.name(), request.config.name()),
                args: child_args(
                    "augment",
                    config,
                    &request.scope,
                    &[("--name", request.config.name().to_string())],
                    &options,
                ),
            })
            .collect();
        worked = run_in_children("augment", jobs, workers)?.worked();
    } else {
        in_process.extend(trained);
    }
    for request in in_process {
        let label = format!("{} {}", request.scope.name(), request.config.name());
        let bar = progress_bar(0, format!("augment {label}"));
        worked = true;
        let report = run_baseline(&request, device, &mut |progress| match progress {
            BaselineProgress::Epoch { record, epochs } => {
                bar.set_length(epochs as u64);
                bar.set_position(record.epoch as u64 + 1);
                bar.set_message(format!("d {:.3} g {:.3}", record.d_loss, record.g_loss));
            }
            BaselineProgress::Loaded { .. } | BaselineProgress::Written { .. } => {}
        })
        .with_context(|| format!("baseline {label}"))?;
        bar.finish_and_clear();
        eprintln!(
            "augment: {label} -> {} synthetic vectors (angry {}, happy {}, neutral {}, sad {}) on {} in {:.1} s",
            report.rows_per_emotion.iter().sum::<usize>(),
            report.rows_per_emotion[0],
            report.rows_per_emotion[1],
            report.rows_per_emotion[2],
            report.rows_per_emotion[3],
            report.device,
            report.seconds
        );
    }
    record::closing_line("augment", started, worked);
    Ok(StageOutcome::from_worked(worked))
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
