//! Cycle-only pretraining of a grid's runs as one batched model.

use std::path::PathBuf;
use std::time::Instant;

use emocycle_rng::SplitMix64;
use tch::{Device, Kind, Tensor};

use crate::data::{EpochPlan, Phase, derived_seed, plan_epoch};
use crate::model::{PretrainedGenerators, generator_stack};
use crate::train::{Budget, DeviceData, MaskSource, Pair, PretrainCheckpoint, values};
use crate::{
    EpochReport, GanConfig, GanError, ModelLayout, PRETRAIN_CHECKPOINT, PretrainEpochRecord,
    PretrainOutcome, RunManifest, RunOptions, TrainingData,
};
use emocycle_torch::{Acts, Adam, Leaf, MlpStack};

use super::{GRID_LAYOUT, check_runs, in_run, mask_source, run_leaves, slot_pairs};

/// One pretraining inside a grid.
pub struct GridPretrain<'a> {
    /// Names the run in errors and logs (`fold1`).
    pub label: String,
    /// Its settings: seed and epochs are its own.
    pub config: &'a GanConfig,
    /// Its scope's normalised data.
    pub data: &'a TrainingData,
    /// Its checkpoint directory, resume and budget of pair-epochs.
    pub options: RunOptions,
}

/// One pretraining's state in a grid: its pairs (networks named as alone, optimisers over its
/// slots) and bookkeeping.
struct PretrainMember<'a> {
    label: String,
    config: &'a GanConfig,
    data: DeviceData,
    pairs: Vec<Pair>,
    done: Vec<usize>,
    log: Vec<PretrainEpochRecord>,
    earlier_wall: f64,
    budget: Budget,
    path: Option<PathBuf>,
    dirty: bool,
    /// Slot of its pair 0.
    first_slot: usize,
    /// Why the run left the grid early (a pair diverged).
    failed: Option<GanError>,
}

impl PretrainMember<'_> {
    fn checkpoint(&self) -> PretrainCheckpoint<'_> {
        PretrainCheckpoint {
            config: self.config,
            shape: &self.data.shape,
            masks: mask_source(self.data.source.device()),
        }
    }

    /// Copies the run's pairs into their slots (`into_grid`) or back.
    fn sync(&self, g: &MlpStack, f: &MlpStack, into_grid: bool) {
        tch::no_grad(|| {
            for (k, pair) in self.pairs.iter().enumerate() {
                let slot = self.first_slot + k;
                for (mut own, mut grid) in slot_pairs(&pair.g, g, slot)
                    .into_iter()
                    .chain(slot_pairs(&pair.f, f, slot))
                {
                    if into_grid {
                        grid.copy_(&own);
                    } else {
                        own.copy_(&grid);
                    }
                }
            }
        });
    }
}

/// One pair's epoch: its permutations and the seed of its dropout streams.
struct PairEpoch {
    plan: EpochPlan,
    dropout_seed: u64,
}

/// Cycle-only pretraining of `runs` as one batched model on `device`: every (run, pair) is a
/// slot of stacked G and F, trained on its own permutations (drawn after reseeding from its
/// seed, pair and epoch, as [`crate::pretrain`] draws them) with its own dropout streams and
/// Adam. Rounds of one epoch per unfinished pair of every run, as [`crate::pretrain`] runs
/// them; a pair whose epoch is over takes no step while others continue. Returns each run's
/// outcome, in order, as [`crate::train_grid`] does (a run that diverges comes back as its
/// error while the others finish); each run writes [`crate::pretrain`]'s checkpoint.
pub fn pretrain_grid(
    runs: &[GridPretrain],
    device: Device,
    progress: &mut dyn FnMut(usize, &EpochReport),
) -> Result<Vec<Result<PretrainOutcome, GanError>>, GanError> {
    let Some(first) = runs.first() else {
        return Ok(Vec::new());
    };
    let config0 = first.config;
    let started = Instant::now();
    let checked: Vec<_> = runs
        .iter()
        .map(|run| (run.label.as_str(), run.config, run.data))
        .collect();
    let (emotions, features) = check_runs(&checked, "pretrain")?;
    let names: Vec<usize> = (0..runs.len()).flat_map(|_| 0..emotions).collect();
    let stack = |prefix| {
        generator_stack(
            config0,
            prefix,
            names.clone(),
            features,
            ModelLayout::Batched,
            device,
        )
    };
    // The weights drawn here are overwritten by every pair's own.
    let (g, f) = (stack("g"), stack("f"));
    let mut members = Vec::with_capacity(runs.len());
    for (index, run) in runs.iter().enumerate() {
        let member = pretrain_member(run, index * emotions, &g, &f, device)
            .map_err(|e| in_run(&run.label, e))?;
        members.push(member);
    }
    let params: Vec<Tensor> = g
        .leaves()
        .into_iter()
        .chain(f.leaves())
        .map(|leaf| leaf.tensor)
        .collect();
    let batch = config0.batch_size as i64;
    let slots = runs.len() * emotions;
    tracing::info!(
        runs = runs.len(),
        pairs = slots,
        device = %emocycle_torch::device_name(device),
        "grid pretraining starts"
    );
    loop {
        // One epoch of every unfinished pair, as many as each run's budget allows.
        let round: Vec<Vec<usize>> = members
            .iter()
            .map(|m| {
                (0..emotions)
                    .filter(|&k| m.failed.is_none() && m.done[k] < m.config.pretrain_epochs)
                    .take(m.budget.0.unwrap_or(usize::MAX))
                    .collect()
            })
            .collect();
        if round.iter().all(Vec::is_empty) {
            break;
        }
        let epochs: Vec<Option<PairEpoch>> = members
            .iter()
            .zip(&round)
            .flat_map(|(m, pairs)| {
                (0..emotions).map(move |k| {
                    pairs.contains(&k).then(|| {
                        emocycle_torch::seed_everything(derived_seed(
                            m.config.seed,
                            Phase::Pretrain,
                            k,
                            m.done[k],
                        ));
                        let data = &m.data;
                        let plan = plan_epoch(
                            data.shape.source_rows,
                            &data.shape.target_rows[k..=k],
                            &data.offsets[k..=k],
                            batch,
                            device,
                        );
                        PairEpoch {
                            plan,
                            dropout_seed: crate::train::dropout_seeds(1)[0],
                        }
                    })
                })
            })
            .collect();
        let streams = |pick: usize| -> Vec<SplitMix64> {
            epochs
                .iter()
                .map(|e| {
                    let mut mixer = SplitMix64::new(e.as_ref().map_or(0, |e| e.dropout_seed));
                    let seeds = [mixer.next_u64(), mixer.next_u64()];
                    SplitMix64::new(seeds[pick])
                })
                .collect()
        };
        if mask_source(device) == MaskSource::Streams {
            g.set_dropout_streams(streams(0));
            f.set_dropout_streams(streams(1));
        }
        let iterations = epochs
            .iter()
            .flatten()
            .map(|e| e.plan.iterations)
            .max()
            .unwrap_or(0);
        let zero_rows = Tensor::zeros([batch, features], (Kind::Float, device));
        let mut sums = Tensor::zeros([slots as i64], (Kind::Float, device));
        for it in 0..iterations {
            let active: Vec<bool> = epochs
                .iter()
                .map(|e| e.as_ref().is_some_and(|e| it < e.plan.iterations))
                .collect();
            let rows = |pick: fn(&EpochPlan) -> &Tensor, data: fn(&DeviceData) -> &Tensor| {
                let parts: Vec<Tensor> = epochs
                    .iter()
                    .enumerate()
                    .map(|(slot, e)| match e {
                        Some(e) if active[slot] => data(&members[slot / emotions].data)
                            .index_select(0, &pick(&e.plan).get(it)),
                        _ => zero_rows.shallow_clone(),
                    })
                    .collect();
                Acts::from_rows(&Tensor::cat(&parts, 0), slots, ModelLayout::Batched)
            };
            let s = rows(|p| &p.source_rows, |d| &d.source);
            let t = rows(|p| &p.target_rows, |d| &d.targets);
            let gs = g.forward(&s, true);
            let ft = f.forward(&t, true);
            let loss = s.mse(&f.forward(&gs, true)) + t.mse(&g.forward(&ft, true));
            let inputs: Vec<&Tensor> = params.iter().collect();
            let grads = Tensor::run_backward(&[loss.sum(Kind::Float)], &inputs, false, false);
            for (slot, _) in active.iter().enumerate().filter(|(_, on)| **on) {
                let member = &mut members[slot / emotions];
                let own: Vec<Tensor> = grads
                    .iter()
                    .map(|grad| grad.narrow(0, slot as i64, 1))
                    .collect();
                member.pairs[slot % emotions]
                    .adam
                    .apply(&own, member.config.learning_rate);
            }
            let mask: Vec<f32> = active
                .iter()
                .map(|&on| if on { 1.0 } else { 0.0 })
                .collect();
            sums += loss.detach() * Tensor::from_slice(&mask).to_device(device);
        }
        let cycles = values(&sums);
        for (index, member) in members.iter_mut().enumerate() {
            let mut checkpoint_due = false;
            for &k in &round[index] {
                let slot = index * emotions + k;
                let iterations = epochs[slot].as_ref().map_or(1, |e| e.plan.iterations);
                let cycle = cycles[slot] / iterations as f64;
                let epoch = member.done[k];
                if !cycle.is_finite() {
                    // The others go on: this run leaves the grid, its last checkpoint kept.
                    tracing::warn!(
                        run = member.label,
                        pair = k,
                        epoch,
                        "diverged: leaves the grid"
                    );
                    member.failed = Some(in_run(
                        &member.label,
                        GanError::Diverged {
                            phase: "pretrain",
                            epoch,
                            pair: Some(k),
                        },
                    ));
                    break;
                }
                let record = PretrainEpochRecord {
                    pair: k,
                    epoch,
                    cycle,
                };
                progress(
                    index,
                    &EpochReport::Pretrain {
                        record: record.clone(),
                        epochs: member.config.pretrain_epochs,
                        pairs: emotions,
                    },
                );
                member.log.push(record);
                member.done[k] += 1;
                member.budget.spend();
                member.dirty = true;
                checkpoint_due |= member.done[k].is_multiple_of(member.config.checkpoint_every);
            }
            if member.failed.is_some() {
                member.dirty = false;
                continue;
            }
            // Pair by pair, as a run that trains the pairs one after the other would list them.
            member.log.sort_by_key(|record| (record.pair, record.epoch));
            if checkpoint_due {
                let wall = member.earlier_wall + started.elapsed().as_secs_f64();
                save_pretrain(member, &g, &f, wall).map_err(|e| in_run(&member.label, e))?;
            }
        }
    }
    let mut outcomes = Vec::with_capacity(members.len());
    for mut member in members {
        if let Some(error) = member.failed.take() {
            outcomes.push(Err(error));
            continue;
        }
        let wall = member.earlier_wall + started.elapsed().as_secs_f64();
        if member.dirty {
            save_pretrain(&mut member, &g, &f, wall).map_err(|e| in_run(&member.label, e))?;
        }
        member.sync(&g, &f, false);
        let tensors = member
            .pairs
            .iter()
            .flat_map(|pair| pair.g.leaves().into_iter().chain(pair.f.leaves()))
            .flat_map(|leaf| leaf.export("", &leaf.tensor))
            .collect();
        let parameters = member
            .pairs
            .iter()
            .map(|p| p.g.parameter_count() + p.f.parameter_count())
            .sum();
        let complete = member
            .done
            .iter()
            .all(|&e| e >= member.config.pretrain_epochs);
        outcomes.push(Ok(PretrainOutcome {
            generators: PretrainedGenerators { tensors },
            log: member.log,
            manifest: RunManifest {
                phase: "pretrain".into(),
                config: member.config.clone(),
                seed: member.config.seed,
                epochs_done: member.done,
                complete,
                wall_seconds: wall,
                device: emocycle_torch::device_name(device),
                layout: GRID_LAYOUT.into(),
                data: member.data.shape.clone(),
                parameters,
                checkpoint: member.path.filter(|p| p.exists()),
            },
        }));
    }
    tracing::info!(
        runs = outcomes.len(),
        wall_seconds = started.elapsed().as_secs_f64(),
        "grid pretraining ends"
    );
    Ok(outcomes)
}

/// A pretraining's pairs (initialised as [`crate::pretrain`] initialises them), its slots filled
/// from them, and its checkpoint when resuming.
fn pretrain_member<'a>(
    run: &GridPretrain<'a>,
    first_slot: usize,
    g: &MlpStack,
    f: &MlpStack,
    device: Device,
) -> Result<PretrainMember<'a>, GanError> {
    let config = run.config;
    let data = DeviceData::new(run.data, config, device)?;
    let emotions = data.models();
    let features = data.shape.features;
    let pairs = (0..emotions)
        .map(|k| {
            emocycle_torch::seed_everything(derived_seed(config.seed, Phase::PretrainInit, k, 0));
            let own = |prefix| {
                generator_stack(
                    config,
                    prefix,
                    vec![k],
                    features,
                    ModelLayout::Separate,
                    Device::Cpu,
                )
            };
            let (own_g, own_f) = (own("g"), own("f"));
            let slot = first_slot + k;
            let leaves: Vec<Leaf> = run_leaves(&own_g, g, slot..slot + 1)
                .into_iter()
                .chain(run_leaves(&own_f, f, slot..slot + 1))
                .collect();
            let adam = Adam::new(
                leaves,
                config.adam_beta1,
                config.adam_beta2,
                config.adam_epsilon,
            );
            Pair {
                g: own_g,
                f: own_f,
                adam,
            }
        })
        .collect();
    let path = run
        .options
        .checkpoint_dir
        .as_ref()
        .map(|dir| dir.join(PRETRAIN_CHECKPOINT));
    let mut member = PretrainMember {
        label: run.label.clone(),
        config,
        data,
        pairs,
        done: vec![0; emotions],
        log: Vec::new(),
        earlier_wall: 0.0,
        budget: Budget(run.options.stop_after_epochs),
        path,
        dirty: false,
        first_slot,
        failed: None,
    };
    if let Some(path) = member
        .path
        .clone()
        .filter(|p| run.options.resume && p.exists())
    {
        let checkpoint = PretrainCheckpoint {
            config,
            shape: &member.data.shape,
            masks: mask_source(device),
        };
        (member.done, member.log, member.earlier_wall) =
            checkpoint.read(&path, &mut member.pairs)?;
        tracing::info!(
            run = member.label,
            path = %path.display(),
            epochs_done = ?member.done,
            "resuming pretraining"
        );
    }
    member.sync(g, f, true);
    Ok(member)
}

/// Writes a pretraining's checkpoint, in [`crate::pretrain`]'s format.
fn save_pretrain(
    member: &mut PretrainMember,
    g: &MlpStack,
    f: &MlpStack,
    wall: f64,
) -> Result<(), GanError> {
    member.dirty = false;
    let Some(path) = member.path.as_ref() else {
        return Ok(());
    };
    member.sync(g, f, false);
    member
        .checkpoint()
        .write(path, &member.pairs, &member.done, &member.log, wall)
}
