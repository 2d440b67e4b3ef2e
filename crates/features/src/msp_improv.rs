//! MSP-IMPROV's own label file, read as the corpus distributes it: `Evaluation.txt`, so that
//! no converter to a CSV manifest is needed.
//!
//! The file holds one block per utterance: a consensus line, then one line per rater, which is
//! skipped:
//!
//! ```text
//! UTD-IMPROV-S01A-F01-S-FM01.avi; A; A:4.000000; V:1.500000; D:4.000000 ; N:3.000000;
//! F01-FM-Rater5; Angry; Frustrated; A:4.000000; V:1.000000; D:4.000000; N:3.000000;
//! M03-MM-Rater1; Angry; ; A:4.000000; V:2.000000; D:4.000000; N:3.000000;
//! ```
//!
//! A consensus line's fields are separated by `;`: the video's file name, the consensus
//! category (`A` angry, `H` happy, `N` neutral, `S` sad, `O` other, `X` no agreement), and the
//! mean activation, valence, dominance and naturalness (`NaN` where unrated), which are kept as
//! the extra columns `activation`, `valence`, `dominance` and `naturalness`.
//!
//! The utterance id is the audio file's stem, `MSP-IMPROV-S01A-F01-S-FM01` for the video
//! `UTD-IMPROV-S01A-F01-S-FM01.avi`: the corpus ships the audio as
//! `session<n>/<dialog>/<type>/MSP-IMPROV-<...>.wav`, so features extracted from those files
//! carry that id. The speaker is the id's second part (`F01`: the female actor of session 1)
//! and the session its number (`session1`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::emotion::LabelMap;
use crate::error::{FeatureError, Result};
use crate::manifest::{LabelRow, Manifest, label_line_text};

/// The label file's name in the corpus's top directory.
pub(crate) const FILE_NAME: &str = "Evaluation.txt";
/// How a consensus line opens.
const VIDEO_PREFIX: &str = "UTD-IMPROV-";
/// How the corpus's audio files (and so the utterance ids) open.
const AUDIO_PREFIX: &str = "MSP-IMPROV-";
/// The fields of a consensus line, as errors name them.
const COLUMNS: [&str; 6] = [
    "utterance_id",
    "emotion",
    "activation",
    "valence",
    "dominance",
    "naturalness",
];
/// The prefix of each rating field (`A:4.0`), in [`COLUMNS`] order from the third.
const RATINGS: [&str; 4] = ["A:", "V:", "D:", "N:"];

/// The label file `path` names: `path` itself, or `Evaluation.txt` in a directory.
fn label_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(FILE_NAME)
    } else {
        path.to_path_buf()
    }
}

/// Whether `path` holds MSP-IMPROV's own labels: a directory with an `Evaluation.txt`, or a file
/// whose first non-empty line is a consensus line.
pub(crate) fn is_evaluation(path: &Path) -> bool {
    if path.is_dir() {
        return path.join(FILE_NAME).is_file();
    }
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]);
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .is_some_and(|line| line.starts_with(VIDEO_PREFIX))
}

/// Speaker and session of an id's part after the prefix: `S01A-F01-S-FM01` -> (`F01`,
/// `session1`).
fn speaker_and_session(rest: &str) -> Option<(String, String)> {
    let mut parts = rest.split('-');
    let dialog = parts.next()?;
    let speaker = parts.next()?;
    let (gender, number) = speaker.split_at_checked(1)?;
    let session: u32 = number.parse().ok()?;
    let valid = dialog.len() >= 3
        && matches!(gender, "F" | "M")
        && number.len() == 2
        && parts.next().is_some_and(|kind| !kind.is_empty())
        && parts.next().is_some_and(|utterance| !utterance.is_empty());
    valid.then(|| (speaker.to_string(), format!("session{session}")))
}

/// Reads MSP-IMPROV's `Evaluation.txt` (the file, or the directory that holds it).
pub(crate) fn read_evaluation(path: &Path, label_map: &LabelMap) -> Result<Manifest> {
    let file = label_file(path);
    let bytes = std::fs::read(&file).map_err(|source| FeatureError::io(&file, source))?;
    let mut rows: HashMap<String, LabelRow> = HashMap::new();
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_number = index as u64 + 1;
        if !raw.starts_with(VIDEO_PREFIX.as_bytes()) {
            continue;
        }
        let line = label_line_text(raw, &file, line_number, b';', &COLUMNS, "MSP-IMPROV")?;
        let bad = |column: &str, message: String| {
            FeatureError::parse(&file, line_number, Some(column.to_string()), message)
        };
        let fields: Vec<&str> = line.trim_end().split(';').map(str::trim).collect();
        let video = fields[0];
        let rest = video
            .strip_prefix(VIDEO_PREFIX)
            .and_then(|rest| rest.strip_suffix(".avi"))
            .filter(|rest| !rest.is_empty())
            .ok_or_else(|| {
                bad(
                    "utterance_id",
                    format!("{video:?} is not a video name like UTD-IMPROV-S01A-F01-S-FM01.avi"),
                )
            })?;
        let (speaker, session) = speaker_and_session(rest).ok_or_else(|| {
            bad(
                "utterance_id",
                format!(
                    "{video:?}: expected <dialog>-<speaker>-<type>-<utterance> after \
                     UTD-IMPROV-, like S01A-F01-S-FM01"
                ),
            )
        })?;
        let code = fields.get(1).copied().unwrap_or_default();
        if code.is_empty() {
            return Err(bad("emotion", "missing consensus category".to_string()));
        }
        let mut extras = Vec::with_capacity(RATINGS.len());
        for (slot, prefix) in RATINGS.iter().enumerate() {
            let column = COLUMNS[slot + 2];
            let field = fields.get(slot + 2).copied().unwrap_or_default();
            let value = field
                .strip_prefix(prefix)
                .map(str::trim)
                .filter(|value| *value == "NaN" || value.parse::<f64>().is_ok())
                .ok_or_else(|| {
                    bad(
                        column,
                        format!("expected {prefix}<number or NaN>, got {field:?}"),
                    )
                })?;
            extras.push(value.to_string());
        }
        let id = format!("{AUDIO_PREFIX}{rest}");
        let row = LabelRow {
            emotion: label_map.map(code),
            code: code.to_string(),
            session: Some(session),
            speaker: Some(speaker),
            extras,
            line: line_number,
        };
        match rows.get(&id) {
            // The same block written twice says nothing new.
            Some(previous) if previous.code == row.code && previous.extras == row.extras => {}
            Some(previous) => {
                return Err(bad(
                    "utterance_id",
                    format!(
                        "{video:?} has a second, different consensus line (the first is line {})",
                        previous.line
                    ),
                ));
            }
            None => {
                rows.insert(id, row);
            }
        }
    }
    if rows.is_empty() {
        return Err(FeatureError::Empty {
            path: file,
            message: "no consensus line (UTD-IMPROV-<...>.avi; <category>; A:..; V:..; D:..; \
                      N:..;) in the MSP-IMPROV label file"
                .to_string(),
        });
    }
    Ok(Manifest {
        path: path.to_path_buf(),
        files: vec![file],
        rows,
        extra_columns: COLUMNS[2..].iter().map(|name| name.to_string()).collect(),
        has_session: true,
        has_speaker: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emotion::Emotion;

    const EVALUATION: &str = "\
UTD-IMPROV-S01A-F01-S-FM01.avi; A; A:4.000000; V:1.500000; D:4.000000 ; N:3.000000;\n\
F01-FM-Rater5; Angry; Frustrated; A:4.000000; V:1.000000; D:4.000000; N:3.000000;\n\
M03-MM-Rater1; Angry; ; A:4.000000; V:2.000000; D:4.000000; N:3.000000;\n\
\n\
UTD-IMPROV-S02H-M01-P-MF03.avi; H; A:3.500000; V:4.250000; D:3.000000 ; N:NaN;\n\
F02-FF-Rater2; Happy; ; A:3.000000; V:4.000000; D:3.000000; N:NaN;\n\
\n\
UTD-IMPROV-S15N-F06-T-FF02.avi; X; A:2.000000; V:3.000000; D:2.500000 ; N:4.000000;\n\
UTD-IMPROV-S03S-M05-R-MM01.avi; S; A:1.750000; V:2.000000; D:2.000000 ; N:4.500000;\n";

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn the_file_or_its_directory_is_read_as_distributed() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), FILE_NAME, EVALUATION.as_bytes());
        assert!(is_evaluation(&file));
        assert!(is_evaluation(dir.path()));
        let csv = write(dir.path(), "labels.csv", b"utterance_id,emotion\nu1,A\n");
        assert!(!is_evaluation(&csv));
        for path in [&file, &dir.path().to_path_buf()] {
            let manifest = read_evaluation(path, &LabelMap::MspImprov).unwrap();
            assert_eq!(manifest.rows.len(), 4);
            assert_eq!(manifest.files, std::slice::from_ref(&file));
        }
        let manifest = read_evaluation(&file, &LabelMap::MspImprov).unwrap();
        let angry = &manifest.rows["MSP-IMPROV-S01A-F01-S-FM01"];
        assert_eq!(
            (angry.code.as_str(), angry.emotion),
            ("A", Some(Emotion::Angry))
        );
        assert_eq!(angry.speaker.as_deref(), Some("F01"));
        assert_eq!(angry.session.as_deref(), Some("session1"));
        assert_eq!(
            angry.extras,
            ["4.000000", "1.500000", "4.000000", "3.000000"]
        );
        assert_eq!(angry.line, 1);
        let happy = &manifest.rows["MSP-IMPROV-S02H-M01-P-MF03"];
        assert_eq!(happy.emotion, Some(Emotion::Happy));
        assert_eq!(happy.extras[3], "NaN");
        assert_eq!(
            manifest.rows["MSP-IMPROV-S15N-F06-T-FF02"]
                .session
                .as_deref(),
            Some("session6")
        );
        assert_eq!(manifest.out_of_scope_codes()["X"], 1);
        assert_eq!(
            manifest.extra_columns,
            ["activation", "valence", "dominance", "naturalness"]
        );
    }

    #[test]
    fn bad_lines_name_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let error = |text: &[u8]| {
            let file = write(dir.path(), "bad.txt", text);
            read_evaluation(&file, &LabelMap::MspImprov)
                .unwrap_err()
                .to_string()
        };
        let message = error(b"\nUTD-IMPROV-S01A.avi; A; A:1; V:1; D:1 ; N:1;\n");
        assert!(
            message.contains("bad.txt:2, column \"utterance_id\""),
            "{message}"
        );
        let message = error(b"UTD-IMPROV-S01A-F01-S-FM01.avi; A; A:1; V:high; D:1 ; N:1;\n");
        assert!(
            message.contains("bad.txt:1, column \"valence\""),
            "{message}"
        );
        let message = error(b"UTD-IMPROV-S01A-F01-S-FM01.avi; A; A:1; V:1\n");
        assert!(
            message.contains("bad.txt:1, column \"dominance\""),
            "{message}"
        );
        let message = error(b"UTD-IMPROV-S01A-F01-S-FM01.avi; ; A:1; V:1; D:1 ; N:1;\n");
        assert!(
            message.contains("bad.txt:1, column \"emotion\""),
            "{message}"
        );
        let message = error(
            b"UTD-IMPROV-S01A-F01-S-FM01.avi; A; A:1; V:1; D:1 ; N:1;\n\
              UTD-IMPROV-S01A-F01-S-FM01.avi; S; A:1; V:1; D:1 ; N:1;\n",
        );
        assert!(
            message.contains("bad.txt:2, column \"utterance_id\""),
            "{message}"
        );
        let message = error(b"UTD-IMPROV-S01A-F01-S-FM01.avi; \xc4; A:1; V:1; D:1 ; N:1;\n");
        assert!(
            message.contains("bad.txt:1, column \"emotion\": not UTF-8 at byte 33"),
            "{message}"
        );
        let message = error(b"F01-FM-Rater5; Angry; ; A:4; V:1; D:4; N:3;\n");
        assert!(message.contains("no consensus line"), "{message}");
        // A block written twice is accepted.
        let twice = write(
            dir.path(),
            "twice.txt",
            b"UTD-IMPROV-S01A-F01-S-FM01.avi; A; A:1; V:1; D:1 ; N:1;\n\
              UTD-IMPROV-S01A-F01-S-FM01.avi; A; A:1; V:1; D:1 ; N:1;\n",
        );
        assert_eq!(
            read_evaluation(&twice, &LabelMap::MspImprov)
                .unwrap()
                .rows
                .len(),
            1
        );
    }
}
