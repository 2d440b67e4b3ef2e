//! The synthesis stage's work: one unit per synthetic set to generate, and the quality report
//! over every set as one unit.

use std::path::PathBuf;

use emocycle_artifact::{Done, Expected, Progress, WorkUnit, is_fresh, is_fresh_by_record, whole};
use tch::Device;

use crate::{
    CYCLEGAN_METHOD, GenerateRequest, QualitySet, SynthConfig, SynthError, SynthLayout,
    generate_set, quality_config, quality_report,
};

/// One synthetic set to generate from a trained scope.
pub struct GenerateUnit {
    request: GenerateRequest,
    config: SynthConfig,
    device: Device,
    label: String,
}

/// The generation units for `requests`, each named by its label (`fold2 lambda_cls=2`).
///
/// # Errors
/// When a request's model does not exist: its training has to run first.
pub fn plan_generate(
    requests: Vec<(String, GenerateRequest)>,
    config: &SynthConfig,
    device: Device,
) -> Result<Vec<GenerateUnit>, SynthError> {
    requests
        .into_iter()
        .map(|(label, request)| {
            if !request.model.is_file() {
                return Err(SynthError::input(
                    &request.model,
                    format!("does not exist: train {label} first"),
                ));
            }
            Ok(GenerateUnit {
                request,
                config: config.clone(),
                device,
                label,
            })
        })
        .collect()
}

impl WorkUnit for GenerateUnit {
    type Error = SynthError;

    fn label(&self) -> String {
        self.label.clone()
    }

    fn is_fresh(&self) -> Result<bool, SynthError> {
        let expected = Expected {
            code: crate::CODE_FINGERPRINT,
            config: self.request.recorded_config(&self.config),
            inputs: self.request.input_files(&self.config),
        };
        Ok(is_fresh(&self.request.output, &expected, &[], whole)?)
    }

    fn outputs(&self) -> Vec<PathBuf> {
        vec![self.request.output.clone()]
    }

    fn execute(&self, progress: &dyn Progress) -> Result<Done, SynthError> {
        let report = generate_set(&self.request, &self.config, self.device, &mut |step| {
            progress.set_length(step.rows_total as u64);
            progress.set_position(step.rows_done as u64);
        })?;
        Ok(Done::summary(format!(
            "-> {} synthetic vectors ({})",
            report.rows,
            report.output.display()
        )))
    }
}

/// The quality report over every synthetic set of a run.
pub struct QualityUnit {
    sets: Vec<QualitySet>,
    layout: SynthLayout,
    config: SynthConfig,
    device: Device,
}

/// The quality stage's one unit.
///
/// # Errors
/// When a set does not exist: the stage that makes it has to run first.
pub fn plan_quality(
    sets: Vec<QualitySet>,
    layout: SynthLayout,
    config: &SynthConfig,
    device: Device,
) -> Result<QualityUnit, SynthError> {
    if let Some(missing) = sets.iter().find(|set| !set.synthetic.is_file()) {
        let stage = if missing.method == CYCLEGAN_METHOD {
            "generate"
        } else {
            "augment"
        };
        return Err(SynthError::input(
            &missing.synthetic,
            format!("does not exist: run `emocycle {stage}` first"),
        ));
    }
    Ok(QualityUnit {
        sets,
        layout,
        config: config.clone(),
        device,
    })
}

impl WorkUnit for QualityUnit {
    type Error = SynthError;

    fn label(&self) -> String {
        String::new()
    }

    /// Its inputs are worked out while it runs, so the record's own list of inputs is hashed
    /// again ([`is_fresh_by_record`]).
    fn is_fresh(&self) -> Result<bool, SynthError> {
        Ok(self.layout.quality_markdown().is_file()
            && is_fresh_by_record(
                &self.layout.quality(),
                &quality_config(&self.sets, &self.config),
                crate::CODE_FINGERPRINT,
            )?)
    }

    fn outputs(&self) -> Vec<PathBuf> {
        vec![self.layout.quality(), self.layout.quality_markdown()]
    }

    fn execute(&self, progress: &dyn Progress) -> Result<Done, SynthError> {
        let report = quality_report(
            &self.sets,
            &self.layout,
            &self.config,
            self.device,
            &mut |step| progress.set_message(step.to_string()),
        )?;
        Ok(Done::summary(format!(
            "{} rows over {} synthetic sets; {}",
            report.rows.len(),
            self.sets.len(),
            self.layout.quality_markdown().display()
        )))
    }
}
