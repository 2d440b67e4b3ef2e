//! IEMOCAP's own label files, read as the corpus distributes them: the `EmoEvaluation/*.txt`
//! files of `Session<n>/dialog/`, so that no converter to a CSV manifest is needed.
//!
//! Each file holds one block per utterance; the block's first line opens with the time range,
//! and only those lines are read (the per-evaluator lines under them are skipped):
//!
//! ```text
//! % [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]
//!
//! [6.2901 - 8.2357]    Ses01F_impro01_F000    neu    [2.5000, 2.5000, 2.5000]
//! C-E2:    Neutral;    ()
//! C-E3:    Neutral;    ()
//! A-E3:    val 3; act 2; dom  2;    ()
//! ```
//!
//! Fields are separated by tabs (shown as spaces above): time range, utterance id, category
//! code (`ang`, `hap`, `exc`, `neu`, `sad`, `fru`, `sur`, `fea`, `dis`, `oth`, `xxx`), and the
//! mean valence, activation and dominance, which are kept as the extra columns `valence`,
//! `activation` and `dominance`. The session and speaker come from the id:
//! `Ses01F_impro01_M003` is session `Ses01`, speaker `Ses01M` (the speaker of the turn, the
//! last part's first letter).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::emotion::LabelMap;
use crate::error::{FeatureError, Result};
use crate::manifest::{LabelRow, Manifest, label_line_text};

/// The header line every EmoEvaluation file opens with.
const HEADER: &str = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]";
/// The fields of an utterance line, as errors name them.
const COLUMNS: [&str; 4] = ["time range", "utterance_id", "emotion", "[V, A, D]"];
/// The extra columns an IEMOCAP manifest carries.
const EXTRAS: [&str; 3] = ["valence", "activation", "dominance"];

/// Whether `path` holds IEMOCAP's own labels: a directory (searched for `EmoEvaluation/*.txt`)
/// or a file that opens with the EmoEvaluation header or an utterance line.
pub(crate) fn is_evaluation(path: &Path) -> bool {
    if path.is_dir() {
        return true;
    }
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]);
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .is_some_and(|line| line.starts_with(HEADER) || utterance_line(line).is_some())
}

/// The label files `path` names: itself, or every `*.txt` directly inside a directory named
/// `EmoEvaluation` below it (IEMOCAP's `Attribute/`, `Categorical/` and `Self-evaluation/`
/// subdirectories hold other formats and are skipped), sorted.
pub(crate) fn label_files(path: &Path) -> Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut pending = vec![path.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|source| FeatureError::io(&dir, source))?;
        let evaluation = dir.file_name().is_some_and(|name| name == "EmoEvaluation");
        for entry in entries {
            let entry = entry.map_err(|source| FeatureError::io(&dir, source))?;
            let child = entry.path();
            if child.is_dir() {
                if !evaluation {
                    pending.push(child);
                }
            } else if evaluation && child.extension().is_some_and(|ext| ext == "txt") {
                files.push(child);
            }
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(FeatureError::Labels {
            message: format!(
                "{}: no EmoEvaluation/*.txt file below this directory (IEMOCAP keeps them in \
                 Session<n>/dialog/EmoEvaluation/)",
                path.display()
            ),
        });
    }
    Ok(files)
}

/// The fields of an utterance line: `[start - end]`, id, code and `[V, A, D]`; `None` for any
/// other line.
fn utterance_line(line: &str) -> Option<Vec<&str>> {
    let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
    let range = fields.first()?.strip_prefix('[')?.strip_suffix(']')?;
    let (start, end) = range.split_once(" - ")?;
    (start.trim().parse::<f64>().is_ok() && end.trim().parse::<f64>().is_ok()).then_some(fields)
}

/// Session and speaker of an IEMOCAP utterance id, `Ses01F_impro01_M003` -> (`Ses01`, `Ses01M`).
fn session_and_speaker(id: &str) -> Option<(String, String)> {
    let session = id
        .get(..5)
        .filter(|s| s.starts_with("Ses") && s[3..].bytes().all(|b| b.is_ascii_digit()))?;
    let gender = id.rsplit('_').next()?.chars().next()?;
    matches!(gender, 'F' | 'M').then(|| (session.to_string(), format!("{session}{gender}")))
}

/// Reads IEMOCAP's EmoEvaluation files (a file or a directory, see [`label_files`]).
pub(crate) fn read_evaluation(path: &Path, label_map: &LabelMap) -> Result<Manifest> {
    let files = label_files(path)?;
    let mut rows: HashMap<String, LabelRow> = HashMap::new();
    let mut first_seen: HashMap<String, PathBuf> = HashMap::new();
    for file in &files {
        let bytes = std::fs::read(file).map_err(|source| FeatureError::io(file, source))?;
        for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            let line_number = index as u64 + 1;
            if !raw.starts_with(b"[") {
                continue;
            }
            let line = label_line_text(raw, file, line_number, b'\t', &COLUMNS, "IEMOCAP")?;
            let bad = |column: &str, message: String| {
                FeatureError::parse(file, line_number, Some(column.to_string()), message)
            };
            let fields = utterance_line(line.trim_end()).ok_or_else(|| {
                bad(
                    "time range",
                    format!("not an utterance line ([start - end], id, code, [V, A, D]): {line:?}"),
                )
            })?;
            if fields.len() < 3 {
                return Err(bad(
                    "emotion",
                    format!("{} tab-separated fields, expected 4", fields.len()),
                ));
            }
            let (id, code) = (fields[1], fields[2]);
            let (session, speaker) = session_and_speaker(id).ok_or_else(|| {
                bad(
                    "utterance_id",
                    format!("{id:?} is not an IEMOCAP utterance id (like Ses01F_impro01_M003)"),
                )
            })?;
            if code.is_empty() {
                return Err(bad("emotion", "empty category code".to_string()));
            }
            let extras: Vec<String> = fields
                .get(3)
                .and_then(|vad| vad.strip_prefix('[')?.strip_suffix(']'))
                .map(|vad| vad.split(',').map(|v| v.trim().to_string()).collect())
                .filter(|values: &Vec<String>| values.len() == EXTRAS.len())
                .ok_or_else(|| {
                    bad(
                        "[V, A, D]",
                        format!(
                            "expected [valence, activation, dominance], got {:?}",
                            fields.get(3)
                        ),
                    )
                })?;
            let row = LabelRow {
                emotion: label_map.map(code),
                code: code.to_string(),
                session: Some(session),
                speaker: Some(speaker),
                extras,
                line: line_number,
            };
            if let Some(previous) = rows.insert(id.to_string(), row) {
                return Err(bad(
                    "utterance_id",
                    format!(
                        "duplicate utterance id {id:?} (first in {}, line {})",
                        first_seen[id].display(),
                        previous.line
                    ),
                ));
            }
            first_seen.insert(id.to_string(), file.clone());
        }
    }
    if rows.is_empty() {
        return Err(FeatureError::Empty {
            path: path.to_path_buf(),
            message: "no utterance line ([start - end], id, code, [V, A, D]) in the IEMOCAP \
                      label files"
                .to_string(),
        });
    }
    Ok(Manifest {
        path: path.to_path_buf(),
        files,
        rows,
        extra_columns: EXTRAS.iter().map(|name| name.to_string()).collect(),
        has_session: true,
        has_speaker: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emotion::Emotion;

    const SESSION_1: &str = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n\
        [6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]\n\
        C-E2:\tNeutral;\t()\nC-E3:\tNeutral;\t()\nA-E3:\tval 3; act 2; dom  2;\t()\n\n\
        [10.0100 - 11.3925]\tSes01F_impro01_M001\texc\t[3.5000, 3.5000, 3.0000]\n\
        C-E1:\tExcited;\t()\n\n\
        [14.8872 - 18.0175]\tSes01F_impro01_F002\tfru\t[2.0000, 3.5000, 3.5000]\n";

    fn write(dir: &Path, relative: &str, text: &str) -> PathBuf {
        let path = dir.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_tree_is_read_as_distributed() {
        let dir = tempfile::tempdir().unwrap();
        let evaluation = "Session1/dialog/EmoEvaluation";
        write(
            dir.path(),
            &format!("{evaluation}/Ses01F_impro01.txt"),
            SESSION_1,
        );
        // Other formats beside and below the EmoEvaluation files are not label files.
        write(
            dir.path(),
            &format!("{evaluation}/Categorical/Ses01F_impro01_e1_cat.txt"),
            "x",
        );
        write(
            dir.path(),
            "Session1/dialog/transcriptions/Ses01F_impro01.txt",
            "x",
        );
        write(
            dir.path(),
            "Session2/dialog/EmoEvaluation/Ses02M_script01_1.txt",
            "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n\
             [1.0 - 2.5]\tSes02M_script01_1_F003\tang\t[1.5000, 4.0000, 4.0000]\n",
        );
        assert_eq!(label_files(dir.path()).unwrap().len(), 2);
        assert!(is_evaluation(dir.path()));
        let manifest = read_evaluation(dir.path(), &LabelMap::Iemocap).unwrap();
        assert_eq!(manifest.rows.len(), 4);
        assert_eq!(manifest.files.len(), 2);
        let row = &manifest.rows["Ses01F_impro01_M001"];
        // exc is merged into happy by the iemocap label map.
        assert_eq!(
            (row.code.as_str(), row.emotion),
            ("exc", Some(Emotion::Happy))
        );
        assert_eq!(row.session.as_deref(), Some("Ses01"));
        assert_eq!(row.speaker.as_deref(), Some("Ses01M"));
        assert_eq!(row.extras, ["3.5000", "3.5000", "3.0000"]);
        assert_eq!(row.line, 8);
        assert_eq!(manifest.rows["Ses01F_impro01_F002"].emotion, None);
        let angry = &manifest.rows["Ses02M_script01_1_F003"];
        assert_eq!(angry.speaker.as_deref(), Some("Ses02F"));
        assert_eq!(manifest.out_of_scope_codes()["fru"], 1);
    }

    #[test]
    fn a_single_file_is_recognised_by_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "Ses01F_impro01.txt", SESSION_1);
        assert!(is_evaluation(&file));
        let csv = write(dir.path(), "labels.csv", "utterance_id,emotion\nu1,ang\n");
        assert!(!is_evaluation(&csv));
        let manifest = read_evaluation(&file, &LabelMap::Iemocap).unwrap();
        assert_eq!(manifest.rows.len(), 3);
        assert_eq!(manifest.files, [file]);
    }

    #[test]
    fn bad_lines_name_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let error = |text: &str| {
            let file = write(dir.path(), "bad.txt", text);
            read_evaluation(&file, &LabelMap::Iemocap)
                .unwrap_err()
                .to_string()
        };
        let message = error("[1.0 - 2.0]\tutt7\tang\t[1, 2, 3]\n");
        assert!(
            message.contains("bad.txt:1, column \"utterance_id\": \"utt7\" is not an IEMOCAP"),
            "{message}"
        );
        let message = error("\n[1.0 - x]\tSes01F_a_F000\tang\t[1, 2, 3]\n");
        assert!(
            message.contains("bad.txt:2, column \"time range\""),
            "{message}"
        );
        let message = error("[1.0 - 2.0]\tSes01F_a_F000\tang\t[1, 2]\n");
        assert!(
            message.contains("bad.txt:1, column \"[V, A, D]\""),
            "{message}"
        );
        let message = error(
            "[1.0 - 2.0]\tSes01F_a_F000\tang\t[1, 2, 3]\n[2.0 - 3.0]\tSes01F_a_F000\tsad\t[1, 2, 3]\n",
        );
        assert!(
            message.contains("bad.txt:2, column \"utterance_id\": duplicate"),
            "{message}"
        );
        let latin1 = write(dir.path(), "latin1.txt", "");
        std::fs::write(
            &latin1,
            b"[1.0 - 2.0]\tSes01F_caf\xe9_F000\tang\t[1, 2, 3]\n",
        )
        .unwrap();
        let message = read_evaluation(&latin1, &LabelMap::Iemocap)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("latin1.txt:1, column \"utterance_id\": not UTF-8 at byte 23"),
            "{message}"
        );
        let empty = dir.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        let message = read_evaluation(&empty, &LabelMap::Iemocap)
            .unwrap_err()
            .to_string();
        assert!(message.contains("no EmoEvaluation/*.txt file"), "{message}");
    }
}
