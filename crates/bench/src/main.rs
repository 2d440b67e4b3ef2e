//! `emocycle-bench`: the measurements behind docs/benchmarks.md, printed as markdown tables.
//!
//! `emocycle-bench [REPO] [--out FILE] [--only ingest|gan|fusion|classifiers|engine]`: REPO is the repository root (for
//! the fixture's feature names and tools/bench/*.py); data and the pandas virtualenv go to
//! `$EMOCYCLE_CACHE` (default `~/.cache/emocycle`).

mod classifier;
mod gan;
mod ingest;
mod table;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Only {
    Ingest,
    /// The paper-size iteration and the grid engine at the demo's size.
    Gan,
    /// Only the grid engine against per-run training at the demo's size (a few minutes).
    Fusion,
    /// Only the evaluation's classifiers, one per process against stacked (a minute).
    Classifiers,
    /// One engine at the demo's size, one thread, `--grid-runs` runs (0: `train`), on epochs of
    /// one iteration: what tools/bench/count_ops.sh counts the libtorch operators of.
    Engine,
}

/// emocycle's benchmarks: ingestion against pandas, GAN iterations against PyTorch eager.
#[derive(Debug, Parser)]
struct Args {
    /// Repository root.
    #[arg(default_value = ".")]
    repo: PathBuf,
    /// Also write the tables to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run one benchmark only.
    #[arg(long)]
    only: Option<Only>,
    /// Runs of each ingestion tool (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Untimed runs of each ingestion tool before the timed ones.
    #[arg(long, default_value_t = 1)]
    ingest_warmup: usize,
    /// Untimed GAN iterations before the timed ones.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Timed GAN iterations (the median is reported).
    #[arg(long, default_value_t = 10)]
    iterations: usize,
    /// Runs of the grid for `--only engine`; 0 times `train` instead.
    #[arg(long, default_value_t = 1)]
    grid_runs: usize,
}

pub(crate) fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("EMOCYCLE_CACHE") {
        return dir.into();
    }
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("emocycle")
}

/// CPU model, cores and load average, so a table says what it was measured on.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name")?.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_string();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let kib: f64 = text
                .lines()
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some(format!("{:.1} GiB", kib / (1u64 << 20) as f64))
        })
        .unwrap_or_else(|| "unknown".into());
    format!("{model}, {cores} cores, {memory} memory, load average {load}")
}

fn main() -> Result<()> {
    // As the emocycle binary does: the GAN rows time what `emocycle train` runs.
    emocycle_torch::keep_freed_memory();
    let args = Args::parse();
    let repo = args
        .repo
        .canonicalize()
        .with_context(|| format!("repository root {}", args.repo.display()))?;
    let cache = cache_dir();
    let mut report = format!(
        "# emocycle benchmarks\n\nMachine: {}; libtorch {} intra-op threads; code {}.\n\n",
        machine(),
        tch::get_num_threads(),
        emocycle_artifact::CODE_VERSION
    );
    print!("{report}");
    let mut section = |text: String| {
        print!("{text}");
        report.push_str(&text);
    };
    if args.only.is_none() || args.only == Some(Only::Ingest) {
        section(ingest::bench(
            &repo,
            &cache,
            args.ingest_warmup,
            args.runs.max(1),
        )?);
    }
    match args.only {
        None | Some(Only::Gan) => {
            section(gan::bench(&repo, args.warmup, args.iterations.max(1))?);
        }
        Some(Only::Fusion) => section(gan::fusion(args.warmup, args.iterations.max(1))?),
        Some(Only::Engine) => section(gan::engine(
            args.grid_runs,
            args.warmup,
            args.iterations.max(1),
        )?),
        Some(Only::Ingest | Only::Classifiers) => {}
    }
    if matches!(args.only, None | Some(Only::Classifiers)) {
        section(classifier::bench(args.warmup, args.iterations.max(1))?);
    }
    let end = format!("Load average at the end: {}.\n", {
        std::fs::read_to_string("/proc/loadavg")
            .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    });
    section(end);
    if let Some(path) = &args.out {
        std::fs::write(path, &report).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
