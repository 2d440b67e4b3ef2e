use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use polars::prelude::{
    DataFrame, KeyValueMetadata, ParquetCompression as PolarsCompression, ParquetReader,
    ParquetWriter, SerReader,
};

use crate::{ArtifactError, AtomicFile, Metadata, Result, write_atomic};

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

/// How column values are encoded in a parquet artifact's pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ParquetEncoding {
    /// polars' choice: dictionary pages where a column's estimated cardinality makes them pay.
    #[default]
    Auto,
    /// Plain pages for every column, encoded and compressed in parallel, one row group while
    /// the previous one is written. For wide tables of measured values (openSMILE features),
    /// where nearly every value is distinct: polars estimates every column's cardinality before
    /// it falls back to plain pages, which cost the feature stage about 14% of its CPU time.
    Plain,
}

/// How a parquet artifact is laid out on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteOptions {
    /// Page compression.
    pub compression: ParquetCompression,
    /// Rows per row group; `None` lets polars choose. When the frame's columns are already
    /// chunked at this size, polars writes the chunks as they are instead of copying the whole
    /// frame into larger ones, which keeps peak memory near the data's own size. With
    /// [`ParquetEncoding::Plain`], `None` writes one row group per chunk of the frame.
    pub row_group_rows: Option<usize>,
    /// Page encoding.
    pub encoding: ParquetEncoding,
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
    if options.encoding == ParquetEncoding::Plain {
        let mut stream = ParquetStream::create(path, frame.schema(), options.compression)?;
        frame.align_chunks_par();
        let mut offset = 0;
        // After aligning, every column has the same chunk boundaries: the first one's will do.
        let chunk_rows: Vec<usize> = frame.columns().first().map_or_else(Vec::new, |column| {
            column.as_materialized_series().chunk_lengths().collect()
        });
        for rows in chunk_rows {
            let step = options.row_group_rows.unwrap_or(rows).max(1);
            let end = offset + rows;
            while offset < end {
                let length = step.min(end - offset);
                stream.write(frame.slice(offset as i64, length))?;
                offset += length;
            }
        }
        return stream.finish(metadata);
    }
    write_atomic(path, |writer| {
        ParquetWriter::new(writer)
            .with_compression(compression)
            .with_row_group_size(options.row_group_rows)
            .with_key_value_metadata(Some(KeyValueMetadata::from_static(pairs)))
            .finish(frame)?;
        Ok(())
    })
}

type FileWriter = polars_parquet::write::FileWriter<SyncingWriter>;

/// Bytes a [`ParquetStream`] writes between two requests to sync the file to disk.
const SYNC_EVERY_BYTES: u64 = 16 << 20;

/// The stream's file. Every [`SYNC_EVERY_BYTES`] a thread of its own syncs what was written so
/// far while writing goes on, so that the sync [`AtomicFile::commit`] needs before its rename
/// finds little left to do. (A failed background sync is not reported: that final sync would
/// fail the same way and is.)
struct SyncingWriter {
    inner: BufWriter<File>,
    unsynced: u64,
    syncer: Option<(SyncRequests, std::thread::JoinHandle<()>)>,
}

/// Asks the syncing thread for one more sync; while one runs, one more may wait.
type SyncRequests = std::sync::mpsc::SyncSender<()>;

impl SyncingWriter {
    fn new(inner: BufWriter<File>) -> Self {
        // Without a second handle or thread, the final sync simply does all the work.
        let syncer = inner.get_ref().try_clone().ok().and_then(|file| {
            let (sender, requests) = std::sync::mpsc::sync_channel::<()>(1);
            std::thread::Builder::new()
                .name("parquet-sync".to_string())
                .spawn(move || {
                    for () in requests {
                        let _ = file.sync_data();
                    }
                })
                .ok()
                .map(|thread| (sender, thread))
        });
        Self {
            inner,
            unsynced: 0,
            syncer,
        }
    }

    /// Another handle on the sync requests (none without a syncing thread). The thread ends
    /// only once every handle is dropped.
    fn sync_requests(&self) -> Option<SyncRequests> {
        self.syncer.as_ref().map(|(sender, _)| sender.clone())
    }

    /// The file, once the syncing thread is done.
    fn into_inner(mut self) -> BufWriter<File> {
        if let Some((sender, thread)) = self.syncer.take() {
            drop(sender);
            let _ = thread.join();
        }
        self.inner
    }
}

impl std::io::Write for SyncingWriter {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buffer)?;
        self.unsynced += written as u64;
        if self.unsynced >= SYNC_EVERY_BYTES {
            // The bytes must reach the kernel before a sync can take them.
            self.inner.flush()?;
            if let Some((sender, _)) = &self.syncer {
                // A sync still running will take these bytes too: no need to queue another.
                let _ = sender.try_send(());
            }
            self.unsynced = 0;
        }
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A parquet artifact written one row group at a time, with plain pages (see
/// [`ParquetEncoding::Plain`]), for tables too large to hold whole.
///
/// Each [`ParquetStream::write`] hands a row group to a writer thread, which encodes its
/// columns in parallel on the rayon pool and writes them while the caller prepares the next
/// one; at most one row group waits in between. The file appears under its name only on
/// [`ParquetStream::finish`], with the footer metadata, which may depend on everything written
/// (row counts, hashes); dropped before that, it leaves nothing behind.
pub struct ParquetStream {
    atomic: Option<AtomicFile>,
    schema: polars::prelude::SchemaRef,
    sender: Option<std::sync::mpsc::SyncSender<DataFrame>>,
    worker: Option<std::thread::JoinHandle<polars::error::PolarsResult<FileWriter>>>,
    sync_requests: Option<SyncRequests>,
}

impl ParquetStream {
    /// Starts `path` (under a temporary name) with columns `schema`.
    pub fn create(
        path: &Path,
        schema: &polars::prelude::Schema,
        compression: ParquetCompression,
    ) -> Result<Self> {
        use polars::io::parquet::write::StatisticsOptions;
        use polars::prelude::{CompatLevel, SchemaExt};
        use polars_parquet::write::{CompressionOptions, Version, WriteOptions as PageOptions};

        let compression = CompressionOptions::from(match compression {
            ParquetCompression::Zstd => PolarsCompression::Zstd(None),
            ParquetCompression::Lz4 => PolarsCompression::Lz4Raw,
            ParquetCompression::None => PolarsCompression::Uncompressed,
        });
        let options = PageOptions {
            statistics: StatisticsOptions::default(),
            compression,
            version: Version::V1,
            data_page_size: None,
        };
        // Row-group minima and maxima of measured values would let a reader skip row groups
        // on a feature filter, which nobody does; computing them cost about 5% of the feature
        // stage's CPU time.
        let float_options = PageOptions {
            statistics: StatisticsOptions {
                min_value: false,
                max_value: false,
                ..StatisticsOptions::default()
            },
            ..options
        };
        let (atomic, writer) = AtomicFile::create(path)?;
        let arrow_schema = schema.to_arrow(CompatLevel::newest());
        let writer = SyncingWriter::new(writer);
        let sync_requests = writer.sync_requests();
        // The file-level options decide only whether a page index (per page minima and
        // maxima of every column chunk) follows the row groups; readers use it to skip pages
        // on a filter, which nobody does with these files, and writing it for every column of
        // every row group took a third of `finish` at 1582 columns.
        let index_options = PageOptions {
            statistics: StatisticsOptions {
                min_value: false,
                max_value: false,
                distinct_count: false,
                null_count: false,
                ..StatisticsOptions::default()
            },
            ..options
        };
        let file = FileWriter::try_new(writer, arrow_schema, index_options)
            .map_err(parquet_error(path))?;
        let (sender, receiver) = std::sync::mpsc::sync_channel::<DataFrame>(1);
        let worker = std::thread::Builder::new()
            .name("parquet-writer".to_string())
            .spawn(move || {
                let mut file = file;
                let types = file.parquet_schema().fields().to_vec();
                for frame in receiver {
                    write_row_group(&mut file, &types, frame, options, float_options)?;
                }
                Ok(file)
            })
            .map_err(|source| ArtifactError::io(path, source))?;
        Ok(Self {
            atomic: Some(atomic),
            schema: std::sync::Arc::new(schema.clone()),
            sender: Some(sender),
            worker: Some(worker),
            sync_requests,
        })
    }

    /// Appends `frame` as one row group. Its columns must be those the stream was created with.
    pub fn write(&mut self, frame: DataFrame) -> Result<()> {
        let path = self.path().to_path_buf();
        if frame.schema() != &self.schema {
            return Err(ArtifactError::Parquet {
                path,
                source: polars::error::PolarsError::SchemaMismatch(
                    format!(
                        "a row group's columns {:?} differ from the file's {:?}",
                        frame.schema(),
                        self.schema
                    )
                    .into(),
                ),
            });
        }
        if frame.height() == 0 {
            return Ok(());
        }
        let sent = self.sender.as_ref().map(|sender| sender.send(frame));
        if matches!(sent, Some(Ok(()))) {
            return Ok(());
        }
        // The writer thread stopped: its error says why.
        self.sender = None;
        match self.join() {
            Err(error) => Err(error),
            Ok(_) => Err(ArtifactError::Parquet {
                path,
                source: polars::error::PolarsError::ComputeError(
                    "the parquet writer stopped early".into(),
                ),
            }),
        }
    }

    /// Writes the footer with `metadata` and puts the file in place.
    pub fn finish(mut self, metadata: &Metadata) -> Result<()> {
        use polars_parquet::write::{KeyValue, schema_to_metadata_key};
        self.sender = None;
        let mut file = self.join()?;
        // The row groups are in the kernel's hands (all but the last few kilobytes): their
        // sync runs while the footer is encoded, not after it.
        if let Some(requests) = self.sync_requests.take() {
            let _ = requests.try_send(());
        }
        let path = self.path().to_path_buf();
        // As polars' own writer does: the arrow schema first, so readers restore exact types.
        let mut pairs = vec![schema_to_metadata_key(file.schema())];
        pairs.extend(metadata.iter().map(|(key, value)| KeyValue {
            key: key.to_string(),
            value: Some(value.to_string()),
        }));
        file.end(Some(pairs)).map_err(parquet_error(&path))?;
        let atomic = self.atomic.take().expect("finish runs once");
        atomic.commit(file.into_inner().into_inner())
    }

    fn path(&self) -> &Path {
        self.atomic
            .as_ref()
            .map_or(Path::new(""), |atomic| atomic.target())
    }

    fn join(&mut self) -> Result<FileWriter> {
        let path = self.path().to_path_buf();
        let worker = self.worker.take().ok_or_else(|| ArtifactError::Parquet {
            path: path.clone(),
            source: polars::error::PolarsError::ComputeError("the writer is gone".into()),
        })?;
        match worker.join() {
            Ok(result) => result.map_err(parquet_error(&path)),
            Err(_) => Err(ArtifactError::Parquet {
                path,
                source: polars::error::PolarsError::ComputeError(
                    "the parquet writer thread panicked".into(),
                ),
            }),
        }
    }
}

impl Drop for ParquetStream {
    fn drop(&mut self) {
        // Unfinished: stop the writer; dropping the AtomicFile then removes the temporary file.
        self.sender = None;
        self.sync_requests = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// Encodes one row group's columns in parallel (plain pages, compressed) and writes them. The
/// frame is dropped once encoded: its values are in the pages then, and its memory can serve
/// the next row group while these pages are written.
fn write_row_group(
    file: &mut FileWriter,
    types: &[polars_parquet::write::ParquetType],
    frame: DataFrame,
    options: polars_parquet::write::WriteOptions,
    float_options: polars_parquet::write::WriteOptions,
) -> polars::error::PolarsResult<()> {
    use polars::prelude::{ArrowDataType, CompatLevel};
    use polars_parquet::write::{
        CompressedPage, DynIter, DynStreamingIterator, Encoding, array_to_columns, compress,
        fallible_streaming_iterator, get_dtype_encoding,
    };
    use rayon::prelude::*;

    let mut batches = Vec::new();
    for batch in frame.iter_chunks(CompatLevel::newest(), false) {
        // Pages per parquet leaf: a nested field (a struct, say) has several, and the file
        // writer pairs every leaf of the schema with one list of pages, in order.
        let pages: Vec<Vec<Vec<CompressedPage>>> = batch
            .columns()
            .par_iter()
            .zip(types)
            .map(|(array, parquet_type)| {
                let options = if matches!(
                    array.dtype(),
                    ArrowDataType::Float16 | ArrowDataType::Float32 | ArrowDataType::Float64
                ) {
                    float_options
                } else {
                    options
                };
                let mut encoding = get_dtype_encoding(array.dtype());
                // Dictionary-typed columns (categoricals) keep their dictionary pages.
                if !matches!(array.dtype().to_storage(), ArrowDataType::Dictionary(..)) {
                    encoding.fill(Encoding::Plain);
                }
                array_to_columns(array, parquet_type.clone(), options, &encoding)?
                    .into_iter()
                    .map(|leaf| {
                        leaf.map(|page| Ok(compress(page?, Vec::new(), options.compression)?))
                            .collect::<polars::error::PolarsResult<Vec<_>>>()
                    })
                    .collect::<polars::error::PolarsResult<Vec<_>>>()
            })
            .collect::<polars::error::PolarsResult<_>>()?;
        batches.push((batch.len() as u64, pages));
    }
    drop(frame);
    for (rows, pages) in batches {
        let columns = DynIter::new(pages.iter().flatten().map(|column| {
            Ok(DynStreamingIterator::new(
                fallible_streaming_iterator::convert(column.iter().map(Ok)),
            ))
        }));
        file.write(rows, columns)?;
    }
    Ok(())
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
