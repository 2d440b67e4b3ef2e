//! openSMILE functionals from audio, with the openSMILE library that opensmile-python ships.
//!
//! **Reads** the `.wav` files below a directory: every one (a directory of files, an
//! MSP-IMPROV tree), or, in an IEMOCAP release (a directory with `Session<n>/sentences/wav/`),
//! only the utterances under `Session<n>/sentences/wav/`, not the whole dialogues beside them.
//! Hidden files (macOS's `._*` copies) are skipped. The utterance id is the file's stem, which
//! is what the corpora's label files name (`Ses01F_impro01_F000`,
//! `MSP-IMPROV-S01A-F01-S-FM01`); two files with one stem are an error.
//!
//! **Writes** one CSV in SMILExtract's layout (`name;frameTime;<features>`, the name quoted),
//! one row per file in path order, atomically, which the feature stage reads like any
//! SMILExtract output.
//!
//! openSMILE runs in Python children (`assets/extract/smile.py`, embedded in the binary): each
//! loads `libSMILEapi` from the `opensmile` wheel (`pip install --no-deps opensmile==2.6.0`,
//! which `just setup` does; 1 MB, no pandas) through ctypes and runs the wheel's configuration
//! with openSMILE's own wave reader and emocycle's CSV sink (`assets/extract/csv_sink.conf.inc`).
//! Calling the C API through Python keeps emocycle free of unsafe FFI code and of a second copy
//! of the library's loading rules, at about 30 ms per utterance on one core. The library is
//! used through pip and never copied into this repository (audEERING's research licence).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use emocycle_artifact::AtomicFile;
use serde::{Deserialize, Serialize};

use crate::error::{FeatureError, Result};

const SCRIPT: &str = include_str!("../assets/extract/smile.py");
const SINK: &str = include_str!("../assets/extract/csv_sink.conf.inc");

/// The openSMILE feature sets `extract` computes (functionals, one row per file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FeatureSet {
    /// INTERSPEECH 2010 Paralinguistic Challenge, 1582 functionals: the paper's emobase2010
    /// functionals under IS10's names and settings (opensmile-python's `FeatureSet.IS10`).
    Is10,
    /// eGeMAPS v02, 88 functionals.
    Egemaps,
    /// ComParE 2016, 6373 functionals.
    Compare,
}

impl FeatureSet {
    /// The configuration below the wheel's `core/config/`.
    fn config(self) -> &'static str {
        match self {
            Self::Is10 => "is09-13/IS10_paraling_compat.conf",
            Self::Egemaps => "egemaps/v02/eGeMAPSv02.conf",
            Self::Compare => "compare/ComParE_2016.conf",
        }
    }

    /// Functionals per file.
    pub fn width(self) -> usize {
        match self {
            Self::Is10 => 1582,
            Self::Egemaps => 88,
            Self::Compare => 6373,
        }
    }
}

/// One audio file and its utterance id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioFile {
    /// The file's stem.
    pub id: String,
    /// The file.
    pub path: PathBuf,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> FeatureError + '_ {
    move |source| FeatureError::io(path, source)
}

/// The audio files below `input` (see the module docs for which), sorted by path.
pub fn audio_files(input: &Path) -> Result<Vec<AudioFile>> {
    if !input.is_dir() {
        return Err(FeatureError::Extraction(format!(
            "{}: not a directory of audio files",
            input.display()
        )));
    }
    // An IEMOCAP release keeps each utterance in Session<n>/sentences/wav/ and the whole
    // dialogues in Session<n>/dialog/wav/: only the former are utterances.
    let mut roots = Vec::new();
    for entry in std::fs::read_dir(input).map_err(io_error(input))? {
        let path = entry.map_err(io_error(input))?.path();
        let sentences = path.join("sentences").join("wav");
        let is_session = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with("Session"));
        if is_session && sentences.is_dir() {
            roots.push(sentences);
        }
    }
    if roots.is_empty() {
        roots.push(input.to_path_buf());
    }
    let mut files = Vec::new();
    while let Some(dir) = roots.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io_error(&dir))? {
            let path = entry.map_err(io_error(&dir))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                roots.push(path);
            } else if path
                .extension()
                .is_some_and(|ext| ext.eq_ignore_ascii_case("wav"))
            {
                files.push(path);
            }
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(FeatureError::Extraction(format!(
            "{}: no .wav file below this directory",
            input.display()
        )));
    }
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    let mut audio = Vec::with_capacity(files.len());
    for path in files {
        let id = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .ok_or_else(|| {
                FeatureError::Extraction(format!(
                    "{}: the file name is not UTF-8, so it cannot be an utterance id",
                    path.display()
                ))
            })?
            .to_string();
        if id.contains(['\t', '\n', '\'', ';']) {
            return Err(FeatureError::Extraction(format!(
                "{}: a tab, newline, quote or ';' in the name cannot be written as an utterance id",
                path.display()
            )));
        }
        if let Some(first) = seen.insert(id.clone(), path.clone()) {
            return Err(FeatureError::Extraction(format!(
                "{} and {} share the utterance id {id:?} (the file stem)",
                first.display(),
                path.display()
            )));
        }
        audio.push(AudioFile { id, path });
    }
    Ok(audio)
}

/// The Python that has the `opensmile` wheel: `EMOCYCLE_PYTHON`, else the virtualenv that
/// `just setup` makes (`EMOCYCLE_TORCH_VENV`, default
/// `${XDG_CACHE_HOME:-~/.cache}/emocycle/torch-2.11.0`).
pub fn default_python() -> PathBuf {
    if let Some(python) = std::env::var_os("EMOCYCLE_PYTHON") {
        return PathBuf::from(python);
    }
    let venv = std::env::var_os("EMOCYCLE_TORCH_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("EMOCYCLE_CACHE")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("XDG_CACHE_HOME")
                        .map(|dir| PathBuf::from(dir).join("emocycle"))
                })
                .or_else(|| {
                    std::env::var_os("HOME")
                        .map(|home| PathBuf::from(home).join(".cache").join("emocycle"))
                })
                .unwrap_or_else(|| PathBuf::from(".cache/emocycle"));
            cache.join("torch-2.11.0")
        });
    venv.join("bin").join("python")
}

/// What [`extract`] computes.
#[derive(Debug, Clone)]
pub struct ExtractRequest<'a> {
    /// The files, in output order.
    pub files: &'a [AudioFile],
    /// The feature set.
    pub feature_set: FeatureSet,
    /// The CSV to write.
    pub output: &'a Path,
    /// A Python with the `opensmile` wheel ([`default_python`]).
    pub python: &'a Path,
    /// Python children run side by side, each on a contiguous share of the files.
    pub jobs: usize,
}

/// A directory removed with everything in it when dropped.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Computes `request.feature_set` for every file and writes the CSV. `progress` hears the
/// number of finished files after each one.
pub fn extract(request: &ExtractRequest<'_>, progress: &(dyn Fn(usize) + Sync)) -> Result<usize> {
    let files = request.files;
    if files.is_empty() {
        return Err(FeatureError::Extraction(
            "no audio file to extract".to_string(),
        ));
    }
    let work = WorkDir(std::env::temp_dir().join(format!(
        "emocycle-extract-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |t| t.as_nanos())
    )));
    std::fs::create_dir_all(&work.0).map_err(io_error(&work.0))?;
    let sink = work.0.join("csv_sink.conf.inc");
    std::fs::write(&sink, SINK).map_err(io_error(&sink))?;
    let jobs = request.jobs.clamp(1, files.len());
    let share = files.len().div_ceil(jobs);
    let parts: Vec<&[AudioFile]> = files.chunks(share).collect();
    let done = AtomicUsize::new(0);
    let results: Vec<Result<PathBuf>> = std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .iter()
            .enumerate()
            .map(|(index, part)| {
                let (work, sink, done) = (&work.0, &sink, &done);
                scope.spawn(move || -> Result<PathBuf> {
                    let listing = work.join(format!("part{index}.tsv"));
                    let mut text = String::new();
                    for file in part.iter() {
                        let path = file.path.to_str().ok_or_else(|| {
                            FeatureError::Extraction(format!(
                                "{}: the path is not UTF-8",
                                file.path.display()
                            ))
                        })?;
                        text.push_str(&format!("{}\t{path}\n", file.id));
                    }
                    std::fs::write(&listing, text).map_err(io_error(&listing))?;
                    let output = work.join(format!("part{index}.csv"));
                    let log = work.join(format!("part{index}.log"));
                    let stderr = std::fs::File::create(&log).map_err(io_error(&log))?;
                    let mut child = Command::new(request.python)
                        .arg("-c")
                        .arg(SCRIPT)
                        .arg(request.feature_set.config())
                        .arg(sink)
                        .arg(&listing)
                        .arg(&output)
                        .stdin(Stdio::null())
                        .stdout(Stdio::piped())
                        .stderr(stderr)
                        .spawn()
                        .map_err(|source| {
                            FeatureError::Extraction(format!(
                                "cannot run {} ({source}); set EMOCYCLE_PYTHON to a Python with \
                                 the opensmile package, or run `just setup`",
                                request.python.display()
                            ))
                        })?;
                    if let Some(stdout) = child.stdout.take() {
                        for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                            if line.starts_with("done ") {
                                progress(done.fetch_add(1, Ordering::Relaxed) + 1);
                            }
                        }
                    }
                    let status = child.wait().map_err(io_error(request.python))?;
                    if !status.success() {
                        let mut message = String::new();
                        let _ = std::fs::File::open(&log)
                            .and_then(|mut file| file.read_to_string(&mut message));
                        let message = message
                            .lines()
                            .filter(|line| !line.trim().is_empty())
                            .collect::<Vec<_>>()
                            .join("; ");
                        return Err(FeatureError::Extraction(if message.is_empty() {
                            format!("openSMILE stopped ({status}) without a message")
                        } else {
                            message
                        }));
                    }
                    Ok(output)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("an extraction thread panicked"))
            .collect()
    });
    let outputs: Vec<PathBuf> = results.into_iter().collect::<Result<_>>()?;
    merge(&outputs, request.output, files.len())
}

/// Concatenates the parts' rows under the first part's header into `output`, atomically, and
/// checks that every file gave one row.
fn merge(parts: &[PathBuf], output: &Path, expected_rows: usize) -> Result<usize> {
    let (atomic, mut writer) = AtomicFile::create(output)?;
    let mut header: Option<String> = None;
    let mut rows = 0;
    for part in parts {
        let file = std::fs::File::open(part).map_err(io_error(part))?;
        let mut lines = BufReader::new(file).lines();
        let first = lines
            .next()
            .transpose()
            .map_err(io_error(part))?
            .unwrap_or_default();
        match &header {
            None => {
                writeln!(writer, "{first}").map_err(io_error(output))?;
                header = Some(first);
            }
            Some(header) if *header != first => {
                return Err(FeatureError::Extraction(
                    "the parts of the extraction have different feature names".to_string(),
                ));
            }
            Some(_) => {}
        }
        for line in lines {
            let line = line.map_err(io_error(part))?;
            if !line.is_empty() {
                writeln!(writer, "{line}").map_err(io_error(output))?;
                rows += 1;
            }
        }
    }
    if rows != expected_rows {
        return Err(FeatureError::Extraction(format!(
            "openSMILE wrote {rows} rows for {expected_rows} files"
        )));
    }
    atomic.commit(writer)?;
    Ok(rows)
}
