//! Whether a stage's outputs are up to date, so a rerun can skip it.
//!
//! Every stage records in its parquet footer its code fingerprint (the `CODE_FINGERPRINT` of the
//! stage's crate: a hash of the sources that shape its outputs), its config and the sha256 of
//! each input. An output is fresh when those three equal what this run would record, and the
//! stage's other outputs exist. Nothing else is trusted: not modification times, not file names,
//! not the git commit (a commit that touches only docs or another stage keeps outputs fresh).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{Result, keys, read_parquet_metadata, sha256_file};

/// What a stage run would record.
pub struct Expected {
    /// The stage crate's code fingerprint, compared with `emocycle.code_fingerprint`.
    pub code: &'static str,
    /// The config the stage records under `emocycle.config`.
    pub config: serde_json::Value,
    /// Input files; their sha256 is compared with `emocycle.inputs`.
    pub inputs: Vec<PathBuf>,
}

/// Hashes the inputs (missing inputs are an error: the stage could not run either).
pub fn input_hashes(inputs: &[PathBuf]) -> Result<BTreeMap<String, String>> {
    inputs
        .iter()
        .map(|path| Ok((path.display().to_string(), sha256_file(path)?)))
        .collect()
}

/// Whether `record` (a parquet file with the stage's footer) matches `expected` and every path
/// in `also` exists. Any unreadable or absent record means "not fresh".
pub fn is_fresh(
    record: &Path,
    expected: &Expected,
    also: &[PathBuf],
    project: impl Fn(serde_json::Value) -> serde_json::Value,
) -> Result<bool> {
    if !record.is_file() || also.iter().any(|path| !path.exists()) {
        return Ok(false);
    }
    let Ok(metadata) = read_parquet_metadata(record) else {
        return Ok(false);
    };
    if metadata.get(keys::CODE_FINGERPRINT) != Some(expected.code) {
        return Ok(false);
    }
    let recorded_config: Option<serde_json::Value> = metadata
        .get(keys::CONFIG)
        .and_then(|text| serde_json::from_str(text).ok());
    if recorded_config.map(&project) != Some(project(expected.config.clone())) {
        return Ok(false);
    }
    let recorded_inputs: Option<BTreeMap<String, String>> = metadata
        .get(keys::INPUTS)
        .and_then(|text| serde_json::from_str(text).ok());
    Ok(recorded_inputs == Some(input_hashes(&expected.inputs)?))
}

/// Like [`is_fresh`] for stages whose input list is worked out inside the stage: the record's
/// own list of inputs is hashed again, so any changed, missing or deleted input makes it stale.
pub fn is_fresh_by_record(record: &Path, config: &serde_json::Value, code: &str) -> Result<bool> {
    let Ok(metadata) = read_parquet_metadata(record) else {
        return Ok(false);
    };
    if metadata.get(keys::CODE_FINGERPRINT) != Some(code) {
        return Ok(false);
    }
    let recorded_config: Option<serde_json::Value> = metadata
        .get(keys::CONFIG)
        .and_then(|text| serde_json::from_str(text).ok());
    if recorded_config.as_ref() != Some(config) {
        return Ok(false);
    }
    let Some(recorded): Option<BTreeMap<String, String>> = metadata
        .get(keys::INPUTS)
        .and_then(|text| serde_json::from_str(text).ok())
    else {
        return Ok(false);
    };
    for (path, hash) in &recorded {
        let path = Path::new(path);
        if !path.is_file() || &sha256_file(path)? != hash {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The identity projection: the whole config matters.
pub fn whole(value: serde_json::Value) -> serde_json::Value {
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Metadata, write_parquet};
    use polars::prelude::*;

    fn record(dir: &Path, config: serde_json::Value, input: &Path) -> PathBuf {
        let path = dir.join("out.parquet");
        let mut metadata = Metadata::for_stage("test", "test-code");
        metadata.insert_json(keys::CONFIG, &config);
        metadata.insert_json(keys::INPUTS, &input_hashes(&[input.to_path_buf()]).unwrap());
        let mut frame = df!("x" => [1i32]).unwrap();
        write_parquet(&path, &mut frame, &metadata).unwrap();
        path
    }

    #[test]
    fn fresh_only_when_config_inputs_and_outputs_all_match() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.csv");
        std::fs::write(&input, "a").unwrap();
        let config = serde_json::json!({"epochs": 3, "lambda": 2});
        let out = record(dir.path(), config.clone(), &input);
        let expected = |config| Expected {
            code: "test-code",
            config,
            inputs: vec![input.clone()],
        };
        assert!(is_fresh(&out, &expected(config.clone()), &[], whole).unwrap());
        // Another stage code (the record says "test-code").
        let other_code = Expected {
            code: "other-code",
            ..expected(config.clone())
        };
        assert!(!is_fresh(&out, &other_code, &[], whole).unwrap());
        // Another config value.
        assert!(
            !is_fresh(
                &out,
                &expected(serde_json::json!({"epochs": 4, "lambda": 2})),
                &[],
                whole
            )
            .unwrap()
        );
        // ... unless the stage does not depend on it.
        let epochs_only = |value: serde_json::Value| value["epochs"].clone();
        assert!(
            is_fresh(
                &out,
                &expected(serde_json::json!({"epochs": 3, "lambda": 0})),
                &[],
                epochs_only
            )
            .unwrap()
        );
        // A companion output is missing.
        assert!(
            !is_fresh(
                &out,
                &expected(config.clone()),
                &[dir.path().join("gone")],
                whole
            )
            .unwrap()
        );
        // The input changed.
        std::fs::write(&input, "b").unwrap();
        assert!(!is_fresh(&out, &expected(config), &[], whole).unwrap());
        // No record at all.
        assert!(
            !is_fresh(
                &dir.path().join("none.parquet"),
                &expected(serde_json::json!({})),
                &[],
                whole
            )
            .unwrap()
        );
    }
}
