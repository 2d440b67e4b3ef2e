//! Parquet artifacts keep their data and their footer metadata.

use std::path::Path;

use emocycle_artifact::{
    ArtifactError, CODE_VERSION, Metadata, keys, read_parquet, read_parquet_columns,
    read_parquet_metadata, require_column, require_float_columns, write_parquet,
};
use polars::prelude::*;

fn sample_frame() -> DataFrame {
    df!(
        "utterance_id" => ["u1", "u2", "u3"],
        "emotion" => [Some("angry"), None, Some("sad")],
        "pcm_loudness_sma_maxPos" => [1.5f32, -2.25, 1e-7],
        "mfcc_sma[1]_amean" => [0.0f32, f32::MAX, f32::MIN_POSITIVE],
    )
    .unwrap()
}

#[test]
fn data_and_footer_metadata_survive_a_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/features.parquet");
    let mut frame = sample_frame();
    let mut metadata = Metadata::for_stage("features");
    metadata.insert_json(keys::SEEDS, &serde_json::json!({"split": 42}));
    metadata.insert(keys::FINGERPRINT, "abc123");
    write_parquet(&path, &mut frame, &metadata).unwrap();

    let (read_back, read_metadata) = read_parquet(&path).unwrap();
    assert_eq!(read_back, sample_frame());
    assert_eq!(read_metadata, metadata);
    assert_eq!(read_metadata.get(keys::CODE_VERSION), Some(CODE_VERSION));
    assert_eq!(read_metadata.get(keys::STAGE), Some("features"));
    let seeds: serde_json::Value = read_metadata.get_json(keys::SEEDS, &path).unwrap();
    assert_eq!(seeds["split"], 42);
    assert_eq!(read_parquet_metadata(&path).unwrap(), metadata);

    let some = read_parquet_columns(&path, &["mfcc_sma[1]_amean", "utterance_id"]).unwrap();
    assert_eq!(
        some.get_column_names(),
        ["mfcc_sma[1]_amean", "utterance_id"]
    );
}

#[test]
fn schema_checks_name_the_file_and_column() {
    let frame = sample_frame();
    let path = Path::new("runs/x/features.parquet");
    require_column(&frame, path, "utterance_id", &DataType::String).unwrap();
    require_float_columns(&frame, path, 2).unwrap();

    let missing = require_column(&frame, path, "speaker", &DataType::String).unwrap_err();
    assert!(matches!(&missing, ArtifactError::Schema { column, .. } if column == "speaker"));
    assert!(missing.to_string().contains("runs/x/features.parquet"));

    let wrong = require_float_columns(&frame, path, 1).unwrap_err();
    assert!(wrong.to_string().contains("\"emotion\""), "{wrong}");
}

#[test]
fn missing_json_metadata_is_a_clear_error() {
    let metadata = Metadata::for_stage("eval");
    let error = metadata
        .get_json::<serde_json::Value>(keys::CONFIG, Path::new("r.parquet"))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "r.parquet: footer metadata key \"emocycle.config\": missing"
    );
}

#[test]
fn reading_a_non_parquet_file_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not.parquet");
    std::fs::write(&path, b"this is text").unwrap();
    let error = read_parquet(&path).unwrap_err();
    assert!(error.to_string().contains("not.parquet"), "{error}");
}
