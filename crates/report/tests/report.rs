//! The report of a small hand-made run directory: results, quality table, loss logs, synthetic
//! set footers and stage records with known numbers, and the report's tables checked against
//! them.

use std::path::{Path, PathBuf};

use emocycle_artifact::{CODE_VERSION, Metadata, keys, write_parquet};
use emocycle_eval::{
    ConfusionMatrix, EvalConfig, Experiment, RunResult, Setup, SyntheticSource, results_frame,
};
use emocycle_pipeline::Pipeline;
use emocycle_report::{ReportError, ReportInputs, write_report};
use polars::prelude::{Column, DataFrame};

const EMOTIONS: [&str; 4] = ["angry", "happy", "neutral", "sad"];

/// A pipeline file in `dir` whose corpus files exist but are empty: validation only checks
/// that they are there, and the report never reads them.
fn pipeline(dir: &Path, cross_corpus: bool, extra: &str) -> Pipeline {
    for name in [
        "lab.csv",
        "lab_labels.csv",
        "src.csv",
        "cross.csv",
        "cross_labels.csv",
    ] {
        std::fs::write(dir.join(name), "").unwrap();
    }
    let (cross, role) = if cross_corpus {
        (
            r#", {"name": "cross", "features": "cross.csv", "labels": "cross_labels.csv",
                  "label_map": "msp-improv", "split": {"dev_fraction": 0.3, "seed": 1}}"#,
            r#", "cross_corpus": "cross""#,
        )
    } else {
        ("", "")
    };
    let text = format!(
        r#"{{
  "name": "fixture",
  "seed": 7,
  "device": "cpu",
  "corpora": [
    {{"name": "lab", "features": "lab.csv", "labels": "lab_labels.csv", "label_map": "iemocap",
      "folds": "leave-one-session-out"}},
    {{"name": "src", "features": "src.csv"}}{cross}
  ],
  "roles": {{"target": "lab", "source": "src"{role}}}{extra}
}}
"#
    );
    let path = dir.join("fixture.json");
    std::fs::write(&path, &text).unwrap();
    Pipeline::load(&path).unwrap()
}

/// 100 test rows per class, `correct` of them right, the rest predicted as the next class:
/// the UAR is `correct / 100`.
fn matrix(correct: u64) -> ConfusionMatrix {
    let mut matrix = ConfusionMatrix::default();
    for class in 0..4 {
        matrix.counts[class][class] = correct;
        matrix.counts[class][(class + 1) % 4] = 100 - correct;
    }
    matrix
}

/// Two repeats (seeds 7 and 8); within corpus two folds. `uar` gives each repeat's UAR in %,
/// the same on every fold.
fn rows(
    experiment: Experiment,
    setup: Setup,
    source: Option<SyntheticSource>,
    uar: [u64; 2],
) -> Vec<RunResult> {
    let folds: Vec<Option<usize>> = if experiment == Experiment::Within {
        vec![Some(1), Some(2)]
    } else {
        vec![None]
    };
    let mut rows = Vec::new();
    for (repeat, correct) in uar.into_iter().enumerate() {
        for fold in &folds {
            rows.push(RunResult {
                experiment,
                fold: *fold,
                test_session: fold.map(|f| format!("Ses{f}")),
                setup,
                source: source.clone(),
                synthetic_scope: source.as_ref().map(|_| match fold {
                    Some(f) => format!("fold{f}"),
                    None => "all".to_string(),
                }),
                repeat,
                seed: 7 + repeat as u64,
                run_seed: 1000 + repeat as u64,
                train_rows: 400,
                confusion: matrix(correct),
                final_loss: 0.5,
                seconds: 1.0,
                run_key: format!("{experiment:?}-{setup}-{source:?}-{fold:?}-{repeat}"),
            });
        }
    }
    rows
}

fn write_results(run_dir: &Path, results: &[RunResult], config: &EvalConfig) {
    let mut metadata = Metadata::for_stage("eval", "test-code");
    metadata.insert_json(keys::CONFIG, config);
    metadata.insert_json(
        keys::SEEDS,
        &serde_json::json!({"base": 7, "repeats": [7, 8]}),
    );
    let path = run_dir.join("eval").join("results.parquet");
    write_parquet(&path, &mut results_frame(results).unwrap(), &metadata).unwrap();
}

fn cyclegan(lambda_cls: f64) -> Option<SyntheticSource> {
    Some(SyntheticSource::cyclegan(lambda_cls))
}

fn smote() -> Option<SyntheticSource> {
    Some(SyntheticSource::baseline("smote"))
}

/// One row of the fixture's quality table; the other metrics are constants.
struct QualityRow {
    scope: String,
    method: String,
    lambda_cls: Option<f64>,
    comparison: &'static str,
    emotion: String,
    mad: f64,
}

/// One set's quality rows in a scope: the four emotions with `mad` each, and a pooled row.
fn quality_rows(
    table: &mut Vec<QualityRow>,
    scope: &str,
    method: &str,
    lambda_cls: Option<f64>,
    source_mad: [f64; 4],
    synthetic_mad: [f64; 4],
) {
    for (comparison, mad) in [
        ("target-source", source_mad),
        ("target-synthetic", synthetic_mad),
    ] {
        let emotions = EMOTIONS.iter().zip(mad).chain([(&"pooled", 0.5)]);
        for (emotion, value) in emotions {
            table.push(QualityRow {
                scope: scope.into(),
                method: method.into(),
                lambda_cls,
                comparison,
                emotion: emotion.to_string(),
                mad: value,
            });
        }
    }
}

fn write_quality(run_dir: &Path) {
    let source = [0.08, 0.09, 0.07, 0.10];
    let mut table = Vec::new();
    for (scope, lambda_two) in [("fold1", 0.05), ("fold2", 0.04), ("all", 0.06)] {
        quality_rows(
            &mut table,
            scope,
            "cyclegan",
            Some(0.0),
            source,
            [0.01, 0.02, 0.01, 0.02],
        );
        quality_rows(
            &mut table,
            scope,
            "cyclegan",
            Some(2.0),
            source,
            [lambda_two; 4],
        );
        quality_rows(&mut table, scope, "smote", None, source, [0.03; 4]);
    }
    let n = table.len();
    let floats = |name: &str, value: f64| Column::new(name.into(), vec![value; n]);
    let mut frame = DataFrame::new(
        n,
        vec![
            Column::new(
                "scope".into(),
                table.iter().map(|r| r.scope.clone()).collect::<Vec<_>>(),
            ),
            Column::new(
                "method".into(),
                table.iter().map(|r| r.method.clone()).collect::<Vec<_>>(),
            ),
            Column::new(
                "lambda_cls".into(),
                table.iter().map(|r| r.lambda_cls).collect::<Vec<_>>(),
            ),
            Column::new(
                "comparison".into(),
                table.iter().map(|r| r.comparison).collect::<Vec<_>>(),
            ),
            Column::new(
                "emotion".into(),
                table.iter().map(|r| r.emotion.clone()).collect::<Vec<_>>(),
            ),
            Column::new("target_rows".into(), vec![100u64; n]),
            Column::new("other_rows".into(), vec![300u64; n]),
            Column::new(
                "mean_abs_diff".into(),
                table.iter().map(|r| r.mad).collect::<Vec<_>>(),
            ),
            floats("std_abs_diff", 0.02),
            floats("frechet_distance", 1.25),
            floats("c2st_accuracy", 0.75),
            floats("knn_precision", 0.5),
            floats("knn_recall", 0.25),
            Column::new("sample_rows".into(), vec![100u64; n]),
        ],
    )
    .unwrap();
    let mut metadata = Metadata::for_stage("quality", "test-code");
    metadata.insert_json(keys::SEEDS, &serde_json::json!({"metric": 0}));
    write_parquet(
        &run_dir.join("synth/quality.parquet"),
        &mut frame,
        &metadata,
    )
    .unwrap();
}

fn write_loss_logs(run_dir: &Path) {
    let epochs = 5u32;
    let mut pairs = Vec::new();
    let mut names = Vec::new();
    let mut epoch_column = Vec::new();
    let mut cycle = Vec::new();
    for (pair, emotion) in EMOTIONS.iter().enumerate() {
        for epoch in 0..epochs {
            pairs.push(pair as u32);
            names.push(*emotion);
            epoch_column.push(epoch);
            cycle.push(1.0 / f64::from(epoch + 1) + pair as f64 * 0.1);
        }
    }
    let mut pretrain = DataFrame::new(
        pairs.len(),
        vec![
            Column::new("pair".into(), pairs),
            Column::new("emotion".into(), names),
            Column::new("epoch".into(), epoch_column),
            Column::new("cycle".into(), cycle),
        ],
    )
    .unwrap();
    let metadata = Metadata::for_stage("pretrain", "test-code");
    write_parquet(
        &run_dir.join("gan/fold1/pretrain/loss_log.parquet"),
        &mut pretrain,
        &metadata,
    )
    .unwrap();

    let epoch: Vec<u32> = (0..epochs).collect();
    let mut columns = vec![
        Column::new("epoch".into(), epoch.clone()),
        Column::new("learning_rate".into(), vec![2e-4; epochs as usize]),
    ];
    for (prefix, scale) in [("d", 0.7), ("g", 1.5), ("cycle", 0.3)] {
        for (index, emotion) in EMOTIONS.iter().enumerate() {
            columns.push(Column::new(
                format!("{prefix}_{emotion}").into(),
                epoch
                    .iter()
                    .map(|&e| scale * (1.0 + index as f64) / f64::from(e + 1))
                    .collect::<Vec<_>>(),
            ));
        }
    }
    columns.push(Column::new(
        "cls".into(),
        epoch
            .iter()
            .map(|&e| 1.2 / f64::from(e + 1))
            .collect::<Vec<_>>(),
    ));
    let mut train = DataFrame::new(epochs as usize, columns).unwrap();
    write_parquet(
        &run_dir.join("gan/fold1/lambda_cls-2/loss_log.parquet"),
        &mut train,
        &Metadata::for_stage("train", "test-code"),
    )
    .unwrap();
}

/// A one-column parquet file with the given `emocycle.rows_per_emotion` footer.
fn write_set(run_dir: &Path, dir: &str, rows_per_emotion: &str) {
    let mut frame =
        DataFrame::new(1, vec![Column::new("synthetic_id".into(), vec!["s0"])]).unwrap();
    let mut metadata = Metadata::for_stage("generate", "test-code");
    metadata.insert("emocycle.rows_per_emotion", rows_per_emotion);
    metadata.insert_json(keys::SEEDS, &serde_json::json!({"generate": 7}));
    write_parquet(
        &run_dir.join(format!("synth/fold1/{dir}/synthetic.parquet")),
        &mut frame,
        &metadata,
    )
    .unwrap();
}

fn write_stage(run_dir: &Path, stage: &str, seconds: f64, finished: u64) {
    let record = serde_json::json!({
        "stage": stage,
        "wall_seconds": seconds,
        "finished_unix": finished,
        "device": "cpu",
        "threads": 1,
        "jobs": 2,
        "code_version": CODE_VERSION,
        "command": format!("emocycle {stage} --config fixture.json"),
    });
    let path = run_dir.join("stages").join(format!("{stage}.json"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, record.to_string()).unwrap();
}

fn is_png(path: &PathBuf) -> bool {
    std::fs::read(path).is_ok_and(|bytes| bytes.starts_with(b"\x89PNG\r\n\x1a\n"))
}

fn line_with<'a>(report: &'a str, start: &str) -> &'a str {
    report
        .lines()
        .find(|line| line.starts_with(start))
        .unwrap_or_else(|| panic!("no line starts with {start:?} in\n{report}"))
}

#[test]
fn a_full_run_is_reported_with_its_numbers_beside_the_papers() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline(
        dir.path(),
        true,
        r#", "gan": {"lambda_cls": [0, 2], "network": {"batch_size": 16}},
  "baselines": [{"method": "smote"}],
  "evaluation": {"repeats": 2}"#,
    );
    let run_dir = dir.path().join("run");
    let mut results = Vec::new();
    for (experiment, real, syn, real_syn, smote_real_syn) in [
        (
            Experiment::Within,
            [60, 62],
            [[50, 50], [45, 45]],
            [[58, 58], [64, 64]],
            [63, 63],
        ),
        (
            Experiment::CrossTest,
            [45, 45],
            [[39, 39], [41, 41]],
            [[42, 42], [47, 47]],
            [48, 48],
        ),
    ] {
        results.extend(rows(experiment, Setup::Real, None, real));
        for (index, lambda_cls) in [0.0, 2.0].into_iter().enumerate() {
            results.extend(rows(
                experiment,
                Setup::Syn,
                cyclegan(lambda_cls),
                syn[index],
            ));
            results.extend(rows(
                experiment,
                Setup::RealSyn,
                cyclegan(lambda_cls),
                real_syn[index],
            ));
        }
        // SMOTE's set lacks a class, so its syn setup was left out.
        results.extend(rows(experiment, Setup::RealSyn, smote(), smote_real_syn));
    }
    write_results(&run_dir, &results, &pipeline.eval_config());
    write_quality(&run_dir);
    write_loss_logs(&run_dir);
    write_set(&run_dir, "lambda_cls-0", "300");
    write_set(&run_dir, "lambda_cls-2", "300");
    write_set(
        &run_dir,
        "smote",
        r#"{"angry": 40, "happy": 0, "neutral": 10, "sad": 25}"#,
    );
    write_stage(&run_dir, "train", 100.0, 1_763_990_000);
    write_stage(&run_dir, "evaluate", 23.5, 1_764_000_000);

    let outcome = write_report(&ReportInputs {
        run_dir: run_dir.clone(),
        pipeline: pipeline.clone(),
    })
    .unwrap();
    assert_eq!(outcome.report, run_dir.join("report.md"));
    assert!(outcome.notes.is_empty(), "{:?}", outcome.notes);
    let report = std::fs::read_to_string(&outcome.report).unwrap();

    // Header: code version from the results' footer, seeds, newest stage record.
    assert!(report.contains(&format!("`{CODE_VERSION}` (`eval/results.parquet`)")));
    assert!(report.contains("pipeline seed 7; evaluation repeat seeds 7, 8"));
    assert!(report.contains("2025-11-24 16:00 UTC (evaluate)"));
    assert!(report.contains("| device | cpu for train, evaluate; configured `cpu` |"));

    // What differs from the paper, and nothing stale.
    assert!(
        report.contains("- `gan.network.batch_size`: 64 -> 16\n"),
        "{report}"
    );
    assert!(report.contains("- `evaluation.repeats`: 5 -> 2\n"));
    assert!(report.contains("- `evaluation.baselines`: [] -> [\"smote\"]\n"));
    assert!(!report.contains("evaluation.seed"));
    assert!(!report.contains("**Warning**"));

    // The paper's findings, checked on the fixture's numbers with paired tests; the CLI prints
    // the same lines. Three scopes, four folds x repeats and two repeats are too few pairs for
    // p < 0.05, so every difference is "not significant", and the report says why.
    assert!(report.contains("## The paper's findings in this run"));
    let table1 = line_with(&report, "| Table 1: the classification loss");
    assert!(
        table1.starts_with(
            "| Table 1: the classification loss moves the data away from the target (λcls 0 \
             closer than 2) | not significant | 0.015 < 0.050 | 0.013 < 0.049 | -0.035 ["
        ),
        "{table1}"
    );
    assert!(table1.ends_with("| 0.250 (3 scopes) |"), "{table1}");
    // The paper's seven, then the CycleGAN against SMOTE within and across corpora.
    assert_eq!(outcome.findings.len(), 9);
    assert_eq!(
        outcome.findings[7],
        "Table 2: real+syn, the CycleGAN (λcls 2) beats smote within corpus: not significant \
         (64.00 > 63.00; p = 0.125 over 4 folds x repeats)"
    );
    assert_eq!(
        outcome.findings[8],
        "Table 3: real+syn, the CycleGAN (λcls 2) beats smote across corpora: not significant \
         (47.00 ≤ 48.00; p = 0.500 over 2 repeats)"
    );
    assert!(report.contains(
        "| Table 3: real+syn, the CycleGAN (λcls 2) beats smote across corpora | not \
         significant | 47.00 ≤ 48.00 | – |"
    ));
    assert_eq!(
        outcome.findings[4],
        "Table 2: real+syn (λcls 2) beats real within corpus: not significant (64.00 > 61.00; \
         p = 0.125 over 4 folds x repeats)"
    );
    assert!(
        outcome
            .findings
            .iter()
            .all(|line| line.contains(": not significant (")),
        "{:?}",
        outcome.findings
    );
    assert!(report.contains(
        "with 4 pairs no difference can reach p < 0.05 (the smallest possible p is 0.125)"
    ));

    // Table 1: MAD per scope, the mean over scopes and the paper's value.
    assert_eq!(
        line_with(&report, "| \\|target − syn(λcls=2)\\|"),
        "| \\|target − syn(λcls=2)\\| | 0.050 | 0.040 | 0.060 | 0.050 | 0.049 |"
    );
    assert_eq!(
        line_with(&report, "| \\|target − source\\|"),
        "| \\|target − source\\| | 0.085 | 0.085 | 0.085 | 0.085 | 0.084 |"
    );
    assert!(report.contains("| \\|target − syn(smote)\\| | 0.030 | 0.030 | 0.030 | 0.030 | – |"));

    // Table 2: real is 60 and 62 in the two repeats: 61.00 ± 1.00 beside 59.48 ± 0.71.
    assert!(
        report.contains("| real | – | 61.00 ± 1.00 | ± 1.00 | 59.48 ± 0.71 | +1.52 |"),
        "{report}"
    );
    assert!(report.contains("| real+syn | 2 | 64.00 ± 0.00 | ± 0.00 | 60.37 ± 0.70 | +3.63 |"));
    // Table 3.
    assert!(report.contains("| syn | 0 | 39.00 ± 0.00 | ± 0.00 | 39.35 ± 0.33 | -0.35 |"));

    // The methods table: bold best real+syn per corpus, SMOTE's missing syn explained.
    assert_eq!(
        line_with(&report, "| CycleGAN λcls=2 |"),
        "| CycleGAN λcls=2 | 45.00 ± 0.00 | **64.00 ± 0.00** | 41.00 ± 0.00 | 47.00 ± 0.00 | 300 each |"
    );
    assert_eq!(
        line_with(&report, "| smote |"),
        "| smote | – [1] | 63.00 ± 0.00 | – [2] | **48.00 ± 0.00** | angry 40, happy 0, neutral 10, sad 25 |"
    );
    assert!(
        report.contains(
            "[1] smote, within corpus: not evaluated: the fold1 set has no happy vectors"
        )
    );
    assert!(
        report.contains("| real (no augmentation) | – | 61.00 ± 1.00 | – | 45.00 ± 0.00 | – |")
    );

    // The sweep: UARs and the quality averaged over scopes.
    assert!(report.contains(
        "| 2 | 45.00 ± 0.00 | 64.00 ± 0.00 | 41.00 ± 0.00 | 47.00 ± 0.00 | 0.050 | 1.25 | 0.750 | 0.500 | 0.250 |"
    ));

    // Figures, losses, configuration, wall time.
    assert!(report.contains("`synth/figure2.png` does not exist"));
    assert!(report.contains("| fold1 | pretraining | 5 |"));
    assert!(report.contains("| fold1 | λcls=2 | 5 | 0.3500 | 0.7500 | 0.1500 | 0.2400 |"));
    assert!(
        report.contains(
            &std::fs::read_to_string(&pipeline.path)
                .unwrap()
                .trim_end()
                .to_string()
        )
    );
    assert!(
        report.contains("| `synth/fold1/lambda_cls-0/synthetic.parquet` | `{\"generate\":7}` |")
    );
    assert!(report.contains("| evaluate | 23.5 | cpu | 1 | 2 | 2025-11-24 16:00 UTC |"));
    assert!(report.contains("| quality | not run |"));
    assert!(report.contains("| **total** | **123.5** |"));

    let sweep = run_dir.join("report/lambda_sweep.png");
    let losses = run_dir.join("report/loss_fold1.png");
    assert_eq!(outcome.figures, [sweep.clone(), losses.clone()]);
    assert!(is_png(&sweep) && is_png(&losses));
    assert!(report.contains("![UAR over lambda_cls](<report/lambda_sweep.png>)"));
    assert!(report.contains("(<report/loss_fold1.png>)"));
    // No temporary file is left beside them.
    let leftovers: Vec<_> = std::fs::read_dir(run_dir.join("report"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_run_with_results_only_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline(dir.path(), false, "");
    let run_dir = dir.path().join("run");
    let mut results = rows(Experiment::Within, Setup::Real, None, [55, 57]);
    results.extend(rows(
        Experiment::Within,
        Setup::RealSyn,
        cyclegan(0.0),
        [56, 56],
    ));
    // Made with the paper's lambda_cls [0, 2], not the pipeline's default sweep.
    write_results(&run_dir, &results, &EvalConfig::default());

    let outcome = write_report(&ReportInputs {
        run_dir: run_dir.clone(),
        pipeline,
    })
    .unwrap();
    let report = std::fs::read_to_string(&outcome.report).unwrap();
    assert!(report.contains("| real | – | 56.00 ± 1.00 | ± 1.00 | 59.48 ± 0.71 | -3.48 |"));
    // Without a quality table, syn-only classifiers or λcls 2, no finding can be checked, and
    // the report says so rather than guess.
    assert!(
        outcome
            .findings
            .iter()
            .all(|line| line.ends_with(": not measured in this run")),
        "{:?}",
        outcome.findings
    );
    assert!(report.contains("No quality table"));
    assert!(report.contains("run `emocycle quality --config"));
    assert!(report.contains("The pipeline has no cross-corpus set (`roles.cross_corpus`)"));
    assert!(report.contains("No loss logs below `gan/`"));
    assert!(report.contains("| features | not run |"));
    assert!(report.contains("| **total** | **0.0** |"));
    assert!(
        report.contains(
            "**Warning**: `eval/results.parquet` was made with other evaluation settings"
        )
    );
    assert!(report.contains("`evaluation.lambda_cls`"));
    assert!(report.contains("no stage records"));
    // The sweep plots the one CycleGAN point there is.
    assert!(is_png(&run_dir.join("report/lambda_sweep.png")));
    assert_eq!(outcome.notes.len(), 2, "{:?}", outcome.notes);
}

#[test]
fn without_results_the_error_names_the_file_and_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline(dir.path(), false, "");
    let run_dir = dir.path().join("run");
    let error = write_report(&ReportInputs {
        run_dir: run_dir.clone(),
        pipeline,
    })
    .unwrap_err();
    assert!(matches!(error, ReportError::MissingResults { .. }));
    let message = error.to_string();
    assert!(message.contains(&run_dir.join("eval/results.parquet").display().to_string()));
    assert!(
        message.contains("run `emocycle evaluate --config"),
        "{message}"
    );
    assert!(!run_dir.join("report.md").exists());
}
