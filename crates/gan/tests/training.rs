//! End-to-end behaviour of the GAN stage on tiny problems, and the paper's model size.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use emocycle_gan::{
    CycleGanModel, EpochReport, GanConfig, GanError, ModelLayout, PRETRAIN_CHECKPOINT,
    PretrainedGenerators, RunOptions, TRAIN_CHECKPOINT, TrainingData, pretrain, train,
};
use tch::{Device, Kind, Tensor};

const CPU: Device = Device::Cpu;

/// libtorch's random generator is global to the process: tests that train must not run at the
/// same time, or each would draw from the other's stream. One thread also keeps OpenMP from
/// spinning on these tiny matrices.
fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    emocycle_torch::set_libtorch_threads(1);
    guard
}

#[test]
fn parameter_counts_and_shapes_match_the_paper_at_d_1582() {
    let _guard = exclusive();
    let d: i64 = 1582;
    // G, F: d-1000-500-1000-d; D: d-1000-1000-1; C: d-100-100-4.
    let generator = (d * 1000 + 1000) + (1000 * 500 + 500) + (500 * 1000 + 1000) + (1000 * d + d);
    let discriminator = (d * 1000 + 1000) + (1000 * 1000 + 1000) + (1000 + 1);
    let classifier = (d * 100 + 100) + (100 * 100 + 100) + (100 * 4 + 4);
    assert_eq!(
        (generator, discriminator, classifier),
        (4_168_082, 2_585_001, 168_804)
    );
    let total = 4 * (2 * generator + 2 * discriminator) + classifier;
    assert_eq!(total, 54_193_468);

    let model =
        CycleGanModel::new_initialised(&GanConfig::default(), 4, d, ModelLayout::Batched, CPU)
            .unwrap();
    let counts = model.parameter_counts();
    assert_eq!(
        (
            counts.generator,
            counts.discriminator,
            counts.classifier,
            counts.total
        ),
        (generator, discriminator, classifier, total)
    );
    let shapes: HashMap<String, Vec<i64>> = model
        .named_tensors()
        .into_iter()
        .map(|(n, t)| (n, t.size()))
        .collect();
    assert_eq!(shapes.len(), 4 * (8 + 8 + 6 + 6) + 6);
    assert_eq!(shapes["g.0.layers.0.weight"], [1000, d]);
    assert_eq!(shapes["g.0.layers.1.weight"], [500, 1000]);
    assert_eq!(shapes["f.3.layers.3.weight"], [d, 1000]);
    assert_eq!(shapes["f.3.layers.3.bias"], [d]);
    assert_eq!(shapes["d_t.1.layers.2.weight"], [1, 1000]);
    assert_eq!(shapes["d_s.2.layers.2.bias"], [1]);
    assert_eq!(shapes["c.layers.2.weight"], [4, 100]);
}

#[test]
fn lambda_cls_zero_builds_no_classifier() {
    let _guard = exclusive();
    let config = GanConfig {
        lambda_cls: 0.0,
        generator_hidden: vec![8, 4, 8],
        discriminator_hidden: vec![8, 8],
        ..GanConfig::default()
    };
    for layout in [ModelLayout::Separate, ModelLayout::Batched] {
        let model = CycleGanModel::new_initialised(&config, 4, 6, layout, CPU).unwrap();
        assert!(!model.has_classifier());
        assert_eq!(model.parameter_counts().classifier, 0);
        assert!(
            model
                .named_tensors()
                .iter()
                .all(|(name, _)| !name.starts_with("c."))
        );
    }
    let with = CycleGanModel::new_initialised(
        &GanConfig {
            lambda_cls: 2.0,
            ..config
        },
        4,
        6,
        ModelLayout::Separate,
        CPU,
    )
    .unwrap();
    assert!(with.has_classifier());
}

fn gaussian(rows: i64, mean: [f64; 2], std: f64) -> Tensor {
    Tensor::randn([rows, 2], (Kind::Float, CPU)) * std
        + Tensor::from_slice(&[mean[0] as f32, mean[1] as f32])
}

fn tiny(features: i64, epochs: usize) -> (GanConfig, TrainingData) {
    let config = GanConfig {
        generator_hidden: vec![8, 6, 8],
        discriminator_hidden: vec![8, 8],
        classifier_hidden: vec![4, 4],
        batch_size: 4,
        learning_rate: 2e-3,
        lr_decay_every: 2,
        pretrain_epochs: epochs,
        train_epochs: epochs,
        checkpoint_every: 1,
        seed: 42,
        ..GanConfig::default()
    };
    tch::manual_seed(1);
    let rand = |rows| Tensor::rand([rows, features], (Kind::Float, CPU));
    let data = TrainingData::new(rand(13), vec![rand(9), rand(12), rand(8), rand(10)]);
    (config, data)
}

#[test]
fn pretraining_drives_the_cycle_loss_down() {
    let _guard = exclusive();
    let (config, data) = tiny(6, 60);
    let config = GanConfig {
        learning_rate: 3e-3,
        ..config
    };
    let mut reports = 0;
    let outcome = pretrain(&config, &data, CPU, &RunOptions::default(), &mut |report| {
        assert!(matches!(report, EpochReport::Pretrain { .. }));
        reports += 1;
    })
    .unwrap();
    assert_eq!(reports, 4 * 60);
    assert!(outcome.manifest.complete);
    assert_eq!(outcome.manifest.epochs_done, [60; 4]);
    for pair in 0..4 {
        let cycle: Vec<f64> = outcome
            .log
            .iter()
            .filter(|r| r.pair == pair)
            .map(|r| r.cycle)
            .collect();
        let first = cycle[..3].iter().sum::<f64>() / 3.0;
        let last = cycle[cycle.len() - 3..].iter().sum::<f64>() / 3.0;
        assert!(
            last < 0.5 * first,
            "pair {pair}: cycle loss {first} -> {last}"
        );
    }
    let json = serde_json::to_string(&outcome.manifest).unwrap();
    assert!(json.contains("\"phase\":\"pretrain\""));
}

#[test]
fn generated_means_move_to_the_target_means() {
    let _guard = exclusive();
    tch::manual_seed(7);
    let means = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]];
    let source = gaussian(256, [0.0, 0.0], 0.1);
    let data = TrainingData::new(
        source.shallow_clone(),
        means.iter().map(|&m| gaussian(128, m, 0.1)).collect(),
    );
    let config = GanConfig {
        generator_hidden: vec![16, 16, 16],
        discriminator_hidden: vec![16, 16],
        classifier_hidden: vec![8, 8],
        batch_size: 32,
        learning_rate: 2e-3,
        lr_decay_every: 1000,
        pretrain_epochs: 10,
        train_epochs: 150,
        seed: 3,
        ..GanConfig::default()
    };
    let options = RunOptions::default();
    let pretrained = pretrain(&config, &data, CPU, &options, &mut |_| {}).unwrap();
    let outcome = train(
        &config,
        &data,
        &pretrained.generators,
        CPU,
        &options,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(outcome.log.len(), 150);
    for (emotion, mean) in means.iter().enumerate() {
        let generated = outcome.model.generate(emotion, &source).unwrap();
        let got: Vec<f64> =
            Vec::try_from(generated.mean_dim([0i64].as_slice(), false, Kind::Double)).unwrap();
        let distance = ((got[0] - mean[0]).powi(2) + (got[1] - mean[1]).powi(2)).sqrt();
        assert!(
            distance < 0.25,
            "emotion {emotion}: generated mean {got:?}, target {mean:?}"
        );
    }
}

fn all_tensors(path: &std::path::Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .filter(|(name, _)| name != "meta.wall_seconds")
        .collect()
}

#[test]
fn resuming_is_bit_identical_to_an_uninterrupted_run() {
    let _guard = exclusive();
    let (config, data) = tiny(4, 5);
    let straight_dir = tempfile::tempdir().unwrap();
    let straight = RunOptions {
        checkpoint_dir: Some(straight_dir.path().to_path_buf()),
        ..RunOptions::default()
    };
    let pre = pretrain(&config, &data, CPU, &straight, &mut |_| {}).unwrap();
    let full = train(&config, &data, &pre.generators, CPU, &straight, &mut |_| {}).unwrap();
    assert!(full.manifest.complete);

    let split_dir = tempfile::tempdir().unwrap();
    let part = |stop| RunOptions {
        checkpoint_dir: Some(split_dir.path().to_path_buf()),
        resume: true,
        stop_after_epochs: stop,
    };
    // Stop in the middle of the second round of epochs, then finish from the checkpoint.
    let first = pretrain(&config, &data, CPU, &part(Some(7)), &mut |_| {}).unwrap();
    assert!(!first.manifest.complete);
    assert_eq!(first.manifest.epochs_done, [2, 2, 2, 1]);
    let rest = pretrain(&config, &data, CPU, &part(None), &mut |_| {}).unwrap();
    assert_eq!(rest.log, pre.log);
    let a = all_tensors(&straight_dir.path().join(PRETRAIN_CHECKPOINT));
    let b = all_tensors(&split_dir.path().join(PRETRAIN_CHECKPOINT));
    assert_eq!(a.len(), b.len());
    for (name, tensor) in &a {
        assert!(tensor.equal(&b[name]), "pretraining checkpoint {name}");
    }
    for (name, tensor) in pre.generators.tensors() {
        assert!(
            tensor.equal(&rest.generators.tensors()[name]),
            "pretrained {name}"
        );
    }
    // Go through the file, as a fresh process would.
    let generators_path = split_dir.path().join("generators.safetensors");
    rest.generators.save(&generators_path).unwrap();
    let generators = PretrainedGenerators::load(&generators_path).unwrap();

    let half = train(
        &config,
        &data,
        &generators,
        CPU,
        &part(Some(2)),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(half.manifest.epochs_done, [2]);
    assert!(!half.manifest.complete);
    let resumed = train(&config, &data, &generators, CPU, &part(None), &mut |_| {}).unwrap();
    assert!(resumed.manifest.complete);
    assert_eq!(resumed.log, full.log);

    let a = all_tensors(&straight_dir.path().join(TRAIN_CHECKPOINT));
    let b = all_tensors(&split_dir.path().join(TRAIN_CHECKPOINT));
    assert_eq!(a.len(), b.len());
    assert!(
        a.contains_key("adam.d.m.g.0.layers.0.weight"),
        "the D optimiser holds G with the quirk"
    );
    for (name, tensor) in &a {
        assert!(tensor.equal(&b[name]), "{name} differs after resume");
    }
    for ((name, x), (other, y)) in full
        .model
        .named_tensors()
        .iter()
        .zip(resumed.model.named_tensors().iter())
    {
        assert_eq!(name, other);
        assert!(x.equal(y), "model tensor {name}");
    }

    let loaded = CycleGanModel::load(
        &split_dir.path().join(TRAIN_CHECKPOINT),
        &config,
        ModelLayout::Separate,
        CPU,
    )
    .unwrap();
    let loaded: HashMap<String, Tensor> = loaded.named_tensors().into_iter().collect();
    assert_eq!(loaded.len(), full.model.named_tensors().len());
    for (name, x) in full.model.named_tensors() {
        assert!(x.equal(&loaded[&name]), "loaded tensor {name}");
    }

    // A checkpoint from other settings is refused, not silently continued.
    let changed = GanConfig {
        lambda_cyc: 1.0,
        train_epochs: 6,
        ..config.clone()
    };
    let err = match train(&changed, &data, &generators, CPU, &part(None), &mut |_| {}) {
        Err(err) => err,
        Ok(_) => panic!("a mismatching checkpoint was accepted"),
    };
    assert!(
        matches!(&err, GanError::CheckpointMismatch { differences, .. } if differences.contains("lambda_cyc")),
        "{err}"
    );
}

#[test]
fn one_or_two_threads_pretrain_and_train_the_same_bits() {
    let _guard = exclusive();
    // Wide enough (the paper's d = 1582, batch 64) that libtorch splits a loss's reductions
    // over two threads when a CycleGAN has them, which changes the bits.
    let (config, _) = tiny(1582, 2);
    let config = GanConfig {
        generator_hidden: vec![256, 128, 256],
        discriminator_hidden: vec![128, 128],
        classifier_hidden: vec![32, 32],
        batch_size: 64,
        ..config
    };
    let rand = |rows| Tensor::rand([rows, 1582], (Kind::Float, CPU));
    let data = TrainingData::new(rand(128), (0..4).map(|_| rand(64)).collect());
    let run = |threads| {
        emocycle_torch::set_libtorch_threads(threads);
        let pre = pretrain(&config, &data, CPU, &RunOptions::default(), &mut |_| {}).unwrap();
        let trained = train(
            &config,
            &data,
            &pre.generators,
            CPU,
            &RunOptions::default(),
            &mut |_| {},
        )
        .unwrap();
        emocycle_torch::set_libtorch_threads(1);
        (pre, trained)
    };
    let (pre_one, trained_one) = run(1);
    let (pre_two, trained_two) = run(2);
    assert_eq!(pre_one.log, pre_two.log);
    for (name, tensor) in pre_one.generators.tensors() {
        assert!(
            tensor.equal(&pre_two.generators.tensors()[name]),
            "pretrained {name}"
        );
    }
    assert_eq!(trained_one.log, trained_two.log);
    let two: HashMap<String, Tensor> = trained_two.model.named_tensors().into_iter().collect();
    for (name, tensor) in trained_one.model.named_tensors() {
        assert!(tensor.equal(&two[&name]), "trained {name}");
    }
}
