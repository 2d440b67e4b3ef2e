//! Resources of the Slurm jobs that `emocycle submit` writes (the `slurm` section of a pipeline).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ConfigError;

type Result<T> = std::result::Result<T, ConfigError>;

/// The stages `emocycle submit` turns into job arrays, in pipeline order.
pub const STAGES: [&str; 8] = [
    "features", "augment", "pretrain", "train", "generate", "quality", "evaluate", "report",
];

/// What every array task of a stage asks Slurm for; unset keys are left to the cluster's
/// defaults (or to the section's own values, for a stage's overrides).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmResources {
    /// `--partition`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// `--account`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// `--time`, in Slurm's form (`30`, `4:00:00`, `1-12:00:00`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// `--mem` (`4G`, `16000M`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// `--cpus-per-task`; also the task's libtorch threads (`--threads`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// `--gres=gpu:<n>`. Default: 1 for the model stages when the pipeline's device is CUDA,
    /// else none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
    /// Further `#SBATCH` lines, verbatim without the prefix (`--qos=short`, `--constraint=a100`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<String>,
}

impl SlurmResources {
    /// `self` with every key that `over` sets taken from `over`; `extra` lines are added.
    pub fn merged(&self, over: &SlurmResources) -> SlurmResources {
        SlurmResources {
            partition: over.partition.clone().or_else(|| self.partition.clone()),
            account: over.account.clone().or_else(|| self.account.clone()),
            time: over.time.clone().or_else(|| self.time.clone()),
            memory: over.memory.clone().or_else(|| self.memory.clone()),
            cpus: over.cpus.or(self.cpus),
            gpus: over.gpus.or(self.gpus),
            extra: self.extra.iter().chain(&over.extra).cloned().collect(),
        }
    }

    /// Checks every value; `prefix` (`""` or `stages.<stage>.`) goes before the key.
    fn validate(&self, prefix: &str) -> Result<()> {
        let fail = |field: &str, message: String| {
            Err(ConfigError::keyed(
                "slurm",
                format!("{prefix}{field}"),
                message,
            ))
        };
        for (name, value) in [
            ("partition", &self.partition),
            ("account", &self.account),
            ("time", &self.time),
            ("memory", &self.memory),
        ] {
            if let Some(value) = value
                && (value.is_empty()
                    || value
                        .chars()
                        .any(|c| c.is_whitespace() || matches!(c, '\'' | '"' | '\\' | '#')))
            {
                // sbatch reads `#SBATCH` lines itself: quotes and backslashes would be
                // unquoted, and `#` would start a comment.
                return fail(
                    name,
                    format!("{value:?} must be one word without quotes, backslashes or #"),
                );
            }
        }
        if let Some(time) = &self.time
            && !time
                .chars()
                .all(|c| c.is_ascii_digit() || c == ':' || c == '-')
        {
            return fail(
                "time",
                format!("{time:?} is not a Slurm time (minutes, [D-]HH:MM:SS)"),
            );
        }
        if self.cpus == Some(0) {
            return fail("cpus", "must be positive".into());
        }
        for line in &self.extra {
            if line.contains('\n') || !line.trim_start().starts_with('-') {
                return fail(
                    "extra",
                    format!("{line:?} must be one sbatch option such as \"--qos=short\""),
                );
            }
        }
        Ok(())
    }
}

/// The `slurm` section: resources for every stage, and per-stage overrides.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmConfig {
    /// Resources of every stage's tasks.
    #[serde(flatten)]
    pub defaults: SlurmResources,
    /// Overrides per stage name (`train`, `evaluate`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stages: BTreeMap<String, SlurmResources>,
}

impl SlurmConfig {
    /// Checks every value; the error names the key.
    pub fn validate(&self) -> Result<()> {
        self.defaults.validate("")?;
        for (stage, resources) in &self.stages {
            if !STAGES.contains(&stage.as_str()) {
                return Err(ConfigError::keyed(
                    "slurm",
                    format!("stages.{stage}"),
                    format!(
                        "no stage is called {stage:?}; the stages are {}",
                        STAGES.join(", ")
                    ),
                ));
            }
            resources.validate(&format!("stages.{stage}."))?;
        }
        Ok(())
    }

    /// The resources of `stage`'s tasks.
    pub fn for_stage(&self, stage: &str) -> SlurmResources {
        match self.stages.get(stage) {
            Some(over) => self.defaults.merged(over),
            None => self.defaults.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_overrides_the_defaults_key_by_key() {
        let config: SlurmConfig = serde_json::from_str(
            r#"{"partition": "cpu", "time": "1:00:00", "extra": ["--qos=short"],
                "stages": {"train": {"partition": "gpu", "gpus": 1, "extra": ["--constraint=a100"]}}}"#,
        )
        .unwrap();
        config.validate().unwrap();
        let train = config.for_stage("train");
        assert_eq!(train.partition.as_deref(), Some("gpu"));
        assert_eq!(train.time.as_deref(), Some("1:00:00"));
        assert_eq!((train.gpus, train.cpus), (Some(1), None));
        assert_eq!(train.extra, ["--qos=short", "--constraint=a100"]);
        assert_eq!(config.for_stage("report"), config.defaults);
    }

    #[test]
    fn impossible_values_name_the_key() {
        for (text, key) in [
            (r#"{"time": "two hours"}"#, "time"),
            (r#"{"time": "2h"}"#, "time"),
            (r#"{"cpus": 0}"#, "cpus"),
            (r#"{"partition": "gpu#a100"}"#, "partition"),
            (r#"{"extra": ["qos=short"]}"#, "extra"),
            (r#"{"stages": {"training": {}}}"#, "stages.training"),
            (
                r#"{"stages": {"train": {"memory": "4 G"}}}"#,
                "stages.train",
            ),
        ] {
            let config: SlurmConfig = serde_json::from_str(text).unwrap();
            let error = config.validate().unwrap_err().to_string();
            assert!(error.contains(key), "{text}: {error}");
        }
        assert!(serde_json::from_str::<SlurmConfig>(r#"{"partitions": "x"}"#).is_err());
    }
}
