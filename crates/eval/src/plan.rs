//! The evaluation stage's work: one unit, every classifier of every experiment, setup and
//! repeat (the unit runs them on its own workers, `parallel_jobs`).

use std::path::PathBuf;

use emocycle_artifact::{Done, Progress, WorkUnit, is_fresh_by_record};
use tch::Device;

use crate::{EvalConfig, EvalError, EvalInputs, run_evaluation};

/// The whole evaluation of a run.
pub struct EvalUnit {
    inputs: EvalInputs,
    config: EvalConfig,
    device: Device,
}

/// The evaluation stage's one unit.
pub fn plan(inputs: EvalInputs, config: EvalConfig, device: Device) -> EvalUnit {
    EvalUnit {
        inputs,
        config,
        device,
    }
}

impl WorkUnit for EvalUnit {
    type Error = EvalError;

    fn label(&self) -> String {
        String::new()
    }

    /// Its inputs (the synthetic sets present) are worked out while it runs, so the record's own
    /// list of inputs is hashed again ([`is_fresh_by_record`]).
    fn is_fresh(&self) -> Result<bool, EvalError> {
        let config = serde_json::to_value(&self.config)
            .map_err(|error| EvalError::Config(error.to_string()))?;
        Ok(is_fresh_by_record(
            &self.inputs.output_dir.join("results.parquet"),
            &config,
            crate::CODE_FINGERPRINT,
        )?)
    }

    fn outputs(&self) -> Vec<PathBuf> {
        vec![
            self.inputs.output_dir.join("results.parquet"),
            self.inputs.output_dir.join("tables.md"),
        ]
    }

    fn execute(&self, progress: &dyn Progress) -> Result<Done, EvalError> {
        let report = run_evaluation(&self.inputs, &self.config, self.device, &mut |step| {
            progress.set_length(step.total as u64);
            progress.set_position(step.done as u64);
            let source = step
                .source
                .as_ref()
                .map_or(String::new(), |source| format!(" {source}"));
            progress.set_message(format!(
                "{} {}{source} UAR {:.3}{}",
                step.scope,
                step.setup,
                step.uar,
                if step.reused { " (reused)" } else { "" }
            ));
        })?;
        Ok(Done {
            summary: format!(
                "{} classifiers trained, {} reused from the previous results, on {} worker(s); {}",
                report.trained,
                report.reused,
                report.workers,
                self.inputs.output_dir.join("tables.md").display()
            ),
            notes: report
                .skipped
                .iter()
                .map(|line| format!("left out {line}"))
                .collect(),
        })
    }
}
