//! The evaluation stage end to end on a tiny corpus made by the feature stage, plus the
//! leakage checks and determinism across worker counts.

use std::path::{Path, PathBuf};

use emocycle_artifact::{Metadata, read_parquet, write_parquet};
use emocycle_eval::{
    EvalConfig, EvalError, EvalInputs, Experiment, Setup, SetupParams, SyntheticScope,
    SyntheticSource, Znorm, run_evaluation, synthetic_path,
};
use emocycle_features::{
    CorpusSpec, FeatureLayout, FeaturesConfig, FoldScheme, LabelMap, NanPolicy, SplitSpec,
    UtteranceIds, run_features,
};
use emocycle_rng::SplitMix64;
use polars::prelude::*;

const WIDTH: usize = 6;
const CODES: [&str; 4] = ["ang", "hap", "neu", "sad"];
const NAMES: [&str; 4] = ["angry", "happy", "neutral", "sad"];

fn feature_names() -> Vec<String> {
    (0..WIDTH).map(|i| format!("f{i}")).collect()
}

fn noise(generator: &mut SplitMix64) -> f32 {
    ((generator.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 1.6
}

/// Feature `f` of emotion `e`: mean 1 where `f % 4 == e`, else 0, plus noise, in "units"
/// that differ per feature (so z-normalisation matters). Feature 5 is constant.
fn vector(emotion: usize, offset: f32, generator: &mut SplitMix64) -> Vec<f32> {
    (0..WIDTH)
        .map(|f| {
            if f == WIDTH - 1 {
                return 3.0;
            }
            let centre = if f % 4 == emotion { 1.0 } else { 0.0 };
            (centre + offset + noise(generator)) * (f as f32 + 1.0) * 10.0
        })
        .collect()
}

/// A labelled corpus (3 sessions x 4 emotions x 8 utterances) and a cross-corpus set
/// (4 emotions x 10 utterances), through the feature stage.
fn features(dir: &Path) -> FeatureLayout {
    let header = format!("name;frameTime;{}\n", feature_names().join(";"));
    let mut generator = SplitMix64::new(42);
    let mut labelled = header.clone();
    let mut labels = String::from("utterance_id,emotion,session\n");
    for session in 1..=3 {
        for (emotion, code) in CODES.iter().enumerate() {
            for take in 0..8 {
                let id = format!("S{session}_{code}_{take}");
                let values = vector(emotion, session as f32 * 0.1, &mut generator);
                let text: Vec<String> = values.iter().map(|v| format!("{v:e}")).collect();
                labelled.push_str(&format!("'{id}';0.000000;{}\n", text.join(";")));
                labels.push_str(&format!("{id},{code},Ses{session}\n"));
            }
        }
    }
    let mut cross = header;
    let mut cross_labels = String::from("utterance_id,emotion\n");
    for (emotion, name) in NAMES.iter().enumerate() {
        for take in 0..10 {
            let id = format!("X_{name}_{take}");
            let values: Vec<String> = vector(emotion, 0.5, &mut generator)
                .iter()
                .map(|v| format!("{:e}", v * 2.0))
                .collect();
            cross.push_str(&format!("'{id}';0.000000;{}\n", values.join(";")));
            cross_labels.push_str(&format!("{id},{name}\n"));
        }
    }
    let write = |name: &str, text: &str| -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let labelled_spec = CorpusSpec {
        name: "labelled".into(),
        features: write("labelled.csv", &labelled),
        labels: Some(write("labels.csv", &labels)),
        label_map: LabelMap::Iemocap,
        feature_names: None,
        folds: FoldScheme::LeaveOneSessionOut,
        split: None,
        nan_policy: NanPolicy::Error,
        utterance_ids: UtteranceIds::Stem,
    };
    let cross_spec = CorpusSpec {
        name: "cross".into(),
        features: write("cross.csv", &cross),
        labels: Some(write("cross_labels.csv", &cross_labels)),
        label_map: LabelMap::Names,
        folds: FoldScheme::None,
        split: Some(SplitSpec {
            dev_fraction: 0.3,
            seed: 1,
        }),
        ..labelled_spec.clone()
    };
    let layout = FeatureLayout::new(dir.join("features"));
    run_features(
        &FeaturesConfig {
            corpora: vec![labelled_spec, cross_spec],
        },
        &layout,
        16,
    )
    .unwrap();
    layout
}

/// A synthetic set as the synthetic stage writes it: 4 emotions x `per_class` rows, in a
/// min-max-like space unlike the real features' units.
fn write_synthetic(path: &Path, scope: &str, lambda_cls: f64, per_class: usize, seed: u64) {
    let mut generator = SplitMix64::new(seed);
    let rows = 4 * per_class;
    let mut ids = Vec::new();
    let mut sources = Vec::new();
    let mut emotions = Vec::new();
    let mut features = vec![Vec::new(); WIDTH];
    for (emotion, name) in NAMES.iter().enumerate() {
        for take in 0..per_class {
            ids.push(format!("src{take}_{name}"));
            sources.push(format!("src{take}"));
            emotions.push(name.to_string());
            for (f, value) in vector(emotion, 0.0, &mut generator).into_iter().enumerate() {
                features[f].push(value / 100.0 + 0.2);
            }
        }
    }
    let mut columns = vec![
        Column::new("synthetic_id".into(), ids),
        Column::new("source_utterance_id".into(), sources),
        Column::new("emotion".into(), emotions),
        Column::new("fold".into(), vec![scope.to_string(); rows]),
        Column::new("lambda_cls".into(), vec![lambda_cls; rows]),
        Column::new("seed".into(), vec![seed; rows]),
        Column::new("checkpoint_sha256".into(), vec!["0".repeat(64); rows]),
    ];
    for (name, values) in feature_names().iter().zip(features) {
        columns.push(Column::new(name.as_str().into(), values));
    }
    let mut frame = DataFrame::new(rows, columns).unwrap();
    let mut metadata = Metadata::for_stage("synth", "test-code");
    metadata.insert_json("emocycle.features", &feature_names());
    write_parquet(path, &mut frame, &metadata).unwrap();
}

fn write_manifest(gan_root: &Path, scope: &str, lambda_cls: f64, held_out: Option<&str>) {
    let dir = gan_root
        .join(scope)
        .join(format!("lambda_cls-{lambda_cls}"));
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = serde_json::json!({
        "stage": "train",
        "scope": scope,
        "held_out_session": held_out,
        "run": {"seed": 1},
    });
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
}

/// A run directory with features, synthetic sets for fold1..3 and all, and GAN manifests.
fn run_dir(dir: &Path) -> PathBuf {
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    features(&run);
    for (index, scope) in ["fold1", "fold2", "fold3", "all"].iter().enumerate() {
        for lambda_cls in [0.0, 2.0] {
            write_synthetic(
                &synthetic_path(
                    &run.join("synth"),
                    scope,
                    &SyntheticSource::cyclegan(lambda_cls),
                ),
                scope,
                lambda_cls,
                12,
                index as u64 * 10 + lambda_cls as u64,
            );
            let held_out = scope.strip_prefix("fold").map(|k| format!("Ses{k}"));
            write_manifest(&run.join("gan"), scope, lambda_cls, held_out.as_deref());
        }
    }
    run
}

fn tiny_setups() -> SetupParams {
    let mut params = SetupParams::within_paper();
    for (setup, hidden) in [(Setup::Real, 8), (Setup::Syn, 10), (Setup::RealSyn, 12)] {
        let p = match setup {
            Setup::Real => &mut params.real,
            Setup::Syn => &mut params.syn,
            Setup::RealSyn => &mut params.real_syn,
        };
        p.hidden = vec![hidden, hidden];
        p.batch_size = 16;
        p.learning_rate = 5e-3;
        p.epochs = 4;
    }
    params
}

fn tiny_config(parallel_jobs: usize) -> EvalConfig {
    EvalConfig {
        repeats: 2,
        seed: 7,
        within: tiny_setups(),
        cross: tiny_setups(),
        parallel_jobs,
        ..EvalConfig::default()
    }
}

fn inputs(run: &Path) -> EvalInputs {
    EvalInputs::for_run(run, "labelled", Some("cross"))
}

#[test]
fn tables_results_and_figures_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_dir(dir.path());
    let mut calls = 0;
    let mut last_total = 0;
    let report = run_evaluation(&inputs(&run), &tiny_config(2), tch::Device::Cpu, &mut |p| {
        calls += 1;
        last_total = p.total;
        assert!(p.done <= p.total);
    })
    .unwrap();
    // Per scope: real once + (syn, real+syn) x 2 lambdas = 5 classifiers, x 2 repeats;
    // 3 folds + the cross-corpus scope.
    assert_eq!(calls, 40);
    assert_eq!(last_total, 40);
    // Rows: 3 folds x 10 within, plus 10 x 2 cross-corpus parts.
    assert_eq!(report.results.len(), 50);
    let within: Vec<_> = report
        .results
        .iter()
        .filter(|r| r.experiment == Experiment::Within)
        .collect();
    assert_eq!(within.len(), 30);
    // Every labelled utterance is tested exactly once per (setup, lambda, repeat).
    let tested: u64 = within
        .iter()
        .filter(|r| r.setup == Setup::Real && r.repeat == 0)
        .map(|r| r.confusion.total())
        .sum();
    assert_eq!(tested, 3 * 4 * 8);
    // The per-fold default reads fold<k>'s synthetic set for fold k.
    for result in &within {
        if result.setup.uses_synthetic() {
            assert_eq!(
                result.synthetic_scope.as_deref(),
                Some(format!("fold{}", result.fold.unwrap()).as_str())
            );
        }
    }
    // The classes are separable: real training does far better than chance.
    let real = report
        .summaries
        .iter()
        .find(|s| s.experiment == Experiment::Within && s.setup == Setup::Real)
        .unwrap();
    assert!(real.uar_mean > 0.5, "{}", real.uar_mean);
    assert_eq!(real.uar_per_repeat.len(), 2);
    assert_eq!(real.folds, 3);

    let eval = run.join("eval");
    let (frame, metadata) = read_parquet(&eval.join("results.parquet")).unwrap();
    assert_eq!(frame.height(), 50);
    let names: Vec<String> = frame
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    for expected in [
        "experiment",
        "fold",
        "test_session",
        "setup",
        "lambda_cls",
        "synthetic_scope",
        "repeat",
        "seed",
        "uar",
        "accuracy",
        "recall_angry",
        "recall_sad",
        "cm_angry_angry",
        "cm_sad_neutral",
    ] {
        assert!(
            names.contains(&expected.to_string()),
            "{expected} in {names:?}"
        );
    }
    assert_eq!(names.iter().filter(|n| n.starts_with("cm_")).count(), 16);
    assert_eq!(metadata.get("emocycle.stage"), Some("eval"));
    assert!(
        metadata
            .get("emocycle.inputs")
            .unwrap()
            .contains("synthetic.parquet")
    );
    assert!(
        metadata
            .get("emocycle.inputs")
            .unwrap()
            .contains("manifest.json")
    );
    let seeds: Vec<u64> = frame
        .column("seed")
        .unwrap()
        .u64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    assert!(seeds.iter().all(|&s| s == 7 || s == 8));

    let tables = std::fs::read_to_string(eval.join("tables.md")).unwrap();
    assert!(tables.contains("Table 2"), "{tables}");
    assert!(tables.contains("Table 3"), "{tables}");
    assert!(tables.contains("59.48 ± 0.71"));
    assert!(tables.contains("46.52 ± 0.43"));
    assert!(tables.contains("dev part"));
    for name in [
        "confusion_within_real.png",
        "confusion_within_syn_lambda_cls-0.png",
        "confusion_within_real+syn_lambda_cls-2.png",
        "confusion_cross-test_real+syn_lambda_cls-0.png",
        "confusion_cross-dev_syn_lambda_cls-2.png",
    ] {
        let bytes = std::fs::read(eval.join(name)).unwrap();
        assert_eq!(&bytes[1..4], b"PNG", "{name}");
        assert!(tables.contains(name), "{name} linked from tables.md");
    }
    // Nothing temporary is left behind.
    assert!(
        std::fs::read_dir(&eval)
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().starts_with('.'))
    );
}

#[test]
fn same_seed_same_numbers_whatever_the_worker_count() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_dir(dir.path());
    let fingerprint = |config: &EvalConfig| {
        // Without earlier results every classifier trains again.
        let _ = std::fs::remove_file(run.join("eval/results.parquet"));
        let report = run_evaluation(&inputs(&run), config, tch::Device::Cpu, &mut |_| {}).unwrap();
        assert_eq!(report.reused, 0);
        report
            .results
            .iter()
            .map(|r| {
                (
                    r.experiment,
                    r.fold,
                    r.setup,
                    r.lambda_cls().map(f64::to_bits),
                    r.repeat,
                    r.confusion.counts,
                    r.final_loss.to_bits(),
                )
            })
            .collect::<Vec<_>>()
    };
    let sequential = fingerprint(&tiny_config(1));
    assert_eq!(sequential, fingerprint(&tiny_config(1)));
    assert_eq!(sequential, fingerprint(&tiny_config(2)));
    assert_eq!(sequential, fingerprint(&tiny_config(3)));
    let other_seed = fingerprint(&EvalConfig {
        seed: 8,
        ..tiny_config(2)
    });
    assert_ne!(sequential, other_seed);
}

#[test]
fn unchanged_runs_are_reused_and_only_what_changed_trains_again() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_dir(dir.path());
    let config = tiny_config(2);
    let key = |r: &emocycle_eval::RunResult| {
        (
            r.experiment,
            r.fold,
            r.setup,
            r.lambda_cls().map(f64::to_bits),
            r.repeat,
            r.confusion.counts,
        )
    };
    let first = run_evaluation(&inputs(&run), &config, tch::Device::Cpu, &mut |_| {}).unwrap();
    assert_eq!((first.trained, first.reused), (40, 0));
    let mut reused_progress = 0;
    let again = run_evaluation(&inputs(&run), &config, tch::Device::Cpu, &mut |p| {
        reused_progress += usize::from(p.reused);
    })
    .unwrap();
    assert_eq!((again.trained, again.reused, reused_progress), (0, 40, 40));
    assert_eq!(
        first.results.iter().map(key).collect::<Vec<_>>(),
        again.results.iter().map(key).collect::<Vec<_>>()
    );
    // fold2's lambda_cls=2 set changes: its syn and real+syn runs (2 setups x 2 repeats) train
    // again, nothing else.
    let path = synthetic_path(&run.join("synth"), "fold2", &SyntheticSource::cyclegan(2.0));
    write_synthetic(&path, "fold2", 2.0, 12, 99);
    let changed = run_evaluation(&inputs(&run), &config, tch::Device::Cpu, &mut |_| {}).unwrap();
    assert_eq!((changed.trained, changed.reused), (4, 36));
    assert!(changed.results.iter().all(|r| r.run_key.len() == 64));
    // Another hyper-parameter of the real setup: only the real runs (4 scopes x 2) train.
    let mut other = config.clone();
    other.within.real.epochs += 1;
    other.cross.real.epochs += 1;
    let real_changed =
        run_evaluation(&inputs(&run), &other, tch::Device::Cpu, &mut |_| {}).unwrap();
    assert_eq!((real_changed.trained, real_changed.reused), (8, 32));
}

/// A baseline's set as the augmentation stage writes it: `method` column, held-out session in
/// the footer, `per_class[e]` rows of emotion e.
fn write_baseline(
    path: &Path,
    scope: &str,
    name: &str,
    per_class: [usize; 4],
    held_out: Option<&str>,
) {
    let mut generator = SplitMix64::new(5);
    let mut ids = Vec::new();
    let mut emotions = Vec::new();
    let mut features = vec![Vec::new(); WIDTH];
    for (emotion, label) in NAMES.iter().enumerate() {
        for take in 0..per_class[emotion] {
            ids.push(format!("{name}-{label}-{take}"));
            emotions.push(label.to_string());
            for (f, value) in vector(emotion, 0.0, &mut generator).into_iter().enumerate() {
                features[f].push(value);
            }
        }
    }
    let rows = ids.len();
    let mut columns = vec![
        Column::new("synthetic_id".into(), ids),
        Column::new("emotion".into(), emotions),
        Column::new("fold".into(), vec![scope.to_string(); rows]),
        Column::new("method".into(), vec![name.to_string(); rows]),
    ];
    for (feature, values) in feature_names().iter().zip(features) {
        columns.push(Column::new(feature.as_str().into(), values));
    }
    let mut frame = DataFrame::new(rows, columns).unwrap();
    let mut metadata = Metadata::for_stage("augment", "test-code");
    metadata.insert_json("emocycle.features", &feature_names());
    if let Some(session) = held_out {
        metadata.insert("emocycle.held_out_session", session);
    }
    write_parquet(path, &mut frame, &metadata).unwrap();
}

#[test]
fn baselines_are_evaluated_beside_the_cyclegan_and_incomplete_sets_skip_syn() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_dir(dir.path());
    for scope in ["fold1", "fold2", "fold3", "all"] {
        let held_out = scope.strip_prefix("fold").map(|k| format!("Ses{k}"));
        let synth = run.join("synth");
        write_baseline(
            &synthetic_path(&synth, scope, &SyntheticSource::baseline("smote")),
            scope,
            "smote",
            [6, 6, 6, 6],
            held_out.as_deref(),
        );
        // Balanced top-up: the largest class gets no synthetic rows.
        write_baseline(
            &synthetic_path(
                &synth,
                scope,
                &SyntheticSource::baseline("random-oversampling"),
            ),
            scope,
            "random-oversampling",
            [3, 0, 2, 1],
            held_out.as_deref(),
        );
    }
    let config = EvalConfig {
        lambda_cls: vec![2.0],
        baselines: vec!["smote".into(), "random-oversampling".into()],
        repeats: 1,
        ..tiny_config(2)
    };
    let report = run_evaluation(&inputs(&run), &config, tch::Device::Cpu, &mut |_| {}).unwrap();
    // Per scope: real + cyclegan (syn, real+syn) + smote (syn, real+syn) + oversampling
    // (real+syn only) = 6 classifiers, 4 scopes.
    assert_eq!(report.trained, 24);
    assert_eq!(report.skipped.len(), 4, "{:?}", report.skipped);
    assert!(
        report.skipped[0].contains("no happy"),
        "{:?}",
        report.skipped
    );
    let methods: std::collections::BTreeSet<String> = report
        .summaries
        .iter()
        .filter_map(|s| s.source.as_ref().map(|s| s.method().to_string()))
        .collect();
    assert_eq!(
        methods.into_iter().collect::<Vec<_>>(),
        ["cyclegan", "random-oversampling", "smote"]
    );
    let tables = std::fs::read_to_string(run.join("eval/tables.md")).unwrap();
    assert!(tables.contains("| real+syn | smote | – |"), "{tables}");
    assert!(tables.contains("Setups left out"), "{tables}");
    assert!(run.join("eval/confusion_within_syn_smote.png").is_file());
    let (frame, _) = read_parquet(&run.join("eval/results.parquet")).unwrap();
    let method = frame.column("method").unwrap().str().unwrap().clone();
    assert!(method.iter().any(|m| m == Some("smote")));

    // A fold's baseline made with the test session inside is refused.
    write_baseline(
        &synthetic_path(
            &run.join("synth"),
            "fold2",
            &SyntheticSource::baseline("smote"),
        ),
        "fold2",
        "smote",
        [6, 6, 6, 6],
        None,
    );
    let result = run_evaluation(&inputs(&run), &config, tch::Device::Cpu, &mut |_| {});
    expect_leakage(result, "fold2/smote/synthetic.parquet", "Ses2");
}

fn expect_leakage(result: Result<emocycle_eval::EvalReport, EvalError>, file: &str, what: &str) {
    match result {
        Err(error @ EvalError::Leakage { .. }) => {
            let message = error.to_string();
            assert!(message.contains(file), "{message}");
            assert!(message.contains(what), "{message}");
        }
        Err(other) => panic!("expected a leakage error, got {other}"),
        Ok(_) => panic!("expected a leakage error, got results"),
    }
}

#[test]
fn a_fold_file_that_mixes_sessions_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_dir(dir.path());
    // Move one utterance of Ses1 (fold 1's test session) to fold 2: fold 1 would then train on
    // a Ses1 row and test on Ses1.
    let folds_path = run.join("features/labelled.folds.parquet");
    let (mut folds, metadata) = read_parquet(&folds_path).unwrap();
    let ids: Vec<String> = folds
        .column("utterance_id")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|id| id.unwrap().to_string())
        .collect();
    let mut assignment: Vec<u32> = folds
        .column("fold")
        .unwrap()
        .u32()
        .unwrap()
        .into_no_null_iter()
        .collect();
    let victim = ids.iter().position(|id| id.starts_with("S1_")).unwrap();
    assert_eq!(assignment[victim], 1);
    assignment[victim] = 2;
    folds
        .replace("fold", Column::new("fold".into(), assignment))
        .unwrap();
    write_parquet(&folds_path, &mut folds, &metadata).unwrap();

    let result = run_evaluation(
        &inputs(&run),
        &tiny_config(1),
        tch::Device::Cpu,
        &mut |_| {},
    );
    expect_leakage(result, "labelled.folds.parquet", "Ses1");
    assert!(!run.join("eval/results.parquet").exists());
}

#[test]
fn a_synthetic_set_from_another_scope_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_dir(dir.path());
    // fold2's file holds vectors from the all-sessions GAN, which saw fold 2's test session.
    let path = synthetic_path(&run.join("synth"), "fold2", &SyntheticSource::cyclegan(2.0));
    write_synthetic(&path, "all", 2.0, 12, 3);
    let result = run_evaluation(
        &inputs(&run),
        &tiny_config(1),
        tch::Device::Cpu,
        &mut |_| {},
    );
    expect_leakage(result, "fold2/lambda_cls-2/synthetic.parquet", "\"all\"");
}

#[test]
fn a_gan_manifest_that_saw_the_test_session_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_dir(dir.path());
    write_manifest(&run.join("gan"), "fold3", 0.0, Some("Ses1"));
    let result = run_evaluation(
        &inputs(&run),
        &tiny_config(1),
        tch::Device::Cpu,
        &mut |_| {},
    );
    expect_leakage(result, "fold3/lambda_cls-0/manifest.json", "Ses3");
}

#[test]
fn all_sessions_scope_and_train_statistics_run_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_dir(dir.path());
    // Make every per-fold file unusable: the all-sessions option must not read them.
    for k in 1..=3 {
        std::fs::remove_file(synthetic_path(
            &run.join("synth"),
            &format!("fold{k}"),
            &SyntheticSource::cyclegan(0.0),
        ))
        .unwrap();
    }
    let mut inputs = inputs(&run);
    inputs.synthetic_minmax = Some(Box::new({
        let layout = FeatureLayout::new(run.join("features"));
        move |scope: &str| {
            let subset = if scope == "all" {
                "all".to_string()
            } else {
                format!("{scope}-train")
            };
            layout.normalisation("labelled", &subset)
        }
    }));
    let config = EvalConfig {
        synthetic_scope: SyntheticScope::AllSessions,
        znorm: Znorm::TrainStatistics,
        setups: vec![Setup::RealSyn],
        lambda_cls: vec![0.0],
        repeats: 1,
        ..tiny_config(2)
    };
    let report = run_evaluation(&inputs, &config, tch::Device::Cpu, &mut |_| {}).unwrap();
    assert_eq!(report.results.len(), 3 + 2);
    assert!(
        report
            .results
            .iter()
            .all(|r| r.synthetic_scope.as_deref() == Some("all") && r.uar().is_finite())
    );
    let tables = std::fs::read_to_string(run.join("eval/tables.md")).unwrap();
    assert!(tables.contains("`all-sessions`") && tables.contains("`train-statistics`"));
}

#[test]
fn an_utterance_without_a_fold_is_an_input_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_dir(dir.path());
    let folds_path = run.join("features/labelled.folds.parquet");
    let (folds, metadata) = read_parquet(&folds_path).unwrap();
    let mut shorter = folds.slice(1, folds.height() - 1);
    write_parquet(&folds_path, &mut shorter, &metadata).unwrap();
    let error = run_evaluation(
        &inputs(&run),
        &tiny_config(1),
        tch::Device::Cpu,
        &mut |_| {},
    )
    .err()
    .unwrap();
    assert!(matches!(error, EvalError::Input { .. }), "{error}");
    assert!(error.to_string().contains("has no fold"), "{error}");
}

#[test]
fn cross_corpus_only_without_a_fold_file() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_dir(dir.path());
    std::fs::remove_file(run.join("features/labelled.folds.parquet")).unwrap();
    let config = EvalConfig {
        within_corpus: false,
        setups: vec![Setup::Real, Setup::Syn],
        ..tiny_config(2)
    };
    let report = run_evaluation(&inputs(&run), &config, tch::Device::Cpu, &mut |_| {}).unwrap();
    // (real + syn x 2 lambdas) x 2 repeats x (test, dev).
    assert_eq!(report.results.len(), 12);
    let test_rows: u64 = report
        .results
        .iter()
        .filter(|r| r.experiment == Experiment::CrossTest)
        .map(|r| r.confusion.total())
        .next()
        .unwrap();
    // 70% of 10 per class stays in test.
    assert_eq!(test_rows, 28);
}
