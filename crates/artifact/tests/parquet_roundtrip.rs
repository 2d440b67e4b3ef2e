//! Parquet artifacts keep their data and their footer metadata.

use std::path::Path;

use emocycle_artifact::{
    ArtifactError, CODE_VERSION, Metadata, ParquetCompression, ParquetEncoding, ParquetStream,
    WriteOptions, keys, read_parquet, read_parquet_columns, read_parquet_metadata, require_column,
    require_float_columns, write_parquet, write_parquet_with,
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
    let mut metadata = Metadata::for_stage("features", "test-code");
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
    let metadata = Metadata::for_stage("eval", "test-code");
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

fn row_groups(path: &Path) -> usize {
    let file = std::fs::File::open(path).unwrap();
    ParquetReader::new(file)
        .get_metadata()
        .unwrap()
        .row_groups
        .len()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn plain_pages_round_trip_in_row_groups_of_the_requested_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.parquet");
    let mut frame = sample_frame();
    frame.vstack_mut_owned(sample_frame()).unwrap();
    frame.vstack_mut_owned(sample_frame()).unwrap();
    let mut metadata = Metadata::for_stage("features", "test-code");
    metadata.insert(keys::FINGERPRINT, "plain");
    for compression in [ParquetCompression::None, ParquetCompression::Lz4] {
        write_parquet_with(
            &path,
            &mut frame.clone(),
            &metadata,
            WriteOptions {
                compression,
                row_group_rows: Some(2),
                encoding: ParquetEncoding::Plain,
            },
        )
        .unwrap();
        let (read_back, read_metadata) = read_parquet(&path).unwrap();
        assert_eq!(read_back, frame);
        assert_eq!(read_metadata, metadata);
        // Three chunks of three rows, each cut into groups of at most two rows.
        assert_eq!(row_groups(&path), 6);
    }
    assert_eq!(files_in(dir.path()), ["plain.parquet"]);
}

#[test]
fn plain_pages_keep_nested_columns_whole() {
    // A list column is a nested field with one leaf: its pages must stay with it and the flat
    // columns after it with theirs. (Struct columns, several leaves per field, are outside this
    // build's polars features.)
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested.parquet");
    let lists = [
        Series::new("".into(), [1.0f32, 2.0]),
        Series::new("".into(), [3.0f32]),
        Series::new("".into(), Vec::<f32>::new()),
    ];
    let mut frame = DataFrame::new(
        3,
        vec![
            Column::new("id".into(), ["a", "b", "c"]),
            Column::new("values".into(), &lists),
            Column::new("after".into(), [0.5f32, 1.5, 2.5]),
        ],
    )
    .unwrap();
    write_parquet_with(
        &path,
        &mut frame,
        &Metadata::for_stage("test", "test-code"),
        WriteOptions {
            compression: ParquetCompression::None,
            row_group_rows: Some(2),
            encoding: ParquetEncoding::Plain,
        },
    )
    .unwrap();
    let (read_back, _) = read_parquet(&path).unwrap();
    assert_eq!(read_back, frame);
}

#[test]
fn a_stream_appears_only_when_finished_and_rejects_foreign_row_groups() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stream.parquet");
    let metadata = Metadata::for_stage("features", "test-code");

    let mut stream =
        ParquetStream::create(&path, sample_frame().schema(), ParquetCompression::None).unwrap();
    stream.write(sample_frame()).unwrap();
    let error = stream
        .write(df!("utterance_id" => ["u9"]).unwrap())
        .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("stream.parquet"), "{message}");
    assert!(message.contains("differ"), "{message}");
    // Dropped unfinished (as on any error of the stage feeding it): nothing is left behind.
    drop(stream);
    assert!(files_in(dir.path()).is_empty());

    let mut stream =
        ParquetStream::create(&path, sample_frame().schema(), ParquetCompression::Lz4).unwrap();
    for _ in 0..3 {
        stream.write(sample_frame()).unwrap();
    }
    assert!(!path.exists(), "the file appears only when finished");
    stream.finish(&metadata).unwrap();
    let (read_back, read_metadata) = read_parquet(&path).unwrap();
    assert_eq!(read_back.height(), 9);
    assert_eq!(read_back.slice(6, 3), sample_frame());
    assert_eq!(read_metadata, metadata);
    assert_eq!(row_groups(&path), 3);
    assert_eq!(files_in(dir.path()), ["stream.parquet"]);
}
