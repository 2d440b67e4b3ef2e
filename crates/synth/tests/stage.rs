//! The synthetic-data stage end to end on a tiny corpus: a GAN trained in well under a second,
//! then generation (schema, determinism, traceability, the raw option) and the quality report
//! with its figures.

use std::collections::BTreeSet;
use std::path::PathBuf;

use emocycle_artifact::{read_parquet, sha256_file, write_parquet};
use emocycle_features::testing::tiny_corpora;
use emocycle_features::{Emotion, FeatureLayout, FeatureMatrix, Normaliser, Scaling, run_features};
use emocycle_gan::{
    CycleGanModel, GanConfig, ModelLayout, Scope, ScopeDirs, StageInputs, StageRun,
    load_scope_data, run_pretrain, run_train,
};
use emocycle_synth::{
    CYCLEGAN_METHOD, Comparison, FeatureSpace, GenerateRequest, QualitySet, SynthConfig,
    SynthError, SynthLayout, generate_set, quality_report,
};

fn inputs(layout: &FeatureLayout, scope: &Scope) -> StageInputs {
    let subset = match scope {
        Scope::All => "all".to_string(),
        Scope::Fold(k) => format!("fold{k}-train"),
    };
    StageInputs {
        source: layout.corpus("source"),
        source_normalisation: layout.normalisation("source", "all"),
        target: layout.corpus("labelled"),
        target_folds: layout.folds("labelled"),
        target_normalisation: layout.normalisation("labelled", &subset),
    }
}

fn gan_config(lambda_cls: f64) -> GanConfig {
    GanConfig {
        generator_hidden: vec![8, 4, 8],
        discriminator_hidden: vec![8, 8],
        classifier_hidden: vec![4, 4],
        batch_size: 2,
        pretrain_epochs: 3,
        train_epochs: 2,
        checkpoint_every: 1,
        lambda_cls,
        seed: 5,
        ..GanConfig::default()
    }
}

/// A run directory with features and trained models for scope `all` (lambda_cls 0 and 2) and
/// scope `fold1` (lambda_cls 0).
struct Run {
    dir: tempfile::TempDir,
    layout: FeatureLayout,
}

impl Run {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let layout = FeatureLayout::new(dir.path().join("features"));
        run_features(&tiny_corpora(dir.path()), &layout, 16).unwrap();
        for (scope, lambdas) in [(Scope::All, vec![0.0, 2.0]), (Scope::Fold(1), vec![0.0])] {
            let dirs = ScopeDirs::new(&dir.path().join("gan"), &scope);
            let inputs = inputs(&layout, &scope);
            run_pretrain(
                &gan_config(0.0),
                &inputs,
                &scope,
                &dirs,
                tch::Device::Cpu,
                StageRun::default(),
                &mut |_| {},
            )
            .unwrap();
            for lambda_cls in lambdas {
                run_train(
                    &gan_config(lambda_cls),
                    &inputs,
                    &scope,
                    &dirs,
                    tch::Device::Cpu,
                    StageRun::default(),
                    &mut |_| {},
                )
                .unwrap();
            }
        }
        Self { dir, layout }
    }

    fn synth(&self) -> SynthLayout {
        SynthLayout::new(self.dir.path().join("synth"))
    }

    fn request(&self, scope: Scope, lambda_cls: f64, output: PathBuf) -> GenerateRequest {
        let inputs = inputs(&self.layout, &scope);
        GenerateRequest {
            source: inputs.source.clone(),
            model: ScopeDirs::new(&self.dir.path().join("gan"), &scope).model(lambda_cls),
            inputs,
            gan: gan_config(lambda_cls),
            scope,
            lambda_cls,
            seed: 9,
            output,
        }
    }
}

fn strings(frame: &polars::prelude::DataFrame, column: &str) -> Vec<String> {
    frame
        .column(column)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|value| value.unwrap().to_string())
        .collect()
}

fn figure_config() -> SynthConfig {
    SynthConfig {
        figure_features: vec!["f0".into(), "f3".into(), "f5".into()],
        ..SynthConfig::default()
    }
}

#[test]
fn generation_is_traceable_deterministic_and_exactly_g_of_the_source() {
    let run = Run::new();
    let synth = run.synth();
    let output = synth.synthetic(&Scope::All, 2.0, 0);
    assert!(output.ends_with("synth/all/lambda_cls-2/synthetic.parquet"));
    let request = run.request(Scope::All, 2.0, output.clone());
    let config = SynthConfig {
        batch_rows: 5,
        ..SynthConfig::default()
    };
    let mut reports = Vec::new();
    let report = generate_set(&request, &config, tch::Device::Cpu, &mut |p| {
        reports.push(p)
    })
    .unwrap();
    assert_eq!(
        (report.rows, report.rows_per_emotion, report.features),
        (48, 12, 6)
    );
    // 12 rows per emotion in batches of 5: 3 batches per emotion, the last one ends at 48.
    assert_eq!(reports.len(), 12);
    assert_eq!(
        reports.last().map(|p| (p.rows_done, p.rows_total)),
        Some((48, 48))
    );

    let (frame, metadata) = read_parquet(&output).unwrap();
    let columns: Vec<String> = frame
        .get_column_names()
        .iter()
        .map(|name| name.to_string())
        .collect();
    assert_eq!(
        &columns[..7],
        [
            "synthetic_id",
            "source_utterance_id",
            "emotion",
            "fold",
            "lambda_cls",
            "seed",
            "checkpoint_sha256"
        ]
    );
    assert_eq!(&columns[7..], ["f0", "f1", "f2", "f3", "f4", "f5"]);
    assert_eq!(metadata.get("emocycle.stage"), Some("generate"));
    assert_eq!(metadata.get("emocycle.feature_space"), Some("minmax"));
    assert!(
        metadata
            .get("emocycle.inputs")
            .unwrap()
            .contains("model.safetensors")
    );
    let model_sha = sha256_file(&request.model).unwrap();
    assert_eq!(report.checkpoint_sha256, model_sha);
    assert!(
        strings(&frame, "checkpoint_sha256")
            .iter()
            .all(|s| *s == model_sha)
    );
    assert!(strings(&frame, "fold").iter().all(|s| s == "all"));
    let seeds: Vec<u64> = frame
        .column("seed")
        .unwrap()
        .u64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    assert!(seeds.iter().all(|&seed| seed == 9));
    let lambdas: Vec<f64> = frame
        .column("lambda_cls")
        .unwrap()
        .f64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    assert!(lambdas.iter().all(|&l| l == 2.0));

    // Every row traces back to a source utterance, with its emotion in the id.
    let source = FeatureMatrix::read(&request.source).unwrap();
    let source_ids: BTreeSet<&String> = source.ids.iter().collect();
    let emotions = strings(&frame, "emotion");
    for ((synthetic_id, source_id), emotion) in strings(&frame, "synthetic_id")
        .iter()
        .zip(strings(&frame, "source_utterance_id"))
        .zip(&emotions)
    {
        assert!(source_ids.contains(&source_id), "{source_id}");
        assert_eq!(*synthetic_id, format!("{source_id}@{emotion}"));
    }
    assert_eq!(&emotions[..12], vec!["angry"; 12].as_slice());
    assert_eq!(&emotions[36..], vec!["sad"; 12].as_slice());

    // The feature stage's reader reads the set.
    let matrix = FeatureMatrix::read(&output).unwrap();
    assert_eq!(matrix.rows(), 48);
    assert_eq!(matrix.emotions[12], Some(Emotion::Happy));

    // The values are G_i applied to the min-max source with dropout off.
    let data = load_scope_data(&request.inputs, &Scope::All).unwrap();
    let model = CycleGanModel::load(
        &request.model,
        &request.gan,
        ModelLayout::Auto,
        tch::Device::Cpu,
    )
    .unwrap();
    for emotion in Emotion::ALL {
        let expected = model.generate(emotion.index(), &data.data.source).unwrap();
        let expected = Vec::<f32>::try_from(expected.contiguous().view([-1])).unwrap();
        let offset = emotion.index() * 12 * 6;
        // Batches of 5 rows against one of 12: BLAS may block the sums differently, so the
        // last bit can differ.
        for (got, want) in matrix.values[offset..offset + 72].iter().zip(&expected) {
            assert!(
                (got - want).abs() <= 1e-6 * want.abs().max(1.0),
                "{got} vs {want}"
            );
        }
    }

    // Same inputs, same bytes; another batch size only regroups rows.
    let again = run.dir.path().join("again.parquet");
    generate_set(
        &GenerateRequest {
            output: again.clone(),
            ..request.clone()
        },
        &config,
        tch::Device::Cpu,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(
        std::fs::read(&output).unwrap(),
        std::fs::read(&again).unwrap()
    );
}

#[test]
fn a_per_emotion_count_takes_the_same_seeded_rows_for_every_emotion() {
    let run = Run::new();
    let output = run.dir.path().join("five.parquet");
    let config = SynthConfig {
        per_emotion: Some(5),
        ..SynthConfig::default()
    };
    let request = run.request(Scope::Fold(1), 0.0, output.clone());
    let report = generate_set(&request, &config, tch::Device::Cpu, &mut |_| {}).unwrap();
    assert_eq!(report.rows, 20);
    let (frame, _) = read_parquet(&output).unwrap();
    let sources = strings(&frame, "source_utterance_id");
    for emotion in 1..4 {
        assert_eq!(sources[..5], sources[emotion * 5..(emotion + 1) * 5]);
    }
    assert!(strings(&frame, "fold").iter().all(|s| s == "fold1"));
    assert_eq!(
        sources[..5],
        emocycle_synth::selected_rows(12, Some(5), 9)
            .iter()
            .map(|row| format!("src{row}"))
            .collect::<Vec<_>>()
    );
}

#[test]
fn the_raw_option_inverts_the_target_normalisation() {
    let run = Run::new();
    let minmax_path = run.dir.path().join("minmax.parquet");
    let raw_path = run.dir.path().join("raw.parquet");
    let scope = Scope::Fold(1);
    generate_set(
        &run.request(scope.clone(), 0.0, minmax_path.clone()),
        &SynthConfig::default(),
        tch::Device::Cpu,
        &mut |_| {},
    )
    .unwrap();
    let raw_config = SynthConfig {
        feature_space: FeatureSpace::Raw,
        ..SynthConfig::default()
    };
    let request = run.request(scope, 0.0, raw_path.clone());
    generate_set(&request, &raw_config, tch::Device::Cpu, &mut |_| {}).unwrap();
    let (_, metadata) = read_parquet(&raw_path).unwrap();
    assert_eq!(metadata.get("emocycle.feature_space"), Some("raw"));
    assert!(
        metadata
            .get("emocycle.inputs")
            .unwrap()
            .contains("labelled.fold1-train")
    );
    let minmax = FeatureMatrix::read(&minmax_path).unwrap();
    let raw = FeatureMatrix::read(&raw_path).unwrap();
    let norm = Normaliser::read(&request.inputs.target_normalisation).unwrap();
    let mut expected = minmax.values.clone();
    norm.inverse_rows(&mut expected, Scaling::MinMax);
    assert_eq!(raw.values, expected);
    let mut back = raw.values.clone();
    norm.transform_rows(&mut back, Scaling::MinMax);
    for (b, m) in back.iter().zip(&minmax.values) {
        assert!((b - m).abs() < 1e-5, "{b} vs {m}");
    }
}

#[test]
fn bad_requests_name_what_is_wrong() {
    let run = Run::new();
    let output = run.dir.path().join("x.parquet");
    let mut request = run.request(Scope::All, 2.0, output.clone());
    request.gan.lambda_cls = 0.0;
    let error = generate_set(
        &request,
        &SynthConfig::default(),
        tch::Device::Cpu,
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(error, SynthError::InvalidConfig(_)), "{error}");
    // A fold's statistics where the scope is `all`: refused for raw output, naming the file.
    let mut request = run.request(Scope::All, 2.0, output.clone());
    request.inputs.target_normalisation = run.layout.normalisation("labelled", "fold1-train");
    let raw = SynthConfig {
        feature_space: FeatureSpace::Raw,
        ..SynthConfig::default()
    };
    let error = generate_set(&request, &raw, tch::Device::Cpu, &mut |_| {}).unwrap_err();
    assert!(
        error.to_string().contains("labelled.fold1-train"),
        "{error}"
    );
    assert!(!output.exists());
}

#[test]
fn the_quality_report_measures_every_set_and_draws_figure_2() {
    let run = Run::new();
    let synth = run.synth();
    let mut sets = Vec::new();
    for (scope, lambda_cls, space) in [
        (Scope::Fold(1), 0.0, FeatureSpace::MinMax),
        (Scope::All, 0.0, FeatureSpace::Raw),
        (Scope::All, 2.0, FeatureSpace::MinMax),
    ] {
        let output = synth.synthetic(&scope, lambda_cls, 0);
        let config = SynthConfig {
            feature_space: space,
            ..figure_config()
        };
        generate_set(
            &run.request(scope.clone(), lambda_cls, output.clone()),
            &config,
            tch::Device::Cpu,
            &mut |_| {},
        )
        .unwrap();
        sets.push(QualitySet {
            inputs: inputs(&run.layout, &scope),
            scope,
            method: CYCLEGAN_METHOD.into(),
            lambda_cls: Some(lambda_cls),
            gan_seed: Some(0),
            synthetic: output,
        });
    }
    let mut messages = Vec::new();
    let report = quality_report(
        &sets,
        &synth,
        &figure_config(),
        tch::Device::Cpu,
        &mut |m| messages.push(m.to_string()),
    )
    .unwrap();
    // 3 sets x 2 comparisons x (4 emotions + pooled), and the reference halves of the target:
    // in `all` (9 rows per emotion: halves of 5 and 4) every group for each of its 2 sets; in
    // fold1 (6 rows per emotion: halves of 3, no more than k = 3) only the pooled one.
    assert_eq!(report.rows.len(), 30 + 2 * 5 + 1);
    let halves: Vec<_> = report
        .rows
        .iter()
        .filter(|r| r.comparison == Comparison::TargetHalves && r.scope == "fold1")
        .collect();
    assert_eq!(halves.len(), 1, "{halves:?}");
    assert_eq!(
        (
            halves[0].emotion.as_str(),
            halves[0].target_rows,
            halves[0].other_rows
        ),
        ("pooled", 12, 12)
    );
    for row in &report.rows {
        assert!(
            row.dcr_median.is_finite() && row.dcr_median >= 0.0,
            "{row:?}"
        );
        assert!((0.0..=1.0).contains(&row.copied_share), "{row:?}");
    }
    assert_eq!(messages.len(), 5);
    for row in &report.rows {
        for value in [
            row.mean_abs_diff,
            row.std_abs_diff,
            row.frechet_distance,
            row.c2st_accuracy,
            row.knn_precision,
            row.knn_recall,
        ] {
            assert!(value.is_finite() && value >= 0.0, "{row:?}");
        }
        assert!(row.c2st_accuracy <= 1.0 && row.knn_precision <= 1.0 && row.knn_recall <= 1.0);
    }
    let pooled_source = report
        .rows
        .iter()
        .find(|r| {
            r.scope == "all" && r.comparison == Comparison::TargetSource && r.emotion == "pooled"
        })
        .unwrap();
    assert_eq!(
        (pooled_source.target_rows, pooled_source.other_rows),
        (36, 12)
    );
    let angry_fold = report
        .rows
        .iter()
        .find(|r| {
            r.scope == "fold1"
                && r.comparison == Comparison::TargetSynthetic
                && r.emotion == "angry"
        })
        .unwrap();
    // fold1 trains on two sessions: 6 angry target rows; 12 synthetic angry rows.
    assert_eq!((angry_fold.target_rows, angry_fold.other_rows), (6, 12));
    assert_eq!(angry_fold.sample_rows, 6);

    // The raw-unit set is measured in min-max space: it scores as its min-max twin would.
    let minmax_twin = run.dir.path().join("twin.parquet");
    generate_set(
        &run.request(Scope::All, 0.0, minmax_twin.clone()),
        &figure_config(),
        tch::Device::Cpu,
        &mut |_| {},
    )
    .unwrap();
    let twin_report = quality_report(
        &[QualitySet {
            scope: Scope::All,
            method: CYCLEGAN_METHOD.into(),
            lambda_cls: Some(0.0),
            gan_seed: Some(0),
            synthetic: minmax_twin.clone(),
            inputs: inputs(&run.layout, &Scope::All),
        }],
        &SynthLayout::new(run.dir.path().join("twin")),
        &figure_config(),
        tch::Device::Cpu,
        &mut |_| {},
    )
    .unwrap();
    let raw_rows: Vec<_> = report
        .rows
        .iter()
        .filter(|r| r.scope == "all" && r.lambda_cls == Some(0.0))
        .collect();
    assert_eq!(raw_rows.len(), twin_report.rows.len());
    for (a, b) in raw_rows.iter().zip(&twin_report.rows) {
        assert!(
            (a.mean_abs_diff - b.mean_abs_diff).abs() < 1e-5,
            "{a:?} vs {b:?}"
        );
    }

    // A baseline's set that tops classes up leaves the largest one without rows: its rows are
    // measured, the missing class has no row, and the set is not drawn in Figure 2.
    let (twin, twin_metadata) = read_parquet(&minmax_twin).unwrap();
    let keep: polars::prelude::BooleanChunked = twin
        .column("emotion")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|emotion| emotion != Some("happy"))
        .collect();
    let mut no_happy = twin.filter(&keep).unwrap();
    let balance_set = run.dir.path().join("balance.parquet");
    write_parquet(&balance_set, &mut no_happy, &twin_metadata).unwrap();
    let balance_report = quality_report(
        &[QualitySet {
            scope: Scope::All,
            method: "random-oversampling".into(),
            lambda_cls: None,
            gan_seed: None,
            synthetic: balance_set,
            inputs: inputs(&run.layout, &Scope::All),
        }],
        &SynthLayout::new(run.dir.path().join("balance")),
        &figure_config(),
        tch::Device::Cpu,
        &mut |_| {},
    )
    .unwrap();
    let synthetic_rows: Vec<_> = balance_report
        .rows
        .iter()
        .filter(|r| r.comparison == Comparison::TargetSynthetic)
        .collect();
    assert_eq!(synthetic_rows.len(), 4, "{synthetic_rows:?}");
    assert!(synthetic_rows.iter().all(|r| r.emotion != "happy"
        && r.method == "random-oversampling"
        && r.lambda_cls.is_none()));
    let markdown = std::fs::read_to_string(run.dir.path().join("balance/quality.md")).unwrap();
    assert!(markdown.contains("syn(random-oversampling)"), "{markdown}");

    let (frame, metadata) = read_parquet(&synth.quality()).unwrap();
    assert_eq!(frame.height(), 41);
    assert!(frame.column("dcr_ratio").is_ok() && frame.column("copied_share").is_ok());
    assert!(frame.column("method").is_ok());
    assert_eq!(metadata.get("emocycle.stage"), Some("quality"));
    let markdown = std::fs::read_to_string(synth.quality_markdown()).unwrap();
    assert!(markdown.contains("0.084") && markdown.contains("0.013") && markdown.contains("0.049"));
    assert!(markdown.contains("| fold1 |") && markdown.contains("syn(lcls=2)"));
    for path in std::iter::once(synth.figure()).chain(Emotion::ALL.map(|e| synth.figure_for(e))) {
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG", "{}", path.display());
        assert!(
            bytes.len() > 2000,
            "{}: {} bytes",
            path.display(),
            bytes.len()
        );
        assert!(report.outputs.contains(&path));
    }

    let typo = SynthConfig {
        figure_features: vec!["f0".into(), "pcm_loudness_sma_amean".into()],
        ..SynthConfig::default()
    };
    let error = quality_report(&sets, &synth, &typo, tch::Device::Cpu, &mut |_| {}).unwrap_err();
    assert!(
        matches!(&error, SynthError::UnknownFeature { feature, .. } if feature == "pcm_loudness_sma_amean"),
        "{error}"
    );
}
