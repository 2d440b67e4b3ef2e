//! Every kind of bad input is rejected with the file, line and column, and the stage leaves no
//! artifact behind.

use std::path::{Path, PathBuf};

use emocycle_features::{
    CorpusSpec, FeatureError, FeatureLayout, FeaturesConfig, FoldScheme, LabelMap, NanPolicy,
    ReadOptions, UtteranceIds, read_feature_file, read_manifest, run_features,
};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The error reading `text` gives, the same whether the file is mapped or read into buffers.
fn read_error(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bad.csv", text);
    let [mapped, read] = [true, false].map(|memory_map| {
        read_feature_file(
            &path,
            &ReadOptions {
                memory_map,
                ..ReadOptions::default()
            },
        )
        .expect_err("must be rejected")
        .to_string()
    });
    assert_eq!(mapped, read, "mapped and read files give different errors");
    mapped
}

#[test]
fn ragged_row_names_the_line() {
    let error = read_error("name;frameTime;a;b\n'u1';0.000000;1;2\n'u2';0.000000;1\n");
    assert!(error.contains("bad.csv:3"), "{error}");
    assert!(
        error.contains("ragged row: 3 fields, the header has 4"),
        "{error}"
    );
    // A truncated row names the first column it lacks; a long one has none to name.
    assert!(
        error.contains("bad.csv:3, column \"b\": ragged row"),
        "{error}"
    );
    assert!(
        error.ends_with("this is the first column it lacks"),
        "{error}"
    );
    let long = read_error("name;frameTime;a;b\n'u1';0.000000;1;2;3\n");
    assert!(
        long.contains("bad.csv:2: ragged row: 5 fields, the header has 4"),
        "{long}"
    );
}

#[test]
fn an_id_that_is_not_utf8_names_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latin1.csv");
    // "café" in Latin-1: the id would be mangled and match no label.
    std::fs::write(
        &path,
        b"name;frameTime;a;b\n'u1';0.0;1;2\n'caf\xe9';0.0;1;2\n",
    )
    .unwrap();
    for memory_map in [true, false] {
        let options = ReadOptions {
            memory_map,
            ..ReadOptions::default()
        };
        let error = read_feature_file(&path, &options).unwrap_err().to_string();
        assert!(
            error.contains("latin1.csv:3, column \"name\": not UTF-8 at byte 4 of \"caf\u{fffd}\""),
            "{error}"
        );
    }
}

#[test]
fn non_numeric_value_names_line_and_column() {
    let error = read_error("name;frameTime;a;b\n'u1';0.000000;1;2\n'u2';0.000000;1;two\n");
    assert!(
        error.contains("bad.csv:3, column \"b\": not a number: \"two\""),
        "{error}"
    );
}

#[test]
fn infinity_is_rejected_by_default() {
    let error = read_error("name;frameTime;a;b\n'u1';0.000000;inf;2\n");
    assert!(error.contains("bad.csv:2, column \"a\""), "{error}");
}

#[test]
fn empty_file_and_header_without_rows() {
    assert!(read_error("").contains("the file is empty"));
    assert!(read_error("\n\n").contains("the file is empty"));
    let error = read_error("name;frameTime;a;b\n");
    assert!(
        error.contains("bad.csv: the file has a header but no data rows"),
        "{error}"
    );
}

#[test]
fn unknown_delimiter() {
    let error = read_error("name frameTime a b\n'u1' 0 1 2\n");
    assert!(error.contains("bad.csv:1"), "{error}");
    assert!(error.contains("cannot tell the delimiter"), "{error}");
}

#[test]
fn a_bad_header_in_a_file_larger_than_the_first_read_is_reported_the_same() {
    // Over a megabyte of rows: read into buffers, the header is read from a first block of 1
    // MiB, then, since it does not parse, once more from a whole block; the error is the same,
    // and the same as from the whole mapped file.
    let mut text = String::from("name frameTime a b\n");
    while text.len() < 3 << 20 {
        text.push_str("'u1' 0.000000 1.000000e+00 2.000000e+00\n");
    }
    let error = read_error(&text);
    assert!(error.contains("bad.csv:1"), "{error}");
    assert!(error.contains("cannot tell the delimiter"), "{error}");
}

#[test]
fn line_numbers_stay_right_across_blocks() {
    // More than one 8 MiB block, with the bad value near the end.
    let mut text = String::from("name;frameTime;a;b;c;d\n");
    let rows = 400_000;
    for row in 0..rows {
        text.push_str(&format!(
            "'u{row}';0.000000;1.000000e+00;2.000000e+00;3.000000e+00;4.000000e+00\n"
        ));
    }
    text.push_str("'bad';0.000000;1;2;x;4\n");
    let error = read_error(&text);
    assert!(
        error.contains(&format!("bad.csv:{}, column \"c\"", rows + 2)),
        "{error}"
    );
}

#[test]
fn broken_arff_headers() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "a.arff",
        "@relation x\n@attribute f1 numeric\n@data\n1\n",
    );
    let error = read_feature_file(&path, &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("a.arff:2, column \"f1\""), "{error}");
    let path = write(
        dir.path(),
        "b.arff",
        "@relation x\n@attribute name string\n@attribute f1 date\n@data\n",
    );
    let error = read_feature_file(&path, &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("unsupported ARFF attribute type"), "{error}");
}

#[test]
fn manifest_problems_name_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let missing = write(dir.path(), "m1.csv", "utterance_id,label\nu1,ang\n");
    let error = read_manifest(&missing, &LabelMap::Iemocap)
        .unwrap_err()
        .to_string();
    assert!(error.contains("m1.csv:1, column \"emotion\""), "{error}");

    let duplicate = write(
        dir.path(),
        "m2.csv",
        "utterance_id,emotion\nu1,ang\nu2,sad\nu1,neu\n",
    );
    let error = read_manifest(&duplicate, &LabelMap::Iemocap)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(
            "m2.csv:4, column \"utterance_id\": duplicate utterance id \"u1\" (first on line 2)"
        ),
        "{error}"
    );

    let ragged = write(
        dir.path(),
        "m3.csv",
        "utterance_id,emotion,session\nu1,ang,S1\nu2,sad\n",
    );
    let error = read_manifest(&ragged, &LabelMap::Iemocap)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(
            "m3.csv:3, column \"session\": ragged row: 2 fields, the header has 3; this is the \
             first column it lacks"
        ),
        "{error}"
    );

    let latin1 = dir.path().join("m5.csv");
    std::fs::write(&latin1, b"utterance_id,emotion\nu1,ang\ncaf\xe9,sad\n").unwrap();
    let error = read_manifest(&latin1, &LabelMap::Iemocap)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("m5.csv:3, column \"utterance_id\": not UTF-8 at byte 4 of the field"),
        "{error}"
    );

    let header_only = write(dir.path(), "m4.csv", "utterance_id,emotion\n");
    let error = read_manifest(&header_only, &LabelMap::Iemocap)
        .unwrap_err()
        .to_string();
    assert!(error.contains("header but no rows"), "{error}");
}

fn corpus(name: &str, features: PathBuf, labels: Option<PathBuf>) -> CorpusSpec {
    CorpusSpec {
        name: name.to_string(),
        features,
        labels,
        label_map: LabelMap::Iemocap,
        feature_names: None,
        folds: FoldScheme::None,
        split: None,
        nan_policy: NanPolicy::Error,
        utterance_ids: UtteranceIds::Stem,
    }
}

fn stage_error(config: FeaturesConfig, out: &Path) -> FeatureError {
    let error = run_features(&config, &FeatureLayout::new(out), 4).expect_err("must be rejected");
    let leftovers: Vec<_> = walk(out);
    assert!(
        leftovers.is_empty(),
        "the failed stage left files behind: {leftovers:?}"
    );
    error
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|entry| {
            if entry.path().is_dir() {
                walk(&entry.path())
            } else {
                vec![entry.path()]
            }
        })
        .collect()
}

#[test]
fn duplicate_utterance_ids_in_features() {
    let dir = tempfile::tempdir().unwrap();
    let features = write(
        dir.path(),
        "f.csv",
        "name;frameTime;a\n'u1';0.000000;1\n'u2';0.000000;2\n'u1';0.000000;3\n",
    );
    let error = stage_error(
        FeaturesConfig {
            corpora: vec![corpus("c", features, None)],
        },
        &dir.path().join("out"),
    );
    let message = error.to_string();
    assert!(
        message
            .contains("f.csv:4, column \"name\": duplicate utterance id \"u1\" (first on line 2)"),
        "{message}"
    );
}

#[test]
fn feature_lists_that_differ_name_the_first_difference() {
    let dir = tempfile::tempdir().unwrap();
    let first = write(
        dir.path(),
        "one.csv",
        "name;frameTime;a;b;c\n'u1';0.000000;1;2;3\n",
    );
    let second = write(
        dir.path(),
        "two.csv",
        "name;frameTime;a;x;c\n'u1';0.000000;1;2;3\n",
    );
    let config = FeaturesConfig {
        corpora: vec![corpus("one", first, None), corpus("two", second, None)],
    };
    let message = stage_error(config, &dir.path().join("out")).to_string();
    assert!(
        message.contains("two.csv does not have the same features as"),
        "{message}"
    );
    assert!(
        message.contains("first difference at feature 1: \"x\" vs \"b\""),
        "{message}"
    );
}

#[test]
fn emobase2010_and_is10_files_are_told_apart_before_any_data_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let emobase = write(
        dir.path(),
        "iemocap_emobase2010.csv",
        "name;frameTime;pcm_loudness_sma_amean;pcm_fftMag_mfcc_sma[3]_amean\n'u1';0.000000;1;2\n",
    );
    let is10 = write(
        dir.path(),
        "tedlium_is10.csv",
        "file,start,end,pcm_loudness_sma_amean,mfcc_sma[3]_amean\nt.wav,0 days,0 days 00:00:01,1,2\n",
    );
    let config = FeaturesConfig {
        corpora: vec![
            corpus("iemocap", emobase, None),
            corpus("tedlium", is10, None),
        ],
    };
    let out = dir.path().join("out");
    let message = stage_error(config, &out).to_string();
    assert!(
        message.contains(
            "tedlium_is10.csv was extracted with openSMILE's IS10 (opensmile-python's \
             FeatureSet.IS10) set"
        ),
        "{message}"
    );
    assert!(
        message.contains("emobase2010.conf is the paper's"),
        "{message}"
    );
    assert!(!out.join("iemocap.parquet").exists());
}

#[test]
fn labels_that_match_no_utterance() {
    let dir = tempfile::tempdir().unwrap();
    let features = write(
        dir.path(),
        "f.csv",
        "name;frameTime;a\n'u1';0.000000;1\n'u2';0.000000;2\n",
    );
    let labels = write(
        dir.path(),
        "l.csv",
        "utterance_id,emotion\nx1,ang\nx2,sad\n",
    );
    let error = stage_error(
        FeaturesConfig {
            corpora: vec![corpus("c", features, Some(labels))],
        },
        &dir.path().join("out"),
    );
    let message = error.to_string();
    assert!(message.contains("no utterance of"), "{message}");
    assert!(
        message.contains("f.csv") && message.contains("l.csv"),
        "{message}"
    );
}

#[test]
fn a_bad_row_late_in_the_file_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("name;frameTime;a;b\n");
    for row in 0..50 {
        text.push_str(&format!("'u{row}';0.000000;{row};1\n"));
    }
    text.push_str("'u50';0.000000;1;oops\n");
    let features = write(dir.path(), "f.csv", &text);
    let message = stage_error(
        FeaturesConfig {
            corpora: vec![corpus("c", features, None)],
        },
        &dir.path().join("out"),
    )
    .to_string();
    assert!(message.contains("f.csv:52, column \"b\""), "{message}");
}

#[test]
fn configuration_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let features = write(dir.path(), "f.csv", "name;frameTime;a\n'u1';0.000000;1\n");
    let mut spec = corpus("c", dir.path().join("missing.csv"), None);
    let message = stage_error(
        FeaturesConfig {
            corpora: vec![spec.clone()],
        },
        &dir.path().join("out"),
    )
    .to_string();
    assert!(message.contains("features: no such file"), "{message}");
    spec.features = features;
    spec.folds = FoldScheme::LeaveOneSessionOut;
    let message = stage_error(
        FeaturesConfig {
            corpora: vec![spec],
        },
        &dir.path().join("out"),
    )
    .to_string();
    assert!(message.contains("need a label manifest"), "{message}");
}
