//! The GAN stage's work: one unit per pretraining (scope, generator seed) and per joint training
//! (scope, lambda_cls, generator seed).

use std::cell::Cell;
use std::collections::HashMap;
use std::path::PathBuf;

use emocycle_artifact::{Done, Expected, Progress, WorkUnit, is_fresh};
use tch::Device;

use crate::grid::{
    GridPretrain, GridRun, grid_bytes_per_run, grid_groups, pretrain_grid, train_grid,
};
use crate::stage::{ScopeData, load_scope_data, train_inputs, write_pretrain, write_train};
use crate::{
    EpochReport, GanConfig, RunOptions, Scope, ScopeDirs, StageError, StageInputs, StageRun,
    run_pretrain, run_train,
};

/// Which part of the GAN stage a run is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Phase {
    /// Cycle-only pretraining of the generator pairs; it does not depend on lambda_cls.
    Pretrain,
    /// Joint training with this lambda_cls, from the scope's pretrained generators.
    Train {
        /// The classifier loss weight.
        lambda_cls: f64,
    },
}

/// One run of the GAN stage, with everything it reads and where it writes.
#[derive(Debug, Clone)]
pub struct GanRun {
    /// Pretraining or joint training.
    pub phase: Phase,
    /// The scope whose data it trains on.
    pub scope: Scope,
    /// The generator seed's index (0 to `gan.seeds` - 1).
    pub gan_seed: u32,
    /// The run's settings, its seed already the generator seed's.
    pub config: GanConfig,
    /// The feature-stage files of the scope.
    pub inputs: StageInputs,
    /// Where the scope's outputs of this generator seed go.
    pub dirs: ScopeDirs,
    /// Whether progress lines name the generator seed (pipelines with several).
    pub name_seed: bool,
}

/// A [`GanRun`] to train on a device.
pub struct GanUnit {
    run: GanRun,
    device: Device,
    stage_run: StageRun,
}

/// The stage's units for `runs`, each trained on `device` as `stage_run` says (resume, keep the
/// checkpoint).
pub fn plan(runs: Vec<GanRun>, device: Device, stage_run: StageRun) -> Vec<GanUnit> {
    runs.into_iter()
        .map(|run| GanUnit {
            run,
            device,
            stage_run,
        })
        .collect()
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

impl GanUnit {
    /// The files the run reads: the source and the scope's target part, with their scaling,
    /// and for joint training the pretrained generators.
    fn input_files(&self) -> Vec<PathBuf> {
        let inputs = &self.run.inputs;
        let mut files = vec![
            inputs.source.clone(),
            inputs.source_normalisation.clone(),
            inputs.target.clone(),
            inputs.target_normalisation.clone(),
        ];
        if matches!(self.run.scope, Scope::Fold(_)) {
            files.push(inputs.target_folds.clone());
        }
        if let Phase::Train { .. } = self.run.phase {
            files.push(self.run.dirs.generators());
        }
        files
    }
}

impl WorkUnit for GanUnit {
    type Error = StageError;

    fn label(&self) -> String {
        let lambda_cls = match self.run.phase {
            Phase::Pretrain => None,
            Phase::Train { lambda_cls } => Some(lambda_cls),
        };
        emocycle_config::layout::run_label(
            &self.run.scope,
            lambda_cls,
            self.run.gan_seed,
            self.run.name_seed,
        )
    }

    /// Fresh when the loss log's footer records this code, these inputs and the same values of
    /// the settings the phase depends on ([`GanConfig::pretraining_key`] or
    /// [`GanConfig::training_key`]), and the weights exist.
    fn is_fresh(&self) -> Result<bool, StageError> {
        let (key, generators_needed): (fn(&GanConfig) -> serde_json::Value, bool) =
            match self.run.phase {
                Phase::Pretrain => (GanConfig::pretraining_key, false),
                Phase::Train { .. } => (GanConfig::training_key, true),
            };
        if generators_needed && !self.run.dirs.generators().is_file() {
            return Ok(false);
        }
        let expected = Expected {
            code: crate::CODE_FINGERPRINT,
            config: serde_json::to_value(&self.run.config)
                .map_err(|error| StageError::Input(format!("GAN settings: {error}")))?,
            inputs: self.input_files(),
        };
        let outputs = self.outputs();
        // A record whose settings no longer parse maps to null, which no expected key equals.
        let project = |recorded: serde_json::Value| {
            serde_json::from_value::<GanConfig>(recorded)
                .map_or(serde_json::Value::Null, |config| key(&config))
        };
        Ok(is_fresh(&outputs[0], &expected, &outputs[1..], project)?)
    }

    /// The loss log first (its footer is the freshness record), then the weights and the
    /// manifest.
    fn outputs(&self) -> Vec<PathBuf> {
        let dirs = &self.run.dirs;
        match self.run.phase {
            Phase::Pretrain => vec![
                dirs.pretrain().join("loss_log.parquet"),
                dirs.generators(),
                dirs.pretrain().join("manifest.json"),
            ],
            Phase::Train { lambda_cls } => vec![
                dirs.train(lambda_cls).join("loss_log.parquet"),
                dirs.model(lambda_cls),
                dirs.train(lambda_cls).join("manifest.json"),
            ],
        }
    }

    fn child_flags(&self) -> Option<Vec<(&'static str, String)>> {
        let mut flags = vec![("--scope", self.run.scope.name())];
        if let Phase::Train { lambda_cls } = self.run.phase {
            flags.push(("--lambda-cls", lambda_cls.to_string()));
        }
        flags.push(("--gan-seed", self.run.gan_seed.to_string()));
        // A unit of its own is the per-run engine's, whatever the pipeline's default.
        flags.push(("--engine", "per-run".to_string()));
        Some(flags)
    }

    fn execute(&self, progress: &dyn Progress) -> Result<Done, StageError> {
        let run = &self.run;
        let epochs_seen = Cell::new(0u64);
        let mut on_epoch = |report: &EpochReport| {
            epochs_seen.set(epochs_seen.get() + 1);
            progress.set_position(epochs_seen.get());
            match report {
                EpochReport::Pretrain {
                    record,
                    epochs,
                    pairs,
                } => {
                    progress.set_length((epochs * pairs) as u64);
                    progress.set_message(format!("pair {} cycle {:.4}", record.pair, record.cycle));
                }
                EpochReport::Train { record, epochs } => {
                    progress.set_length(*epochs as u64);
                    progress.set_message(format!(
                        "d {:.3} g {:.3} cycle {:.4} cls {:.3}",
                        mean(&record.d),
                        mean(&record.g),
                        mean(&record.cycle),
                        record.cls
                    ));
                    tracing::debug!(epoch = record.epoch, d = ?record.d, g = ?record.g,
                        cycle = ?record.cycle, cls = record.cls, "epoch");
                }
            }
        };
        let device = emocycle_torch::device_name(self.device);
        let summary = match run.phase {
            Phase::Pretrain => {
                let outcome = run_pretrain(
                    &run.config,
                    &run.inputs,
                    &run.scope,
                    &run.dirs,
                    self.device,
                    self.stage_run,
                    &mut on_epoch,
                )?;
                let last: Vec<String> = (0..4)
                    .filter_map(|pair| outcome.log.iter().rev().find(|r| r.pair == pair))
                    .map(|record| format!("{:.4}", record.cycle))
                    .collect();
                format!("on {device}: final cycle loss per pair {}", last.join(" "))
            }
            Phase::Train { .. } => {
                let outcome = run_train(
                    &run.config,
                    &run.inputs,
                    &run.scope,
                    &run.dirs,
                    self.device,
                    self.stage_run,
                    &mut on_epoch,
                )?;
                let last = outcome.log.last();
                let of = |pick: fn(&crate::TrainEpochRecord) -> f64| last.map_or(f64::NAN, pick);
                format!(
                    "on {device}: final d {:.3} g {:.3} cycle {:.4} cls {:.3}",
                    of(|r| mean(&r.d)),
                    of(|r| mean(&r.g)),
                    of(|r| mean(&r.cycle)),
                    of(|r| r.cls)
                )
            }
        };
        Ok(Done::summary(summary))
    }
}

/// Pretrainings, or joint trainings, that the grid engine trains together, as one unit of the
/// stage.
pub struct GridUnit {
    runs: Vec<GanUnit>,
    device: Device,
    stage_run: StageRun,
    /// Retrain the runs that are up to date too (`--force`).
    force: bool,
    /// The estimated memory of the group, bytes.
    estimate: u64,
}

/// `runs` in groups for the grid engine, each group's estimated memory within `memory_budget`
/// bytes ([`grid_bytes_per_run`], which counts a joint training; a pretraining takes less), and
/// pretrainings and joint trainings in groups of their own. A group trains its runs that are
/// not up to date, or all of them with `force`.
pub fn plan_grid(
    runs: Vec<GanRun>,
    device: Device,
    stage_run: StageRun,
    memory_budget: u64,
    force: bool,
) -> Vec<GridUnit> {
    let (pretrainings, trainings): (Vec<GanRun>, Vec<GanRun>) = runs
        .into_iter()
        .partition(|run| run.phase == Phase::Pretrain);
    [pretrainings, trainings]
        .into_iter()
        .flat_map(|runs| plan_phase(runs, device, stage_run, memory_budget, force))
        .collect()
}

fn plan_phase(
    runs: Vec<GanRun>,
    device: Device,
    stage_run: StageRun,
    memory_budget: u64,
    force: bool,
) -> Vec<GridUnit> {
    // The statistics files say the feature count (one row per feature) and how many rows each
    // part has; each run holds its source and target rows on its device. Without them the
    // units fail later naming the file; the grouping goes on without the estimate.
    let sizes = |run: &GanRun| -> Result<(i64, u64), emocycle_features::FeatureError> {
        let source = emocycle_features::Normaliser::read(&run.inputs.source_normalisation)?;
        let target = emocycle_features::Normaliser::read(&run.inputs.target_normalisation)?;
        Ok((source.features.len() as i64, source.rows + target.rows))
    };
    let per_run = runs
        .iter()
        .map(|run| match sizes(run) {
            Ok((features, rows)) => {
                grid_bytes_per_run(&run.config, 4, features, device) + rows * features as u64 * 4
            }
            Err(error) => {
                tracing::warn!("grouping the grid without a memory estimate: {error}");
                0
            }
        })
        .max()
        .unwrap_or(0);
    let mut units = plan(runs, device, stage_run).into_iter();
    let count = units.len();
    grid_groups(count, per_run, memory_budget)
        .into_iter()
        .map(|group| GridUnit {
            runs: units.by_ref().take(group.len()).collect(),
            device,
            stage_run,
            force,
            estimate: per_run * group.len() as u64,
        })
        .collect()
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

impl WorkUnit for GridUnit {
    type Error = StageError;

    fn label(&self) -> String {
        let first = self.runs.first().map(WorkUnit::label).unwrap_or_default();
        match self.runs.len() {
            1 => format!("grid of 1 run ({first})"),
            count => {
                let last = self.runs.last().map(WorkUnit::label).unwrap_or_default();
                format!("grid of {count} runs ({first} .. {last})")
            }
        }
    }

    /// Fresh when every run is.
    fn is_fresh(&self) -> Result<bool, StageError> {
        for run in &self.runs {
            if !run.is_fresh()? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn outputs(&self) -> Vec<PathBuf> {
        self.runs.iter().flat_map(WorkUnit::outputs).collect()
    }

    fn execute(&self, progress: &dyn Progress) -> Result<Done, StageError> {
        let mut members = Vec::new();
        for unit in &self.runs {
            if self.force || !unit.is_fresh()? {
                members.push(&unit.run);
            }
        }
        // Runs of one scope share its data.
        let mut scopes: HashMap<String, ScopeData> = HashMap::new();
        for run in &members {
            if let std::collections::hash_map::Entry::Vacant(entry) = scopes.entry(run.scope.name())
            {
                entry.insert(load_scope_data(&run.inputs, &run.scope)?);
            }
        }
        let labels: Vec<String> = self
            .runs
            .iter()
            .filter(|unit| members.iter().any(|run| std::ptr::eq(*run, &unit.run)))
            .map(WorkUnit::label)
            .collect();
        let total: usize = members
            .iter()
            .map(|run| match run.phase {
                Phase::Pretrain => run.config.pretrain_epochs * 4,
                Phase::Train { .. } => run.config.train_epochs,
            })
            .sum();
        progress.set_length(total as u64);
        let done = Cell::new(0u64);
        let mut on_epoch = |index: usize, report: &EpochReport| {
            done.set(done.get() + 1);
            progress.set_position(done.get());
            let label = &labels[index];
            progress.set_message(match report {
                EpochReport::Pretrain { record, .. } => format!(
                    "{label} pair {} epoch {}: cycle {:.4}",
                    record.pair, record.epoch, record.cycle
                ),
                EpochReport::Train { record, .. } => format!(
                    "{label} epoch {}: d {:.3} g {:.3} cycle {:.4} cls {:.3}",
                    record.epoch,
                    mean(&record.d),
                    mean(&record.g),
                    mean(&record.cycle),
                    record.cls
                ),
            });
        };
        let notes = match members.first().map(|run| run.phase) {
            Some(Phase::Pretrain) => self.pretrain(&members, &scopes, &labels, &mut on_epoch)?,
            Some(Phase::Train { .. }) => self.train(&members, &scopes, &labels, &mut on_epoch)?,
            None => Vec::new(),
        };
        let device = emocycle_torch::device_name(self.device);
        let mut summary = format!(
            "on {device}: {} of {} runs trained together, estimated {:.2} GiB",
            members.len(),
            self.runs.len(),
            gib(self.estimate)
        );
        if self.device == Device::Cpu
            && let Some(peak) = emocycle_torch::peak_resident_bytes()
        {
            summary.push_str(&format!(", process peak resident {:.2} GiB", gib(peak)));
        }
        Ok(Done { summary, notes })
    }
}

type OnEpoch<'a> = dyn FnMut(usize, &EpochReport) + 'a;

impl GridUnit {
    /// Pretrains `members` together and writes each one's `pretrain/`; returns a note per run.
    fn pretrain(
        &self,
        members: &[&GanRun],
        scopes: &HashMap<String, ScopeData>,
        labels: &[String],
        on_epoch: &mut OnEpoch,
    ) -> Result<Vec<String>, StageError> {
        let grid: Vec<GridPretrain> = members
            .iter()
            .zip(labels)
            .map(|(run, label)| GridPretrain {
                label: label.clone(),
                config: &run.config,
                data: &scopes[&run.scope.name()].data,
                options: RunOptions {
                    checkpoint_dir: Some(run.dirs.pretrain()),
                    resume: self.stage_run.resume,
                    ..RunOptions::default()
                },
            })
            .collect();
        let outcomes = pretrain_grid(&grid, self.device, on_epoch)?;
        let mut notes = Vec::with_capacity(members.len());
        let mut failures = Vec::new();
        for ((run, outcome), label) in members.iter().zip(outcomes).zip(labels) {
            let outcome = match outcome {
                Ok(outcome) => outcome,
                Err(error) => {
                    failures.push(error);
                    continue;
                }
            };
            let outcome = &outcome;
            let scope = &scopes[&run.scope.name()];
            let provenance = (scope.held_out_session.clone(), scope.inputs.clone());
            write_pretrain(
                &run.config,
                &run.scope,
                &run.dirs,
                provenance,
                outcome,
                self.stage_run,
            )?;
            let last: Vec<String> = (0..4)
                .filter_map(|pair| outcome.log.iter().rev().find(|r| r.pair == pair))
                .map(|record| format!("{:.4}", record.cycle))
                .collect();
            notes.push(format!(
                "{label}: final cycle loss per pair {}",
                last.join(" ")
            ));
        }
        failed(failures, members.len())?;
        Ok(notes)
    }

    /// Trains `members` jointly, together, and writes each one's `lambda_cls-<value>/`; returns
    /// a note per run.
    fn train(
        &self,
        members: &[&GanRun],
        scopes: &HashMap<String, ScopeData>,
        labels: &[String],
        on_epoch: &mut OnEpoch,
    ) -> Result<Vec<String>, StageError> {
        let mut prepared = Vec::with_capacity(members.len());
        for run in members {
            prepared.push(train_inputs(
                &scopes[&run.scope.name()],
                &run.scope,
                &run.dirs,
            )?);
        }
        let grid: Vec<GridRun> = members
            .iter()
            .zip(&prepared)
            .zip(labels)
            .map(|((run, (pretrained, _)), label)| {
                let Phase::Train { lambda_cls } = run.phase else {
                    unreachable!("a group holds one phase");
                };
                GridRun {
                    label: label.clone(),
                    config: &run.config,
                    data: &scopes[&run.scope.name()].data,
                    pretrained,
                    options: RunOptions {
                        checkpoint_dir: Some(run.dirs.train(lambda_cls)),
                        resume: self.stage_run.resume,
                        ..RunOptions::default()
                    },
                }
            })
            .collect();
        let outcomes = train_grid(&grid, self.device, on_epoch)?;
        let mut notes = Vec::with_capacity(members.len());
        let mut failures = Vec::new();
        for (((run, (_, hashes)), outcome), label) in
            members.iter().zip(prepared).zip(outcomes).zip(labels)
        {
            let outcome = match outcome {
                Ok(outcome) => outcome,
                Err(error) => {
                    failures.push(error);
                    continue;
                }
            };
            let outcome = &outcome;
            let held_out = scopes[&run.scope.name()].held_out_session.clone();
            write_train(
                &run.config,
                &run.scope,
                &run.dirs,
                (held_out, hashes),
                outcome,
                self.stage_run,
            )?;
            let last = outcome.log.last();
            let of = |pick: fn(&crate::TrainEpochRecord) -> f64| last.map_or(f64::NAN, pick);
            notes.push(format!(
                "{label}: final d {:.3} g {:.3} cycle {:.4} cls {:.3}",
                of(|r| mean(&r.d)),
                of(|r| mean(&r.g)),
                of(|r| mean(&r.cycle)),
                of(|r| r.cls)
            ));
        }
        failed(failures, members.len())?;
        Ok(notes)
    }
}

/// The runs of a grid that failed, after the others' outputs were written.
fn failed(failures: Vec<crate::GanError>, total: usize) -> Result<(), StageError> {
    if failures.is_empty() {
        return Ok(());
    }
    Err(StageError::RunsFailed {
        failed: failures.len(),
        total,
        details: failures
            .iter()
            .map(|error| {
                let mut text = error.to_string();
                let mut cause = std::error::Error::source(error);
                while let Some(inner) = cause {
                    text.push_str(&format!(": {inner}"));
                    cause = inner.source();
                }
                text
            })
            .collect::<Vec<_>>()
            .join("; "),
    })
}
