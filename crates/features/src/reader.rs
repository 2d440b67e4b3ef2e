//! Streaming reader for openSMILE functionals files in every layout openSMILE writes.
//!
//! The text comes in blocks, each cut at line ends into pieces that are parsed in parallel. A
//! plain file is memory-mapped: its blocks are slices of the mapping, and its sha256 is computed
//! beside the parse (`mapped.rs`). A compressed file (or one that cannot be mapped) is read,
//! decompressed and hashed block by block, the next block while this one is parsed. The parsed
//! rows are handed over in chunks of a fixed number of rows ([`FeatureReader::read_chunks`]),
//! row-major as parsed.
//! [`RowValues`] turns a chunk into float32 columns, and lets the caller look at each band of
//! columns while the transposition has it in cache. Neither the whole text nor the whole table
//! is ever in memory: the feature stage writes each chunk as a parquet row group while the next
//! is parsed.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{FeatureError, Result};
use crate::mapped::{MappedHasher, MappedText};
use crate::number::{Value, parse_field, parse_prefix};
use crate::tile::{TILE, append_columns};

/// The file layouts the reader recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// `SMILExtract -csvoutput`: `;`, header `name;frameTime;...`, quoted instance names.
    SmileCsv,
    /// The same without its header row (`-headercsv 0`); feature names come from elsewhere.
    SmileCsvHeaderless,
    /// opensmile-python's DataFrame saved by pandas: `file,start,end,<features>`.
    OpensmilePython,
    /// `SMILExtract -O`: ARFF with a string `name` attribute and an optional nominal class.
    Arff,
    /// Any other delimited file whose first column is the utterance id and the rest features.
    Generic,
}

/// What the utterance id of an opensmile-python row is. Its `file` column holds the audio file's
/// path as given to `process_files` (`wav/Ses01F_impro01_F000.wav`), which no label manifest
/// names; `start` and `end` (pandas timedeltas, `0 days 00:00:02.908500`) say which part of the
/// file the row describes. Other layouts' ids are used as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UtteranceIds {
    /// The file name without directories and extension (`Ses01F_impro01_F000`), the default.
    /// A row of a later segment (`start` not zero) is an error: use `segment`.
    #[default]
    Stem,
    /// The `file` column as written. Segments are refused as with `stem`.
    Path,
    /// The stem and the segment in seconds, `Ses01F_impro01_F000@2.5-4.75` (`@0-` for a
    /// segment without an end), for files cut into several rows.
    Segment,
}

/// What to do with NaN, infinite or missing feature values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NanPolicy {
    /// Reject the file, naming the line and column (the default).
    #[default]
    Error,
    /// Drop the utterance and count it.
    DropRow,
    /// Replace the value with 0.
    Zero,
}

impl std::str::FromStr for NanPolicy {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, Self::Err> {
        match text {
            "error" => Ok(Self::Error),
            "drop-row" => Ok(Self::DropRow),
            "zero" => Ok(Self::Zero),
            other => Err(format!(
                "unknown NaN policy {other:?}: expected error, drop-row or zero"
            )),
        }
    }
}

/// How to read a feature file.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Feature names for header-less files (one per feature, in file order).
    pub feature_names: Option<Vec<String>>,
    /// What to do with non-finite or missing values.
    pub nan_policy: NanPolicy,
    /// Rows per column chunk (and so per parquet row group).
    pub chunk_rows: usize,
    /// Read a plain file through a memory mapping (the default; faster). Off, it is read into
    /// buffers, as compressed files are: for files that another process may truncate while
    /// they are read, which stops a mapping's reader with `SIGBUS`.
    pub memory_map: bool,
    /// The utterance ids of opensmile-python files.
    pub utterance_ids: UtteranceIds,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            feature_names: None,
            nan_policy: NanPolicy::Error,
            chunk_rows: 4096,
            memory_map: true,
            utterance_ids: UtteranceIds::Stem,
        }
    }
}

/// One chunk of rows: the feature values column by column.
#[derive(Debug)]
pub struct ColumnChunk {
    /// `columns[j][r]` is feature `j` of row `r` of this chunk.
    pub columns: Vec<Vec<f32>>,
    /// Rows in this chunk.
    pub rows: usize,
}

/// A whole feature file, read.
#[derive(Debug)]
pub struct FeatureTable {
    /// The file.
    pub path: PathBuf,
    /// Its sha256 (of the bytes on disk, compressed or not).
    pub sha256: String,
    /// The layout it was read as.
    pub layout: Layout,
    /// Feature names, verbatim, in file order.
    pub names: Vec<String>,
    /// Utterance ids of the kept rows, in file order.
    pub ids: Vec<String>,
    /// The 1-based line of each kept row.
    pub lines: Vec<u64>,
    /// ARFF nominal class values of the kept rows, when the file has a class attribute.
    pub classes: Option<Vec<Option<String>>>,
    /// The values, in chunks of [`ReadOptions::chunk_rows`] rows (the last may be shorter).
    pub chunks: Vec<ColumnChunk>,
    /// Rows dropped by [`NanPolicy::DropRow`].
    pub dropped_non_finite: usize,
}

impl FeatureTable {
    /// Number of kept rows.
    pub fn rows(&self) -> usize {
        self.ids.len()
    }
}

/// Parsed header: how data lines are laid out.
#[derive(Debug, Clone)]
struct Header {
    layout: Layout,
    delimiter: u8,
    /// Fields between the id and the first feature (frameTime, start/end).
    skipped_after_id: usize,
    names: Vec<String>,
    has_class: bool,
    /// Lines consumed by the header (the first data line is `header_lines + 1`).
    header_lines: u64,
    /// How rows are named (only opensmile-python's layout has a choice).
    ids: UtteranceIds,
}

impl Header {
    fn fields_per_row(&self) -> usize {
        1 + self.skipped_after_id + self.names.len() + usize::from(self.has_class)
    }
}

/// Text per block: a mapped file's every block, a read file's once the first few have grown.
const BLOCK_BYTES: usize = 8 << 20;

/// The first block's size, when a file is read into buffers: enough for the header line of
/// any feature set openSMILE has and for most ARFF headers, and small, so that parsing starts
/// about a millisecond after the file is opened instead of once 8 MiB are read and hashed
/// (the fifth round in docs/benchmarks.md's history). The blocks after it double up to [`BLOCK_BYTES`], so that
/// each is read in about the time the one before takes to parse. A header that does not parse
/// from the first block is tried again from a whole block, as large as it ever could be.
const FIRST_BLOCK_BYTES: usize = 1 << 20;

/// The most one read asks for. A file's bytes are hashed straight after each read, while
/// the kernel's copy has left them in the core's L2 cache (docs/benchmarks.md's history: the stage took
/// 4% less CPU than with whole 8 MiB reads).
const READ_BYTES: usize = 256 << 10;

/// Whole lines of text at the start of a reusable buffer.
struct Block {
    bytes: Vec<u8>,
    len: usize,
}

impl Block {
    fn text(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.hasher.update(&buffer[..read]);
        Ok(read)
    }
}

/// Reads text blocks that end at a line end, hashing the raw bytes on the way.
struct BlockSource {
    path: PathBuf,
    hashing: Option<HashingReader<File>>,
    gzip: Option<MultiGzDecoder<BufReader<HashingReader<File>>>>,
    carry: Vec<u8>,
    finished: bool,
    /// How much text the next block holds (at least): [`FIRST_BLOCK_BYTES`], twice that for
    /// each block after it, up to [`BLOCK_BYTES`].
    block_bytes: usize,
}

impl BlockSource {
    fn open(file: File, path: &Path, is_gzip: bool) -> Result<Self> {
        let hashing = HashingReader {
            inner: file,
            hasher: Sha256::new(),
        };
        let (hashing, gzip) = if is_gzip {
            (
                None,
                Some(MultiGzDecoder::new(BufReader::with_capacity(
                    1 << 20,
                    hashing,
                ))),
            )
        } else {
            (Some(hashing), None)
        };
        Ok(Self {
            path: path.to_path_buf(),
            hashing,
            gzip,
            carry: Vec::new(),
            finished: false,
            block_bytes: FIRST_BLOCK_BYTES,
        })
    }

    fn read_some(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        match (&mut self.hashing, &mut self.gzip) {
            (Some(plain), _) => plain.read(buffer),
            (None, Some(gzip)) => gzip.read(buffer),
            (None, None) => Ok(0),
        }
    }

    /// The next block of whole lines (the last block may lack a final newline), in `buffer`
    /// (a block handed back after use: its memory is reused, not allocated and zeroed again).
    fn next_block(&mut self, mut buffer: Vec<u8>) -> Result<Option<Block>> {
        if self.finished && self.carry.is_empty() {
            return Ok(None);
        }
        let mut filled = self.carry.len();
        if buffer.len() < filled + self.block_bytes {
            buffer.resize(filled + self.block_bytes, 0);
        }
        buffer[..filled].copy_from_slice(&self.carry);
        self.carry.clear();
        while !self.finished {
            if filled == buffer.len() {
                // A line longer than the block: grow by a quarter.
                buffer.resize(filled + filled / 4, 0);
            }
            let read = loop {
                let end = buffer.len().min(filled + READ_BYTES);
                match self.read_some(&mut buffer[filled..end]) {
                    Ok(read) => break read,
                    Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(error) => return Err(FeatureError::io(&self.path, error)),
                }
            };
            if read == 0 {
                self.finished = true;
                break;
            }
            filled += read;
            if filled >= self.block_bytes
                && let Some(end) = memchr::memrchr(b'\n', &buffer[..filled])
            {
                self.carry.extend_from_slice(&buffer[end + 1..filled]);
                filled = end + 1;
                break;
            }
        }
        self.block_bytes = (self.block_bytes * 2).min(BLOCK_BYTES);
        Ok((filled > 0).then_some(Block {
            bytes: buffer,
            len: filled,
        }))
    }

    /// `block` (the last one read) again, with as many more lines as make a whole block; every
    /// block after it is whole too.
    fn grow(&mut self, block: Block) -> Result<Block> {
        let mut text = block.text().to_vec();
        text.extend_from_slice(&self.carry);
        self.carry = text;
        self.block_bytes = BLOCK_BYTES;
        Ok(self
            .next_block(block.bytes)?
            .expect("the text carried over is not empty"))
    }

    fn sha256(self) -> String {
        let hasher = match (self.hashing, self.gzip) {
            (Some(plain), _) => plain.hasher,
            (None, Some(gzip)) => {
                let mut buffered = gzip.into_inner();
                // Bytes the decoder never asked for (trailing garbage) still belong to the file.
                let _ = std::io::copy(&mut buffered, &mut std::io::sink());
                buffered.into_inner().hasher
            }
            (None, None) => Sha256::new(),
        };
        emocycle_artifact::hex(&hasher.finalize())
    }
}

/// Whether `file` starts with gzip's magic bytes (it is left at its start).
fn is_gzip(path: &Path, mut file: &File) -> Result<bool> {
    use std::io::Seek;
    let mut magic = [0u8; 2];
    let is_gzip = matches!(file.read(&mut magic), Ok(2) if magic == [0x1f, 0x8b]);
    file.rewind()
        .map_err(|source| FeatureError::io(path, source))?;
    Ok(is_gzip)
}

/// Where a file's text comes from.
enum Text {
    /// A plain file, mapped: its blocks are slices of the mapping.
    Mapped(MappedText),
    /// A compressed file, or one that cannot be mapped: read block by block into buffers. The
    /// first block (which held the header) comes first.
    Read {
        source: Box<BlockSource>,
        first_block: Block,
    },
}

impl Text {
    /// The text the header was parsed from.
    fn head(&self) -> &[u8] {
        match self {
            Self::Mapped(mapped) => mapped.bytes(),
            Self::Read { first_block, .. } => first_block.text(),
        }
    }
}

/// Iterates over lines with their 1-based numbers, without the line ending.
fn lines_of(text: &[u8], first_line: u64) -> impl Iterator<Item = (u64, &[u8])> {
    let mut trimmed = text;
    if trimmed.last() == Some(&b'\n') {
        trimmed = &trimmed[..trimmed.len() - 1];
    }
    let mut number = first_line;
    // memchr finds line ends a vector at a time; `split` on a byte predicate tests every byte.
    let mut start = 0;
    let mut ends = memchr::memchr_iter(b'\n', trimmed);
    let mut done = text.is_empty();
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let end = ends.next().unwrap_or_else(|| {
            done = true;
            trimmed.len()
        });
        let line = &trimmed[start..end];
        start = end + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let current = number;
        number += 1;
        Some((current, line))
    })
}

/// Splits a line into fields; a field wrapped in single or double quotes may contain the
/// delimiter. Quotes are kept (callers strip them where they mean something).
fn split_fields(line: &[u8], delimiter: u8, fields: &mut Vec<(usize, usize)>) {
    fields.clear();
    let mut start = 0;
    let mut position = 0;
    let mut quote: Option<u8> = None;
    while position < line.len() {
        let byte = line[position];
        match quote {
            Some(open) if byte == open => quote = None,
            Some(_) => {}
            None if (byte == b'\'' || byte == b'"') && position == start => quote = Some(byte),
            None if byte == delimiter => {
                fields.push((start, position));
                start = position + 1;
            }
            None => {}
        }
        position += 1;
    }
    fields.push((start, line.len()));
}

fn unquote(field: &[u8]) -> &[u8] {
    let field = field.trim_ascii();
    if field.len() >= 2
        && (field[0] == b'\'' || field[0] == b'"')
        && field[field.len() - 1] == field[0]
    {
        &field[1..field.len() - 1]
    } else {
        field
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An id or class as text, or an error naming the file, line and column when its bytes are
/// not UTF-8: a Latin-1 id would otherwise be mangled and silently match no label.
fn field_text(
    bytes: &[u8],
    path: &Path,
    line: u64,
    column: impl FnOnce() -> String,
) -> Result<String> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text.to_string()),
        Err(error) => Err(FeatureError::parse(
            path,
            line,
            Some(column()),
            format!(
                "not UTF-8 at byte {} of {:?}: save the file as UTF-8 (openSMILE writes the \
                 names it is given)",
                error.valid_up_to() + 1,
                text(bytes)
            ),
        )),
    }
}

fn parse_header(path: &Path, block: &[u8], options: &ReadOptions) -> Result<Header> {
    let mut lines = lines_of(block, 1).filter(|(_, line)| !line.trim_ascii().is_empty());
    let Some((first_number, first)) = lines.next() else {
        return Err(FeatureError::Empty {
            path: path.to_path_buf(),
            message: "the file is empty".to_string(),
        });
    };
    let first = first.strip_prefix(b"\xef\xbb\xbf").unwrap_or(first);
    let lowered = first.trim_ascii().to_ascii_lowercase();
    if lowered.starts_with(b"@relation")
        || lowered.starts_with(b"%")
        || lowered.starts_with(b"@attribute")
    {
        return parse_arff_header(path, block);
    }
    let counts = [b';', b',', b'\t'].map(|delimiter| (bytecount(first, delimiter), delimiter));
    let (count, delimiter) = counts
        .into_iter()
        .max_by_key(|(count, _)| *count)
        .unwrap_or((0, b';'));
    if count == 0 {
        return Err(FeatureError::parse(
            path,
            first_number,
            None,
            "cannot tell the delimiter: the first line contains none of ';', ',' or a tab",
        ));
    }
    let mut spans = Vec::new();
    split_fields(first, delimiter, &mut spans);
    let fields: Vec<&[u8]> = spans
        .iter()
        .map(|&(start, end)| first[start..end].trim_ascii())
        .collect();
    let field_text = |index: usize| {
        fields
            .get(index)
            .map(|field| text(unquote(field)))
            .unwrap_or_default()
    };
    let header_lines = first_number;
    let names_after = |skip: usize| {
        fields[skip..]
            .iter()
            .map(|field| text(unquote(field)))
            .collect::<Vec<_>>()
    };
    if field_text(0) == "name" {
        let has_frame_time = field_text(1) == "frameTime";
        let skipped = 1 + usize::from(has_frame_time);
        return Ok(Header {
            layout: Layout::SmileCsv,
            delimiter,
            skipped_after_id: skipped - 1,
            names: names_after(skipped),
            has_class: false,
            header_lines,
            ids: UtteranceIds::default(),
        });
    }
    if field_text(0) == "file" && field_text(1) == "start" && field_text(2) == "end" {
        return Ok(Header {
            layout: Layout::OpensmilePython,
            delimiter,
            skipped_after_id: 2,
            names: names_after(3),
            has_class: false,
            header_lines,
            ids: options.utterance_ids,
        });
    }
    let starts_like_data = fields[0].starts_with(b"'")
        || parse_field(fields.last().copied().unwrap_or_default()).is_some();
    if let Some(names) = &options.feature_names {
        if !starts_like_data {
            return Err(FeatureError::parse(
                path,
                first_number,
                None,
                "feature names were supplied for a header-less file, but the first line looks like a header",
            ));
        }
        let skipped = match fields.len().checked_sub(names.len()) {
            Some(1) => 0,
            Some(2) => 1,
            _ => {
                return Err(FeatureError::parse(
                    path,
                    first_number,
                    None,
                    format!(
                        "the first row has {} fields, but {} feature names were supplied (expected {} or {}: name[, frameTime], features)",
                        fields.len(),
                        names.len(),
                        names.len() + 1,
                        names.len() + 2
                    ),
                ));
            }
        };
        return Ok(Header {
            layout: Layout::SmileCsvHeaderless,
            delimiter,
            skipped_after_id: skipped,
            names: names.clone(),
            has_class: false,
            header_lines: first_number - 1,
            ids: UtteranceIds::default(),
        });
    }
    if starts_like_data {
        return Err(FeatureError::parse(
            path,
            first_number,
            None,
            "the file has no header row: supply the feature names (`feature_names` in the corpus config)",
        ));
    }
    Ok(Header {
        layout: Layout::Generic,
        delimiter,
        skipped_after_id: 0,
        names: names_after(1),
        has_class: false,
        header_lines,
        ids: UtteranceIds::default(),
    })
}

fn bytecount(line: &[u8], needle: u8) -> usize {
    memchr::memchr_iter(needle, line).count()
}

fn parse_arff_header(path: &Path, block: &[u8]) -> Result<Header> {
    let mut names = Vec::new();
    let mut saw_id = false;
    let mut has_class = false;
    for (number, line) in lines_of(block, 1) {
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() || trimmed.starts_with(b"%") {
            continue;
        }
        let lowered = trimmed.to_ascii_lowercase();
        if lowered.starts_with(b"@relation") {
            continue;
        }
        if lowered.starts_with(b"@data") {
            if !saw_id {
                return Err(FeatureError::parse(
                    path,
                    number,
                    None,
                    "ARFF header has no string attribute for the utterance name",
                ));
            }
            return Ok(Header {
                layout: Layout::Arff,
                delimiter: b',',
                skipped_after_id: 0,
                names,
                has_class,
                header_lines: number,
                ids: UtteranceIds::default(),
            });
        }
        let Some(rest) = lowered.strip_prefix(b"@attribute") else {
            return Err(FeatureError::parse(
                path,
                number,
                None,
                format!("unexpected line in the ARFF header: {:?}", text(trimmed)),
            ));
        };
        // Keep the original case of the name: take it from `trimmed`, not `lowered`.
        let rest_original = trimmed[trimmed.len() - rest.len()..].trim_ascii();
        let (name, kind) = split_arff_attribute(rest_original).ok_or_else(|| {
            FeatureError::parse(
                path,
                number,
                None,
                format!("malformed ARFF attribute: {:?}", text(trimmed)),
            )
        })?;
        let kind_lower = kind.to_ascii_lowercase();
        if has_class {
            return Err(FeatureError::parse(
                path,
                number,
                Some(name),
                "an attribute follows the nominal class attribute; the class must be last",
            ));
        }
        match kind_lower.as_str() {
            "string" if !saw_id && names.is_empty() => saw_id = true,
            "string" => {
                return Err(FeatureError::parse(
                    path,
                    number,
                    Some(name),
                    "only the first attribute (the utterance name) may be a string",
                ));
            }
            "numeric" | "real" | "integer" => {
                if !saw_id {
                    return Err(FeatureError::parse(
                        path,
                        number,
                        Some(name),
                        "the first ARFF attribute must be the string utterance name",
                    ));
                }
                names.push(name);
            }
            _ if kind_lower.starts_with('{') => has_class = true,
            _ => {
                return Err(FeatureError::parse(
                    path,
                    number,
                    Some(name),
                    format!("unsupported ARFF attribute type {kind:?}"),
                ));
            }
        }
    }
    Err(FeatureError::Empty {
        path: path.to_path_buf(),
        message: "the ARFF header has no @data section".to_string(),
    })
}

/// `'name with spaces' numeric` or `name numeric` -> (name, type).
fn split_arff_attribute(rest: &[u8]) -> Option<(String, String)> {
    let rest = rest.trim_ascii();
    let (name, kind) = match rest.first()? {
        quote @ (b'\'' | b'"') => {
            let end = rest[1..].iter().position(|byte| byte == quote)? + 1;
            (&rest[1..end], &rest[end + 1..])
        }
        _ => {
            let end = rest.iter().position(|byte| byte.is_ascii_whitespace())?;
            (&rest[..end], &rest[end..])
        }
    };
    let kind = kind.trim_ascii();
    (!kind.is_empty()).then(|| (text(name), text(kind)))
}

/// One parallel piece of a block, parsed.
#[derive(Default)]
struct ParsedPiece {
    /// Lines in the piece, blank and comment lines included.
    line_count: u64,
    ids: Vec<String>,
    lines: Vec<u64>,
    classes: Vec<Option<String>>,
    values: Vec<f32>,
    dropped_non_finite: usize,
}

/// One data line in a single pass, for the common case: an unquoted or simply quoted id,
/// skipped fields that do not start with a quote, feature fields that are finite numbers (see
/// [`parse_prefix`]) separated by exactly the delimiter and, in an ARFF file with a nominal
/// class, a class field without the delimiter in it. Returns the raw id and class fields, or
/// `None` for anything else (spaces, NaN, missing values, ragged rows, ...): such lines go
/// through the general path, which parses the same numbers to the same bits and is the one
/// that reports errors.
#[inline]
fn parse_row_fast<'l>(line: &'l [u8], header: &Header, row: &mut [f32]) -> Option<FastRow<'l>> {
    let delimiter = header.delimiter;
    let id_end = match line.first()? {
        &quote @ (b'\'' | b'"') => memchr::memchr(quote, &line[1..])? + 2,
        _ => memchr::memchr(delimiter, line)?,
    };
    if line.get(id_end) != Some(&delimiter) {
        return None;
    }
    let mut position = id_end + 1;
    for _ in 0..header.skipped_after_id {
        if matches!(line.get(position), Some(b'\'' | b'"')) {
            return None;
        }
        position += memchr::memchr(delimiter, line.get(position..)?)? + 1;
    }
    // Without skipped fields this is empty; with them, the fields and the delimiters between.
    let skipped = &line[id_end + 1..position.saturating_sub(1).max(id_end + 1)];
    let last = row.len().checked_sub(1)?;
    for (feature, slot) in row.iter_mut().enumerate() {
        let rest = line.get(position..)?;
        // A quoted field, an empty one or text goes the general way, which says what it is.
        let (value, used) = parse_prefix(rest)?;
        if !value.is_finite() {
            return None;
        }
        *slot = value;
        position += used;
        if feature < last {
            if line.get(position) != Some(&delimiter) {
                return None;
            }
            position += 1;
        }
    }
    let id = &line[..id_end];
    if !header.has_class {
        return (position == line.len()).then_some((id, skipped, None));
    }
    if line.get(position) != Some(&delimiter) {
        return None;
    }
    let class = &line[position + 1..];
    (memchr::memchr(delimiter, class).is_none()).then_some((id, skipped, Some(class)))
}

/// A data line the fast path parsed: the raw id, the skipped fields between it and the
/// features (`start,end` in opensmile-python's layout), and the raw class field.
type FastRow<'l> = (&'l [u8], &'l [u8], Option<&'l [u8]>);

/// Seconds of an opensmile-python `start` or `end`: pandas' timedelta text (`0 days
/// 00:00:02.908500`) or plain seconds; `None` for `NaT` or an empty field.
fn timedelta_seconds(text: &str) -> std::result::Result<Option<f64>, ()> {
    let text = text.trim();
    if text.is_empty() || text == "NaT" {
        return Ok(None);
    }
    if let Ok(seconds) = text.parse::<f64>() {
        return seconds.is_finite().then_some(Some(seconds)).ok_or(());
    }
    // pandas writes `0 days` for zero and `0 days 00:00:02.908500` otherwise.
    let (days, clock) = match text.split_once(" days").or_else(|| text.split_once(" day")) {
        Some((days, clock)) => (days.trim().parse::<f64>().map_err(|_| ())?, clock.trim()),
        None => (0.0, text),
    };
    if clock.is_empty() {
        return Ok(Some(days * 86_400.0));
    }
    let mut parts = clock.split(':');
    let (Some(hours), Some(minutes), Some(seconds), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(());
    };
    let number = |part: &str| part.parse::<f64>().map_err(|_| ());
    Ok(Some(
        days * 86_400.0 + number(hours)? * 3600.0 + number(minutes)? * 60.0 + number(seconds)?,
    ))
}

/// Seconds as the shortest decimal text, to the microsecond (`2.5`, `0`, `4.908512`).
fn seconds_text(seconds: f64) -> String {
    format!("{}", (seconds * 1e6).round() / 1e6)
}

/// The id of a segment of an audio file: `<stem>@<start>-<end>` in seconds (`talk@2.5-4.75`;
/// nothing after `-` for a segment without an end). opensmile-python's segments and TED-LIUM's
/// are named alike.
pub(crate) fn segment_id(stem: &str, start: f64, end: Option<f64>) -> String {
    let end = end.map(seconds_text).unwrap_or_default();
    format!("{stem}@{}-{end}", seconds_text(start))
}

/// The utterance id of a data line: the first field as written, or, in opensmile-python's
/// layout, what [`UtteranceIds`] says from `file`, `start` and `end` (`skipped`: the two
/// fields with the delimiter between them).
fn row_id(header: &Header, raw: &[u8], skipped: &[u8], path: &Path, line: u64) -> Result<String> {
    let id = field_text(unquote(raw), path, line, || column_name(header, None))?;
    if header.layout != Layout::OpensmilePython {
        return Ok(id);
    }
    let mut fields = skipped.splitn(2, |&b| b == header.delimiter);
    let mut time = |column: &str| -> Result<Option<f64>> {
        let field = fields.next().unwrap_or_default();
        let text = field_text(unquote(field), path, line, || column.to_string())?;
        timedelta_seconds(&text).map_err(|()| {
            FeatureError::parse(
                path,
                line,
                Some(column.to_string()),
                format!("not a time: {text:?} (expected like 0 days 00:00:02.908500, or seconds)"),
            )
        })
    };
    let (start, end) = (time("start")?, time("end")?);
    let start = start.unwrap_or(0.0);
    if header.ids != UtteranceIds::Segment && start != 0.0 {
        return Err(FeatureError::parse(
            path,
            line,
            Some("start".to_string()),
            format!(
                "this row is a segment of {id:?} starting at {} s: name segments with \
                 \"utterance_ids\": \"segment\" in the corpus config",
                seconds_text(start)
            ),
        ));
    }
    if header.ids == UtteranceIds::Path {
        return Ok(id);
    }
    let name = id.rsplit(['/', '\\']).next().unwrap_or(&id);
    let stem = match name.rfind('.') {
        Some(dot) if dot > 0 => &name[..dot],
        _ => name,
    };
    if header.ids == UtteranceIds::Stem {
        return Ok(stem.to_string());
    }
    Ok(segment_id(stem, start, end))
}

fn parse_piece(
    path: &Path,
    header: &Header,
    piece: &[u8],
    first_line: u64,
    policy: NanPolicy,
    arff: bool,
) -> std::result::Result<ParsedPiece, FeatureError> {
    let width = header.names.len();
    let expected_fields = header.fields_per_row();
    let first_feature = 1 + header.skipped_after_id;
    let mut parsed = ParsedPiece::default();
    let mut spans = Vec::with_capacity(expected_fields);
    let mut row = vec![0f32; width];
    parsed
        .values
        .reserve(width * (piece.len() / (width * 8).max(1) + 1));
    for (number, line) in lines_of(piece, first_line) {
        parsed.line_count += 1;
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() || (arff && trimmed.starts_with(b"%")) {
            continue;
        }
        if arff && trimmed.starts_with(b"{") {
            return Err(FeatureError::parse(
                path,
                number,
                None,
                "sparse ARFF rows are not supported",
            ));
        }
        // Parsed straight into place: no row buffer to copy from.
        let start = parsed.values.len();
        parsed.values.resize(start + width, 0.0);
        if let Some((id, skipped, class)) =
            parse_row_fast(line, header, &mut parsed.values[start..])
            && !unquote(id).is_empty()
        {
            parsed.ids.push(row_id(header, id, skipped, path, number)?);
            parsed.lines.push(number);
            if let Some(class) = class {
                let class = unquote(class);
                let class = (class != b"?" && !class.is_empty())
                    .then(|| field_text(class, path, number, || "class".to_string()))
                    .transpose()?;
                parsed.classes.push(class);
            }
            continue;
        }
        parsed.values.truncate(start);
        split_fields(line, header.delimiter, &mut spans);
        if spans.len() != expected_fields {
            // A short row names the first column it lacks: the one a truncated line lost.
            let missing =
                (spans.len() < expected_fields).then(|| missing_column(header, spans.len()));
            let message = format!(
                "ragged row: {} fields, the header has {expected_fields}",
                spans.len()
            );
            let message = match &missing {
                Some(_) => format!("{message}; this is the first column it lacks"),
                None => message,
            };
            return Err(FeatureError::parse(path, number, missing, message));
        }
        let id = unquote(&line[spans[0].0..spans[0].1]);
        if id.is_empty() {
            return Err(FeatureError::parse(
                path,
                number,
                Some(column_name(header, None)),
                "empty utterance name",
            ));
        }
        let mut keep = true;
        for (feature, &(start, end)) in spans[first_feature..first_feature + width]
            .iter()
            .enumerate()
        {
            let field = &line[start..end];
            let value = match parse_field(field) {
                Some(Value::Number(value)) if value.is_finite() => value,
                Some(value) => match policy {
                    NanPolicy::Error => {
                        let what = match value {
                            Value::Missing => "a missing value".to_string(),
                            Value::Number(value) => format!("non-finite value {value}"),
                        };
                        return Err(FeatureError::parse(
                            path,
                            number,
                            Some(column_name(header, Some(feature))),
                            format!("{what} (choose a NaN policy, drop-row or zero, to accept it)"),
                        ));
                    }
                    NanPolicy::Zero => 0.0,
                    NanPolicy::DropRow => {
                        keep = false;
                        0.0
                    }
                },
                None => {
                    return Err(FeatureError::parse(
                        path,
                        number,
                        Some(column_name(header, Some(feature))),
                        format!("not a number: {:?}", text(field.trim_ascii())),
                    ));
                }
            };
            row[feature] = value;
        }
        if !keep {
            parsed.dropped_non_finite += 1;
            continue;
        }
        let skipped = match header.skipped_after_id {
            0 => &[][..],
            _ => &line[spans[1].0..spans[first_feature - 1].1],
        };
        let raw_id = &line[spans[0].0..spans[0].1];
        parsed
            .ids
            .push(row_id(header, raw_id, skipped, path, number)?);
        parsed.lines.push(number);
        parsed.values.extend_from_slice(&row);
        if header.has_class {
            let (start, end) = spans[expected_fields - 1];
            let class = unquote(&line[start..end]);
            let class = (class != b"?" && !class.is_empty())
                .then(|| field_text(class, path, number, || "class".to_string()))
                .transpose()?;
            parsed.classes.push(class);
        }
    }
    Ok(parsed)
}

fn column_name(header: &Header, feature: Option<usize>) -> String {
    match feature {
        Some(index) => header.names[index].clone(),
        None => match header.layout {
            Layout::OpensmilePython => "file".to_string(),
            _ => "name".to_string(),
        },
    }
}

/// The name of the column at 0-based field position `field` of a row.
fn missing_column(header: &Header, field: usize) -> String {
    let first_feature = 1 + header.skipped_after_id;
    match field {
        0 => column_name(header, None),
        field if field < first_feature => format!("field {} (after the name)", field + 1),
        field if field < first_feature + header.names.len() => {
            column_name(header, Some(field - first_feature))
        }
        _ => "class".to_string(),
    }
}

/// Cuts a block into about `pieces` parts at line ends.
fn split_block(block: &[u8], pieces: usize) -> Vec<&[u8]> {
    let target = (block.len() / pieces.max(1)).max(1);
    let mut parts = Vec::with_capacity(pieces);
    let mut start = 0;
    while start < block.len() {
        let end = line_end_after(block, start + target);
        parts.push(&block[start..end]);
        start = end;
    }
    parts
}

/// Collects parsed rows into fixed-size chunks and hands each full one over.
struct ChunkBuilder<'a> {
    width: usize,
    chunk_rows: usize,
    has_class: bool,
    /// Parsed pieces' row-major values, moved in as they are: a chunk takes them whole (only
    /// the one it ends in is cut in two), without a staging copy.
    slabs: std::collections::VecDeque<Vec<f32>>,
    pending_rows: usize,
    ids: Vec<String>,
    lines: Vec<u64>,
    classes: Vec<Option<String>>,
    rows_handed_over: usize,
    on_chunk: &'a mut dyn FnMut(RowChunk) -> Result<()>,
}

impl<'a> ChunkBuilder<'a> {
    fn new(
        width: usize,
        chunk_rows: usize,
        has_class: bool,
        on_chunk: &'a mut dyn FnMut(RowChunk) -> Result<()>,
    ) -> Self {
        Self {
            width,
            chunk_rows,
            has_class,
            slabs: std::collections::VecDeque::new(),
            pending_rows: 0,
            ids: Vec::new(),
            lines: Vec::new(),
            classes: Vec::new(),
            rows_handed_over: 0,
            on_chunk,
        }
    }

    fn push_piece(&mut self, piece: ParsedPiece) -> Result<()> {
        let rows = piece.values.len() / self.width;
        if rows == 0 {
            return Ok(());
        }
        self.slabs.push_back(piece.values);
        self.pending_rows += rows;
        self.ids.extend(piece.ids);
        self.lines.extend(piece.lines);
        if self.has_class {
            self.classes.extend(piece.classes);
        }
        while self.pending_rows >= self.chunk_rows {
            self.flush(self.chunk_rows)?;
        }
        Ok(())
    }

    /// Hands over the first `rows` pending rows (all of them at the end of the file).
    fn flush(&mut self, rows: usize) -> Result<()> {
        if rows == 0 {
            return Ok(());
        }
        let width = self.width;
        let mut slabs = Vec::new();
        let mut taken = 0;
        while taken < rows {
            let Some(mut slab) = self.slabs.pop_front() else {
                break;
            };
            let available = slab.len() / width;
            if available > rows - taken {
                // The chunk ends inside this slab: its other rows wait for the next chunk.
                self.slabs
                    .push_front(slab.split_off((rows - taken) * width));
                taken = rows;
            } else {
                taken += available;
            }
            slabs.push(slab);
        }
        self.pending_rows -= rows;
        self.rows_handed_over += rows;
        let chunk = RowChunk {
            ids: self.ids.drain(..rows).collect(),
            lines: self.lines.drain(..rows).collect(),
            classes: self.has_class.then(|| self.classes.drain(..rows).collect()),
            values: RowValues { width, rows, slabs },
        };
        (self.on_chunk)(chunk)
    }
}

/// The feature values of a chunk's rows, row-major, as they were parsed. Columns come from
/// [`RowValues::into_columns`] or [`RowValues::into_columns_inspected`].
#[derive(Debug)]
pub struct RowValues {
    width: usize,
    rows: usize,
    /// Row-major slabs that hold the rows in order, whole rows each.
    slabs: Vec<Vec<f32>>,
}

impl RowValues {
    /// Rows held.
    pub fn rows(&self) -> usize {
        self.rows
    }

    fn row_slices(&self) -> impl Iterator<Item = &[f32]> {
        self.slabs
            .iter()
            .flat_map(|slab| slab.chunks_exact(self.width))
    }

    /// The rows as columns.
    pub fn into_columns(self) -> ColumnChunk {
        self.into_columns_inspected(None, |_, _| ()).0
    }

    /// The rows marked in `keep` (every row when `None`) as columns, with `inspect` called on
    /// each band of consecutive columns as soon as it is filled: `inspect(first, band)` sees
    /// columns `first..first + band.len()`, while they are still in the core's cache. Bands
    /// are filled in parallel, so `inspect` runs on the rayon pool; its results come back in
    /// band order, one per band.
    ///
    /// # Panics
    /// If `keep` is given and its length is not [`RowValues::rows`].
    pub fn into_columns_inspected<T: Send>(
        self,
        keep: Option<&[bool]>,
        inspect: impl Fn(usize, &[Vec<f32>]) -> T + Sync,
    ) -> (ColumnChunk, Vec<T>) {
        let width = self.width;
        let row_slices: Vec<&[f32]> = match keep {
            Some(keep) => {
                assert_eq!(keep.len(), self.rows, "one keep flag per row");
                self.row_slices()
                    .zip(keep)
                    .filter_map(|(row, &kept)| kept.then_some(row))
                    .collect()
            }
            None => self.row_slices().collect(),
        };
        let rows = row_slices.len();
        // Transposed in blocks of 64 rows x 64 columns (`tile.rs`). Gathering a whole column
        // at once would touch one page per row, and the TLB misses cost more than the copy.
        let (bands, inspected): (Vec<Vec<Vec<f32>>>, Vec<T>) = (0..width.div_ceil(TILE))
            .into_par_iter()
            .map(|band| {
                let first = band * TILE;
                let count = TILE.min(width - first);
                let mut columns: Vec<Vec<f32>> =
                    (0..count).map(|_| Vec::with_capacity(rows)).collect();
                for block in row_slices.chunks(TILE) {
                    append_columns(block, first, &mut columns);
                }
                let inspected = inspect(first, &columns);
                (columns, inspected)
            })
            .unzip();
        let columns = bands.into_iter().flatten().collect();
        (ColumnChunk { columns, rows }, inspected)
    }
}

/// Consecutive rows of a feature file, as [`FeatureReader::read_chunks`] hands them over.
#[derive(Debug)]
pub struct RowChunk {
    /// Utterance ids, one per row.
    pub ids: Vec<String>,
    /// The 1-based line of each row.
    pub lines: Vec<u64>,
    /// ARFF nominal class values, when the file has a class attribute.
    pub classes: Option<Vec<Option<String>>>,
    /// The feature values, row-major as parsed.
    pub values: RowValues,
}

/// What a whole read found, besides its rows.
#[derive(Debug, Clone)]
pub struct ReadSummary {
    /// The file's sha256 (of the bytes on disk, compressed or not).
    pub sha256: String,
    /// Rows handed over.
    pub rows: usize,
    /// Rows dropped by [`NanPolicy::DropRow`].
    pub dropped_non_finite: usize,
}

/// A feature file whose header has been read, ready to stream its rows.
pub struct FeatureReader {
    path: PathBuf,
    text: Text,
    header: Header,
    data_offset: usize,
    options: ReadOptions,
}

impl FeatureReader {
    /// Opens `path` and reads its header (layout and feature names).
    pub fn open(path: &Path, options: &ReadOptions) -> Result<Self> {
        if options.chunk_rows == 0 {
            return Err(FeatureError::Config(
                "chunk_rows must be positive".to_string(),
            ));
        }
        let (text, header) = open_with_header(path, options)?;
        if header.names.is_empty() {
            return Err(FeatureError::parse(
                path,
                header.header_lines.max(1),
                None,
                "the header names no feature columns",
            ));
        }
        // Position of the first data line.
        let head = text.head();
        let data_offset = if header.header_lines == 0 {
            0
        } else {
            memchr::memchr_iter(b'\n', head)
                .nth(usize::try_from(header.header_lines - 1).unwrap_or(usize::MAX))
                .map_or(head.len(), |position| position + 1)
        };
        Ok(Self {
            path: path.to_path_buf(),
            text,
            header,
            data_offset,
            options: options.clone(),
        })
    }

    /// The layout the file is read as.
    pub fn layout(&self) -> Layout {
        self.header.layout
    }

    /// Feature names, verbatim, in file order.
    pub fn names(&self) -> &[String] {
        &self.header.names
    }

    /// Reads every row, handing them to `on_chunk` in order, in chunks of
    /// [`ReadOptions::chunk_rows`] rows (the last may be shorter). The pieces of a block are
    /// parsed on the rayon pool, beside the hash of a mapped file or the read of a compressed
    /// file's next block, and `on_chunk` runs on the calling thread. Any malformed line, or an
    /// error from `on_chunk`, stops the read with that error; a malformed line's error names
    /// the file, the line and (where there is one) the column.
    pub fn read_chunks(
        self,
        mut on_chunk: impl FnMut(RowChunk) -> Result<()>,
    ) -> Result<ReadSummary> {
        let Self {
            path,
            text,
            header,
            data_offset,
            options,
        } = self;
        let mut state = ReadState {
            parser: PieceParser {
                path: &path,
                header: &header,
                policy: options.nan_policy,
                pieces: rayon::current_num_threads() * 4,
            },
            builder: ChunkBuilder::new(
                header.names.len(),
                options.chunk_rows,
                header.has_class,
                &mut on_chunk,
            ),
            dropped_non_finite: 0,
            next_line: header.header_lines + 1,
        };
        let sha256 = match text {
            Text::Mapped(mapped) => {
                let hasher = read_mapped(&mapped, data_offset, &mut state)?;
                state.builder.flush(state.builder.pending_rows)?;
                // The last chunk is handed over before waiting for the hash.
                let sha256 = hasher.finish();
                mapped.check_unchanged()?;
                sha256
            }
            Text::Read {
                source,
                first_block,
            } => {
                let source = read_blocks(*source, first_block, data_offset, &mut state)?;
                state.builder.flush(state.builder.pending_rows)?;
                source.sha256()
            }
        };
        let rows = state.builder.rows_handed_over;
        if rows == 0 && state.dropped_non_finite == 0 {
            return Err(FeatureError::Empty {
                path: path.clone(),
                message: "the file has a header but no data rows".to_string(),
            });
        }
        Ok(ReadSummary {
            sha256,
            rows,
            dropped_non_finite: state.dropped_non_finite,
        })
    }
}

/// Reads a whole feature file into memory (see [`FeatureReader`] to stream it instead). Any
/// malformed line stops the read with an error that names the file, the line and (where there
/// is one) the column.
pub fn read_feature_file(path: &Path, options: &ReadOptions) -> Result<FeatureTable> {
    let reader = FeatureReader::open(path, options)?;
    let layout = reader.layout();
    let names = reader.names().to_vec();
    let has_class = reader.header.has_class;
    let (mut ids, mut lines, mut classes, mut chunks) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let summary = reader.read_chunks(|chunk| {
        ids.extend(chunk.ids);
        lines.extend(chunk.lines);
        classes.extend(chunk.classes.into_iter().flatten());
        chunks.push(chunk.values.into_columns());
        Ok(())
    })?;
    Ok(FeatureTable {
        path: path.to_path_buf(),
        sha256: summary.sha256,
        layout,
        names,
        ids,
        lines,
        classes: has_class.then_some(classes),
        chunks,
        dropped_non_finite: summary.dropped_non_finite,
    })
}

/// Parses a mapped file's blocks from `data_offset` on, each a slice of the mapping. The hash
/// runs behind the parse on a thread of its own; the parse waits for it only when it falls a
/// few blocks behind, and hands back the pages both have passed. Returns the hash, still
/// running.
fn read_mapped(
    mapped: &MappedText,
    data_offset: usize,
    state: &mut ReadState<'_, '_>,
) -> Result<MappedHasher> {
    let text = mapped.bytes();
    let mut hasher = mapped.hasher()?;
    let mut start = data_offset;
    while start < text.len() {
        let end = line_end_after(text, start + BLOCK_BYTES);
        hasher.hash_to(end);
        let parsed = state.parser.parse(&text[start..end]);
        state.push(parsed)?;
        mapped.release_to(hasher.hashed().min(end));
        start = end;
    }
    hasher.hash_to(text.len());
    Ok(hasher)
}

/// The offset just after the first line end at or after `from` (the text's length when none).
fn line_end_after(text: &[u8], from: usize) -> usize {
    if from >= text.len() {
        return text.len();
    }
    memchr::memchr(b'\n', &text[from..]).map_or(text.len(), |offset| from + offset + 1)
}

/// Parses a read file's blocks, the first (from `data_offset` on) and every one after it. The
/// next block is read (and decompressed and hashed) while this one is parsed and its rows
/// handed over, as one more task on the pool beside the parse pieces: whichever worker is free
/// takes it, so reading never waits for a core while pieces run, nor pieces for a reader that
/// fell behind (the fifth round in docs/benchmarks.md's history). Two buffers in all, allocated once. Returns
/// the source, read to its end.
fn read_blocks(
    source: BlockSource,
    first_block: Block,
    data_offset: usize,
    state: &mut ReadState<'_, '_>,
) -> Result<BlockSource> {
    let mut current = first_block;
    let mut offset = data_offset;
    let mut pending = read_next_block(source, Vec::new());
    loop {
        let parsed = state.parser.parse(&current.text()[offset..]);
        let spare = std::mem::take(&mut current.bytes);
        // A bad line comes before whatever the read found after it.
        state.push(parsed)?;
        let (source, next) = pending
            .recv()
            .expect("the reading task sends before it ends")
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let Some(next) = next? else {
            return Ok(source);
        };
        current = next;
        offset = 0;
        pending = read_next_block(source, spare);
    }
}

/// The source back with its next block, or the panic that stopped the read.
type NextBlock = std::thread::Result<(BlockSource, Result<Option<Block>>)>;

/// Starts reading the block after `source`'s last into `buffer`, on the rayon pool.
fn read_next_block(
    mut source: BlockSource,
    buffer: Vec<u8>,
) -> std::sync::mpsc::Receiver<NextBlock> {
    let (sender, receiver) = std::sync::mpsc::sync_channel(1);
    rayon::spawn(move || {
        // A panic goes to the caller, as it would on its own thread, instead of ending the
        // process from inside the pool.
        let next = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let next = source.next_block(buffer);
            (source, next)
        }));
        let _ = sender.send(next);
    });
    receiver
}

/// How the pieces of a block are parsed: shared by the tasks that parse them.
struct PieceParser<'a> {
    path: &'a Path,
    header: &'a Header,
    policy: NanPolicy,
    pieces: usize,
}

impl PieceParser<'_> {
    /// `block` cut at line ends into pieces, parsed in parallel. Each piece numbers its lines
    /// from 1 and counts them; the absolute numbers (of rows and of errors) follow from the
    /// pieces before it, without a counting pass of their own.
    fn parse(&self, block: &[u8]) -> Vec<std::result::Result<ParsedPiece, FeatureError>> {
        let arff = self.header.layout == Layout::Arff;
        split_block(block, self.pieces)
            .par_iter()
            .map(|part| parse_piece(self.path, self.header, part, 1, self.policy, arff))
            .collect()
    }
}

/// Everything accumulated while the blocks of one file are parsed.
struct ReadState<'a, 'b> {
    parser: PieceParser<'a>,
    builder: ChunkBuilder<'b>,
    dropped_non_finite: usize,
    next_line: u64,
}

impl ReadState<'_, '_> {
    /// Takes a block's parsed pieces in order: their rows go to the chunks, the first error
    /// stops the read.
    fn push(&mut self, parsed: Vec<std::result::Result<ParsedPiece, FeatureError>>) -> Result<()> {
        for piece in parsed {
            let offset = self.next_line - 1;
            let mut piece = match piece {
                Ok(piece) => piece,
                Err(mut error) => {
                    if let FeatureError::Parse { location, .. } = &mut error {
                        location.line += offset;
                    }
                    return Err(error);
                }
            };
            for line in &mut piece.lines {
                *line += offset;
            }
            self.next_line += piece.line_count;
            self.dropped_non_finite += piece.dropped_non_finite;
            self.builder.push_piece(piece)?;
        }
        Ok(())
    }
}

/// Opens a feature file and parses its header: from the mapping of a plain file, else from the
/// first block read.
fn open_with_header(path: &Path, options: &ReadOptions) -> Result<(Text, Header)> {
    let mut file = File::open(path).map_err(|source| FeatureError::io(path, source))?;
    let gzip = is_gzip(path, &file)?;
    if options.memory_map && !gzip {
        match MappedText::open(path, file) {
            Ok(mapped) => {
                let header = parse_header(path, mapped.bytes(), options)?;
                return Ok((Text::Mapped(mapped), header));
            }
            Err(unmapped) => file = unmapped,
        }
    }
    let mut source = BlockSource::open(file, path, gzip)?;
    let Some(mut first_block) = source.next_block(Vec::new())? else {
        return Err(FeatureError::Empty {
            path: path.to_path_buf(),
            message: "the file is empty".to_string(),
        });
    };
    let header = match parse_header(path, first_block.text(), options) {
        Ok(header) => header,
        // A long ARFF header (or a long run of blank lines before any): once more from a
        // whole block, whose error, if any, is the one to report.
        Err(_) if !source.finished => {
            first_block = source.grow(first_block)?;
            parse_header(path, first_block.text(), options)?
        }
        Err(error) => return Err(error),
    };
    Ok((
        Text::Read {
            source: Box::new(source),
            first_block,
        },
        header,
    ))
}

/// Reads only the header of a feature file: its layout and feature names.
pub fn read_header(path: &Path, options: &ReadOptions) -> Result<(Layout, Vec<String>)> {
    let (_, header) = open_with_header(path, options)?;
    Ok((header.layout, header.names))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Row `row` of a table `width` wide: `row * 1000 + feature` in every feature.
    fn numbered_rows(rows: std::ops::Range<usize>, width: usize) -> Vec<f32> {
        rows.flat_map(|row| (0..width).map(move |feature| (row * 1000 + feature) as f32))
            .collect()
    }

    fn piece(rows: std::ops::Range<usize>, width: usize) -> ParsedPiece {
        ParsedPiece {
            line_count: rows.len() as u64,
            ids: rows.clone().map(|row| format!("u{row}")).collect(),
            lines: rows.clone().map(|row| row as u64 + 1).collect(),
            values: numbered_rows(rows, width),
            ..ParsedPiece::default()
        }
    }

    #[test]
    fn chunks_take_pieces_whole_and_cut_only_the_one_they_end_in() {
        let width = 3;
        let mut chunks = Vec::new();
        let mut on_chunk = |chunk: RowChunk| {
            chunks.push(chunk);
            Ok(())
        };
        let mut builder = ChunkBuilder::new(width, 5, false, &mut on_chunk);
        // Pieces of 2, 7, 0, 1 and 3 rows: chunks of 5, 5 and (at the end) 3 rows.
        let mut first = 0;
        for rows in [2, 7, 0, 1, 3] {
            builder
                .push_piece(piece(first..first + rows, width))
                .unwrap();
            first += rows;
        }
        builder.flush(builder.pending_rows).unwrap();
        assert_eq!(builder.rows_handed_over, 13);
        let mut next_row = 0;
        for (chunk, rows) in chunks.iter().zip([5, 5, 3]) {
            assert_eq!(chunk.values.rows(), rows);
            assert!(
                chunk
                    .values
                    .slabs
                    .iter()
                    .all(|slab| !slab.is_empty() && slab.len() % width == 0),
                "slabs hold whole rows"
            );
            let expected: Vec<String> = (next_row..next_row + rows)
                .map(|row| format!("u{row}"))
                .collect();
            assert_eq!(chunk.ids, expected);
            next_row += rows;
        }
        assert_eq!(chunks.len(), 3);
        let columns = chunks.remove(1).values.into_columns();
        assert_eq!(columns.rows, 5);
        assert_eq!(columns.columns[2], [5002.0, 6002.0, 7002.0, 8002.0, 9002.0]);
    }

    #[test]
    fn kept_rows_become_columns_and_each_band_is_inspected_once_in_order() {
        // 150 features: bands of 64, 64 and 22 columns. 70 rows in three slabs, every third
        // row dropped.
        let width = 150;
        let values = RowValues {
            width,
            rows: 70,
            slabs: vec![
                numbered_rows(0..30, width),
                numbered_rows(30..31, width),
                numbered_rows(31..70, width),
            ],
        };
        let keep: Vec<bool> = (0..70).map(|row| row % 3 != 0).collect();
        let kept: Vec<usize> = (0..70).filter(|row| row % 3 != 0).collect();
        let (columns, bands) = values.into_columns_inspected(Some(&keep), |first, band| {
            (
                first,
                band.len(),
                band.iter().map(|column| column[0]).sum::<f32>(),
            )
        });
        assert_eq!(columns.rows, kept.len());
        assert_eq!(columns.columns.len(), width);
        for (feature, column) in columns.columns.iter().enumerate() {
            let expected: Vec<f32> = kept
                .iter()
                .map(|&row| (row * 1000 + feature) as f32)
                .collect();
            assert_eq!(column, &expected, "feature {feature}");
        }
        let first_row_sum =
            |features: std::ops::Range<usize>| features.map(|f| (1000 + f) as f32).sum::<f32>();
        assert_eq!(
            bands,
            [
                (0, 64, first_row_sum(0..64)),
                (64, 64, first_row_sum(64..128)),
                (128, 22, first_row_sum(128..150)),
            ]
        );
    }

    #[test]
    #[should_panic(expected = "one keep flag per row")]
    fn a_keep_list_of_another_length_is_refused() {
        let values = RowValues {
            width: 2,
            rows: 2,
            slabs: vec![vec![0.0; 4]],
        };
        let _ = values.into_columns_inspected(Some(&[true]), |_, _| ());
    }
}
