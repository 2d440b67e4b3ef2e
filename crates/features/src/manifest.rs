//! Label manifests: CSV files mapping utterance ids to emotion, session and speaker.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::emotion::{Emotion, LabelMap};
use crate::error::{FeatureError, Result};

/// One labelled utterance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelRow {
    /// The corpus's own code, as written.
    pub code: String,
    /// The emotion it maps to, or `None` for a class outside the four.
    pub emotion: Option<Emotion>,
    /// Session, when the manifest has the column.
    pub session: Option<String>,
    /// Speaker, when the manifest has the column.
    pub speaker: Option<String>,
    /// Values of the extra columns, in [`Manifest::extra_columns`] order.
    pub extras: Vec<String>,
    /// 1-based line in the manifest.
    pub line: u64,
}

/// A whole label manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The file, or the directory of IEMOCAP label files, that the pipeline names.
    pub path: PathBuf,
    /// The files read (a directory of IEMOCAP label files gives several), for input hashes.
    pub files: Vec<PathBuf>,
    /// Rows by utterance id.
    pub rows: HashMap<String, LabelRow>,
    /// Names of columns beyond the four known ones, in file order.
    pub extra_columns: Vec<String>,
    /// Whether the manifest has session and speaker columns.
    pub has_session: bool,
    /// Whether the manifest has a speaker column.
    pub has_speaker: bool,
}

impl Manifest {
    /// How many utterances carry each out-of-scope code.
    pub fn out_of_scope_codes(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for row in self.rows.values().filter(|row| row.emotion.is_none()) {
            *counts.entry(row.code.clone()).or_insert(0) += 1;
        }
        counts
    }
}

/// A line of a corpus's own label file as text; bytes that are not UTF-8 are an error naming
/// the file, the line and the column (by how many `delimiter`s come before them).
pub(crate) fn label_line_text<'a>(
    raw: &'a [u8],
    file: &Path,
    line: u64,
    delimiter: u8,
    columns: &[&str],
    corpus: &str,
) -> Result<&'a str> {
    std::str::from_utf8(raw).map_err(|error| {
        let at = error.valid_up_to();
        let field = raw[..at].iter().filter(|&&b| b == delimiter).count();
        FeatureError::parse(
            file,
            line,
            columns.get(field).map(|name| name.to_string()),
            format!(
                "not UTF-8 at byte {} of the line ({corpus}'s ids and codes are ASCII)",
                at + 1
            ),
        )
    })
}

const ID: &str = "utterance_id";
const EMOTION: &str = "emotion";
const SESSION: &str = "session";
const SPEAKER: &str = "speaker";

/// The files a corpus's `labels` names, for input hashes: MSP-IMPROV's `Evaluation.txt` (a
/// directory holding it, or the file), IEMOCAP's `EmoEvaluation/*.txt` below a directory,
/// sorted, or the one file.
pub fn label_files(path: &Path) -> Result<Vec<PathBuf>> {
    if crate::msp_improv::is_evaluation(path) {
        return Ok(vec![if path.is_dir() {
            path.join(crate::msp_improv::FILE_NAME)
        } else {
            path.to_path_buf()
        }]);
    }
    crate::iemocap::label_files(path)
}

/// Reads a manifest (comma-separated, header row, optionally gzip-compressed). Required
/// columns: `utterance_id`, `emotion`; optional: `session`, `speaker`; any other columns are
/// carried along as strings. The corpora's own label files are read as distributed: MSP-IMPROV's
/// `Evaluation.txt` or a directory holding it (see the `msp_improv` module), and IEMOCAP's
/// `EmoEvaluation` files or a directory holding them (the `iemocap` module).
pub fn read_manifest(path: &Path, label_map: &LabelMap) -> Result<Manifest> {
    if crate::msp_improv::is_evaluation(path) {
        return crate::msp_improv::read_evaluation(path, label_map);
    }
    if crate::iemocap::is_evaluation(path) {
        return crate::iemocap::read_evaluation(path, label_map);
    }
    let mut file = File::open(path).map_err(|source| FeatureError::io(path, source))?;
    let mut magic = [0u8; 2];
    let is_gzip = matches!(file.read(&mut magic), Ok(2) if magic == [0x1f, 0x8b]);
    use std::io::Seek;
    file.rewind()
        .map_err(|source| FeatureError::io(path, source))?;
    let input: Box<dyn Read> = if is_gzip {
        Box::new(MultiGzDecoder::new(BufReader::new(file)))
    } else {
        Box::new(BufReader::new(file))
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(input);
    let headers = reader
        .headers()
        .map_err(|error| csv_error(path, None, error))?
        .clone();
    if headers.is_empty() || (headers.len() == 1 && headers[0].trim().is_empty()) {
        return Err(FeatureError::Empty {
            path: path.to_path_buf(),
            message: "the label manifest is empty".to_string(),
        });
    }
    let position = |name: &str| headers.iter().position(|header| header.trim() == name);
    let require = |name: &str| {
        position(name).ok_or_else(|| {
            FeatureError::parse(
                path,
                1,
                Some(name.to_string()),
                format!(
                    "the label manifest's header lacks this column (it has: {})",
                    headers.iter().collect::<Vec<_>>().join(", ")
                ),
            )
        })
    };
    let id_column = require(ID)?;
    let emotion_column = require(EMOTION)?;
    let session_column = position(SESSION);
    let speaker_column = position(SPEAKER);
    let known = [
        Some(id_column),
        Some(emotion_column),
        session_column,
        speaker_column,
    ];
    let extra_positions: Vec<usize> = (0..headers.len())
        .filter(|index| !known.contains(&Some(*index)))
        .collect();
    let extra_columns = extra_positions
        .iter()
        .map(|&index| headers[index].trim().to_string())
        .collect();

    let mut rows = HashMap::new();
    for record in reader.records() {
        let record = record.map_err(|error| csv_error(path, Some(&headers), error))?;
        let line = record.position().map_or(0, |position| position.line());
        let field = |index: usize| record.get(index).unwrap_or("").trim().to_string();
        let id = field(id_column);
        if id.is_empty() {
            return Err(FeatureError::parse(
                path,
                line,
                Some(ID.to_string()),
                "empty utterance id",
            ));
        }
        let code = field(emotion_column);
        let optional = |column: Option<usize>| column.map(field).filter(|value| !value.is_empty());
        let row = LabelRow {
            emotion: label_map.map(&code),
            code,
            session: optional(session_column),
            speaker: optional(speaker_column),
            extras: extra_positions.iter().map(|&index| field(index)).collect(),
            line,
        };
        if let Some(previous) = rows.insert(id.clone(), row) {
            return Err(FeatureError::parse(
                path,
                line,
                Some(ID.to_string()),
                format!(
                    "duplicate utterance id {id:?} (first on line {})",
                    previous.line
                ),
            ));
        }
    }
    if rows.is_empty() {
        return Err(FeatureError::Empty {
            path: path.to_path_buf(),
            message: "the label manifest has a header but no rows".to_string(),
        });
    }
    Ok(Manifest {
        path: path.to_path_buf(),
        files: vec![path.to_path_buf()],
        rows,
        extra_columns,
        has_session: session_column.is_some(),
        has_speaker: speaker_column.is_some(),
    })
}

/// A csv error as a feature error naming the file and line, and for a short row the first
/// column it lacks (from `headers`).
fn csv_error(path: &Path, headers: Option<&csv::StringRecord>, error: csv::Error) -> FeatureError {
    let line = error.position().map_or(0, |position| position.line());
    let message = match error.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            let message = format!("ragged row: {len} fields, the header has {expected_len}");
            let missing = headers
                .filter(|_| len < expected_len)
                .and_then(|headers| headers.get(*len as usize))
                .map(|name| name.trim().to_string());
            if let Some(column) = missing {
                return FeatureError::parse(
                    path,
                    line,
                    Some(column),
                    format!("{message}; this is the first column it lacks"),
                );
            }
            message
        }
        csv::ErrorKind::Utf8 { err, .. } => {
            let column = headers
                .and_then(|headers| headers.get(err.field()))
                .map_or_else(
                    || format!("field {}", err.field() + 1),
                    |name| name.trim().to_string(),
                );
            return FeatureError::parse(
                path,
                line,
                Some(column),
                format!(
                    "not UTF-8 at byte {} of the field: save the manifest as UTF-8",
                    err.valid_up_to() + 1
                ),
            );
        }
        csv::ErrorKind::Io(io) => {
            return FeatureError::io(path, std::io::Error::new(io.kind(), io.to_string()));
        }
        _ => error.to_string(),
    };
    FeatureError::parse(path, line, None, message)
}
