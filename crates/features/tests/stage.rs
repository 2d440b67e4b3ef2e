//! The feature stage end to end on the format fixtures: labels, folds, split, normalisation.

use std::path::{Path, PathBuf};

use emocycle_artifact::{keys, read_parquet};
use emocycle_features::{
    CorpusSpec, FeatureLayout, FeaturesConfig, FoldScheme, LabelMap, NanPolicy, Normaliser,
    Scaling, SplitSpec, UtteranceIds, run_features,
};
use polars::prelude::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/formats")
        .join(name)
}

fn config() -> FeaturesConfig {
    let base = CorpusSpec {
        name: String::new(),
        features: PathBuf::new(),
        labels: None,
        label_map: LabelMap::Iemocap,
        feature_names: None,
        folds: FoldScheme::None,
        split: None,
        nan_policy: NanPolicy::Error,
        utterance_ids: UtteranceIds::Stem,
    };
    FeaturesConfig {
        corpora: vec![
            CorpusSpec {
                name: "iemocap".into(),
                features: fixture("smilextract.csv"),
                labels: Some(fixture("labels_iemocap.csv")),
                folds: FoldScheme::LeaveOneSessionOut,
                ..base.clone()
            },
            CorpusSpec {
                name: "tedlium".into(),
                features: fixture("smilextract_headerless.csv"),
                feature_names: Some(fixture("feature_names.txt")),
                ..base.clone()
            },
            CorpusSpec {
                name: "msp".into(),
                features: fixture("opensmile_python.csv"),
                labels: Some(fixture("labels_msp.csv")),
                label_map: LabelMap::MspImprov,
                split: Some(SplitSpec {
                    dev_fraction: 0.5,
                    seed: 3,
                }),
                ..base.clone()
            },
            CorpusSpec {
                name: "arff".into(),
                features: fixture("smilextract.arff"),
                ..base
            },
        ],
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

#[test]
fn labelled_unlabelled_and_cross_corpus_sets_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let layout = FeatureLayout::new(dir.path());
    let reports = run_features(&config(), &layout, 2).unwrap();

    // IEMOCAP-like: "fru" dropped, "exc" merged into happy, the label without features counted.
    let iemocap = &reports[0];
    assert_eq!(iemocap.rows, 5);
    assert_eq!(iemocap.dropped_out_of_scope.get("fru"), Some(&1));
    assert_eq!(iemocap.labels_without_features, 1);
    assert_eq!(iemocap.class_counts.get("happy"), Some(&2));
    let (frame, metadata) = read_parquet(&layout.corpus("iemocap")).unwrap();
    let columns: Vec<&str> = frame
        .get_column_names()
        .iter()
        .map(|name| name.as_str())
        .collect();
    assert_eq!(
        columns,
        [
            "utterance_id",
            "corpus",
            "session",
            "speaker",
            "emotion",
            "gender",
            "pcm_loudness_sma_maxPos",
            "pcm_loudness_sma_amean",
            "mfcc_sma[0]_amean",
            "F0final_sma_stddev",
            "voicingFinalUnclipped_sma_linregc1"
        ]
    );
    assert_eq!(
        frame.column("mfcc_sma[0]_amean").unwrap().dtype(),
        &DataType::Float32
    );
    assert_eq!(
        strings(&frame, "emotion"),
        ["angry", "happy", "neutral", "sad", "happy"].map(|e| Some(e.to_string()))
    );
    assert_eq!(strings(&frame, "corpus")[0].as_deref(), Some("iemocap"));
    assert_eq!(metadata.get("emocycle.feature_count"), Some("5"));
    assert_eq!(metadata.get(keys::STAGE), Some("features"));
    let inputs: serde_json::Value = metadata.get_json(keys::INPUTS, Path::new("x")).unwrap();
    assert_eq!(inputs.as_object().unwrap().len(), 2);

    // Folds: one per session, disjoint.
    assert_eq!(iemocap.folds.len(), 2);
    let (folds, _) = read_parquet(&layout.folds("iemocap")).unwrap();
    let sessions = strings(&folds, "session");
    let fold_numbers: Vec<u32> = folds
        .column("fold")
        .unwrap()
        .u32()
        .unwrap()
        .into_no_null_iter()
        .collect();
    for (session, fold) in sessions.iter().zip(&fold_numbers) {
        let expected = if session.as_deref() == Some("Ses01") {
            1
        } else {
            2
        };
        assert_eq!(*fold, expected);
    }

    // Normalisation of fold 1's training part uses Ses02 rows only: loudness maxPos 30, 3, 21.
    let fold1 = Normaliser::read(&layout.normalisation("iemocap", "fold1-train")).unwrap();
    assert_eq!(fold1.rows, 3);
    assert_eq!(
        (fold1.min[0], fold1.max[0], fold1.mean[0]),
        (3.0, 30.0, 18.0)
    );
    let all = Normaliser::read(&layout.normalisation("iemocap", "all")).unwrap();
    assert_eq!(all.rows, 5);
    let mut row = vec![30.0f32, 0.7, -9.5, 40.0, 0.0];
    fold1.transform_rows(&mut row, Scaling::MinMax);
    assert_eq!(row[0], 1.0);

    // Unlabelled: every row kept, emotion, session and speaker null.
    let (source, _) = read_parquet(&layout.corpus("tedlium")).unwrap();
    assert_eq!(source.height(), 6);
    assert_eq!(source.column("emotion").unwrap().null_count(), 6);
    assert_eq!(source.column("session").unwrap().null_count(), 6);

    // Cross-corpus: stratified split, every row in exactly one part.
    let (split, _) = read_parquet(&layout.split("msp")).unwrap();
    assert_eq!(split.height(), 6);
    let parts = strings(&split, "split");
    let emotions = strings(&split, "emotion");
    for emotion in ["happy", "neutral"] {
        let dev = parts
            .iter()
            .zip(&emotions)
            .filter(|(p, e)| p.as_deref() == Some("dev") && e.as_deref() == Some(emotion))
            .count();
        assert_eq!(dev, 1, "{emotion}");
    }

    // ARFF without a manifest: its class attribute labels it; "fru" and "?" are dropped.
    assert_eq!(reports[3].rows, 4);
    assert_eq!(reports[3].dropped_out_of_scope.values().sum::<usize>(), 2);
}

#[test]
fn the_same_inputs_give_byte_identical_outputs() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    run_features(&config(), &FeatureLayout::new(first.path()), 4).unwrap();
    run_features(&config(), &FeatureLayout::new(second.path()), 4).unwrap();
    for name in [
        "iemocap.parquet",
        "msp.split.parquet",
        "norm/iemocap.fold2-train.parquet",
    ] {
        assert_eq!(
            std::fs::read(first.path().join(name)).unwrap(),
            std::fs::read(second.path().join(name)).unwrap(),
            "{name}"
        );
    }
}

/// Mean, population std, min and max of one feature over the rows whose session passes `keep`,
/// straight from a corpus parquet.
fn direct_stats(frame: &DataFrame, feature: &str, keep: impl Fn(&str) -> bool) -> [f64; 4] {
    let sessions = strings(frame, "session");
    let values: Vec<f64> = frame
        .column(feature)
        .unwrap()
        .f32()
        .unwrap()
        .into_no_null_iter()
        .zip(&sessions)
        .filter(|(_, session)| keep(session.as_deref().unwrap()))
        .map(|(value, _)| f64::from(value))
        .collect();
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    [mean, variance.sqrt(), min, max]
}

#[test]
fn the_embedded_corpus_streams_to_the_same_rows_and_statistics_at_any_chunk_size() {
    // 790 rows, 30 of them out of scope and dropped, read in chunks of 61 rows (13 row
    // groups, some cut by the label filter) and of 4096 (one chunk): the same rows, and
    // statistics that match a direct computation on the written file.
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/corpus");
    let config = FeaturesConfig {
        corpora: vec![CorpusSpec {
            name: "labelled".into(),
            features: corpus.join("labelled.csv.gz"),
            labels: Some(corpus.join("labelled_labels.csv")),
            label_map: LabelMap::Iemocap,
            feature_names: None,
            folds: FoldScheme::LeaveOneSessionOut,
            split: None,
            nan_policy: NanPolicy::Error,
            utterance_ids: UtteranceIds::Stem,
        }],
    };
    let small = tempfile::tempdir().unwrap();
    let large = tempfile::tempdir().unwrap();
    let report = run_features(&config, &FeatureLayout::new(small.path()), 61).unwrap();
    run_features(&config, &FeatureLayout::new(large.path()), 4096).unwrap();
    assert_eq!(report[0].rows, 760);
    let (frame, metadata) =
        read_parquet(&FeatureLayout::new(small.path()).corpus("labelled")).unwrap();
    let (whole, _) = read_parquet(&FeatureLayout::new(large.path()).corpus("labelled")).unwrap();
    assert_eq!(frame, whole);
    // The embedded corpus is opensmile-python's IS10, and the footer says so.
    assert_eq!(metadata.get("emocycle.feature_set"), Some("IS10"));

    let test_session = &report[0].folds[0].test_session;
    for (directory, subset) in [(&small, "all"), (&large, "all"), (&small, "fold1-train")] {
        let normaliser = Normaliser::read(
            &FeatureLayout::new(directory.path()).normalisation("labelled", subset),
        )
        .unwrap();
        for (index, feature) in normaliser.features.iter().enumerate().step_by(97) {
            let expected = direct_stats(&frame, feature, |session| {
                subset == "all" || session != test_session
            });
            let got = [
                normaliser.mean[index],
                normaliser.std[index],
                normaliser.min[index],
                normaliser.max[index],
            ];
            for (got, expected) in got.iter().zip(expected) {
                assert!(
                    (got - expected).abs() <= 1e-9 * expected.abs().max(1e-3),
                    "{subset} {feature}: {got} vs {expected}"
                );
            }
        }
    }
}

#[test]
fn iemocap_label_files_are_read_as_distributed() {
    let dir = tempfile::tempdir().unwrap();
    let write = |relative: &str, text: &str| {
        let path = dir.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    };
    let header = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n";
    for (session, lines) in [
        (
            1,
            "[1.0 - 2.0]\tSes01F_impro01_F000\tang\t[1.5000, 4.0000, 4.0000]\n\
             C-E2:\tAnger;\t()\n\n\
             [2.0 - 3.0]\tSes01F_impro01_M001\texc\t[4.0000, 3.5000, 3.0000]\n\n\
             [3.0 - 4.0]\tSes01F_impro01_F002\tfru\t[2.0000, 3.5000, 3.5000]\n",
        ),
        (
            2,
            "[1.0 - 2.0]\tSes02M_script01_1_F000\tneu\t[3.0000, 2.0000, 2.5000]\n\n\
             [2.0 - 3.0]\tSes02M_script01_1_M001\tsad\t[1.5000, 2.0000, 2.0000]\n",
        ),
    ] {
        write(
            &format!("IEMOCAP/Session{session}/dialog/EmoEvaluation/s{session}.txt"),
            &format!("{header}{lines}"),
        );
    }
    let features = write(
        "iemocap.csv",
        "name;frameTime;a;b\n\
         'Ses01F_impro01_F000';0.0;1.0;2.0\n'Ses01F_impro01_M001';0.0;1.5;2.5\n\
         'Ses01F_impro01_F002';0.0;1.0;2.0\n'Ses02M_script01_1_F000';0.0;3.0;1.0\n\
         'Ses02M_script01_1_M001';0.0;2.0;2.0\n",
    );
    let config = FeaturesConfig {
        corpora: vec![CorpusSpec {
            name: "iemocap".into(),
            features,
            labels: Some(dir.path().join("IEMOCAP")),
            label_map: LabelMap::Iemocap,
            feature_names: None,
            folds: FoldScheme::LeaveOneSessionOut,
            split: None,
            nan_policy: NanPolicy::Error,
            utterance_ids: UtteranceIds::Stem,
        }],
    };
    let layout = FeatureLayout::new(dir.path().join("out"));
    let reports = run_features(&config, &layout, 2).unwrap();
    assert_eq!(reports[0].rows, 4);
    assert_eq!(reports[0].dropped_out_of_scope.get("fru"), Some(&1));
    let (frame, metadata) = read_parquet(&layout.corpus("iemocap")).unwrap();
    assert_eq!(
        strings(&frame, "emotion"),
        ["angry", "happy", "neutral", "sad"].map(|e| Some(e.to_string()))
    );
    assert_eq!(
        strings(&frame, "speaker"),
        ["Ses01F", "Ses01M", "Ses02F", "Ses02M"].map(|e| Some(e.to_string()))
    );
    assert_eq!(strings(&frame, "session")[3].as_deref(), Some("Ses02"));
    assert_eq!(strings(&frame, "valence")[1].as_deref(), Some("4.0000"));
    // Both label files are inputs of the artifact, each with its own hash.
    let inputs: serde_json::Value = metadata.get_json(keys::INPUTS, Path::new("x")).unwrap();
    let names: Vec<&String> = inputs.as_object().unwrap().keys().collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(
        names
            .iter()
            .any(|name| name.ends_with("EmoEvaluation/s2.txt"))
    );
}
