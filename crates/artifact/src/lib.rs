//! Artifacts shared by every emocycle stage: the parquet files the stages talk through.
//!
//! Every stage reads and writes its results with this crate, so all artifacts behave alike:
//! - writes are atomic ([`write_atomic`]): data go to a hidden temporary file beside the target,
//!   are flushed to disk and renamed over it, so a crash leaves the old file or none, never a torn
//!   one;
//! - parquet files carry footer key-value [`Metadata`] (code version, the writing stage's code
//!   fingerprint, stage, config, seeds, inputs' hashes) that pandas, pyarrow and polars can read
//!   back;
//! - readers check the schema they rely on and name the file and column when it is wrong;
//! - an output is fresh ([`is_fresh`]) when its footer's code fingerprint, config and input hashes
//!   equal what a run would record now, and every stage's work is a list of [`WorkUnit`]s that
//!   say so themselves.

mod atomic;
mod error;
mod freshness;
mod hash;
mod metadata;
mod parquet;
mod schema;
mod work;

pub use atomic::{AtomicFile, write_atomic, write_bytes_atomic};
pub use error::ArtifactError;
pub use freshness::{Expected, input_hashes, is_fresh, is_fresh_by_record, whole};
pub use hash::{Sha256Hasher, hex, sha256_bytes, sha256_file};
pub use metadata::{Metadata, keys};
pub use parquet::{
    ParquetCompression, ParquetEncoding, ParquetStream, WriteOptions, float32_columns,
    read_parquet, read_parquet_columns, read_parquet_metadata, write_parquet, write_parquet_with,
};
pub use schema::{require_column, require_float_columns};
pub use work::{Done, Progress, WorkUnit};

/// The version of the emocycle code that wrote an artifact: crate version and git commit.
pub const CODE_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "+", env!("EMOCYCLE_GIT_COMMIT"));

/// Library result type.
pub type Result<T, E = ArtifactError> = std::result::Result<T, E>;
