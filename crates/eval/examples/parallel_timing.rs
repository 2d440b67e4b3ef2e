//! Times the evaluation with one worker (libtorch's own intra-op threads) against N workers
//! with one libtorch thread each, on a generated IEMOCAP-shaped case, and checks that both
//! give the same numbers.
//!
//! ```text
//! parallel_timing <dir> [sessions] [rows_per_session] [width] [synthetic_rows] [repeats] [<jobs>x<threads>...]
//! ```
//! Defaults: 5 sessions x 400 rows, 1582 features, 4000 synthetic rows per scope, 2 repeats,
//! plans 1x2 (one worker, two libtorch threads), 2x1 and 1x1. The paper's hyper-parameters are used except the epochs, cut by `EPOCH_SCALE`
//! (env, default 0.2) so that a measurement takes minutes, not hours.

use std::path::Path;
use std::time::Instant;

use emocycle_artifact::{Metadata, write_parquet};
use emocycle_eval::{
    EvalConfig, EvalInputs, SetupParams, SyntheticSource, run_evaluation, synthetic_path,
};
use emocycle_features::{Fold, leave_one_session_out};
use emocycle_rng::SplitMix64;
use polars::prelude::*;

const EMOTIONS: [&str; 4] = ["angry", "happy", "neutral", "sad"];

fn gaussianish(generator: &mut SplitMix64) -> f32 {
    // Sum of 4 uniforms: cheap, bell-shaped, deterministic.
    (0..4)
        .map(|_| (generator.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
        .sum::<f32>()
        - 2.0
}

fn features(
    rows: usize,
    width: usize,
    emotion_of: impl Fn(usize) -> usize,
    seed: u64,
) -> Vec<Vec<f32>> {
    let mut generator = SplitMix64::new(seed);
    let mut columns = vec![Vec::with_capacity(rows); width];
    for row in 0..rows {
        let emotion = emotion_of(row);
        for (feature, column) in columns.iter_mut().enumerate() {
            let centre = if feature % 4 == emotion { 0.4 } else { 0.0 };
            column.push((centre + gaussianish(&mut generator)) * (1.0 + feature as f32 % 7.0));
        }
    }
    columns
}

fn write_corpus(dir: &Path, sessions: usize, per_session: usize, width: usize) -> Vec<Fold> {
    let rows = sessions * per_session;
    let names: Vec<String> = (0..width).map(|f| format!("feature_{f}")).collect();
    let ids: Vec<String> = (0..rows).map(|r| format!("utt{r}")).collect();
    let session_of: Vec<String> = (0..rows)
        .map(|r| format!("Ses{:02}", r / per_session + 1))
        .collect();
    let emotions: Vec<&str> = (0..rows).map(|r| EMOTIONS[r % 4]).collect();
    let mut columns = vec![
        Column::new("utterance_id".into(), &ids),
        Column::new("session".into(), &session_of),
        Column::new("emotion".into(), &emotions),
    ];
    for (name, values) in names.iter().zip(features(rows, width, |r| r % 4, 1)) {
        columns.push(Column::new(name.as_str().into(), values));
    }
    let mut frame = DataFrame::new(rows, columns).unwrap();
    let mut metadata = Metadata::for_stage("features", "test-code");
    metadata.insert_json("emocycle.features", &names);
    write_parquet(
        &dir.join("features/labelled.parquet"),
        &mut frame,
        &metadata,
    )
    .unwrap();

    let folds = leave_one_session_out(session_of.iter().map(String::as_str)).unwrap();
    let fold_numbers: Vec<u32> = (0..rows).map(|r| (r / per_session + 1) as u32).collect();
    let mut frame = DataFrame::new(
        rows,
        vec![
            Column::new("utterance_id".into(), &ids),
            Column::new("session".into(), &session_of),
            Column::new("fold".into(), fold_numbers),
        ],
    )
    .unwrap();
    let mut metadata = Metadata::for_stage("features", "test-code");
    metadata.insert_json("emocycle.folds", &folds);
    write_parquet(
        &dir.join("features/labelled.folds.parquet"),
        &mut frame,
        &metadata,
    )
    .unwrap();
    folds
}

fn write_synthetic(
    path: &Path,
    scope: &str,
    lambda_cls: f64,
    rows: usize,
    width: usize,
    seed: u64,
) {
    let names: Vec<String> = (0..width).map(|f| format!("feature_{f}")).collect();
    let emotions: Vec<&str> = (0..rows).map(|r| EMOTIONS[r * 4 / rows]).collect();
    let mut columns = vec![
        Column::new(
            "synthetic_id".into(),
            (0..rows).map(|r| format!("s{r}")).collect::<Vec<_>>(),
        ),
        Column::new(
            "source_utterance_id".into(),
            (0..rows)
                .map(|r| format!("src{}", r % (rows / 4)))
                .collect::<Vec<_>>(),
        ),
        Column::new("emotion".into(), emotions),
        Column::new("fold".into(), vec![scope; rows]),
        Column::new("lambda_cls".into(), vec![lambda_cls; rows]),
        Column::new("seed".into(), vec![seed; rows]),
        Column::new("checkpoint_sha256".into(), vec!["0".repeat(64); rows]),
    ];
    for (name, values) in names
        .iter()
        .zip(features(rows, width, |r| r * 4 / rows, seed))
    {
        columns.push(Column::new(name.as_str().into(), values));
    }
    let mut frame = DataFrame::new(rows, columns).unwrap();
    let mut metadata = Metadata::for_stage("synth", "test-code");
    metadata.insert_json("emocycle.features", &names);
    write_parquet(path, &mut frame, &metadata).unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |index: usize, default: usize| {
        args.get(index)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let dir = Path::new(args.first().map_or("parallel_timing", String::as_str)).to_path_buf();
    let (sessions, per_session, width) = (number(1, 5), number(2, 400), number(3, 1582));
    let (synthetic_rows, repeats) = (number(4, 4000), number(5, 2));
    // Each remaining argument is `<jobs>x<threads>`: workers and libtorch threads per worker.
    let plans: Vec<(usize, usize)> = if args.len() > 6 {
        args[6..]
            .iter()
            .filter_map(|a| {
                let (jobs, threads) = a.split_once('x')?;
                Some((jobs.parse().ok()?, threads.parse().ok()?))
            })
            .collect()
    } else {
        vec![(1, 2), (2, 1), (1, 1)]
    };
    let scale: f64 = std::env::var("EPOCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.2);

    let folds = write_corpus(&dir, sessions, per_session, width);
    for fold in &folds {
        let scope = format!("fold{}", fold.number);
        write_synthetic(
            &synthetic_path(&dir.join("synth"), &scope, &SyntheticSource::cyclegan(2.0)),
            &scope,
            2.0,
            synthetic_rows,
            width,
            fold.number as u64,
        );
    }
    let mut within = SetupParams::within_paper();
    for params in [&mut within.real, &mut within.syn, &mut within.real_syn] {
        params.epochs = ((params.epochs as f64 * scale).round() as usize).max(1);
    }
    println!(
        "case: {sessions} sessions x {per_session} rows, {width} features, {synthetic_rows} synthetic rows per fold, \
         lambda_cls 2, {repeats} repeats, epochs real/syn/real+syn {}/{}/{}, libtorch default threads {}",
        within.real.epochs,
        within.syn.epochs,
        within.real_syn.epochs,
        tch::get_num_threads()
    );
    let mut reference: Option<Vec<(u64, [[u64; 4]; 4])>> = None;
    for &(parallel_jobs, intra_op_threads) in &plans {
        let config = EvalConfig {
            lambda_cls: vec![2.0],
            repeats,
            seed: 1,
            within: within.clone(),
            cross_corpus: false,
            parallel_jobs,
            intra_op_threads,
            ..EvalConfig::default()
        };
        let mut inputs = EvalInputs::for_run(&dir, "labelled", None);
        inputs.output_dir = dir.join(format!("eval-{parallel_jobs}x{intra_op_threads}"));
        let started = Instant::now();
        let report = run_evaluation(&inputs, &config, tch::Device::Cpu, &mut |_| {}).unwrap();
        let wall = started.elapsed().as_secs_f64();
        let mut per_setup = std::collections::BTreeMap::new();
        for result in &report.results {
            *per_setup.entry(result.setup.as_str()).or_insert(0.0) += result.seconds;
        }
        println!(
            "parallel_jobs {parallel_jobs} x intra_op_threads {intra_op_threads}: wall {wall:.1} s; summed run seconds {per_setup:?}"
        );
        for summary in &report.summaries {
            println!(
                "  {} {} lambda {:?}: UAR {:.4} +- {:.4}",
                summary.experiment.as_str(),
                summary.setup,
                summary.lambda_cls(),
                summary.uar_mean,
                summary.uar_std
            );
        }
        let numbers: Vec<(u64, [[u64; 4]; 4])> = report
            .results
            .iter()
            .map(|r| (r.final_loss.to_bits(), r.confusion.counts))
            .collect();
        match &reference {
            None => reference = Some(numbers),
            Some(first) => {
                let same_counts = first.iter().zip(&numbers).all(|(a, b)| a.1 == b.1);
                let same_losses = first.iter().zip(&numbers).all(|(a, b)| a.0 == b.0);
                println!(
                    "  identical to {}x{}: confusion counts {same_counts}, final losses bit for bit {same_losses}",
                    plans[0].0, plans[0].1
                );
            }
        }
    }
}
