//! From audio trees shaped like the downloaded corpora (`fixtures/trees/`, made by
//! `tools/corpus/trees.sh`) to a report, with the project's own commands only: `extract` on an
//! IEMOCAP, an MSP-IMPROV and a TED-LIUM tree, then every stage of a pipeline that names the
//! corpora's own label files (IEMOCAP's `EmoEvaluation` directory, MSP-IMPROV's
//! `Evaluation.txt`), no converter in between.

mod common;

use std::path::PathBuf;

use common::emocycle;

fn tree(name: &str) -> PathBuf {
    common::repo_path("fixtures/trees").join(name)
}

#[test]
fn corpus_trees_go_from_audio_and_label_files_to_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    for (name, rows) in [("iemocap", 36), ("msp-improv", 18), ("tedlium", 16)] {
        let input = tree(name);
        let output = work.join(format!("{name}.csv.gz"));
        let stderr = emocycle(
            work,
            &[
                "extract",
                "--input",
                input.to_str().unwrap(),
                "--output",
                output.to_str().unwrap(),
            ],
        );
        assert!(
            stderr.contains(&format!("extract: {rows} rows x 1582 features")),
            "{name}: {stderr}"
        );
    }
    let small = serde_json::json!({
        "hidden": [8], "batch_size": 8, "dropout": 0.1, "learning_rate": 0.01, "epochs": 2
    });
    let pipeline = serde_json::json!({
        "name": "trees",
        "seed": 5,
        "device": "cpu",
        "threads": 1,
        "corpora": [
            {"name": "iemocap", "features": work.join("iemocap.csv.gz"),
             "labels": tree("iemocap"), "label_map": "iemocap",
             "folds": "leave-one-session-out"},
            {"name": "tedlium", "features": work.join("tedlium.csv.gz")},
            {"name": "msp", "features": work.join("msp-improv.csv.gz"),
             "labels": tree("msp-improv").join("Evaluation.txt"), "label_map": "msp-improv",
             "split": {"dev_fraction": 0.5, "seed": 1}}
        ],
        "roles": {"target": "iemocap", "source": "tedlium", "cross_corpus": "msp"},
        "gan": {
            "lambda_cls": [0, 2],
            "network": {
                "generator_hidden": [16], "discriminator_hidden": [16],
                "classifier_hidden": [16], "batch_size": 4, "pretrain_epochs": 2,
                "train_epochs": 3, "checkpoint_every": 3
            }
        },
        "synth": {"metric_rows": 20},
        "baselines": [{"method": "smote", "k": 2, "size": {"per_class": 4}}],
        "evaluation": {
            "repeats": 1,
            "within": {"real": small, "syn": small, "real+syn": small},
            "cross": {"real": small, "syn": small, "real+syn": small}
        }
    });
    std::fs::write(work.join("pipeline.json"), pipeline.to_string()).unwrap();
    let stderr = emocycle(work, &["features", "--config", "pipeline.json"]);
    // IEMOCAP: per session two turns of each emotion, an excited one counted as happy, and the
    // two frustrated ones dropped; MSP-IMPROV: the one turn without agreement dropped.
    for line in [
        "iemocap -> 30 utterances",
        "tedlium -> 16 utterances",
        "msp -> 16 utterances",
    ] {
        assert!(stderr.contains(line), "{line}: {stderr}");
    }
    for stage in [
        "augment", "pretrain", "train", "generate", "quality", "evaluate", "report",
    ] {
        emocycle(work, &[stage, "--config", "pipeline.json"]);
    }
    let report = std::fs::read_to_string(work.join("runs/trees/report.md")).unwrap();
    for section in ["## Table 1", "## Table 2", "## Table 3", "| smote |"] {
        assert!(report.contains(section), "{section} missing:\n{report}");
    }
    // Three folds (sessions) and the all-sessions scope for the cross-corpus experiment.
    for scope in ["fold1", "fold2", "fold3", "all"] {
        assert!(
            work.join(format!(
                "runs/trees/gan/{scope}/lambda_cls-2/model.safetensors"
            ))
            .is_file(),
            "{scope}"
        );
    }
}
