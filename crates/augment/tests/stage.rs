//! Every baseline method end to end on a tiny corpus: the feature stage's files in, a synthetic
//! set out that the other stages can read, with its provenance, made without the fold's test
//! session and recorded in the footer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use emocycle_artifact::{read_parquet, sha256_file};
use emocycle_augment::{
    AugmentError, BaselineConfig, BaselineProgress, BaselineRequest, baseline_path, run_baseline,
};
use emocycle_config::layout::{Scope, StageInputs};
use emocycle_features::load_target_part;
use emocycle_features::testing::tiny_corpora;
use emocycle_features::{Emotion, FeatureLayout, FeatureMatrix, run_features};
use polars::prelude::DataFrame;

/// A run directory with features of the tiny corpora.
struct Run {
    dir: tempfile::TempDir,
    layout: FeatureLayout,
}

impl Run {
    /// An imbalanced labelled corpus: three utterances are relabelled with a code outside the
    /// four emotions, which the feature stage drops. Fold 1's training part (sessions 2 and 3)
    /// then holds 4 angry, 5 happy, 6 neutral and 6 sad rows.
    fn new() -> Self {
        Self::dropping(&["S2_ang_0", "S3_ang_1", "S2_hap_2"])
    }

    /// The tiny corpora without the utterances `dropped`.
    fn dropping(dropped: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = tiny_corpora(dir.path());
        let labels = dir.path().join("labels.csv");
        let text = std::fs::read_to_string(&labels).unwrap();
        let mut relabelled = String::new();
        for line in text.lines() {
            let id = line.split(',').next().unwrap();
            if dropped.contains(&id) {
                relabelled.push_str(
                    &line
                        .replacen(",ang,", ",fru,", 1)
                        .replacen(",hap,", ",fru,", 1),
                );
            } else {
                relabelled.push_str(line);
            }
            relabelled.push('\n');
        }
        std::fs::write(&labels, relabelled).unwrap();
        let layout = FeatureLayout::new(dir.path().join("features"));
        run_features(&config, &layout, 16).unwrap();
        Self { dir, layout }
    }

    fn inputs(&self, scope: &Scope) -> StageInputs {
        let subset = match scope {
            Scope::All => "all".to_string(),
            Scope::Fold(k) => format!("fold{k}-train"),
        };
        StageInputs {
            source: self.layout.corpus("source"),
            source_normalisation: self.layout.normalisation("source", "all"),
            target: self.layout.corpus("labelled"),
            target_folds: self.layout.folds("labelled"),
            target_normalisation: self.layout.normalisation("labelled", &subset),
        }
    }

    fn request(&self, config: &str, scope: Scope) -> BaselineRequest {
        let config: BaselineConfig = serde_json::from_str(config).unwrap();
        let output = baseline_path(&self.dir.path().join("synth"), &scope, config.name());
        BaselineRequest {
            config,
            inputs: self.inputs(&scope),
            scope,
            seed: 17,
            output,
        }
    }

    /// Session of every labelled utterance.
    fn sessions(&self) -> BTreeMap<String, String> {
        let corpus = FeatureMatrix::read(&self.layout.corpus("labelled")).unwrap();
        corpus
            .ids
            .into_iter()
            .zip(corpus.sessions)
            .map(|(id, session)| (id, session.unwrap()))
            .collect()
    }
}

fn strings(frame: &DataFrame, column: &str) -> Vec<Option<String>> {
    frame
        .column(column)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|value| value.map(str::to_string))
        .collect()
}

fn per_emotion(emotions: &[Option<Emotion>]) -> [usize; 4] {
    let mut counts = [0; 4];
    for emotion in emotions {
        counts[emotion.unwrap().index()] += 1;
    }
    counts
}

const CGAN: &str = r#"{"method": "cgan", "noise_dim": 4, "generator_hidden": [8],
    "discriminator_hidden": [8], "epochs": 3, "batch_size": 4, "size": {"per_class": 5}}"#;

#[test]
fn every_method_writes_a_readable_fold_set_without_the_test_session() {
    let run = Run::new();
    let scope = Scope::Fold(1);
    let sessions = run.sessions();
    let part = load_target_part(&run.inputs(&scope), &scope).unwrap();
    let real_counts = per_emotion(&part.matrix.emotions);
    assert_eq!(real_counts, [4, 5, 6, 6]);
    let row_of: BTreeMap<&str, usize> = part
        .matrix
        .ids
        .iter()
        .enumerate()
        .map(|(row, id)| (id.as_str(), row))
        .collect();
    let width = part.matrix.width();

    let cases = [
        (r#"{"method": "random-oversampling"}"#, [2, 1, 0, 0]),
        (r#"{"method": "smote", "name": "smote-k5"}"#, [2, 1, 0, 0]),
        (
            r#"{"method": "gaussian-noise", "sigma": 0.2, "size": {"per_class": 3}}"#,
            [3, 3, 3, 3],
        ),
        (CGAN, [5, 5, 5, 5]),
    ];
    for (config, expected) in cases {
        let request = run.request(config, scope.clone());
        let method = request.config.method.kind();
        let name = request.config.name().to_string();
        let mut epochs = 0;
        let mut written = None;
        let report = run_baseline(&request, tch::Device::Cpu, &mut |progress| match progress {
            BaselineProgress::Loaded {
                real_rows_per_emotion,
                rows_per_emotion,
            } => {
                assert_eq!(real_rows_per_emotion, real_counts);
                assert_eq!(rows_per_emotion, expected);
            }
            BaselineProgress::Epoch { .. } => epochs += 1,
            BaselineProgress::Written { rows } => written = Some(rows),
        })
        .unwrap();
        let total: usize = expected.iter().sum();
        assert_eq!(written, Some(total), "{method}");
        assert_eq!(report.rows_per_emotion, expected, "{method}");
        assert_eq!(report.held_out_session.as_deref(), Some("Ses1"));
        assert_eq!(report.output, request.output);
        assert!(
            request
                .output
                .ends_with(Path::new("fold1").join(&name).join("synthetic.parquet"))
        );
        if method == "cgan" {
            assert_eq!(epochs, 3);
            assert_eq!(report.cgan_log.len(), 3);
        } else {
            assert_eq!(epochs, 0);
        }

        // The other stages read it like a CycleGAN set.
        let set = FeatureMatrix::read(&request.output).unwrap();
        assert_eq!(set.names, part.matrix.names, "{method}");
        assert_eq!(per_emotion(&set.emotions), expected, "{method}");
        assert_eq!(
            set.ids.iter().collect::<BTreeSet<_>>().len(),
            total,
            "{method}: synthetic ids are not unique"
        );
        assert!(set.ids.iter().all(|id| id.starts_with(&format!("{name}-"))));
        if method == "random-oversampling" {
            // Real plus synthetic is exactly balanced.
            let balanced: Vec<usize> = (0..4).map(|c| real_counts[c] + expected[c]).collect();
            assert_eq!(balanced, [6, 6, 6, 6]);
        }

        let (frame, metadata) = read_parquet(&request.output).unwrap();
        assert!(
            strings(&frame, "fold")
                .iter()
                .all(|f| f.as_deref() == Some("fold1"))
        );
        assert!(
            strings(&frame, "method")
                .iter()
                .all(|m| m.as_deref() == Some(name.as_str()))
        );
        let seeds: Vec<u64> = frame
            .column("seed")
            .unwrap()
            .u64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert!(seeds.iter().all(|&seed| seed == 17));
        let parents = strings(&frame, "parent_utterance_id");
        let neighbours = strings(&frame, "neighbour_utterance_id");
        let interpolation: Vec<Option<f32>> = frame
            .column("interpolation")
            .unwrap()
            .f32()
            .unwrap()
            .iter()
            .collect();
        for row in 0..total {
            let emotion = set.emotions[row].unwrap();
            let values = &set.values[row * width..(row + 1) * width];
            if method == "cgan" {
                assert_eq!(parents[row], None);
                assert!(values.iter().all(|v| (0.0..=1.0).contains(v)));
                continue;
            }
            let parent = parents[row].as_deref().unwrap();
            // Never the test session: the parent is a training-part row of the same emotion.
            assert_ne!(sessions[parent], "Ses1", "{method}: parent {parent}");
            let parent_row = row_of[parent];
            assert_eq!(part.matrix.emotions[parent_row], Some(emotion));
            let parent_values = &part.matrix.values[parent_row * width..(parent_row + 1) * width];
            match method {
                "random-oversampling" => {
                    assert_eq!(values, parent_values);
                    assert_eq!((&neighbours[row], interpolation[row]), (&None, None));
                }
                "smote" => {
                    let neighbour = neighbours[row].as_deref().unwrap();
                    assert_ne!(sessions[neighbour], "Ses1");
                    let neighbour_row = row_of[neighbour];
                    assert_eq!(part.matrix.emotions[neighbour_row], Some(emotion));
                    let u = interpolation[row].unwrap();
                    let ends =
                        &part.matrix.values[neighbour_row * width..(neighbour_row + 1) * width];
                    for ((&s, &x), &n) in values.iter().zip(parent_values).zip(ends) {
                        assert!((s - (x + u * (n - x))).abs() < 1e-6);
                    }
                }
                _ => {
                    assert_eq!((&neighbours[row], interpolation[row]), (&None, None));
                    assert_ne!(values, parent_values);
                }
            }
        }

        assert_eq!(metadata.get("emocycle.stage"), Some("augment"));
        let recorded: serde_json::Value =
            serde_json::from_str(metadata.get("emocycle.config").unwrap()).unwrap();
        assert_eq!(recorded, request.recorded_config());
        assert_eq!(recorded["baseline"]["method"], method);
        let seeds: serde_json::Value =
            serde_json::from_str(metadata.get("emocycle.seeds").unwrap()).unwrap();
        assert_eq!(seeds, serde_json::json!({"augment": 17}));
        let inputs: BTreeMap<String, String> =
            serde_json::from_str(metadata.get("emocycle.inputs").unwrap()).unwrap();
        let files: Vec<PathBuf> = request.input_files();
        assert_eq!(files.len(), 3);
        assert_eq!(inputs.len(), 3);
        for file in files {
            assert_eq!(
                inputs[&file.display().to_string()],
                sha256_file(&file).unwrap()
            );
        }
        assert_eq!(metadata.get("emocycle.feature_count"), Some("6"));
        assert_eq!(metadata.get("emocycle.feature_space"), Some("minmax"));
        assert_eq!(metadata.get("emocycle.scope"), Some("fold1"));
        assert_eq!(metadata.get("emocycle.method"), Some(method));
        assert_eq!(metadata.get("emocycle.name"), Some(name.as_str()));
        assert_eq!(metadata.get("emocycle.held_out_session"), Some("Ses1"));
        let rows: BTreeMap<String, usize> =
            serde_json::from_str(metadata.get("emocycle.rows_per_emotion").unwrap()).unwrap();
        for emotion in Emotion::ALL {
            assert_eq!(rows[emotion.as_str()], expected[emotion.index()]);
        }
    }
}

#[test]
fn scope_all_is_reproducible_and_the_config_seed_wins() {
    let run = Run::new();
    let config = r#"{"method": "smote", "size": {"per_class": 4}}"#;
    let request = run.request(config, Scope::All);
    let report = run_baseline(&request, tch::Device::Cpu, &mut |_| {}).unwrap();
    assert_eq!(report.held_out_session, None);
    assert_eq!(report.real_rows_per_emotion, [7, 8, 9, 9]);
    let (first, metadata) = read_parquet(&request.output).unwrap();
    assert_eq!(metadata.get("emocycle.held_out_session"), None);
    assert_eq!(metadata.get("emocycle.scope"), Some("all"));
    assert!(
        strings(&first, "fold")
            .iter()
            .all(|f| f.as_deref() == Some("all"))
    );
    assert_eq!(request.input_files().len(), 2);

    run_baseline(&request, tch::Device::Cpu, &mut |_| {}).unwrap();
    let (again, _) = read_parquet(&request.output).unwrap();
    assert!(again.equals_missing(&first));

    let mut other = run.request(
        r#"{"method": "smote", "size": {"per_class": 4}, "seed": 3}"#,
        Scope::All,
    );
    other.output = request.output.with_file_name("seeded.parquet");
    let report = run_baseline(&other, tch::Device::Cpu, &mut |_| {}).unwrap();
    assert_eq!(report.seed, 3);
    let (seeded, _) = read_parquet(&other.output).unwrap();
    assert!(!seeded.equals_missing(&first));
    assert_ne!(other.recorded_config(), request.recorded_config());
}

#[test]
fn a_bad_config_fails_before_anything_is_written() {
    let run = Run::new();
    let request = run.request(
        r#"{"method": "gaussian-noise", "sigma": -1}"#,
        Scope::Fold(2),
    );
    let error = run_baseline(&request, tch::Device::Cpu, &mut |_| {}).unwrap_err();
    assert!(
        matches!(&error, AugmentError::Config(config) if config.key.as_deref() == Some("sigma")),
        "{error}"
    );
    assert!(!request.output.exists());
    assert!(!request.output.parent().unwrap().exists());
}

#[test]
fn a_balanced_training_part_gives_an_empty_but_readable_balance_set() {
    let run = Run::dropping(&[]);
    let request = run.request(r#"{"method": "random-oversampling"}"#, Scope::Fold(3));
    let report = run_baseline(&request, tch::Device::Cpu, &mut |_| {}).unwrap();
    assert_eq!(report.real_rows_per_emotion, [6, 6, 6, 6]);
    assert_eq!(report.rows_per_emotion, [0, 0, 0, 0]);
    let set = FeatureMatrix::read(&request.output).unwrap();
    assert_eq!(set.rows(), 0);
    assert_eq!(set.width(), 6);
    let (frame, metadata) = read_parquet(&request.output).unwrap();
    assert_eq!(frame.width(), 8 + 6);
    assert_eq!(metadata.get("emocycle.held_out_session"), Some("Ses3"));
}
