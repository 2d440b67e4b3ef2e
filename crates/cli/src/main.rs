//! `emocycle`: the command line of the emocycle pipeline, one subcommand per stage.

mod commands;
mod logging;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.verbose, cli.quiet);
    let outcome = match cli.command {
        Command::Features { config } => commands::features(&config),
        Command::Inspect { file, rows } => commands::inspect(&file, rows),
        Command::Doctor { device } => commands::doctor(device),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
