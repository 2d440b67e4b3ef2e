//! The run report of emocycle: one Markdown page that puts a run's numbers beside the paper's
//! (Bao, Neumann and Vu, Interspeech 2019), with the figures that explain them.
//!
//! # What it reads
//!
//! Everything below a run directory (`runs/<pipeline>/`), plus the pipeline file itself:
//! - `eval/results.parquet` (required: [`emocycle_eval::read_results`]; its footer gives the
//!   code version and the evaluated configuration) and the confusion PNGs beside it;
//! - `synth/quality.parquet` (Table 1 analogue and the quality columns of the lambda_cls
//!   sweep), `synth/figure2*.png`;
//! - `synth/<scope>/<lambda_cls-<v> or baseline>/synthetic.parquet`, footers only (the number
//!   of synthetic vectors per class, the seeds);
//! - `gan/<scope>/pretrain/loss_log.parquet` and `gan/<scope>/lambda_cls-<v>/loss_log.parquet`
//!   (the first generator seed's);
//! - `stages/<stage>.json` ([`StageRecord`]), written by the command line after each stage.
//!
//! Only `results.parquet` is required. A missing or unreadable optional input leaves its
//! section saying what is missing and which command makes it, and is listed in
//! [`ReportOutcome::notes`].
//!
//! # What it writes
//!
//! Atomically (temporary file, then rename), below the run directory:
//! - `report.md`: run facts, the paper's findings checked on this run's numbers, what the run
//!   changes from the paper's hyper-parameters, Table 1,
//!   2 and 3 analogues beside the paper's values, all augmentation methods in one table, the
//!   lambda_cls sweep, Figures 2 and 3, loss curves, the pipeline file and seeds, wall time per
//!   stage;
//! - `report/lambda_sweep.png`: UAR over lambda_cls for each setup and corpus;
//! - `report/loss_<scope>.png`: pretraining and joint-training losses of each GAN scope.
//!
//! Image links in `report.md` are relative to the run directory, so the directory can be
//! moved or published as it is.

mod diff;
mod error;
mod plot;
mod read;
mod sections;
mod stats;

use std::path::{Path, PathBuf};

use emocycle_artifact::{Metadata, read_parquet_metadata, write_bytes_atomic};
use emocycle_eval::{
    EvalConfig, Experiment, RunResult, Setup, Summary, SyntheticSource, read_results, summarise,
};
use emocycle_pipeline::Pipeline;

pub use diff::{ConfigChange, config_diff};
pub use error::ReportError;
pub use read::{STAGES, StageRecord};

/// What [`write_report`] summarises.
#[derive(Debug, Clone)]
pub struct ReportInputs {
    /// The run directory (`runs/<pipeline>`): where the stages wrote, and where `report.md`
    /// and `report/` go.
    pub run_dir: PathBuf,
    /// The pipeline, as loaded; its file (`pipeline.path`) is quoted verbatim in the report
    /// and named in the commands the report suggests.
    pub pipeline: Pipeline,
}

impl ReportInputs {
    /// The report of a pipeline's own run directory ([`Pipeline::output_dir`]).
    pub fn for_pipeline(pipeline: Pipeline) -> Self {
        Self {
            run_dir: pipeline.output_dir(),
            pipeline,
        }
    }
}

/// What [`write_report`] wrote.
#[derive(Debug, Clone)]
pub struct ReportOutcome {
    /// `report.md`.
    pub report: PathBuf,
    /// The PNGs drawn into `report/`.
    pub figures: Vec<PathBuf>,
    /// Optional inputs that were missing or unreadable, one line each (the report says so too).
    pub notes: Vec<String>,
    /// The paper's findings checked on this run, one line each: the claim and its verdict with
    /// this run's numbers (the report's "findings" section).
    pub findings: Vec<String>,
}

/// Everything the sections are written from.
pub(crate) struct Context<'a> {
    pub pipeline: &'a Pipeline,
    pub run_dir: &'a Path,
    pub pipeline_text: String,
    pub eval_config: EvalConfig,
    pub results: Vec<RunResult>,
    pub results_metadata: Metadata,
    pub summaries: Vec<Summary>,
    /// `synth/quality.parquet`'s rows, or why there are none.
    pub quality: Result<Vec<read::QualityRecord>, String>,
    pub stages: Vec<(&'static str, Option<StageRecord>)>,
    pub gan: Vec<read::ScopeLogs>,
}

impl Context<'_> {
    /// `` `emocycle <stage> --config <file>` ``, for "run this" hints.
    pub(crate) fn command(&self, stage: &str) -> String {
        format!(
            "`emocycle {stage} --config {}`",
            self.pipeline.path.display()
        )
    }

    pub(crate) fn summary(
        &self,
        experiment: Experiment,
        setup: Setup,
        source: Option<&SyntheticSource>,
    ) -> Option<&Summary> {
        self.summaries.iter().find(|summary| {
            summary.experiment == experiment
                && summary.setup == setup
                && summary.source.as_ref() == source
        })
    }

    pub(crate) fn has_experiment(&self, experiment: Experiment) -> bool {
        self.summaries.iter().any(|s| s.experiment == experiment)
    }

    /// The CycleGAN lambda_cls values configured or evaluated, ascending.
    pub(crate) fn lambdas(&self) -> Vec<f64> {
        let mut values: Vec<f64> = self
            .eval_config
            .lambda_cls
            .iter()
            .copied()
            .chain(self.results.iter().filter_map(RunResult::lambda_cls))
            .collect();
        values.sort_by(f64::total_cmp);
        values.dedup();
        values
    }

    /// Every synthetic source configured or evaluated: CycleGANs by lambda_cls, then
    /// baselines by name.
    pub(crate) fn sources(&self) -> Vec<SyntheticSource> {
        let mut sources: Vec<SyntheticSource> = self
            .lambdas()
            .into_iter()
            .map(SyntheticSource::cyclegan)
            .collect();
        let mut names: Vec<String> = self
            .eval_config
            .baselines
            .iter()
            .cloned()
            .chain(
                self.results
                    .iter()
                    .filter_map(|r| r.source.as_ref())
                    .filter(|s| !s.is_cyclegan())
                    .map(|s| s.method().to_string()),
            )
            .collect();
        names.sort();
        names.dedup();
        sources.extend(names.into_iter().map(SyntheticSource::baseline));
        sources
    }

    /// The scope whose synthetic set an experiment's classifiers train on (fold 1's stands for
    /// every fold).
    pub(crate) fn synthetic_scope(&self, experiment: Experiment) -> &'static str {
        match (experiment, self.eval_config.synthetic_scope) {
            (Experiment::Within, emocycle_eval::SyntheticScope::PerFold) => "fold1",
            _ => "all",
        }
    }

    /// The set whose footer stands for `source`'s sets: the within-corpus scope's, else
    /// `all`'s (a pipeline without per-fold scopes); `None` when neither exists.
    pub(crate) fn footer_set(&self, source: &SyntheticSource) -> Option<(&'static str, PathBuf)> {
        [self.synthetic_scope(Experiment::Within), "all"]
            .into_iter()
            .map(|scope| (scope, self.synthetic_set(scope, source)))
            .find(|(_, path)| path.is_file())
    }

    /// The synthetic set of `source` in `scope`.
    pub(crate) fn synthetic_set(&self, scope: &str, source: &SyntheticSource) -> PathBuf {
        emocycle_eval::synthetic_path(&self.run_dir.join("synth"), scope, source)
    }
}

/// Writes `report.md` and the PNGs under `report/` for the run in `inputs.run_dir`; see the
/// crate docs for what is read. Fails when `eval/results.parquet` is missing or unreadable,
/// when the pipeline file cannot be read, or when an output cannot be written.
pub fn write_report(inputs: &ReportInputs) -> Result<ReportOutcome, ReportError> {
    let run_dir = &inputs.run_dir;
    let results_path = run_dir.join("eval").join("results.parquet");
    if !results_path.is_file() {
        return Err(ReportError::MissingResults {
            path: results_path,
            config: inputs.pipeline.path.clone(),
        });
    }
    let results = read_results(&results_path)?;
    let results_metadata = read_parquet_metadata(&results_path)?;
    let pipeline_text = std::fs::read_to_string(&inputs.pipeline.path)
        .map_err(|source| ReportError::io(&inputs.pipeline.path, source))?;
    let mut notes = Vec::new();

    let quality_path = run_dir.join("synth").join("quality.parquet");
    let quality = if quality_path.is_file() {
        read::read_quality(&quality_path)
    } else {
        Err(format!("{} does not exist", quality_path.display()))
    };
    if let Err(problem) = &quality {
        notes.push(format!(
            "{problem} (made by `emocycle quality --config {}`)",
            inputs.pipeline.path.display()
        ));
    }
    let stages = read::read_stage_records(run_dir, &mut notes);
    let gan = read::read_gan_logs(&run_dir.join("gan"), &mut notes);
    if gan.is_empty() {
        notes.push(format!(
            "no loss logs below {} (made by `emocycle pretrain` and `emocycle train`)",
            run_dir.join("gan").display()
        ));
    }
    let context = Context {
        pipeline: &inputs.pipeline,
        run_dir,
        pipeline_text,
        eval_config: inputs.pipeline.eval_config(),
        summaries: summarise(&results),
        results,
        results_metadata,
        quality,
        stages,
        gan,
    };

    let report_dir = run_dir.join("report");
    let mut figures = Vec::new();
    let mut text = String::new();
    let findings = sections::findings(&context);
    sections::header(&context, &mut text);
    sections::findings_section(&findings, context.pipeline.config.gan.seeds, &mut text);
    sections::changes(&context, &mut text);
    sections::table1(&context, &mut text);
    sections::tables_2_and_3(&context, &mut text);
    sections::methods(&context, &mut text, &mut notes);
    let sweep_png = report_dir.join("lambda_sweep.png");
    if sections::sweep(&context, &mut text, &sweep_png)? {
        figures.push(sweep_png);
    }
    sections::figures(&context, &mut text);
    figures.extend(sections::losses(&context, &mut text, &report_dir)?);
    sections::configuration(&context, &mut text);
    sections::wall_time(&context, &mut text);
    if !notes.is_empty() {
        text.push_str("## Inputs missing or unreadable\n\n");
        for note in &notes {
            text.push_str(&format!("- {note}\n"));
        }
        text.push('\n');
    }

    let report = run_dir.join("report.md");
    write_bytes_atomic(&report, text.as_bytes())?;
    Ok(ReportOutcome {
        report,
        figures,
        notes,
        findings: findings
            .iter()
            .map(|finding| format!("{}: {}", finding.claim, finding.verdict_text()))
            .collect(),
    })
}
