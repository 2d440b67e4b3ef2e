use std::fs::File;
use std::path::Path;

use polars::prelude::{
    DataFrame, KeyValueMetadata, ParquetCompression as PolarsCompression, ParquetReader,
    ParquetWriter, SerReader,
};

use crate::{ArtifactError, Metadata, Result, write_atomic};

/// How a parquet artifact's pages are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ParquetCompression {
    /// zstd at its default level: compact and quick; the default.
    #[default]
    Zstd,
    /// LZ4: fastest to write and read, larger files.
    Lz4,
    /// No compression.
    None,
}

/// How a parquet artifact is laid out on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteOptions {
    /// Page compression.
    pub compression: ParquetCompression,
    /// Rows per row group; `None` lets polars choose. When the frame's columns are already
    /// chunked at this size, polars writes the chunks as they are instead of copying the whole
    /// frame into larger ones, which keeps peak memory near the data's own size.
    pub row_group_rows: Option<usize>,
}

/// Writes `frame` to `path` atomically, with `metadata` in the footer (zstd compression).
pub fn write_parquet(path: &Path, frame: &mut DataFrame, metadata: &Metadata) -> Result<()> {
    write_parquet_with(path, frame, metadata, WriteOptions::default())
}

/// Writes `frame` to `path` atomically, with `metadata` in the footer and the given layout.
pub fn write_parquet_with(
    path: &Path,
    frame: &mut DataFrame,
    metadata: &Metadata,
    options: WriteOptions,
) -> Result<()> {
    let pairs = metadata
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    let compression = match options.compression {
        ParquetCompression::Zstd => PolarsCompression::Zstd(None),
        ParquetCompression::Lz4 => PolarsCompression::Lz4Raw,
        ParquetCompression::None => PolarsCompression::Uncompressed,
    };
    write_atomic(path, |writer| {
        ParquetWriter::new(writer)
            .with_compression(compression)
            .with_row_group_size(options.row_group_rows)
            .with_key_value_metadata(Some(KeyValueMetadata::from_static(pairs)))
            .finish(frame)?;
        Ok(())
    })
}

fn open(path: &Path) -> Result<ParquetReader<File>> {
    let file = File::open(path).map_err(|source| ArtifactError::io(path, source))?;
    Ok(ParquetReader::new(file))
}

fn parquet_error(path: &Path) -> impl FnOnce(polars::error::PolarsError) -> ArtifactError + '_ {
    move |source| ArtifactError::Parquet {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads only the footer metadata of a parquet file (cheap: no column data is read).
pub fn read_parquet_metadata(path: &Path) -> Result<Metadata> {
    let mut reader = open(path)?;
    let file_metadata = reader.get_metadata().map_err(parquet_error(path))?;
    let pairs = file_metadata
        .key_value_metadata()
        .iter()
        .flatten()
        // polars stores its own copy of the arrow schema there; it is not ours to expose.
        .filter(|entry| entry.key != "ARROW:schema")
        .map(|entry| (entry.key.clone(), entry.value.clone().unwrap_or_default()));
    Ok(Metadata::from_pairs(pairs))
}

/// Reads a whole parquet file and its footer metadata.
pub fn read_parquet(path: &Path) -> Result<(DataFrame, Metadata)> {
    let metadata = read_parquet_metadata(path)?;
    let frame = open(path)?.finish().map_err(parquet_error(path))?;
    Ok((frame, metadata))
}

/// Reads some columns of a parquet file, in the order given.
pub fn read_parquet_columns(path: &Path, columns: &[&str]) -> Result<DataFrame> {
    let names = columns.iter().map(|name| name.to_string()).collect();
    open(path)?
        .with_columns(Some(names))
        .finish()
        .map_err(parquet_error(path))
}

/// One float32 column per name from `rows x names.len()` row-major values (the synthetic
/// stages' in-memory layout), in name order: the feature columns of a synthetic set.
pub fn float32_columns(names: &[String], values: &[f32]) -> Vec<polars::prelude::Column> {
    use polars::prelude::{Float32Chunked, IntoColumn};
    let width = names.len();
    let rows = values.len().checked_div(width).unwrap_or(0);
    names
        .iter()
        .enumerate()
        .map(|(feature, name)| {
            let column: Vec<f32> = (0..rows).map(|row| values[row * width + feature]).collect();
            Float32Chunked::from_vec(name.as_str().into(), column).into_column()
        })
        .collect()
}

#[cfg(test)]
mod column_tests {
    use super::*;

    #[test]
    fn row_major_values_become_one_column_per_name() {
        let names = vec!["a".to_string(), "b".to_string()];
        let columns = float32_columns(&names, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(columns.len(), 2);
        assert_eq!(columns[0].name().as_str(), "a");
        let b: Vec<Option<f32>> = columns[1].f32().unwrap().iter().collect();
        assert_eq!(b, [Some(2.0), Some(4.0), Some(6.0)]);
        assert!(float32_columns(&[], &[]).is_empty());
    }
}
