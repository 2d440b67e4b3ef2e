//! The `emocycle` binary end to end on the small format fixtures.

mod common;

use std::path::PathBuf;

use common::run as emocycle;

fn fixture(name: &str) -> PathBuf {
    common::repo_path("fixtures/formats").join(name)
}

#[test]
fn features_stage_writes_every_artifact_and_inspect_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = fixture("pipeline.json");
    let output = emocycle(
        dir.path(),
        &["features", "--config", config.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("features: iemocap -> 5 utterances x 5 features"),
        "{stderr}"
    );
    let features = dir.path().join("runs/formats/features");
    for name in [
        "iemocap.parquet",
        "iemocap.folds.parquet",
        "tedlium.parquet",
        "msp.split.parquet",
        "norm/iemocap.fold2-train.parquet",
    ] {
        assert!(features.join(name).is_file(), "{name} missing");
    }
    let output = emocycle(
        dir.path(),
        &["inspect", "runs/formats/features/iemocap.parquet"],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(stdout.contains("5 rows x 11 columns"), "{stdout}");
    assert!(stdout.contains("emocycle.stage = features"), "{stdout}");
}

#[test]
fn a_second_run_skips_up_to_date_corpora_until_an_input_changes() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "smilextract.csv",
        "labels_iemocap.csv",
        "smilextract_headerless.csv",
        "feature_names.txt",
        "opensmile_python.csv",
        "labels_msp.csv",
        "pipeline.json",
    ] {
        std::fs::copy(fixture(name), dir.path().join(name)).unwrap();
    }
    let first = emocycle(dir.path(), &["features", "--config", "pipeline.json"]);
    assert!(first.status.success());
    let second = emocycle(dir.path(), &["features", "--config", "pipeline.json"]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    for corpus in ["iemocap", "tedlium", "msp"] {
        assert!(
            stderr.contains(&format!("features: {corpus} is up to date")),
            "{stderr}"
        );
    }
    let forced = emocycle(
        dir.path(),
        &["features", "--config", "pipeline.json", "--force"],
    );
    assert!(String::from_utf8_lossy(&forced.stderr).contains("features: iemocap -> 5 utterances"));
    // Changing one corpus's labels reruns that corpus only.
    let labels = std::fs::read_to_string(dir.path().join("labels_msp.csv")).unwrap();
    std::fs::write(
        dir.path().join("labels_msp.csv"),
        labels.replace("Ses02F_0003,N", "Ses02F_0003,A"),
    )
    .unwrap();
    let third = emocycle(dir.path(), &["features", "--config", "pipeline.json"]);
    let stderr = String::from_utf8_lossy(&third.stderr);
    assert!(
        stderr.contains("features: iemocap is up to date"),
        "{stderr}"
    );
    assert!(stderr.contains("features: msp -> 6 utterances"), "{stderr}");
}

#[test]
fn bad_input_exits_non_zero_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.csv"),
        "name;frameTime;a;b\n'u1';0.000000;1;2\n'u2';0.000000;1;x\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("labels.csv"),
        "utterance_id,emotion,session\nu1,ang,S1\nu2,sad,S2\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("p.json"),
        r#"{"name": "bad", "corpora": [
            {"name": "lab", "features": "bad.csv", "labels": "labels.csv", "label_map": "iemocap"},
            {"name": "src", "features": "bad.csv"}],
           "roles": {"target": "lab", "source": "src"}}"#,
    )
    .unwrap();
    let output = emocycle(dir.path(), &["features", "--config", "p.json"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("bad.csv:3, column \"b\": not a number: \"x\""),
        "{stderr}"
    );
    assert!(!dir.path().join("runs/bad/features/lab.parquet").exists());
}

#[test]
fn the_nan_flag_overrides_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("f.csv"),
        "name;frameTime;a;b\n'u1';0.000000;1;2\n'u2';0.000000;nan;2\n'u3';0.000000;3;4\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("labels.csv"),
        "utterance_id,emotion,session\nu1,ang,S1\nu2,sad,S2\nu3,neu,S1\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("p.json"),
        r#"{"name": "nan", "corpora": [
            {"name": "lab", "features": "f.csv", "labels": "labels.csv", "label_map": "iemocap"},
            {"name": "src", "features": "f.csv"}],
           "roles": {"target": "lab", "source": "src"}}"#,
    )
    .unwrap();
    let refused = emocycle(dir.path(), &["features", "--config", "p.json"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("f.csv:3, column \"a\""));
    let dropped = emocycle(
        dir.path(),
        &["features", "--config", "p.json", "--nan", "drop-row"],
    );
    let stderr = String::from_utf8_lossy(&dropped.stderr);
    assert!(dropped.status.success(), "{stderr}");
    assert!(stderr.contains("features: lab -> 2 utterances"), "{stderr}");
}

#[test]
fn unknown_pipeline_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.json"),
        r#"{"name": "x", "corpora": [], "roles": {"target": "a", "source": "b"}, "epochs": 3}"#,
    )
    .unwrap();
    let output = emocycle(dir.path(), &["features", "--config", "p.json"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("unknown field `epochs`"), "{stderr}");
}

#[test]
fn doctor_runs_a_real_libtorch_operation() {
    let dir = tempfile::tempdir().unwrap();
    let output = emocycle(dir.path(), &["doctor", "--device", "cpu"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("matmul check on cpu: ok"), "{stdout}");
}
