//! A writer killed with SIGKILL in the middle of an atomic write leaves the previous artifact
//! intact (or none), never a torn file: polars' writer and the row-group stream alike.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use emocycle_artifact::{
    Metadata, ParquetCompression, ParquetEncoding, WriteOptions, read_parquet, write_parquet,
    write_parquet_with,
};
use polars::prelude::*;

const CHILD_TARGET: &str = "EMOCYCLE_CRASH_TEST_TARGET";
const ROWS: usize = 400_000;

/// A frame whose every value equals `version`, so a mixed or truncated file is detectable.
fn frame_of_version(version: u32) -> DataFrame {
    let value = version as f32;
    let columns: Vec<Column> = (0..8)
        .map(|index| Column::new(format!("f{index}").into(), vec![value; ROWS]))
        .collect();
    DataFrame::new(ROWS, columns).unwrap()
}

fn assert_whole(path: &Path) -> Option<u32> {
    if !path.exists() {
        return None;
    }
    let (frame, metadata) = read_parquet(path).expect("the artifact must never be torn");
    assert_eq!(frame.height(), ROWS);
    let version: u32 = metadata.get("version").unwrap().parse().unwrap();
    for column in frame.columns() {
        let values = column.f32().unwrap();
        assert!(
            values
                .into_no_null_iter()
                .all(|value| value == version as f32)
        );
    }
    Some(version)
}

/// Run by the test below in a child process: rewrites the artifact until it is killed.
#[test]
#[ignore = "helper process of killed_writer_never_leaves_a_torn_artifact"]
fn crash_test_child_writer() {
    let Ok(target) = std::env::var(CHILD_TARGET) else {
        return;
    };
    for version in 1.. {
        let mut metadata = Metadata::for_stage("crash-test", "test-code");
        metadata.insert("version", version.to_string());
        // Odd versions go through ParquetStream (plain pages, row groups written by a thread
        // of its own while the next is encoded), even ones through polars' writer.
        let encoding = if version % 2 == 1 {
            ParquetEncoding::Plain
        } else {
            ParquetEncoding::Auto
        };
        write_parquet_with(
            Path::new(&target),
            &mut frame_of_version(version),
            &metadata,
            WriteOptions {
                compression: ParquetCompression::Zstd,
                row_group_rows: Some(50_000),
                encoding,
            },
        )
        .unwrap();
    }
}

#[test]
fn killed_writer_never_leaves_a_torn_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("artifact.parquet");
    let mut metadata = Metadata::for_stage("crash-test", "test-code");
    metadata.insert("version", "0");
    write_parquet(&target, &mut frame_of_version(0), &metadata).unwrap();

    let mut saw_a_newer_version = false;
    for delay_ms in [30u64, 120, 350, 700] {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "crash_test_child_writer",
                "--nocapture",
            ])
            .env(CHILD_TARGET, &target)
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL on Unix: no destructor or cleanup runs.
        child.wait().unwrap();
        let version = assert_whole(&target).expect("an artifact existed before the writer started");
        saw_a_newer_version |= version > 0;
    }
    // The writes that were under way when the children died left temporaries; the next write
    // clears them away.
    write_parquet(&target, &mut frame_of_version(9), &metadata).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name())
        .filter(|name| name != "artifact.parquet")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Not required for safety, but shows the children really were writing when killed.
    if !saw_a_newer_version {
        eprintln!("note: no child finished a write before being killed");
    }
}
