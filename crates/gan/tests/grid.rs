//! The fused grid engine: a run (pretraining or joint training) has the same bits alone and
//! inside any grid, takes the steps of the per-run trainer, resumes bit-identically, and runs
//! that cannot share a grid are refused.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use emocycle_gan::{
    GanConfig, GanError, GridPretrain, GridRun, PRETRAIN_CHECKPOINT, PretrainOutcome,
    PretrainedGenerators, RunOptions, TRAIN_CHECKPOINT, TrainOutcome, TrainingData, pretrain,
    pretrain_grid, train, train_grid,
};
use tch::{Device, Kind, Tensor};

const CPU: Device = Device::Cpu;

/// libtorch's generator is global to the process: tests that train take turns.
fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    emocycle_torch::set_libtorch_threads(1);
    guard
}

fn config(lambda_cls: f64, seed: u64) -> GanConfig {
    GanConfig {
        generator_hidden: vec![8, 6, 8],
        discriminator_hidden: vec![8, 8],
        classifier_hidden: vec![4, 4],
        batch_size: 4,
        learning_rate: 2e-3,
        lr_decay_every: 2,
        pretrain_epochs: 2,
        train_epochs: 4,
        checkpoint_every: 1,
        lambda_cls,
        seed,
        ..GanConfig::default()
    }
}

/// A scope's data: with `smallest` below 12, its iterations per epoch are `smallest / 4`, else 3.
fn scope(seed: i64, smallest: i64) -> TrainingData {
    tch::manual_seed(seed);
    let rand = |rows| Tensor::rand([rows, 5], (Kind::Float, CPU));
    TrainingData::new(rand(17), vec![rand(smallest), rand(12), rand(13), rand(16)])
}

fn pretrained(config: &GanConfig, data: &TrainingData) -> PretrainedGenerators {
    pretrain(config, data, CPU, &RunOptions::default(), &mut |_| {})
        .unwrap()
        .generators
}

struct Case {
    label: &'static str,
    config: GanConfig,
    data: usize,
}

fn grid_runs<'a>(
    cases: &'a [Case],
    data: &'a [TrainingData],
    generators: &'a [PretrainedGenerators],
    options: impl Fn(&Case) -> RunOptions,
) -> Vec<GridRun<'a>> {
    cases
        .iter()
        .map(|case| GridRun {
            label: case.label.to_string(),
            config: &case.config,
            data: &data[case.data],
            pretrained: &generators[case.data],
            options: options(case),
        })
        .collect()
}

/// Every run's outcome of a grid in which none failed.
fn ok<T>(outcomes: Result<Vec<Result<T, GanError>>, GanError>) -> Vec<T> {
    outcomes
        .unwrap()
        .into_iter()
        .map(|outcome| outcome.unwrap())
        .collect()
}

fn tensors(outcome: &TrainOutcome) -> HashMap<String, Tensor> {
    outcome.model.named_tensors().into_iter().collect()
}

fn checkpoint(path: &Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .filter(|(name, _)| name != "meta.wall_seconds")
        .collect()
}

fn assert_same_bits(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: tensor count");
    for (name, tensor) in a {
        assert!(tensor.equal(&b[name]), "{what}: {name} differs");
    }
}

/// Options that checkpoint each case below `root/name/<label>`, resume, and stop after `stop`
/// epochs of this call.
fn resumable(root: &Path, name: &str, stop: Option<usize>) -> impl Fn(&Case) -> RunOptions {
    let root = root.join(name);
    move |case: &Case| RunOptions {
        checkpoint_dir: Some(root.join(case.label)),
        resume: true,
        stop_after_epochs: stop,
    }
}

/// Every tensor of `a` within 1e-5 of `b`'s of the same name.
fn assert_close(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (name, tensor) in a {
        let diff = (tensor - &b[name]).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "{what}: {name} differs by {diff}");
    }
}

/// Two scopes (3 and 2 iterations per epoch), lambda_cls 0 and 2, two generator seeds. K x
/// batch is 16: a loss of one run alone is half a vector block of libtorch's kernels.
fn cases() -> (Vec<Case>, Vec<TrainingData>, Vec<PretrainedGenerators>) {
    let data = vec![scope(1, 16), scope(2, 9)];
    let generators = data
        .iter()
        .map(|d| pretrained(&config(2.0, 7), d))
        .collect();
    let cases = vec![
        Case {
            label: "a lambda_cls 2",
            config: config(2.0, 7),
            data: 0,
        },
        Case {
            label: "a lambda_cls 0",
            config: config(0.0, 7),
            data: 0,
        },
        Case {
            label: "b lambda_cls 2",
            config: config(2.0, 7),
            data: 1,
        },
        Case {
            label: "b lambda_cls 2 seed 8",
            config: config(2.0, 8),
            data: 1,
        },
    ];
    (cases, data, generators)
}

#[test]
fn a_run_trains_the_same_bits_alone_and_inside_a_grid() {
    let _guard = exclusive();
    let (cases, data, generators) = cases();
    let dir = tempfile::tempdir().unwrap();
    let in_dir = |name: &'static str| {
        let root = dir.path().join(name);
        move |case: &Case| RunOptions {
            checkpoint_dir: Some(root.join(case.label)),
            ..RunOptions::default()
        }
    };
    let together = ok(train_grid(
        &grid_runs(&cases, &data, &generators, in_dir("grid")),
        CPU,
        &mut |_, _| {},
    ));
    assert_eq!(together.len(), cases.len());
    for (index, case) in cases.iter().enumerate() {
        let alone = ok(train_grid(
            &grid_runs(&cases[index..=index], &data, &generators, in_dir("alone")),
            CPU,
            &mut |_, _| {},
        ));
        assert_eq!(alone[0].log, together[index].log, "{}", case.label);
        assert_same_bits(&tensors(&alone[0]), &tensors(&together[index]), case.label);
        let grid_checkpoint = checkpoint(
            &dir.path()
                .join("grid")
                .join(case.label)
                .join(TRAIN_CHECKPOINT),
        );
        assert_same_bits(
            &checkpoint(
                &dir.path()
                    .join("alone")
                    .join(case.label)
                    .join(TRAIN_CHECKPOINT),
            ),
            &grid_checkpoint,
            case.label,
        );
        // A run whose epochs are shorter took only its own steps: 12 or 9 rows in the smallest
        // set give 3 or 2 batches of 4 per epoch, over 4 epochs.
        let iterations = if case.data == 0 { 3 } else { 2 };
        let steps = grid_checkpoint["adam.d.step"].int64_value(&[0]);
        assert_eq!(steps, 4 * iterations, "{}", case.label);
        assert_eq!(
            grid_checkpoint["adam.g.step"].int64_value(&[0]),
            4 * iterations * 2,
            "{}: two G steps per iteration",
            case.label
        );
    }
    // The runs differ from each other: the grid kept them apart, not the same.
    assert!(
        !tensors(&together[0])["g.0.layers.0.weight"]
            .equal(&tensors(&together[2])["g.0.layers.0.weight"])
    );
    assert!(
        tensors(&together[1])
            .keys()
            .all(|name| !name.starts_with("c."))
    );
    assert!(tensors(&together[0]).contains_key("c.layers.0.weight"));
}

#[test]
fn the_grid_takes_the_steps_of_the_per_run_trainer() {
    let _guard = exclusive();
    for quirk in [true, false] {
        // Without dropout the two engines compute the same function from the same start.
        let config = GanConfig {
            generator_dropout: 0.0,
            discriminator_dropout: 0.0,
            classifier_dropout: 0.0,
            d_step_updates_generator: quirk,
            train_epochs: 3,
            ..config(2.0, 5)
        };
        let other = GanConfig {
            lambda_cls: 0.0,
            ..config.clone()
        };
        let data = [scope(3, 12), scope(4, 9)];
        let generators = [pretrained(&config, &data[0]), pretrained(&config, &data[1])];
        let per_run = train(
            &config,
            &data[0],
            &generators[0],
            CPU,
            &RunOptions::default(),
            &mut |_| {},
        )
        .unwrap();
        let grid = ok(train_grid(
            &[
                GridRun {
                    label: "run".into(),
                    config: &config,
                    data: &data[0],
                    pretrained: &generators[0],
                    options: RunOptions::default(),
                },
                GridRun {
                    label: "other".into(),
                    config: &other,
                    data: &data[1],
                    pretrained: &generators[1],
                    options: RunOptions::default(),
                },
            ],
            CPU,
            &mut |_, _| {},
        ));
        let fused = &grid[0];
        assert_eq!(per_run.log.len(), fused.log.len());
        for (a, b) in per_run.log.iter().zip(&fused.log) {
            assert_eq!(a.learning_rate, b.learning_rate);
            let pairs = a.d.iter().zip(&b.d).chain(a.g.iter().zip(&b.g));
            for (x, y) in pairs.chain(a.cycle.iter().zip(&b.cycle)) {
                assert!((x - y).abs() < 1e-5, "quirk {quirk}: loss {x} vs {y}");
            }
            assert!(
                (a.cls - b.cls).abs() < 1e-5,
                "quirk {quirk}: cls {} vs {}",
                a.cls,
                b.cls
            );
        }
        assert_close(
            &tensors(&per_run),
            &tensors(fused),
            &format!("quirk {quirk}"),
        );
    }
}

#[test]
fn a_stopped_grid_resumes_to_the_same_bits_alone_or_together() {
    let _guard = exclusive();
    let (cases, data, generators) = cases();
    let dir = tempfile::tempdir().unwrap();
    let options = |name, stop| resumable(dir.path(), name, stop);
    let straight = ok(train_grid(
        &grid_runs(&cases, &data, &generators, options("straight", None)),
        CPU,
        &mut |_, _| {},
    ));
    let first = ok(train_grid(
        &grid_runs(&cases, &data, &generators, options("split", Some(1))),
        CPU,
        &mut |_, _| {},
    ));
    assert!(
        first
            .iter()
            .all(|o| o.manifest.epochs_done == [1] && !o.manifest.complete)
    );
    // The first run finishes alone, the others together, from the same checkpoints.
    let alone = ok(train_grid(
        &grid_runs(&cases[..1], &data, &generators, options("split", None)),
        CPU,
        &mut |_, _| {},
    ));
    let rest = ok(train_grid(
        &grid_runs(&cases[1..], &data, &generators, options("split", None)),
        CPU,
        &mut |_, _| {},
    ));
    let resumed: Vec<&TrainOutcome> = alone.iter().chain(&rest).collect();
    for ((case, a), b) in cases.iter().zip(&straight).zip(resumed) {
        assert!(b.manifest.complete);
        assert_eq!(a.log, b.log, "{}", case.label);
        assert_same_bits(&tensors(a), &tensors(b), case.label);
        let path = |name: &str| {
            dir.path()
                .join(name)
                .join(case.label)
                .join(TRAIN_CHECKPOINT)
        };
        assert_same_bits(
            &checkpoint(&path("straight")),
            &checkpoint(&path("split")),
            case.label,
        );
    }
}

#[test]
fn runs_that_cannot_share_a_grid_are_refused_by_name() {
    let _guard = exclusive();
    let data = scope(5, 12);
    let generators = pretrained(&config(2.0, 1), &data);
    let a = config(2.0, 1);
    let b = GanConfig {
        batch_size: 16,
        lambda_cyc: 7.0,
        ..config(2.0, 1)
    };
    let run = |label: &str, config| GridRun {
        label: label.into(),
        config,
        data: &data,
        pretrained: &generators,
        options: RunOptions::default(),
    };
    let error = match train_grid(&[run("first", &a), run("second", &b)], CPU, &mut |_, _| {}) {
        Err(error) => error,
        Ok(_) => panic!("runs of other batch sizes trained in one grid"),
    };
    let text = error.to_string();
    assert!(matches!(error, GanError::InvalidConfig(_)), "{text}");
    assert!(
        text.contains("second") && text.contains("batch_size") && text.contains("lambda_cyc"),
        "{text}"
    );
    // Data of another width cannot share a grid either, in either phase.
    tch::manual_seed(8);
    let rand = |rows| Tensor::rand([rows, 6], (Kind::Float, CPU));
    let wide = TrainingData::new(rand(17), (0..4).map(|_| rand(12)).collect());
    let pretraining = |label: &str, data| GridPretrain {
        label: label.into(),
        config: &a,
        data,
        options: RunOptions::default(),
    };
    let error = match pretrain_grid(
        &[pretraining("narrow", &data), pretraining("wide", &wide)],
        CPU,
        &mut |_, _| {},
    ) {
        Err(error) => error.to_string(),
        Ok(_) => panic!("data of 5 and 6 features pretrained in one grid"),
    };
    assert!(
        error.contains("wide has 4 emotions and 6 features, narrow has 4 and 5"),
        "{error}"
    );
}

fn pretraining_runs<'a>(
    cases: &'a [Case],
    data: &'a [TrainingData],
    options: impl Fn(&Case) -> RunOptions,
) -> Vec<GridPretrain<'a>> {
    cases
        .iter()
        .map(|case| GridPretrain {
            label: case.label.to_string(),
            config: &case.config,
            data: &data[case.data],
            options: options(case),
        })
        .collect()
}

fn generators(outcome: &PretrainOutcome) -> HashMap<String, Tensor> {
    outcome
        .generators
        .tensors()
        .iter()
        .map(|(name, tensor)| (name.clone(), tensor.shallow_clone()))
        .collect()
}

#[test]
fn a_pretraining_has_the_same_bits_alone_in_a_grid_and_resumed() {
    let _guard = exclusive();
    let (cases, data, _) = cases();
    let dir = tempfile::tempdir().unwrap();
    let options = |name, stop| resumable(dir.path(), name, stop);
    let pretrain_all = |name, stop| {
        ok(pretrain_grid(
            &pretraining_runs(&cases, &data, options(name, stop)),
            CPU,
            &mut |_, _| {},
        ))
    };
    let together = pretrain_all("together", None);
    // Stopped after 3 pair-epochs (pairs 0 to 2 of the first round), then finished.
    let first = pretrain_all("resumed", Some(3));
    assert!(first.iter().all(|o| o.manifest.epochs_done == [1, 1, 1, 0]));
    let resumed = pretrain_all("resumed", None);
    // The two seeds of scope b pretrain different generators.
    assert!(
        !generators(&together[2])["g.0.layers.0.weight"]
            .equal(&generators(&together[3])["g.0.layers.0.weight"])
    );
    for (index, case) in cases.iter().enumerate() {
        let alone = ok(pretrain_grid(
            &pretraining_runs(&cases[index..=index], &data, options("alone", None)),
            CPU,
            &mut |_, _| {},
        ));
        assert_eq!(alone[0].log, together[index].log, "{}", case.label);
        assert_same_bits(
            &generators(&alone[0]),
            &generators(&together[index]),
            case.label,
        );
        assert_same_bits(
            &generators(&resumed[index]),
            &generators(&together[index]),
            case.label,
        );
        let path = |name: &str| {
            dir.path()
                .join(name)
                .join(case.label)
                .join(PRETRAIN_CHECKPOINT)
        };
        assert_same_bits(
            &checkpoint(&path("together")),
            &checkpoint(&path("resumed")),
            case.label,
        );
        assert_same_bits(
            &checkpoint(&path("together")),
            &checkpoint(&path("alone")),
            case.label,
        );
    }
}

#[test]
fn the_grid_pretrains_as_the_per_run_trainer_does() {
    let _guard = exclusive();
    // Both draw every pair's dropout masks from the same streams: only the matrix products
    // (batched here, one per pair there) round differently.
    let config = config(2.0, 9);
    let data = [scope(6, 12), scope(7, 9)];
    let per_run = pretrain(&config, &data[0], CPU, &RunOptions::default(), &mut |_| {}).unwrap();
    let grid = ok(pretrain_grid(
        &[
            GridPretrain {
                label: "run".into(),
                config: &config,
                data: &data[0],
                options: RunOptions::default(),
            },
            GridPretrain {
                label: "other".into(),
                config: &config,
                data: &data[1],
                options: RunOptions::default(),
            },
        ],
        CPU,
        &mut |_, _| {},
    ));
    assert_eq!(per_run.log.len(), grid[0].log.len());
    for (a, b) in per_run.log.iter().zip(&grid[0].log) {
        assert_eq!((a.pair, a.epoch), (b.pair, b.epoch));
        assert!((a.cycle - b.cycle).abs() < 1e-5, "{a:?} vs {b:?}");
    }
    assert_close(&generators(&per_run), &generators(&grid[0]), "pretrained");
}

#[test]
fn a_diverging_run_leaves_the_grid_and_the_others_finish_as_alone() {
    let _guard = exclusive();
    let (cases, data, pretrained) = cases();
    // A learning rate no network survives: its losses become NaN or infinite.
    let broken = Case {
        label: "b lambda_cls 2 exploding",
        config: GanConfig {
            learning_rate: 1e30,
            ..config(2.0, 7)
        },
        data: 1,
    };
    let mixed = [
        Case {
            label: cases[0].label,
            config: cases[0].config.clone(),
            data: 0,
        },
        broken,
    ];
    let no_checkpoints = |_: &Case| RunOptions::default();
    let outcomes = train_grid(
        &grid_runs(&mixed, &data, &pretrained, no_checkpoints),
        CPU,
        &mut |_, _| {},
    )
    .unwrap();
    let alone = ok(train_grid(
        &grid_runs(&mixed[..1], &data, &pretrained, no_checkpoints),
        CPU,
        &mut |_, _| {},
    ));
    let finished = outcomes[0].as_ref().unwrap();
    assert!(finished.manifest.complete);
    assert_same_bits(&tensors(finished), &tensors(&alone[0]), "the healthy run");
    match &outcomes[1] {
        Err(GanError::InRun { run, source }) => {
            assert_eq!(run, "b lambda_cls 2 exploding");
            assert!(
                matches!(**source, GanError::Diverged { phase: "train", .. }),
                "{source}"
            );
        }
        Err(other) => panic!("another error: {other}"),
        Ok(_) => panic!("a learning rate of 1e30 trained to the end"),
    }
    // Pretraining likewise.
    let outcomes = pretrain_grid(
        &pretraining_runs(&mixed, &data, no_checkpoints),
        CPU,
        &mut |_, _| {},
    )
    .unwrap();
    let alone = ok(pretrain_grid(
        &pretraining_runs(&mixed[..1], &data, no_checkpoints),
        CPU,
        &mut |_, _| {},
    ));
    assert_same_bits(
        &generators(outcomes[0].as_ref().unwrap()),
        &generators(&alone[0]),
        "the healthy pretraining",
    );
    assert!(matches!(&outcomes[1], Err(GanError::InRun { .. })));
}
