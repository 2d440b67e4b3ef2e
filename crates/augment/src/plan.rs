//! The augmentation stage's work: one unit per scope and baseline.

use std::path::PathBuf;

use emocycle_artifact::{Done, Expected, Progress, WorkUnit, is_fresh, whole};
use tch::Device;

use crate::{AugmentError, BaselineProgress, BaselineRequest, Method, run_baseline};

/// One baseline set of one scope, made on `device`.
pub struct BaselineUnit {
    request: BaselineRequest,
    device: Device,
}

/// The stage's units for `requests` (see `BaselineRequest`), each made on `device`.
pub fn plan(requests: Vec<BaselineRequest>, device: Device) -> Vec<BaselineUnit> {
    requests
        .into_iter()
        .map(|request| BaselineUnit { request, device })
        .collect()
}

impl WorkUnit for BaselineUnit {
    type Error = AugmentError;

    fn label(&self) -> String {
        format!(
            "{} {}",
            self.request.scope.name(),
            self.request.config.name()
        )
    }

    fn is_fresh(&self) -> Result<bool, AugmentError> {
        let expected = Expected {
            code: crate::CODE_FINGERPRINT,
            config: self.request.recorded_config(),
            inputs: self.request.input_files(),
        };
        Ok(is_fresh(&self.request.output, &expected, &[], whole)?)
    }

    fn outputs(&self) -> Vec<PathBuf> {
        vec![self.request.output.clone()]
    }

    /// The cGAN trains for a while and is worth a process of its own; the other methods take
    /// milliseconds.
    fn child_flags(&self) -> Option<Vec<(&'static str, String)>> {
        matches!(self.request.config.method, Method::Cgan(_)).then(|| {
            vec![
                ("--scope", self.request.scope.name()),
                ("--name", self.request.config.name().to_string()),
            ]
        })
    }

    fn execute(&self, progress: &dyn Progress) -> Result<Done, AugmentError> {
        let report = run_baseline(&self.request, self.device, &mut |event| {
            if let BaselineProgress::Epoch { record, epochs } = event {
                progress.set_length(epochs as u64);
                progress.set_position(record.epoch as u64);
                progress.set_message(format!("d {:.3} g {:.3}", record.d_loss, record.g_loss));
            }
        })?;
        let [angry, happy, neutral, sad] = report.rows_per_emotion;
        Ok(Done::summary(format!(
            "-> {} synthetic vectors (angry {angry}, happy {happy}, neutral {neutral}, sad {sad}) \
             on {}",
            report.rows_per_emotion.iter().sum::<usize>(),
            report.device,
        )))
    }
}
