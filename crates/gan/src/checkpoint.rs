//! Safetensors files: atomic writes, reads, and the metadata tensors of a checkpoint.

use std::collections::HashMap;
use std::path::Path;

use emocycle_artifact::AtomicFile;

use tch::{Kind, Tensor};

use crate::{GanConfig, GanError};

/// Writes named tensors to `path` through the project's atomic writer (a temporary file in the
/// same directory, synced and renamed), so a reader (or a resumed run after SIGKILL) sees the
/// old file or the new one, never a torn one, and a killed writer's temporary file is removed by
/// the next write of the same file.
pub(crate) fn write_safetensors_atomic(
    path: &Path,
    tensors: &[(String, Tensor)],
) -> Result<(), GanError> {
    let (file, writer) = AtomicFile::create(path)?;
    // libtorch writes to a path only: it overwrites the temporary file in place, and the commit
    // syncs that same file before the rename.
    Tensor::write_safetensors(tensors, file.temp_path())
        .map_err(|e| GanError::torch(format!("writing {}", file.temp_path().display()), e))?;
    file.commit(writer)?;
    Ok(())
}

/// Reads every tensor of a safetensors file onto the CPU.
pub(crate) fn read_safetensors(path: &Path) -> Result<HashMap<String, Tensor>, GanError> {
    if !path.exists() {
        return Err(GanError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        ));
    }
    Tensor::read_safetensors(path)
        .map(|tensors| tensors.into_iter().collect())
        .map_err(|e| GanError::torch(format!("reading {}", path.display()), e))
}

/// A UTF-8 string as a uint8 tensor (safetensors as written by tch has no metadata map).
pub(crate) fn text_tensor(text: &str) -> Tensor {
    Tensor::from_slice(text.as_bytes())
}

pub(crate) fn corrupt(path: &Path, reason: impl Into<String>) -> GanError {
    GanError::CheckpointCorrupt {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

pub(crate) fn tensor_text(
    tensors: &HashMap<String, Tensor>,
    key: &str,
    path: &Path,
) -> Result<String, GanError> {
    let tensor = tensors
        .get(key)
        .filter(|t| t.kind() == Kind::Uint8)
        .ok_or_else(|| corrupt(path, format!("tensor {key} is missing")))?;
    let bytes =
        Vec::<u8>::try_from(tensor).map_err(|e| GanError::torch(format!("reading {key}"), e))?;
    String::from_utf8(bytes).map_err(|_| corrupt(path, format!("tensor {key} is not UTF-8")))
}

pub(crate) fn tensor_i64s(
    tensors: &HashMap<String, Tensor>,
    key: &str,
    path: &Path,
) -> Result<Vec<i64>, GanError> {
    let tensor = tensors
        .get(key)
        .filter(|t| t.kind() == Kind::Int64)
        .ok_or_else(|| corrupt(path, format!("tensor {key} is missing or not int64")))?;
    Vec::<i64>::try_from(tensor.flatten(0, -1))
        .map_err(|e| GanError::torch(format!("reading {key}"), e))
}

pub(crate) fn tensor_f64s(
    tensors: &HashMap<String, Tensor>,
    key: &str,
    path: &Path,
) -> Result<Vec<f64>, GanError> {
    let tensor = tensors
        .get(key)
        .filter(|t| t.kind() == Kind::Double)
        .ok_or_else(|| corrupt(path, format!("tensor {key} is missing or not float64")))?;
    Vec::<f64>::try_from(tensor.flatten(0, -1))
        .map_err(|e| GanError::torch(format!("reading {key}"), e))
}

/// A phase's settings key ([`GanConfig::pretraining_key`] or [`GanConfig::training_key`]).
pub(crate) type SettingsKey = fn(&GanConfig) -> serde_json::Value;

/// Fields of the phase's settings `key` whose values differ between the checkpoint's config and
/// this run's, as readable `name: saved -> now` lines. `epochs` (the phase's epoch count) may
/// differ: a resumed run can be asked to train longer.
pub(crate) fn config_differences(
    saved: &GanConfig,
    now: &GanConfig,
    key: SettingsKey,
    epochs: &str,
) -> Vec<String> {
    let as_map = |config: &GanConfig| match key(config) {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    let (saved, now) = (as_map(saved), as_map(now));
    now.iter()
        .filter(|(name, _)| name.as_str() != epochs)
        .filter(|(name, value)| saved.get(*name) != Some(*value))
        .map(|(name, value)| {
            let before = saved
                .get(name)
                .map_or("absent".to_string(), ToString::to_string);
            format!("{name}: checkpoint {before}, this run {value}")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_round_trips_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.safetensors");
        let tensors = vec![
            (
                "a.weight".to_string(),
                Tensor::from_slice(&[1.0f32, 2.0]).view([1, 2]),
            ),
            ("meta.text".to_string(), text_tensor("héllo")),
            ("meta.n".to_string(), Tensor::from_slice(&[7i64])),
        ];
        // A killed writer's temporary file (no process has pid 4000000000, above Linux's
        // pid_max) goes with the next write of the same file.
        let stale = dir.path().join(".x.safetensors.4000000000.0.tmp");
        std::fs::write(&stale, b"torn").unwrap();
        write_safetensors_atomic(&path, &tensors).unwrap();
        assert!(!stale.exists());
        let back = read_safetensors(&path).unwrap();
        assert!(back["a.weight"].equal(&tensors[0].1));
        assert_eq!(tensor_text(&back, "meta.text", &path).unwrap(), "héllo");
        assert_eq!(tensor_i64s(&back, "meta.n", &path).unwrap(), [7]);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(matches!(
            read_safetensors(&dir.path().join("none")),
            Err(GanError::Io { .. })
        ));
    }

    #[test]
    fn config_differences_name_the_fields() {
        let a = GanConfig::default();
        let b = GanConfig {
            lambda_cls: 0.0,
            checkpoint_every: 3,
            train_epochs: 5_000,
            ..GanConfig::default()
        };
        let diff = config_differences(&a, &b, GanConfig::training_key, "train_epochs");
        assert_eq!(diff.len(), 1);
        assert!(diff[0].starts_with("lambda_cls"));
        assert!(
            config_differences(&a, &b, GanConfig::pretraining_key, "pretrain_epochs").is_empty()
        );
    }
}
