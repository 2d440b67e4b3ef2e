//! The subcommands: each validates its inputs, runs one stage library, and reports.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use emocycle_artifact::{keys, read_parquet, read_parquet_metadata};
use emocycle_features::{DEFAULT_CHUNK_ROWS, ingest_corpus};
use emocycle_pipeline::Pipeline;
use emocycle_torch::DeviceChoice;
use indicatif::{ProgressBar, ProgressStyle};

fn spinner(message: String) -> ProgressBar {
    let bar = ProgressBar::new_spinner().with_message(message);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("valid template"),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

pub fn features(config: &Path) -> Result<()> {
    let pipeline = Pipeline::load(config)?;
    let layout = pipeline.feature_layout();
    let started = Instant::now();
    let features = pipeline.features();
    // Feature lists are compared before anything is written.
    emocycle_features::check_corpora(&features)?;
    for corpus in &features.corpora {
        let bar = spinner(format!("features: {}", corpus.name));
        let corpus_started = Instant::now();
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
    eprintln!(
        "features: done in {:.1} s; outputs in {}",
        started.elapsed().as_secs_f64(),
        pipeline.output_dir().join("features").display()
    );
    Ok(())
}

pub fn inspect(file: &Path, rows: usize) -> Result<()> {
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

pub fn doctor(device: DeviceChoice) -> Result<()> {
    println!("emocycle {}", emocycle_artifact::CODE_VERSION);
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
