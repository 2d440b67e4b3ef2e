//! The GAN stage's files end to end: feature-stage parquet in; checkpoints, loss logs and
//! manifests out; and the test session can never reach training.

use emocycle_artifact::{read_parquet, write_parquet};
use emocycle_features::testing::tiny_corpora;
use emocycle_features::{FeatureLayout, run_features};
use emocycle_gan::{
    GanConfig, PRETRAIN_CHECKPOINT, Scope, ScopeDirs, StageError, StageInputs, StageRun,
    TRAIN_CHECKPOINT, load_scope_data, run_pretrain, run_train,
};
use polars::prelude::*;

fn inputs(layout: &FeatureLayout, subset: &str) -> StageInputs {
    StageInputs {
        source: layout.corpus("source"),
        source_normalisation: layout.normalisation("source", "all"),
        target: layout.corpus("labelled"),
        target_folds: layout.folds("labelled"),
        target_normalisation: layout.normalisation("labelled", subset),
    }
}

fn tiny_config(lambda_cls: f64) -> GanConfig {
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

#[test]
fn a_fold_scope_trains_without_its_test_session_and_writes_every_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let layout = FeatureLayout::new(dir.path().join("features"));
    run_features(&tiny_corpora(dir.path()), &layout, 16).unwrap();
    let scope = Scope::Fold(2);
    let inputs = inputs(&layout, "fold2-train");

    let data = load_scope_data(&inputs, &scope).unwrap();
    assert_eq!(data.held_out_session.as_deref(), Some("Ses2"));
    // Two training sessions x 3 utterances per emotion.
    assert_eq!(data.target_rows, [6, 6, 6, 6]);
    // Min-max on the training part: every target value lies in [0, 1].
    for target in &data.data.targets {
        assert!(target.min().double_value(&[]) >= 0.0 && target.max().double_value(&[]) <= 1.0);
    }

    let dirs = ScopeDirs::new(&dir.path().join("gan"), &scope);
    run_pretrain(
        &tiny_config(2.0),
        &inputs,
        &scope,
        &dirs,
        tch::Device::Cpu,
        StageRun::default(),
        &mut |_| {},
    )
    .unwrap();
    let outcome = run_train(
        &tiny_config(2.0),
        &inputs,
        &scope,
        &dirs,
        tch::Device::Cpu,
        StageRun::default(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(outcome.log.len(), 2);
    // Finished runs drop their resumable checkpoints, unless asked to keep them.
    assert!(dirs.generators().is_file());
    assert!(!dirs.pretrain().join(PRETRAIN_CHECKPOINT).exists());
    assert!(!dirs.train(2.0).join(TRAIN_CHECKPOINT).exists());
    let keep = StageRun {
        keep_checkpoint: true,
        ..StageRun::default()
    };
    run_train(
        &tiny_config(0.0),
        &inputs,
        &scope,
        &dirs,
        tch::Device::Cpu,
        keep,
        &mut |_| {},
    )
    .unwrap();
    assert!(dirs.train(0.0).join(TRAIN_CHECKPOINT).is_file());

    let (log, metadata) = read_parquet(&dirs.train(2.0).join("loss_log.parquet")).unwrap();
    let columns: Vec<String> = log
        .get_column_names()
        .iter()
        .map(|name| name.to_string())
        .collect();
    assert_eq!(
        &columns[..4],
        ["epoch", "learning_rate", "d_angry", "d_happy"]
    );
    assert!(
        columns.contains(&"cycle_sad".to_string())
            && columns.last().map(String::as_str) == Some("cls")
    );
    assert_eq!(metadata.get("emocycle.scope"), Some("fold2"));
    assert_eq!(metadata.get("emocycle.lambda_cls"), Some("2"));

    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dirs.train(2.0).join("manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["held_out_session"], "Ses2");
    assert_eq!(manifest["run"]["device"], "cpu");
    assert_eq!(manifest["inputs"].as_object().unwrap().len(), 6);

    // The model file is plain safetensors: an 8-byte header length, a JSON header, the data.
    let bytes = std::fs::read(dirs.model(2.0)).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    assert_eq!(header["g.0.layers.0.weight"]["dtype"], "F32");
    assert_eq!(
        header["g.0.layers.0.weight"]["shape"],
        serde_json::json!([8, 6])
    );
    assert!(header.get("c.layers.0.weight").is_some());
}

#[test]
fn training_before_pretraining_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let layout = FeatureLayout::new(dir.path().join("features"));
    run_features(&tiny_corpora(dir.path()), &layout, 16).unwrap();
    let dirs = ScopeDirs::new(&dir.path().join("gan"), &Scope::All);
    let error = run_train(
        &tiny_config(0.0),
        &inputs(&layout, "all"),
        &Scope::All,
        &dirs,
        tch::Device::Cpu,
        StageRun::default(),
        &mut |_| {},
    )
    .err()
    .unwrap();
    assert!(
        error.to_string().contains("pretrain scope all first"),
        "{error}"
    );
}

#[test]
fn a_test_session_row_in_the_training_part_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let layout = FeatureLayout::new(dir.path().join("features"));
    run_features(&tiny_corpora(dir.path()), &layout, 16).unwrap();
    // Corrupt the fold file: one utterance of session Ses1 (fold 1's test session) is moved to
    // fold 2, so fold 1's training part would contain it.
    let folds_path = layout.folds("labelled");
    let (mut folds, metadata) = read_parquet(&folds_path).unwrap();
    let ids: Vec<String> = folds
        .column("utterance_id")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|id| id.unwrap().to_string())
        .collect();
    let mut assignment: Vec<u32> = folds
        .column("fold")
        .unwrap()
        .u32()
        .unwrap()
        .into_no_null_iter()
        .collect();
    let victim = ids.iter().position(|id| id.starts_with("S1_")).unwrap();
    assert_eq!(assignment[victim], 1);
    assignment[victim] = 2;
    folds
        .replace("fold", Column::new("fold".into(), assignment))
        .unwrap();
    write_parquet(&folds_path, &mut folds, &metadata).unwrap();

    let error = load_scope_data(&inputs(&layout, "fold1-train"), &Scope::Fold(1))
        .err()
        .unwrap();
    assert!(
        matches!(
            &error,
            StageError::Features(emocycle_features::FeatureError::TestSessionInTraining { .. })
        ),
        "{error}"
    );
    assert!(error.to_string().contains("Ses1"), "{error}");
}
