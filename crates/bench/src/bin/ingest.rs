//! Child process of the ingestion benchmark: runs emocycle's feature stage on one unlabelled
//! openSMILE CSV and prints one JSON line with the stage's seconds and this process's peak
//! resident memory. A process of its own so that its peak memory is the stage's alone.
//!
//! `emocycle-bench-ingest FEATURES.csv OUTPUT_DIR`

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use emocycle_features::{
    CorpusSpec, DEFAULT_CHUNK_ROWS, FeatureLayout, FoldScheme, LabelMap, NanPolicy, UtteranceIds,
    ingest_corpus,
};

/// `VmHWM` (peak resident set) or `VmRSS` of this process, KiB, from /proc/self/status.
fn status_kib(key: &str) -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {key} in /proc/self/status"))
}

fn main() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(features), Some(output)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: emocycle-bench-ingest FEATURES.csv OUTPUT_DIR");
    };
    let corpus = CorpusSpec {
        name: "bench".to_string(),
        features: PathBuf::from(features),
        labels: None,
        label_map: LabelMap::Names,
        feature_names: None,
        folds: FoldScheme::None,
        split: None,
        nan_policy: NanPolicy::Error,
        utterance_ids: UtteranceIds::Stem,
    };
    let baseline = status_kib("VmRSS")?;
    let started = Instant::now();
    let report = ingest_corpus(&corpus, &FeatureLayout::new(output), DEFAULT_CHUNK_ROWS)?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "seconds": seconds,
            "rows": report.rows,
            "width": report.width,
            "outputs": report.outputs,
            "baseline_rss_kib": baseline,
            "peak_rss_kib": status_kib("VmHWM")?,
        })
    );
    Ok(())
}
