//! The GAN stage's work: one unit per pretraining (scope, generator seed) and per joint training
//! (scope, lambda_cls, generator seed).

use std::cell::Cell;
use std::path::PathBuf;

use emocycle_artifact::{Done, Expected, Progress, WorkUnit, is_fresh};
use tch::Device;

use crate::{
    EpochReport, GanConfig, Scope, ScopeDirs, StageError, StageInputs, StageRun, run_pretrain,
    run_train,
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
