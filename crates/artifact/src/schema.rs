use std::path::Path;

use polars::prelude::{DataFrame, DataType};

use crate::{ArtifactError, Result};

/// Checks that `frame` (read from `path`) has `column` with type `dtype`.
pub fn require_column(
    frame: &DataFrame,
    path: &Path,
    column: &str,
    dtype: &DataType,
) -> Result<()> {
    let found = frame.column(column).map_err(|_| ArtifactError::Schema {
        path: path.to_path_buf(),
        column: column.to_string(),
        problem: "missing".to_string(),
    })?;
    if found.dtype() != dtype {
        return Err(ArtifactError::Schema {
            path: path.to_path_buf(),
            column: column.to_string(),
            problem: format!("expected type {dtype}, found {}", found.dtype()),
        });
    }
    Ok(())
}

/// Checks that every column of `frame` from position `first` on is float32 (feature columns).
pub fn require_float_columns(frame: &DataFrame, path: &Path, first: usize) -> Result<()> {
    for column in frame.columns().iter().skip(first) {
        if column.dtype() != &DataType::Float32 {
            return Err(ArtifactError::Schema {
                path: path.to_path_buf(),
                column: column.name().to_string(),
                problem: format!("feature columns must be Float32, found {}", column.dtype()),
            });
        }
    }
    Ok(())
}
