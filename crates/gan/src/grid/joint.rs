//! Joint training of a grid's runs as one batched model.

use std::ops::Range;
use std::path::PathBuf;
use std::time::Instant;

use emocycle_rng::SplitMix64;
use tch::{Device, Kind, Tensor};

use crate::data::{EpochPlan, Phase, derived_seed, plan_epoch};
use crate::model::{CycleGanModel, Nets, PretrainedGenerators, generator_stack};
use crate::train::{Budget, DeviceData, EpochSums, MaskSource, TrainCheckpoint, values};
use crate::{
    EpochReport, GanConfig, GanError, ModelLayout, RunManifest, RunOptions, TRAIN_CHECKPOINT,
    TrainEpochRecord, TrainOutcome, TrainingData,
};
use emocycle_torch::{Acts, Adam, Init, Leaf, MlpStack};

use super::{GRID_LAYOUT, check_runs, in_run, mask_source, run_leaves, slot_pairs};

/// One joint training inside a grid.
pub struct GridRun<'a> {
    /// Names the run in errors and logs (`fold1 lambda_cls 2`).
    pub label: String,
    /// Its settings: seed, lambda_cls, epochs and schedule are its own.
    pub config: &'a GanConfig,
    /// Its scope's normalised data.
    pub data: &'a TrainingData,
    /// Its scope's pretrained generators.
    pub pretrained: &'a PretrainedGenerators,
    /// Its checkpoint directory, resume and epoch budget.
    pub options: RunOptions,
}
/// One run's state in the grid.
struct Member<'a> {
    label: String,
    config: &'a GanConfig,
    data: DeviceData,
    /// The run's networks in the separate layout on the CPU: names, import and export.
    own: Nets,
    adam_d: Adam,
    adam_g: Adam,
    /// Its CycleGANs' slots in the grid.
    slots: Range<usize>,
    /// Its slot of the stacked C, with lambda_cls != 0.
    classifier: Option<usize>,
    done: usize,
    log: Vec<TrainEpochRecord>,
    earlier_wall: f64,
    budget: Budget,
    path: Option<PathBuf>,
    dirty: bool,
    /// Why the run left the grid early (it diverged).
    failed: Option<GanError>,
}

/// What a run's checkpoints record besides its state.
fn checkpoint<'a>(config: &'a GanConfig, data: &'a DeviceData) -> TrainCheckpoint<'a> {
    TrainCheckpoint {
        config,
        shape: &data.shape,
        layout: GRID_LAYOUT,
        masks: mask_source(data.source.device()),
    }
}

/// One epoch of one run: its permutations and the dropout seed of every model and step.
struct MemberEpoch {
    plan: EpochPlan,
    /// `[steps][K]`: D step then the G steps of each iteration.
    seeds: Vec<Vec<u64>>,
    lr: f64,
}

/// The stacked networks of every run.
struct Grid {
    nets: Nets,
    classifier: Option<MlpStack>,
    /// The C slot's run and each C slot's K model slots, as an index for `index_select`.
    classifier_models: Option<Tensor>,
    classifier_labels: Option<Tensor>,
    classifier_weights: Option<Tensor>,
    d_params: Vec<Tensor>,
    g_params: Vec<Tensor>,
}

impl Grid {
    fn new(
        config: &GanConfig,
        runs: usize,
        emotions: usize,
        features: i64,
        lambdas: &[f64],
        device: Device,
    ) -> Self {
        let names: Vec<usize> = (0..runs).flat_map(|_| 0..emotions).collect();
        let sizes = |hidden: &[usize], out: i64| -> Vec<i64> {
            std::iter::once(features)
                .chain(hidden.iter().map(|&h| h as i64))
                .chain(std::iter::once(out))
                .collect()
        };
        let batched = |prefix: &str, names: Vec<usize>, sizes: Vec<i64>, dropout: f64| {
            MlpStack::new(
                prefix,
                Some(names),
                sizes,
                dropout,
                config.leaky_slope,
                ModelLayout::Batched,
                Init::Libtorch,
                device,
            )
        };
        let disc = |prefix: &str| {
            batched(
                prefix,
                names.clone(),
                sizes(&config.discriminator_hidden, 1),
                config.discriminator_dropout,
            )
        };
        // The weights drawn here are overwritten by every run's own.
        let nets = Nets {
            layout: ModelLayout::Batched,
            models: runs * emotions,
            g: generator_stack(
                config,
                "g",
                names.clone(),
                features,
                ModelLayout::Batched,
                device,
            ),
            f: generator_stack(
                config,
                "f",
                names.clone(),
                features,
                ModelLayout::Batched,
                device,
            ),
            d_t: disc("d_t"),
            d_s: disc("d_s"),
            c: None,
        };
        let with_c: Vec<usize> = (0..runs).filter(|&r| lambdas[r] != 0.0).collect();
        let classifier = (!with_c.is_empty()).then(|| {
            batched(
                "c",
                vec![0; with_c.len()],
                sizes(&config.classifier_hidden, emotions as i64),
                config.classifier_dropout,
            )
        });
        let batch = config.batch_size as i64;
        let k = emotions as i64;
        let classifier_models = classifier.as_ref().map(|_| {
            let slots: Vec<i64> = with_c
                .iter()
                .flat_map(|&r| (0..k).map(move |e| r as i64 * k + e))
                .collect();
            Tensor::from_slice(&slots).to_device(device)
        });
        let classifier_labels = classifier.as_ref().map(|_| {
            Tensor::arange(k, (Kind::Int64, device)).repeat_interleave_self_int(batch, 0, None)
        });
        let classifier_weights = classifier.as_ref().map(|_| {
            let weights: Vec<f32> = with_c.iter().map(|&r| lambdas[r] as f32).collect();
            Tensor::from_slice(&weights).to_device(device)
        });
        let params = |stacks: &[&MlpStack]| -> Vec<Tensor> {
            stacks
                .iter()
                .flat_map(|stack| stack.leaves())
                .map(|leaf| leaf.tensor)
                .collect()
        };
        let mut d_stacks = vec![&nets.d_t, &nets.d_s];
        if config.d_step_updates_generator {
            d_stacks.push(&nets.g);
        }
        let d_params = params(&d_stacks);
        let mut g_stacks = vec![&nets.g, &nets.f];
        g_stacks.extend(classifier.as_ref());
        let g_params = params(&g_stacks);
        Self {
            nets,
            classifier,
            classifier_models,
            classifier_labels,
            classifier_weights,
            d_params,
            g_params,
        }
    }

    /// The (run's own tensor, grid slot) pairs of every network of a run.
    fn pairs(&self, member: &Member) -> Vec<(Tensor, Tensor)> {
        let own = &member.own;
        let offset = member.slots.start;
        let mut pairs = Vec::new();
        for (own, grid) in [
            (&own.g, &self.nets.g),
            (&own.f, &self.nets.f),
            (&own.d_t, &self.nets.d_t),
            (&own.d_s, &self.nets.d_s),
        ] {
            pairs.extend(slot_pairs(own, grid, offset));
        }
        if let (Some(own), Some(grid), Some(slot)) = (&own.c, &self.classifier, member.classifier) {
            pairs.extend(slot_pairs(own, grid, slot));
        }
        pairs
    }

    /// Copies a run's own networks into its slots.
    fn load(&self, member: &Member) {
        tch::no_grad(|| {
            for (own, mut slot) in self.pairs(member) {
                slot.copy_(&own);
            }
        });
    }

    /// Copies a run's slots into its own networks.
    fn store(&self, member: &Member) {
        tch::no_grad(|| {
            for (mut own, slot) in self.pairs(member) {
                own.copy_(&slot);
            }
        });
    }

    /// A run's two optimisers over its slots, leaves in the order of `d_params` / `g_params`.
    fn optimisers(
        &self,
        config: &GanConfig,
        own: &Nets,
        slots: Range<usize>,
        c_slot: Option<usize>,
    ) -> (Adam, Adam) {
        let nets = &self.nets;
        let mut d_leaves: Vec<Leaf> = run_leaves(&own.d_t, &nets.d_t, slots.clone())
            .into_iter()
            .chain(run_leaves(&own.d_s, &nets.d_s, slots.clone()))
            .collect();
        if config.d_step_updates_generator {
            d_leaves.extend(run_leaves(&own.g, &nets.g, slots.clone()));
        }
        let mut g_leaves: Vec<Leaf> = run_leaves(&own.g, &nets.g, slots.clone())
            .into_iter()
            .chain(run_leaves(&own.f, &nets.f, slots))
            .collect();
        if let (Some(own_c), Some(grid_c), Some(slot)) = (&own.c, &self.classifier, c_slot) {
            g_leaves.extend(run_leaves(own_c, grid_c, slot..slot + 1));
        }
        let adam = |leaves| {
            Adam::new(
                leaves,
                config.adam_beta1,
                config.adam_beta2,
                config.adam_epsilon,
            )
        };
        (adam(d_leaves), adam(g_leaves))
    }

    /// Gives every model (and every C) its dropout streams for the next step.
    fn set_dropout_seeds(&self, seeds: &[u64], members: &[Member]) {
        self.nets.set_dropout_seeds(seeds);
        if let Some(c) = &self.classifier {
            let streams = members
                .iter()
                .filter(|m| m.classifier.is_some())
                .map(|m| {
                    // After the four streams of the run's first CycleGAN (G, F, D_T, D_S).
                    let mut mixer = SplitMix64::new(seeds[m.slots.start]);
                    for _ in 0..4 {
                        mixer.next_u64();
                    }
                    SplitMix64::new(mixer.next_u64())
                })
                .collect();
            c.set_dropout_streams(streams);
        }
    }
}

/// Each active member's slices of the stacked gradients, applied with its own optimiser.
fn apply_slices(
    grads: &[Tensor],
    members: &mut [Member],
    active: &[bool],
    epochs: &[Option<MemberEpoch>],
    discriminator: bool,
    params: &[Tensor],
    classifier_params: usize,
) {
    let stacked = params.len() - classifier_params;
    for (index, member) in members.iter_mut().enumerate() {
        if !active[index] {
            continue;
        }
        let lr = epochs[index].as_ref().map_or(0.0, |e| e.lr);
        let slots = member.slots.clone();
        let c_slot = member.classifier;
        let own: Vec<Tensor> = grads
            .iter()
            .enumerate()
            .filter_map(|(i, grad)| {
                if i < stacked {
                    Some(grad.narrow(0, slots.start as i64, slots.len() as i64))
                } else {
                    c_slot.map(|slot| grad.narrow(0, slot as i64, 1))
                }
            })
            .collect();
        let adam = if discriminator {
            &mut member.adam_d
        } else {
            &mut member.adam_g
        };
        adam.apply(&own, lr);
    }
}

/// Trains `runs` as one batched model on `device` and returns each run's outcome, in order: a
/// run that diverges leaves the grid (its last checkpoint kept) and comes back as its error,
/// while the others finish. The outer error is for what stops every run: settings that cannot
/// share a grid, unusable data or checkpoints, a checkpoint that cannot be written.
///
/// Every run must be compatible with the first ([`crate::compatible`]) and have as many
/// emotions and features. Each run's progress reaches `progress` with its index.
pub fn train_grid(
    runs: &[GridRun],
    device: Device,
    progress: &mut dyn FnMut(usize, &EpochReport),
) -> Result<Vec<Result<TrainOutcome, GanError>>, GanError> {
    let Some(first) = runs.first() else {
        return Ok(Vec::new());
    };
    let config0 = first.config;
    let started = Instant::now();
    let checked: Vec<_> = runs
        .iter()
        .map(|run| (run.label.as_str(), run.config, run.data))
        .collect();
    let (emotions, features) = check_runs(&checked, "train")?;
    let lambdas: Vec<f64> = runs.iter().map(|r| r.config.lambda_cls).collect();
    let grid = Grid::new(config0, runs.len(), emotions, features, &lambdas, device);
    let mut members = Vec::with_capacity(runs.len());
    let mut next_c = 0;
    for (index, run) in runs.iter().enumerate() {
        let member = new_member(&grid, run, index, emotions, features, device, &mut next_c)
            .map_err(|e| in_run(&run.label, e))?;
        members.push(member);
    }
    let parameters: i64 = members.iter().map(|m| m.own.counts().total).sum();
    tracing::info!(
        runs = runs.len(),
        parameters,
        device = %emocycle_torch::device_name(device),
        "grid training starts"
    );

    let generator_steps = config0.generator_steps;
    let streams = mask_source(device) == MaskSource::Streams;
    let batch = config0.batch_size as i64;
    let models = runs.len() * emotions;
    loop {
        // One epoch of every unfinished run, each its own epoch number.
        let round: Vec<bool> = members
            .iter()
            .map(|m| m.failed.is_none() && m.done < m.config.train_epochs && !m.budget.exhausted())
            .collect();
        if !round.contains(&true) {
            break;
        }
        let epochs: Vec<Option<MemberEpoch>> = members
            .iter()
            .zip(&round)
            .map(|(m, &on)| on.then(|| member_epoch(m, emotions, batch, device)))
            .collect();
        let iterations = epochs
            .iter()
            .flatten()
            .map(|e| e.plan.iterations)
            .max()
            .unwrap_or(0);
        let mut sums = EpochSums::zeros(models, device);
        let mut classifier_sums = grid
            .classifier
            .as_ref()
            .map(|_| Tensor::zeros([next_c as i64], (Kind::Float, device)));
        let zero_rows = Tensor::zeros([emotions as i64 * batch, features], (Kind::Float, device));
        for it in 0..iterations {
            let active: Vec<bool> = epochs
                .iter()
                .map(|e| e.as_ref().is_some_and(|e| it < e.plan.iterations))
                .collect();
            let rows = |pick: fn(&MemberEpoch) -> &Tensor, data: fn(&DeviceData) -> &Tensor| {
                let parts: Vec<Tensor> = members
                    .iter()
                    .zip(&epochs)
                    .zip(&active)
                    .map(|((m, e), &on)| match (e, on) {
                        (Some(e), true) => data(&m.data).index_select(0, &pick(e).get(it)),
                        _ => zero_rows.shallow_clone(),
                    })
                    .collect();
                Acts::from_rows(&Tensor::cat(&parts, 0), models, ModelLayout::Batched)
            };
            let s = rows(|e| &e.plan.source_rows, |d| &d.source);
            let t = rows(|e| &e.plan.target_rows, |d| &d.targets);
            let mask: Vec<f32> = active
                .iter()
                .flat_map(|&on| std::iter::repeat_n(if on { 1.0 } else { 0.0 }, emotions))
                .collect();
            let mask = Tensor::from_slice(&mask).to_device(device);
            let classifier_mask = grid.classifier.as_ref().map(|_| {
                let on: Vec<f32> = members
                    .iter()
                    .zip(&active)
                    .filter(|(m, _)| m.classifier.is_some())
                    .map(|(_, &on)| if on { 1.0 } else { 0.0 })
                    .collect();
                Tensor::from_slice(&on).to_device(device)
            });
            let step_seeds = |step: usize| -> Vec<u64> {
                epochs
                    .iter()
                    .zip(&active)
                    .flat_map(|(e, &on)| match (e, on) {
                        (Some(e), true) => e.seeds[step].clone(),
                        _ => vec![0; emotions],
                    })
                    .collect()
            };
            let first_step = it as usize * (1 + generator_steps);

            // D step (with the quirk it also moves G).
            if streams {
                grid.set_dropout_seeds(&step_seeds(first_step), &members);
            }
            let quirk = config0.d_step_updates_generator;
            let losses = grid.nets.discriminator_losses(config0, &s, &t, quirk);
            let params: Vec<&Tensor> = grid.d_params.iter().collect();
            let grads = Tensor::run_backward(&[losses.sum(Kind::Float)], &params, false, false);
            apply_slices(
                &grads,
                &mut members,
                &active,
                &epochs,
                true,
                &grid.d_params,
                0,
            );
            sums.d += losses.detach() * &mask;

            // G steps (G, F and C), D constant.
            grid.nets.d_t.set_requires_grad(false);
            grid.nets.d_s.set_requires_grad(false);
            for g_step in 0..generator_steps {
                if streams {
                    grid.set_dropout_seeds(&step_seeds(first_step + 1 + g_step), &members);
                }
                let forward = grid.nets.cycle_gan_losses(config0, &s, &t);
                let mut total = forward.g.sum(Kind::Float);
                let mut classifier_params = 0;
                if let (Some(c), Some(slots), Some(labels), Some(weights)) = (
                    &grid.classifier,
                    &grid.classifier_models,
                    &grid.classifier_labels,
                    &grid.classifier_weights,
                ) {
                    let Acts::Stacked(generated) = &forward.generated else {
                        unreachable!("the grid is batched");
                    };
                    let count = weights.size()[0];
                    let inputs = generated
                        .index_select(0, slots)
                        .reshape([count, -1, features]);
                    let Acts::Stacked(logits) = c.forward(&Acts::Stacked(inputs), true) else {
                        unreachable!("the grid is batched");
                    };
                    // Each run's cross-entropy on its own `[K * batch, K]` logits: softmax and
                    // mean over more rows at once take other vector paths, and other bits.
                    let means: Vec<Tensor> = (0..count)
                        .map(|i| logits.get(i).cross_entropy_for_logits(labels))
                        .collect();
                    let cls = Tensor::stack(&means, 0);
                    total += (&cls * weights).sum(Kind::Float);
                    classifier_params = c.leaves().len();
                    if let (Some(sum), Some(on)) = (classifier_sums.as_mut(), &classifier_mask) {
                        *sum += cls.detach() * on;
                    }
                }
                let params: Vec<&Tensor> = grid.g_params.iter().collect();
                let grads = Tensor::run_backward(&[total], &params, false, false);
                apply_slices(
                    &grads,
                    &mut members,
                    &active,
                    &epochs,
                    false,
                    &grid.g_params,
                    classifier_params,
                );
                sums.g += forward.g.detach() * &mask;
                sums.cycle += forward.cycle.detach() * &mask;
            }
            grid.nets.d_t.set_requires_grad(true);
            grid.nets.d_s.set_requires_grad(true);
        }

        let (d, g, cycle) = (values(&sums.d), values(&sums.g), values(&sums.cycle));
        let cls = classifier_sums.as_ref().map(values).unwrap_or_default();
        for (index, member) in members.iter_mut().enumerate() {
            let Some(epoch) = &epochs[index] else {
                continue;
            };
            let d_steps = epoch.plan.iterations as f64;
            let g_steps = d_steps * generator_steps.max(1) as f64;
            let slots = member.slots.clone();
            let record = TrainEpochRecord {
                epoch: member.done,
                learning_rate: epoch.lr,
                d: d[slots.clone()].iter().map(|v| v / d_steps).collect(),
                g: g[slots.clone()].iter().map(|v| v / g_steps).collect(),
                cycle: cycle[slots].iter().map(|v| v / g_steps).collect(),
                cls: member.classifier.map_or(0.0, |slot| cls[slot] / g_steps),
            };
            if !record.is_finite() {
                // The others go on: this run leaves the grid, its last checkpoint kept.
                tracing::warn!(
                    run = member.label,
                    epoch = member.done,
                    "diverged: leaves the grid"
                );
                member.failed = Some(in_run(
                    &member.label,
                    GanError::Diverged {
                        phase: "train",
                        epoch: member.done,
                        pair: None,
                    },
                ));
                member.dirty = false;
                continue;
            }
            tracing::debug!(run = member.label, epoch = member.done, "training epoch");
            progress(
                index,
                &EpochReport::Train {
                    record: record.clone(),
                    epochs: member.config.train_epochs,
                },
            );
            member.log.push(record);
            member.done += 1;
            member.budget.spend();
            member.dirty = true;
            if member.done.is_multiple_of(member.config.checkpoint_every) {
                let wall = member.earlier_wall + started.elapsed().as_secs_f64();
                save(&grid, member, wall).map_err(|e| in_run(&member.label, e))?;
            }
        }
    }

    let mut outcomes = Vec::with_capacity(members.len());
    for member in members.iter_mut() {
        let wall = member.earlier_wall + started.elapsed().as_secs_f64();
        if member.dirty {
            save(&grid, member, wall).map_err(|e| in_run(&member.label, e))?;
        }
        grid.store(member);
    }
    for mut member in members {
        if let Some(error) = member.failed.take() {
            outcomes.push(Err(error));
            continue;
        }
        let wall = member.earlier_wall + started.elapsed().as_secs_f64();
        let complete = member.done >= member.config.train_epochs;
        let parameters = member.own.counts().total;
        outcomes.push(Ok(TrainOutcome {
            manifest: RunManifest {
                phase: "train".into(),
                config: member.config.clone(),
                seed: member.config.seed,
                epochs_done: vec![member.done],
                complete,
                wall_seconds: wall,
                device: emocycle_torch::device_name(device),
                layout: GRID_LAYOUT.into(),
                data: member.data.shape.clone(),
                parameters,
                checkpoint: member.path.filter(|p| p.exists()),
            },
            model: CycleGanModel { nets: member.own },
            log: member.log,
        }));
    }
    tracing::info!(
        runs = outcomes.len(),
        wall_seconds = started.elapsed().as_secs_f64(),
        "grid training ends"
    );
    Ok(outcomes)
}

/// A run's networks (initialised as [`crate::train`] initialises them), its slots filled from
/// them, its optimisers, and its checkpoint when resuming.
fn new_member<'a>(
    grid: &Grid,
    run: &GridRun<'a>,
    index: usize,
    emotions: usize,
    features: i64,
    device: Device,
    next_c: &mut usize,
) -> Result<Member<'a>, GanError> {
    let config = run.config;
    let data = DeviceData::new(run.data, config, device)?;
    emocycle_torch::seed_everything(derived_seed(config.seed, Phase::TrainInit, 0, 0));
    let own = Nets::new(
        config,
        emotions,
        features,
        ModelLayout::Separate,
        Device::Cpu,
    );
    for leaf in own.g.leaves().into_iter().chain(own.f.leaves()) {
        leaf.import("", &run.pretrained.tensors, &leaf.tensor)
            .map_err(GanError::PretrainedMismatch)?;
    }
    let slots = index * emotions..(index + 1) * emotions;
    let classifier = config.has_classifier().then(|| {
        *next_c += 1;
        *next_c - 1
    });
    let (adam_d, adam_g) = grid.optimisers(config, &own, slots.clone(), classifier);
    let path = run
        .options
        .checkpoint_dir
        .as_ref()
        .map(|dir| dir.join(TRAIN_CHECKPOINT));
    let mut member = Member {
        label: run.label.clone(),
        config,
        data,
        own,
        adam_d,
        adam_g,
        slots,
        classifier,
        done: 0,
        log: Vec::new(),
        earlier_wall: 0.0,
        budget: Budget(run.options.stop_after_epochs),
        path,
        dirty: false,
        failed: None,
    };
    if let Some(path) = member
        .path
        .clone()
        .filter(|p| run.options.resume && p.exists())
    {
        (member.done, member.log, member.earlier_wall) = checkpoint(config, &member.data).read(
            &path,
            &member.own,
            &mut member.adam_d,
            &mut member.adam_g,
        )?;
        tracing::info!(
            run = member.label,
            path = %path.display(),
            epochs_done = member.done,
            "resuming joint training"
        );
    }
    grid.load(&member);
    Ok(member)
}

/// Reseeds libtorch from the run's seed and epoch, then draws the epoch's permutations (as
/// [`crate::train`] does) and the dropout seeds of all its steps.
fn member_epoch(member: &Member, emotions: usize, batch: i64, device: Device) -> MemberEpoch {
    let config = member.config;
    emocycle_torch::seed_everything(derived_seed(config.seed, Phase::Train, 0, member.done));
    let data = &member.data;
    let plan = plan_epoch(
        data.shape.source_rows,
        &data.shape.target_rows,
        &data.offsets,
        batch,
        device,
    );
    let steps = plan.iterations as usize * (1 + config.generator_steps);
    let seeds = (0..steps)
        .map(|_| crate::train::dropout_seeds(emotions))
        .collect();
    MemberEpoch {
        plan,
        seeds,
        lr: config.learning_rate_at(member.done),
    }
}

/// Writes a run's checkpoint, in [`crate::train`]'s format.
fn save(grid: &Grid, member: &mut Member, wall: f64) -> Result<(), GanError> {
    member.dirty = false;
    let Some(path) = member.path.as_ref() else {
        return Ok(());
    };
    grid.store(member);
    checkpoint(member.config, &member.data).write(
        path,
        &member.own,
        [&member.adam_d, &member.adam_g],
        member.done,
        &member.log,
        wall,
    )?;
    tracing::debug!(run = member.label, path = %path.display(), "training checkpoint written");
    Ok(())
}
