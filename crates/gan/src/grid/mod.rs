//! The fused grid engine: several joint trainings (scopes x lambda_cls x generator seeds), or
//! several pretrainings, as one batched model, each run still the run it would be alone. The
//! `joint` module trains the former ([`train_grid`]), the `pretrain` module the latter
//! ([`pretrain_grid`], each (run, pair) a slot); what follows describes joint training, and
//! pretraining keeps the same per-run properties.
//!
//! Every network of the R runs' K CycleGANs is one slot of a stacked `[R K, out, in]` parameter
//! (`baddbmm` over runs x emotions), and the runs with a classifier C share a stacked C. One
//! forward and one backward pass per step serve every run; each run then applies its own slices
//! of the gradients with its own Adam (moments, step count, learning rate). What stays per run:
//! - its data (its scope's rows and min-max scaling), its epoch's permutations, drawn after
//!   reseeding libtorch from its own seed and epoch, exactly as [`crate::train`] draws them;
//! - its dropout masks, on the CPU from SplitMix64 streams seeded per step from its own epoch's
//!   draws (on a GPU from libtorch's generator: see `mask_source`);
//! - its number of iterations per epoch: a run whose epoch is over takes no step (its slots
//!   still see a zero batch, whose gradients are dropped, and its Adam step does not advance)
//!   while longer runs continue; its epochs, schedule, lambda_cls, checkpoints and resume.
//!
//! On the CPU a run's weights are the same bits alone and inside any grid (the crate's
//! `tests/grid.rs` checks it): batched products and per-slot reductions compute each slot on
//! its own, each run's classifier loss is computed on its own logits, and the discriminators'
//! losses pad every slot to whole vector blocks (see `Acts::bce_with_logits`). The runs of one
//! grid must share the network shapes and the settings the losses read (see [`compatible`]).
//!
//! Each run writes the checkpoint [`crate::train`] writes (same tensor names, `meta.layout`
//! `grid`), so a run resumes from it alone or in another grid.

mod joint;
mod pretrain;

use std::ops::Range;

use tch::{Device, Tensor};

use crate::train::MaskSource;
use crate::{GanConfig, GanError, TrainingData};
use emocycle_torch::{Leaf, MlpStack};

pub use joint::{GridRun, train_grid};
pub use pretrain::{GridPretrain, pretrain_grid};

/// The `meta.layout` of a grid's checkpoints and manifests.
const GRID_LAYOUT: &str = "grid";

/// Where a grid on `device` draws its dropout masks. On the CPU from per-slot SplitMix64
/// streams, so that a run's bits are its own; elsewhere from libtorch's generator on the
/// device: streams are filled on the host, and at the paper's size copying 12 runs' masks to a
/// GPU every step would take longer than the step's products. On a GPU a run's masks therefore
/// depend on the other runs of its grid (its numbers stay a valid run of the method).
fn mask_source(device: Device) -> MaskSource {
    match device {
        Device::Cpu => MaskSource::Streams,
        _ => MaskSource::Libtorch,
    }
}

/// The settings that two runs must share to train in one grid: everything that shapes the
/// networks or enters the losses as one number for all slots. Returns the names that differ.
pub fn compatible(a: &GanConfig, b: &GanConfig) -> Vec<&'static str> {
    let mut differ = Vec::new();
    let mut check = |same: bool, name: &'static str| {
        if !same {
            differ.push(name);
        }
    };
    check(a.generator_hidden == b.generator_hidden, "generator_hidden");
    check(
        a.discriminator_hidden == b.discriminator_hidden,
        "discriminator_hidden",
    );
    check(
        a.classifier_hidden == b.classifier_hidden,
        "classifier_hidden",
    );
    check(
        a.generator_dropout == b.generator_dropout,
        "generator_dropout",
    );
    check(
        a.discriminator_dropout == b.discriminator_dropout,
        "discriminator_dropout",
    );
    check(
        a.classifier_dropout == b.classifier_dropout,
        "classifier_dropout",
    );
    check(a.leaky_slope == b.leaky_slope, "leaky_slope");
    check(a.batch_size == b.batch_size, "batch_size");
    check(a.lambda_cyc == b.lambda_cyc, "lambda_cyc");
    check(a.real_label == b.real_label, "real_label");
    check(a.generator_steps == b.generator_steps, "generator_steps");
    check(
        a.d_step_updates_generator == b.d_step_updates_generator,
        "d_step_updates_generator",
    );
    differ
}

/// Estimated bytes one run takes in a grid on `device`: float32 parameters, their gradients
/// (and contiguous copies of the weights'), both Adam moments (G's twice with the D-step quirk),
/// and a step's activations with what autograd keeps of them; on the CPU also the run's own
/// copy of its networks, which the grid keeps in host memory for checkpoints and outputs.
pub fn grid_bytes_per_run(
    config: &GanConfig,
    emotions: usize,
    features: i64,
    device: Device,
) -> u64 {
    let sizes = |hidden: &[usize], out: i64| -> Vec<i64> {
        std::iter::once(features)
            .chain(hidden.iter().map(|&h| h as i64))
            .chain(std::iter::once(out))
            .collect()
    };
    let params = |sizes: &[i64]| -> i64 { sizes.windows(2).map(|p| p[0] * p[1] + p[1]).sum() };
    let widths = |sizes: &[i64]| -> i64 { sizes.iter().sum() };
    let k = emotions as i64;
    let generator = sizes(&config.generator_hidden, features);
    let disc = sizes(&config.discriminator_hidden, 1);
    let classifier = if config.has_classifier() {
        params(&sizes(&config.classifier_hidden, k))
    } else {
        0
    };
    let all = k * 2 * (params(&generator) + params(&disc)) + classifier;
    let quirk = if config.d_step_updates_generator {
        2 * k * params(&generator)
    } else {
        0
    };
    // Parameter, gradient, its contiguous copy, two moments; and the host copy.
    let copies = if device == Device::Cpu { 6 } else { 5 };
    let state = copies * all + quirk;
    // A G step holds G and F on 2 batches each and D on one, forward and backward.
    let rows = 2 * config.batch_size as i64;
    let activations = 4 * k * rows * (2 * widths(&generator) + widths(&disc));
    (4 * (state + activations)) as u64
}

/// Splits `runs` runs of `per_run` bytes into balanced groups of consecutive runs that fit
/// `budget` bytes (a run larger than the budget trains alone).
pub fn grid_groups(runs: usize, per_run: u64, budget: u64) -> Vec<Range<usize>> {
    if runs == 0 {
        return Vec::new();
    }
    let most = usize::try_from(budget / per_run.max(1))
        .unwrap_or(usize::MAX)
        .clamp(1, runs);
    let groups = runs.div_ceil(most);
    (0..groups)
        .map(|g| g * runs / groups..(g + 1) * runs / groups)
        .collect()
}

/// Checks that runs, given as (label, settings, data), can share a grid: each run's settings
/// and data are valid, all are [`compatible`] with the first, and all have the first's number
/// of emotions and features, which it returns. `what` names the phase in the message.
fn check_runs<'a>(
    runs: &[(&'a str, &'a GanConfig, &'a TrainingData)],
    what: &str,
) -> Result<(usize, i64), GanError> {
    let Some(&(first_label, first_config, _)) = runs.first() else {
        return Ok((0, 0));
    };
    let mut sizes = None;
    for &(label, config, data) in runs {
        config.validate().map_err(|e| in_run(label, e.into()))?;
        let differ = compatible(first_config, config);
        if !differ.is_empty() {
            return Err(GanError::InvalidConfig(format!(
                "{label} cannot {what} in one grid with {first_label}: they differ in {}",
                differ.join(", ")
            )));
        }
        let shape = data
            .validate(config.batch_size)
            .map_err(|e| in_run(label, e))?;
        let own = (shape.target_rows.len(), shape.features);
        let (emotions, features) = *sizes.get_or_insert(own);
        if own != (emotions, features) {
            return Err(GanError::InvalidConfig(format!(
                "{label} has {} emotions and {} features, {first_label} has {emotions} and \
                 {features}",
                own.0, own.1
            )));
        }
    }
    Ok(sizes.unwrap_or((0, 0)))
}

/// Adds the run's label to an error.
fn in_run(label: &str, error: GanError) -> GanError {
    GanError::InRun {
        run: label.to_string(),
        source: Box::new(error),
    }
}

/// Pairs every per-model tensor of `own` (a run's separate-layout stack) with its slot of the
/// grid's stacked `grid`, models `offset..`.
fn slot_pairs(own: &MlpStack, grid: &MlpStack, offset: usize) -> Vec<(Tensor, Tensor)> {
    let grid_leaves = grid.leaves();
    let per_model = grid_leaves.len();
    own.leaves()
        .into_iter()
        .enumerate()
        .map(|(index, leaf)| {
            let slot = (offset + index / per_model) as i64;
            (
                leaf.tensor,
                grid_leaves[index % per_model].tensor.detach().get(slot),
            )
        })
        .collect()
}

/// The rows `slots` of every leaf of `grid`, as leaves named like the run's own stack `own`
/// (Adam's parameters and checkpoint names for one run).
fn run_leaves(own: &MlpStack, grid: &MlpStack, slots: Range<usize>) -> Vec<Leaf> {
    let own_leaves = own.leaves();
    let grid_leaves = grid.leaves();
    let per_model = grid_leaves.len();
    grid_leaves
        .iter()
        .enumerate()
        .map(|(index, leaf)| Leaf {
            tensor: leaf
                .tensor
                .detach()
                .narrow(0, slots.start as i64, slots.len() as i64),
            names: (0..slots.len())
                .map(|k| own_leaves[k * per_model + index].names[0].clone())
                .collect(),
            stacked: true,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_balanced_and_fit_the_budget() {
        let sizes = |groups: Vec<Range<usize>>| groups.iter().map(Range::len).collect::<Vec<_>>();
        assert_eq!(sizes(grid_groups(12, 10, 120)), [12]);
        assert_eq!(sizes(grid_groups(12, 10, 50)), [4, 4, 4]);
        assert_eq!(sizes(grid_groups(12, 10, 70)), [6, 6]);
        assert_eq!(sizes(grid_groups(5, 10, 5)), [1, 1, 1, 1, 1]);
        assert!(grid_groups(0, 10, 50).is_empty());
        let covered: Vec<usize> = grid_groups(7, 10, 30).into_iter().flatten().collect();
        assert_eq!(covered, (0..7).collect::<Vec<_>>());
    }

    #[test]
    fn a_paper_size_run_is_estimated_at_about_a_gigabyte() {
        let paper = GanConfig::default();
        let cuda = Device::Cuda(0);
        // By hand: 54,193,468 parameters (tests/training.rs) in five copies, 33,344,656 quirk
        // moments, and 4 x 4 x 128 rows x (2 x 5664 + 3583) activations, in float32; on the CPU
        // a sixth copy of the parameters. 12 such runs measured 18.3 GiB of peak resident
        // memory in `just bench` (docs/benchmarks.md), against 17.4 GiB estimated.
        let activations = 4 * 4 * 128 * (2 * 5664 + 3583);
        let floats = 5 * 54_193_468 + 33_344_656 + activations;
        assert_eq!(grid_bytes_per_run(&paper, 4, 1582, cuda), 4 * floats);
        assert_eq!(
            grid_bytes_per_run(&paper, 4, 1582, Device::Cpu),
            4 * (floats + 54_193_468)
        );
        let without_c = GanConfig {
            lambda_cls: 0.0,
            ..paper
        };
        assert!(
            grid_bytes_per_run(&without_c, 4, 1582, cuda)
                < grid_bytes_per_run(&GanConfig::default(), 4, 1582, cuda)
        );
    }
}
