//! `emocycle`: the command line of the emocycle pipeline, one subcommand per stage.

mod commands;
mod drive;
mod logging;
mod parallel;
mod record;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use emocycle_features::NanPolicy;
use emocycle_torch::DeviceChoice;

/// CycleGAN emotion style transfer as data augmentation for speech emotion recognition.
#[derive(Debug, Parser)]
#[command(name = "emocycle", version = emocycle_artifact::CODE_VERSION, about, long_about = None)]
struct Cli {
    /// More log output (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Less log output (-q warnings only, -qq errors only).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "verbose")]
    quiet: u8,
    /// libtorch intra-op threads on the CPU (overrides the pipeline's `threads`).
    #[arg(long, global = true, value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Feature stage: ingest the pipeline's openSMILE files and labels into parquet, with folds,
    /// splits and normalisation statistics.
    Features {
        /// The pipeline file.
        #[arg(long, short)]
        config: PathBuf,
        /// NaN, Inf or missing values: `error` (name the line and column), `drop-row` (drop the
        /// utterance and count it) or `zero`; overrides every corpus's `nan_policy`.
        #[arg(long)]
        nan: Option<NanPolicy>,
        /// Rerun even when the outputs are up to date.
        #[arg(long)]
        force: bool,
    },
    /// openSMILE functionals from audio: every `.wav` below a directory (an IEMOCAP release:
    /// only `Session<n>/sentences/wav/`), one row per file named by its stem, or every segment
    /// of a TED-LIUM release's `.stm` files, written as SMILExtract's CSV for a corpus's
    /// `features`.
    Extract {
        /// The directory of audio files (or an IEMOCAP, MSP-IMPROV or TED-LIUM tree).
        #[arg(long, short)]
        input: PathBuf,
        /// The CSV to write (gzip when it ends in `.gz`). When it exists, only the files it
        /// lacks are extracted and added.
        #[arg(long, short)]
        output: PathBuf,
        /// `is10` (the paper's 1582 functionals, IS10 settings), `egemaps` or `compare`.
        #[arg(long, default_value = "is10")]
        feature_set: FeatureSetArg,
        /// An openSMILE configuration of your own instead (e.g. openSMILE's
        /// `config/emobase/emobase2010.conf`, the paper's set); it must take its input and
        /// output through the `source` and `sink` includes, as openSMILE 3's configurations do.
        #[arg(long, conflicts_with = "feature_set")]
        smile_config: Option<PathBuf>,
        /// openSMILE processes run side by side; 0: one per core.
        #[arg(long, default_value_t = 0)]
        jobs: usize,
        /// A Python with the opensmile package; default: `EMOCYCLE_PYTHON`, else the
        /// virtualenv of `just setup`.
        #[arg(long)]
        python: Option<PathBuf>,
        /// Leave out and list the files openSMILE cannot read, instead of stopping.
        #[arg(long)]
        skip_unreadable: bool,
        /// Extract every file again, even those the output already has.
        #[arg(long)]
        force: bool,
    },
    /// Baselines: the pipeline's other augmentation methods (random oversampling, SMOTE,
    /// Gaussian noise, conditional GAN), one synthetic set per scope and method.
    Augment {
        /// The pipeline file.
        #[arg(long, short)]
        config: PathBuf,
        /// Only the baseline of this name (default: every baseline of the pipeline).
        #[arg(long)]
        name: Option<String>,
        /// Only this scope: `fold<k>` or `all`.
        #[arg(long)]
        scope: Option<String>,
        /// Where the conditional GAN runs (auto, cpu, cuda, cuda:N); default: the pipeline's
        /// `device`.
        #[arg(long)]
        device: Option<DeviceChoice>,
        /// Rerun even when the outputs are up to date.
        #[arg(long)]
        force: bool,
        /// Conditional GANs trained at once in their own processes; 0: one per core on a CPU.
        #[arg(long, default_value_t = 0)]
        jobs: usize,
    },
    /// GAN stage, part 1: cycle-only pretraining of each (G_i, F_i) pair, per scope.
    Pretrain {
        /// The pipeline file.
        #[arg(long, short)]
        config: PathBuf,
        #[command(flatten)]
        run: GanRunArgs,
    },
    /// GAN stage, part 2: joint training of the four CycleGANs and the classifier, per scope and
    /// lambda_cls, from the pretrained generators.
    Train {
        /// The pipeline file.
        #[arg(long, short)]
        config: PathBuf,
        /// Train only this lambda_cls (default: every value in the pipeline).
        #[arg(long)]
        lambda_cls: Option<f64>,
        #[command(flatten)]
        run: GanRunArgs,
    },
    /// Synthesis stage: every trained G_i applied to the source corpus, per scope and
    /// lambda_cls, written as synthetic sets with provenance.
    Generate {
        /// The pipeline file.
        #[arg(long, short)]
        config: PathBuf,
        /// Only this lambda_cls (default: every value in the pipeline).
        #[arg(long)]
        lambda_cls: Option<f64>,
        /// Only this scope: `fold<k>` or `all`.
        #[arg(long)]
        scope: Option<String>,
        /// Only this generator seed, 0 to `gan.seeds` - 1 (default: every one).
        #[arg(long)]
        gan_seed: Option<u32>,
        /// Where to run (auto, cpu, cuda, cuda:N); default: the pipeline's `device`.
        #[arg(long)]
        device: Option<DeviceChoice>,
        /// Rerun even when the outputs are up to date.
        #[arg(long)]
        force: bool,
    },
    /// Quality report of the synthetic sets against the real target data (the paper's Table 1
    /// and Figure 2, Frechet distance, two-sample test, k-NN precision and recall).
    Quality {
        /// The pipeline file.
        #[arg(long, short)]
        config: PathBuf,
        /// Where to run (auto, cpu, cuda, cuda:N); default: the pipeline's `device`.
        #[arg(long)]
        device: Option<DeviceChoice>,
        /// Rerun even when the report is up to date.
        #[arg(long)]
        force: bool,
    },
    /// Evaluation stage: UAR of real, syn and real+syn classifiers, leave-one-session-out and
    /// cross-corpus, with the paper's Tables 2 and 3 and the confusion matrices of Figure 3.
    Evaluate {
        /// The pipeline file.
        #[arg(long, short)]
        config: PathBuf,
        /// Where to run (auto, cpu, cuda, cuda:N); default: the pipeline's `device`.
        #[arg(long)]
        device: Option<DeviceChoice>,
        /// Rerun even when the outputs are up to date.
        #[arg(long)]
        force: bool,
    },
    /// The run's report, `runs/<pipeline>/report.md`: Tables 1-3 beside the paper, the
    /// augmentation methods compared, the lambda_cls sweep, Figures 2 and 3, loss curves, what
    /// differs from the paper, config, seeds, versions and wall time per stage.
    Report {
        /// The pipeline file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Slurm: write one sbatch job array per stage (below `runs/<name>/slurm/`), chained with
    /// `afterok`, and submit them; the tasks run this binary from the current directory, so
    /// both must be on a file system the nodes share. Resubmitting redoes only what is not up
    /// to date.
    Submit {
        /// The pipeline file.
        #[arg(long, short)]
        config: PathBuf,
        /// Write and print the scripts without submitting them.
        #[arg(long)]
        dry_run: bool,
        /// Submit the stages from this one on (features, augment, pretrain, train, generate,
        /// quality, evaluate, report).
        #[arg(long, default_value = emocycle_cluster::FIRST_STAGE)]
        from: String,
    },
    /// Slurm: what the latest submission of each stage has done, runs, waits for or failed at,
    /// with the log of every failed task.
    Status {
        /// The pipeline file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Show a parquet artifact's shape, columns and footer metadata.
    Inspect {
        /// The parquet file.
        file: PathBuf,
        /// Also print this many rows.
        #[arg(long, default_value_t = 0)]
        rows: usize,
    },
    /// Show the code version, libtorch's view of the devices, and which device a choice resolves to.
    Doctor {
        /// Device to resolve: auto, cpu, cuda or cuda:N.
        #[arg(long, default_value = "auto")]
        device: DeviceChoice,
    },
}

impl Command {
    /// For a pipeline stage: its name and pipeline file (for its record).
    fn stage(&self) -> Option<(&'static str, PathBuf)> {
        match self {
            Self::Features { config, .. } => Some(("features", config.clone())),
            Self::Augment { config, .. } => Some(("augment", config.clone())),
            Self::Pretrain { config, .. } => Some(("pretrain", config.clone())),
            Self::Train { config, .. } => Some(("train", config.clone())),
            Self::Generate { config, .. } => Some(("generate", config.clone())),
            Self::Quality { config, .. } => Some(("quality", config.clone())),
            Self::Evaluate { config, .. } => Some(("evaluate", config.clone())),
            Self::Report { .. }
            | Self::Submit { .. }
            | Self::Status { .. }
            | Self::Inspect { .. }
            | Self::Doctor { .. }
            | Self::Extract { .. } => None,
        }
    }
}

/// `--engine` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum EngineArg {
    /// The grid on CUDA, one process per run on the CPU.
    Auto,
    /// One process per run.
    PerRun,
    /// The runs together, as one batched model.
    Grid,
}

impl From<EngineArg> for emocycle_gan::Engine {
    fn from(arg: EngineArg) -> Self {
        match arg {
            EngineArg::Auto => Self::Auto,
            EngineArg::PerRun => Self::PerRun,
            EngineArg::Grid => Self::Grid,
        }
    }
}

/// `--feature-set` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FeatureSetArg {
    Is10,
    Egemaps,
    Compare,
}

impl From<FeatureSetArg> for emocycle_features::FeatureSet {
    fn from(arg: FeatureSetArg) -> Self {
        match arg {
            FeatureSetArg::Is10 => Self::Is10,
            FeatureSetArg::Egemaps => Self::Egemaps,
            FeatureSetArg::Compare => Self::Compare,
        }
    }
}

/// Options shared by the model-training subcommands.
#[derive(Debug, clap::Args)]
pub struct GanRunArgs {
    /// Only this scope: `fold<k>` (trained without fold k's test session) or `all`.
    #[arg(long)]
    pub scope: Option<String>,
    /// Only this generator seed, 0 to `gan.seeds` - 1 (default: every one).
    #[arg(long)]
    pub gan_seed: Option<u32>,
    /// Where to run (auto, cpu, cuda, cuda:N); default: the pipeline's `device`.
    #[arg(long)]
    pub device: Option<DeviceChoice>,
    /// Continue from the checkpoint a stopped run left, ending with the same weights as an
    /// uninterrupted run (runs that are up to date are skipped, as without it).
    #[arg(long)]
    pub resume: bool,
    /// Rerun even when the outputs are up to date.
    #[arg(long)]
    pub force: bool,
    /// How the runs train (default: the pipeline's `gan.engine`): `grid` trains them together
    /// as one batched model, `per-run` each in its own process, `auto` picks by device.
    #[arg(long)]
    pub engine: Option<EngineArg>,
    /// Runs (scopes, lambda_cls values, generator seeds) trained at once, each in its own process with one
    /// libtorch thread (or `--threads`); 0: one per core on a CPU, one on a GPU. The grid
    /// engine ignores it: it trains its runs in one process on every thread.
    #[arg(long, default_value_t = 0)]
    pub jobs: usize,
}

fn main() -> ExitCode {
    emocycle_torch::keep_freed_memory();
    let cli = Cli::parse();
    logging::init(cli.verbose, cli.quiet);
    commands::set_thread_override(cli.threads.map(usize::from));
    let started = std::time::Instant::now();
    let stage = cli.command.stage();
    let outcome = match cli.command {
        Command::Features { config, nan, force } => {
            commands::features(&config, nan, force).map(Some)
        }
        Command::Extract {
            input,
            output,
            feature_set,
            smile_config,
            jobs,
            python,
            skip_unreadable,
            force,
        } => commands::extract(
            &input,
            &output,
            &commands::ExtractArgs {
                feature_set: feature_set.into(),
                smile_config,
                jobs,
                python,
                skip_unreadable,
                force,
            },
        )
        .map(|()| None),
        Command::Augment {
            config,
            name,
            scope,
            device,
            force,
            jobs,
        } => commands::augment(
            &config,
            &commands::AugmentArgs {
                name: name.as_deref(),
                scope: scope.as_deref(),
                device,
                force,
                jobs,
            },
        )
        .map(Some),
        Command::Pretrain { config, run } => commands::pretrain(&config, &run).map(Some),
        Command::Train {
            config,
            lambda_cls,
            run,
        } => commands::train(&config, lambda_cls, &run).map(Some),
        Command::Generate {
            config,
            lambda_cls,
            scope,
            gan_seed,
            device,
            force,
        } => commands::generate(
            &config,
            &commands::GenerateArgs {
                lambda_cls,
                scope: scope.as_deref(),
                gan_seed,
                device,
                force,
            },
        )
        .map(Some),
        Command::Quality {
            config,
            device,
            force,
        } => commands::quality(&config, device, force).map(Some),
        Command::Evaluate {
            config,
            device,
            force,
        } => commands::evaluate(&config, device, force).map(Some),
        Command::Report { config } => commands::report(&config).map(|()| None),
        Command::Submit {
            config,
            dry_run,
            from,
        } => commands::submit(&config, dry_run, &from).map(|()| None),
        Command::Status { config } => commands::status(&config).map(|()| None),
        Command::Inspect { file, rows } => commands::inspect(&file, rows).map(|()| None),
        Command::Doctor { device } => commands::doctor(device).map(|()| None),
    };
    // A stage that did work leaves a record of its wall time for the report.
    let outcome = outcome.and_then(|done| match (stage, done) {
        (Some((stage, config)), Some(done)) if done.worked() => {
            // Child processes run one libtorch thread each unless --threads says; units run in
            // this process (a grid, or the one run left to do) use its threads.
            let (jobs, threads) = match done.processes {
                0 | 1 => (1, tch::get_num_threads().max(1) as usize),
                n => (n, cli.threads.map_or(1, usize::from)),
            };
            record::finish(&record::StageRun {
                stage,
                config: &config,
                started,
                jobs,
                threads,
            })
        }
        _ => Ok(()),
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
