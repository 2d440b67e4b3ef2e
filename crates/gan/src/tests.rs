//! Tests that need the crate's internals: layout equivalence, the D-step quirk, the losses.

use std::collections::HashMap;

use tch::{Device, Kind, Tensor};

use crate::model::Nets;
use crate::train::{EpochSums, Spread, Trainer, alone};
use crate::{GanConfig, GanError, ModelLayout};
use emocycle_torch::{Acts, Leaf, bce_elementwise};

const MODELS: usize = 4;
const FEATURES: i64 = 5;
const BATCH: i64 = 3;

fn tiny_config() -> GanConfig {
    GanConfig {
        generator_hidden: vec![7, 6, 7],
        discriminator_hidden: vec![8, 8],
        classifier_hidden: vec![4, 4],
        // Dropout off: the layouts draw masks in different orders, so only the deterministic
        // function can be compared.
        generator_dropout: 0.0,
        discriminator_dropout: 0.0,
        classifier_dropout: 0.0,
        batch_size: BATCH as usize,
        ..GanConfig::default()
    }
}

fn gradients(leaves: &[Leaf]) -> HashMap<String, Tensor> {
    leaves
        .iter()
        .filter(|leaf| leaf.tensor.grad().defined())
        .flat_map(|leaf| leaf.export("", &leaf.tensor.grad()))
        .collect()
}

fn assert_close(a: &Tensor, b: &Tensor, what: &str) {
    let diff = (a - b).abs().max().double_value(&[]);
    assert!(diff < 1e-5, "{what} differs by {diff}");
}

fn assert_same_gradients(separate: &Nets, batched: &Nets) {
    let (a, b) = (gradients(&separate.leaves()), gradients(&batched.leaves()));
    let mut names: Vec<_> = a.keys().collect();
    names.sort();
    let mut other: Vec<_> = b.keys().collect();
    other.sort();
    assert_eq!(names, other);
    assert!(!names.is_empty());
    for name in names {
        assert_close(&a[name], &b[name], name);
    }
}

fn zero_all(nets: &Nets) {
    for stack in nets.stacks() {
        stack.zero_grad();
    }
}

#[test]
fn batched_and_separate_layouts_agree_on_losses_and_gradients() {
    let config = tiny_config();
    let _rng = crate::libtorch_rng_lock();
    tch::manual_seed(11);
    let separate = Nets::new(
        &config,
        MODELS,
        FEATURES,
        ModelLayout::Separate,
        Device::Cpu,
    );
    let batched = Nets::new(&config, MODELS, FEATURES, ModelLayout::Batched, Device::Cpu);
    let weights: HashMap<String, Tensor> = separate.export().into_iter().collect();
    batched.import(&weights).unwrap();
    let exported: HashMap<String, Tensor> = batched.export().into_iter().collect();
    assert_eq!(exported.len(), weights.len());
    for (name, tensor) in &weights {
        assert!(tensor.equal(&exported[name]), "{name} did not round-trip");
    }

    let rows = MODELS as i64 * BATCH;
    let s_rows = Tensor::rand([rows, FEATURES], (Kind::Float, Device::Cpu));
    let t_rows = Tensor::rand([rows, FEATURES], (Kind::Float, Device::Cpu));
    let acts = |layout| {
        (
            Acts::from_rows(&s_rows, MODELS, layout),
            Acts::from_rows(&t_rows, MODELS, layout),
        )
    };
    let (s_sep, t_sep) = acts(ModelLayout::Separate);
    let (s_bat, t_bat) = acts(ModelLayout::Batched);

    for through_generator in [false, true] {
        zero_all(&separate);
        zero_all(&batched);
        let d_sep = separate.discriminator_losses(&config, &s_sep, &t_sep, through_generator);
        let d_bat = batched.discriminator_losses(&config, &s_bat, &t_bat, through_generator);
        assert_eq!(d_sep.size(), [MODELS as i64]);
        assert_close(&d_sep, &d_bat, "discriminator losses");
        d_sep.sum(Kind::Float).backward();
        d_bat.sum(Kind::Float).backward();
        assert_same_gradients(&separate, &batched);
    }

    zero_all(&separate);
    zero_all(&batched);
    let labels = Tensor::arange(MODELS as i64, (Kind::Int64, Device::Cpu))
        .repeat_interleave_self_int(BATCH, 0, None);
    let g_sep = separate.generator_losses(&config, &s_sep, &t_sep, &labels);
    let g_bat = batched.generator_losses(&config, &s_bat, &t_bat, &labels);
    assert_close(&g_sep.g, &g_bat.g, "generator losses");
    assert_close(&g_sep.cycle, &g_bat.cycle, "cycle losses");
    assert_close(&g_sep.cls, &g_bat.cls, "classification loss");
    assert_close(&g_sep.total, &g_bat.total, "total generator loss");
    g_sep.total.backward();
    g_bat.total.backward();
    assert_same_gradients(&separate, &batched);

    // Generation through one model of the stack agrees too.
    for emotion in 0..MODELS {
        let a = separate.g.forward_one(emotion, &s_rows, false);
        let b = batched.g.forward_one(emotion, &s_rows, false);
        assert_close(&a, &b, "generated rows");
    }
}

fn snapshot(trainer: &Trainer) -> HashMap<String, Tensor> {
    trainer
        .nets
        .export()
        .into_iter()
        .map(|(name, tensor)| (name, tensor.copy()))
        .collect()
}

fn changed(
    before: &HashMap<String, Tensor>,
    after: &HashMap<String, Tensor>,
    prefix: &str,
) -> bool {
    let mut names = before
        .keys()
        .filter(|name| name.starts_with(prefix))
        .peekable();
    assert!(names.peek().is_some(), "no tensors start with {prefix}");
    names.any(|name| !before[name].equal(&after[name]))
}

const TWO_GROUPS: Spread = Spread {
    groups: 2,
    threads_per_group: 1,
};
const ONE_GROUP: Spread = Spread {
    groups: 1,
    threads_per_group: 1,
};

#[test]
fn a_d_step_moves_g_only_with_the_quirk_and_never_f() {
    let _rng = crate::libtorch_rng_lock();
    // The grid engine's D step (batched) is checked against these in tests/grid.rs.
    for spread in [None, Some(TWO_GROUPS)] {
        for quirk in [false, true] {
            let config = GanConfig {
                d_step_updates_generator: quirk,
                generator_dropout: 0.2,
                discriminator_dropout: 0.2,
                ..tiny_config()
            };
            tch::manual_seed(5);
            let mut trainer = Trainer::new(&config, MODELS, FEATURES, Device::Cpu, spread).unwrap();
            let rows = MODELS as i64 * BATCH;
            let draw = || Tensor::rand([rows, FEATURES], (Kind::Float, Device::Cpu));
            let s = Acts::from_rows(&draw(), MODELS, ModelLayout::Separate);
            let t = Acts::from_rows(&draw(), MODELS, ModelLayout::Separate);
            let before = snapshot(&trainer);
            let _ = trainer.discriminator_step(&config, &s, &t, 1e-2);
            let after = snapshot(&trainer);
            assert!(
                changed(&before, &after, "d_t."),
                "{spread:?}: D_T must move"
            );
            assert!(
                changed(&before, &after, "d_s."),
                "{spread:?}: D_S must move"
            );
            assert_eq!(
                changed(&before, &after, "g."),
                quirk,
                "{spread:?}, quirk {quirk}: G"
            );
            assert!(
                !changed(&before, &after, "f."),
                "{spread:?}: F must never move in a D step"
            );
            assert!(
                !changed(&before, &after, "c."),
                "{spread:?}: C must never move in a D step"
            );
            if quirk {
                for k in 0..MODELS {
                    assert!(
                        changed(&before, &after, &format!("g.{k}.")),
                        "{spread:?}: G_{k} must move"
                    );
                }
            }
        }
    }
}

#[test]
fn sigmoid_cross_entropy_with_label_smoothing_matches_hand_values() {
    let logits = Tensor::from_slice(&[0.0f32, 2.0, -1.0]);
    // max(x, 0) - x z + ln(1 + e^-|x|)
    let smoothed: Vec<f32> = Vec::try_from(bce_elementwise(&logits, 0.9)).unwrap();
    let expected_smoothed = [
        std::f32::consts::LN_2,
        2.0 - 1.8 + (1.0 + (-2.0f32).exp()).ln(),
        0.9 + (1.0 + (-1.0f32).exp()).ln(),
    ];
    let fake: Vec<f32> = Vec::try_from(bce_elementwise(&logits, 0.0)).unwrap();
    let expected_fake = [
        std::f32::consts::LN_2,
        2.0 + (1.0 + (-2.0f32).exp()).ln(),
        (1.0 + (-1.0f32).exp()).ln(),
    ];
    for (got, want) in smoothed
        .iter()
        .zip(expected_smoothed)
        .chain(fake.iter().zip(expected_fake))
    {
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }
    assert!((expected_smoothed[1] - 0.326_928).abs() < 1e-6);
    assert!((expected_fake[2] - 0.313_262).abs() < 1e-6);

    // Per-model means in both layouts: model 0 sees [0, 2], model 1 sees [-1, 0].
    let rows = Tensor::from_slice(&[0.0f32, 2.0, -1.0, 0.0]).view([4, 1]);
    for layout in [ModelLayout::Separate, ModelLayout::Batched] {
        let means: Vec<f32> =
            Vec::try_from(Acts::from_rows(&rows, 2, layout).bce_with_logits(0.9)).unwrap();
        let want = [
            (expected_smoothed[0] + expected_smoothed[1]) / 2.0,
            (expected_smoothed[2] + expected_smoothed[0]) / 2.0,
        ];
        assert!(
            (means[0] - want[0]).abs() < 1e-6 && (means[1] - want[1]).abs() < 1e-6,
            "{layout:?}"
        );
    }
}

/// `iterations` joint iterations of a fresh trainer on fixed random batches, from seed 9:
/// every tensor afterwards and the summed losses.
fn train_a_little(
    config: &GanConfig,
    spread: Option<Spread>,
    iterations: usize,
) -> (HashMap<String, Tensor>, Vec<f64>) {
    let _rng = crate::libtorch_rng_lock();
    tch::manual_seed(9);
    let rows = MODELS as i64 * BATCH;
    // Drawn first: the two ways of training consume the generator differently.
    let batches: Vec<(Tensor, Tensor)> = (0..iterations)
        .map(|_| {
            let draw = || Tensor::rand([rows, FEATURES], (Kind::Float, Device::Cpu));
            (draw(), draw())
        })
        .collect();
    let mut trainer = Trainer::new(config, MODELS, FEATURES, Device::Cpu, spread).unwrap();
    let mut sums = EpochSums::zeros(MODELS, Device::Cpu);
    for (s, t) in &batches {
        let (s, t) = (
            Acts::from_rows(s, MODELS, ModelLayout::Separate),
            Acts::from_rows(t, MODELS, ModelLayout::Separate),
        );
        trainer.steps(config, &s, &t, 1e-3, &mut sums);
    }
    let losses = [&sums.d, &sums.g, &sums.cycle, &sums.cls]
        .iter()
        .flat_map(|sum| Vec::<f64>::try_from(sum.to_kind(Kind::Double).flatten(0, -1)).unwrap())
        .collect();
    (snapshot(&trainer), losses)
}

#[test]
fn training_in_groups_gives_the_same_bits_whatever_the_group_count() {
    // Dropout, C and the D-step quirk all on: every source of randomness and every shared
    // network is exercised.
    let config = GanConfig {
        generator_dropout: 0.2,
        discriminator_dropout: 0.3,
        classifier_dropout: 0.5,
        d_step_updates_generator: true,
        ..tiny_config()
    };
    assert!(config.has_classifier());
    let (one, one_losses) = train_a_little(&config, Some(ONE_GROUP), 3);
    let (two, two_losses) = train_a_little(&config, Some(TWO_GROUPS), 3);
    let four = Spread {
        groups: 4,
        threads_per_group: 1,
    };
    let (four, four_losses) = train_a_little(&config, Some(four), 3);
    assert_eq!(one_losses, two_losses);
    assert_eq!(one_losses, four_losses);
    assert_eq!(one.len(), two.len());
    for (name, tensor) in &one {
        assert!(tensor.equal(&two[name]), "{name}: one group vs two");
        assert!(tensor.equal(&four[name]), "{name}: one group vs four");
    }
    // And the run did train: the weights moved from their initial values.
    let (fresh, _) = train_a_little(&config, Some(ONE_GROUP), 0);
    assert!(changed(&fresh, &one, "g.") && changed(&fresh, &one, "c."));
}

#[test]
fn training_in_groups_takes_the_steps_of_the_one_graph_trainer() {
    // Without dropout the two ways compute the same function; C's gradient reaches G through
    // a detached copy of G(s) in groups and through the graph in one piece.
    let config = tiny_config();
    for quirk in [false, true] {
        let config = GanConfig {
            d_step_updates_generator: quirk,
            ..config.clone()
        };
        let (graph, graph_losses) = train_a_little(&config, None, 2);
        let (groups, group_losses) = train_a_little(&config, Some(TWO_GROUPS), 2);
        for (a, b) in graph_losses.iter().zip(&group_losses) {
            assert!(
                (a - b).abs() < 1e-5,
                "losses {graph_losses:?} vs {group_losses:?}"
            );
        }
        for (name, tensor) in &graph {
            assert_close(tensor, &groups[name], name);
        }
    }
}

#[test]
fn groups_follow_the_thread_count_and_give_the_caller_its_threads_back() {
    let spread = |threads, models| Spread::for_threads(threads, models);
    let of = |groups, threads_per_group| Spread {
        groups,
        threads_per_group,
    };
    assert_eq!(spread(1, 4), of(1, 1));
    assert_eq!(spread(2, 4), of(2, 1));
    assert_eq!(spread(3, 4), of(3, 1));
    assert_eq!(spread(16, 4), of(4, 4));
    assert_eq!(spread(6, 4), of(4, 1));
    assert_eq!(spread(2, 1), of(1, 2));
    assert_eq!(spread(0, 4), of(1, 1));
    assert_eq!(Spread::default_for(Device::Cuda(0), 4), None);

    let _rng = crate::libtorch_rng_lock();
    emocycle_torch::set_libtorch_threads(3);
    let trainer = Trainer::new(
        &tiny_config(),
        MODELS,
        FEATURES,
        Device::Cpu,
        Some(TWO_GROUPS),
    )
    .unwrap();
    assert_eq!(
        tch::get_num_threads(),
        1,
        "the caller runs C on the groups' count"
    );
    drop(trainer);
    assert_eq!(tch::get_num_threads(), 3, "the caller's count comes back");
}

#[test]
fn a_grid_of_one_reports_its_run_as_the_run_alone_would() {
    let diverged = || GanError::Diverged {
        phase: "train",
        epoch: 3,
        pair: None,
    };
    let named = |error| GanError::InRun {
        run: "lambda_cls 2".into(),
        source: Box::new(error),
    };
    assert_eq!(alone(Ok(vec![Ok(7)])).unwrap(), 7);
    // Inside the run's result and around the whole grid's: the run's name goes either way.
    for grid in [Ok(vec![Err(named(diverged()))]), Err(named(diverged()))] {
        let error = alone::<u8>(grid).unwrap_err();
        assert_eq!(error.to_string(), diverged().to_string());
        assert!(matches!(error, GanError::Diverged { epoch: 3, .. }));
    }
}
