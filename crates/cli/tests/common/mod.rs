//! What the binary's integration tests share: running `emocycle` and the tiny pipeline they
//! start from.

// Each test file uses some of these.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

use emocycle_features::testing::tiny_corpora;

/// `relative` below the repository root (`fixtures/formats/...`).
pub(crate) fn repo_path(relative: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(relative)
}

/// Runs `emocycle args` in `dir`.
pub(crate) fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_emocycle"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// Runs `emocycle args` in `dir`, which must succeed; its standard output, then its error
/// output (which carries the progress lines).
pub(crate) fn emocycle(dir: &Path, args: &[&str]) -> String {
    let output = run(dir, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{args:?}: {text}");
    text
}

/// The tiny pipeline `tiny` on the corpora of `tiny_corpora` (3 sessions, 6 features), written
/// into `dir`: lambda_cls 0 and 1, a SMOTE and a conditional-GAN baseline, networks of 8 units,
/// one repeat. Tests change what they need and [`write`] it as `pipeline.json`.
pub(crate) fn tiny_pipeline(dir: &Path) -> serde_json::Value {
    let corpora = tiny_corpora(dir);
    let small = serde_json::json!({
        "hidden": [6], "batch_size": 8, "dropout": 0.1, "learning_rate": 0.01, "epochs": 2
    });
    serde_json::json!({
        "name": "tiny",
        "seed": 3,
        "device": "cpu",
        "corpora": corpora.corpora,
        "roles": {"target": "labelled", "source": "source"},
        "gan": {
            "lambda_cls": [0, 1],
            "network": {
                "generator_hidden": [8], "discriminator_hidden": [8], "classifier_hidden": [8],
                "batch_size": 4, "pretrain_epochs": 2, "train_epochs": 2, "checkpoint_every": 2
            }
        },
        "synth": {"figure_features": ["f0", "f1"], "metric_rows": 20},
        "baselines": [
            {"method": "smote", "k": 2, "size": {"per_class": 4}},
            {"method": "cgan", "epochs": 2, "noise_dim": 3, "generator_hidden": [8],
             "discriminator_hidden": [8], "batch_size": 4, "size": {"per_class": 4}}
        ],
        "evaluation": {
            "repeats": 1,
            "within": {"real": small, "syn": small, "real+syn": small},
            "cross": {"real": small, "syn": small, "real+syn": small}
        }
    })
}

/// Writes `pipeline` as `dir/pipeline.json`.
pub(crate) fn write(dir: &Path, pipeline: &serde_json::Value) {
    std::fs::write(
        dir.join("pipeline.json"),
        serde_json::to_string_pretty(pipeline).unwrap(),
    )
    .unwrap();
}
