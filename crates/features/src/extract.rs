//! openSMILE functionals from audio, with the openSMILE library that opensmile-python ships.
//!
//! **Reads** the audio below a directory:
//! - the `.wav` files: every one (a directory of files, an MSP-IMPROV tree), or, in an IEMOCAP
//!   release (a directory with `Session<n>/sentences/wav/`), only the utterances under
//!   `Session<n>/sentences/wav/`, not the whole dialogues beside them. The utterance id is the
//!   file's stem, which is what the corpora's label files name (`Ses01F_impro01_F000`,
//!   `MSP-IMPROV-S01A-F01-S-FM01`);
//! - or, where the tree holds `.stm` files (TED-LIUM: `<part>/stm/<talk>.stm` beside
//!   `<part>/sph/<talk>.sph`), the segments they list, `<talk> <channel> <speaker> <start> <end>
//!   <label> <transcript>` in seconds, leaving out `ignore_time_segment_in_scoring`; the id is
//!   `<talk>@<start>-<end>`. NIST SPHERE audio (uncompressed PCM, 16-bit, either byte order) is
//!   converted to WAV in a temporary directory first.
//!
//! Hidden files (macOS's `._*` copies) are skipped; two rows with one id are an error.
//!
//! **Writes** one CSV in SMILExtract's layout (`name;frameTime;<features>`, the name quoted;
//! gzip when its name ends in `.gz`), one row per utterance, atomically, which the feature stage
//! reads like any SMILExtract output. Written again, it keeps its rows and adds those of the
//! utterances it lacks, in path order after them.
//!
//! openSMILE runs in Python children (`assets/extract/smile.py`, embedded in the binary): each
//! loads `libSMILEapi` from the `opensmile` wheel (`pip install --no-deps opensmile==2.6.0`,
//! which `just setup` does; 1 MB, no pandas) through ctypes and runs the wheel's configuration
//! with openSMILE's own wave reader and emocycle's CSV sink (`assets/extract/csv_sink.conf.inc`).
//! Calling the C API through Python keeps emocycle free of unsafe FFI code and of a second copy
//! of the library's loading rules, at about 30 ms per utterance on one core. The library is
//! used through pip and never copied into this repository (audEERING's research licence).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use emocycle_artifact::AtomicFile;
use serde::{Deserialize, Serialize};

use crate::error::{FeatureError, Result};
use crate::reader::segment_id;

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

/// One utterance: an audio file, or a segment of one, and its id.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioFile {
    /// The file's stem, or `<talk>@<start>-<end>` for a segment.
    pub id: String,
    /// The file (`.wav`, or `.sph` for TED-LIUM).
    pub path: PathBuf,
    /// Start and end in seconds, for a segment of the file.
    pub segment: Option<(f64, f64)>,
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
    let mut transcripts = Vec::new();
    while let Some(dir) = roots.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io_error(&dir))? {
            let path = entry.map_err(io_error(&dir))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with('.') {
                continue;
            }
            let extension = |wanted: &str| {
                path.extension()
                    .is_some_and(|ext| ext.eq_ignore_ascii_case(wanted))
            };
            if path.is_dir() {
                roots.push(path);
            } else if extension("wav") {
                files.push(path);
            } else if extension("stm") {
                transcripts.push(path);
            }
        }
    }
    if !transcripts.is_empty() {
        transcripts.sort();
        return segments(&transcripts);
    }
    files.sort();
    if files.is_empty() {
        return Err(FeatureError::Extraction(format!(
            "{}: no .wav file (or .stm segment list) below this directory",
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
        audio.push(AudioFile {
            id,
            path,
            segment: None,
        });
    }
    Ok(audio)
}

/// The segments of TED-LIUM's `.stm` files (see the module docs); the audio of
/// `<part>/stm/<talk>.stm` is `<part>/sph/<talk>.sph`, or a `.sph` or `.wav` beside it.
fn segments(transcripts: &[PathBuf]) -> Result<Vec<AudioFile>> {
    let mut seen: HashMap<String, (PathBuf, usize)> = HashMap::new();
    let mut audio = Vec::new();
    for stm in transcripts {
        let text = std::fs::read(stm).map_err(io_error(stm))?;
        for (index, raw) in text.split(|&b| b == b'\n').enumerate() {
            let line_number = index as u64 + 1;
            let bad = |column: &str, message: String| {
                FeatureError::parse(stm, line_number, Some(column.to_string()), message)
            };
            let line = std::str::from_utf8(raw)
                .map_err(|_| bad("talk", "not UTF-8".to_string()))?
                .trim();
            if line.is_empty() || line.starts_with(";;") {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 6 {
                let missing = ["talk", "channel", "speaker", "start", "end", "label"][fields.len()];
                return Err(bad(
                    missing,
                    format!("{} fields; a segment line has at least 6", fields.len()),
                ));
            }
            if fields[6..].join(" ") == "ignore_time_segment_in_scoring" {
                continue;
            }
            let time = |column: &str, text: &str| {
                text.parse::<f64>()
                    .ok()
                    .filter(|t| t.is_finite() && *t >= 0.0)
                    .ok_or_else(|| bad(column, format!("not a time in seconds: {text:?}")))
            };
            let (start, end) = (time("start", fields[3])?, time("end", fields[4])?);
            if end <= start {
                return Err(bad(
                    "end",
                    format!("the segment ends ({end}) before it starts ({start})"),
                ));
            }
            let talk = fields[0];
            let dir = stm.parent().unwrap_or(Path::new("."));
            let candidates = [
                dir.parent()
                    .map(|part| part.join("sph").join(format!("{talk}.sph"))),
                Some(dir.join(format!("{talk}.sph"))),
                Some(dir.join(format!("{talk}.wav"))),
            ];
            let path = candidates
                .into_iter()
                .flatten()
                .find(|path| path.is_file())
                .ok_or_else(|| {
                    bad(
                        "talk",
                        format!("no audio for talk {talk:?} (looked for ../sph/{talk}.sph, {talk}.sph and {talk}.wav)"),
                    )
                })?;
            let id = segment_id(talk, start, Some(end));
            if let Some((first, line)) = seen.insert(id.clone(), (stm.clone(), index + 1)) {
                return Err(bad(
                    "start",
                    format!(
                        "segment {id} again (first in {}, line {line})",
                        first.display()
                    ),
                ));
            }
            audio.push(AudioFile {
                id,
                path,
                segment: Some((start, end)),
            });
        }
    }
    if audio.is_empty() {
        return Err(FeatureError::Extraction(format!(
            "{}: no segment to extract in the .stm files",
            transcripts[0].display()
        )));
    }
    Ok(audio)
}

/// Writes the samples of a NIST SPHERE file (TED-LIUM's `.sph`) as a 16-bit PCM WAV.
fn sphere_to_wav(sphere: &Path, wav: &Path) -> Result<()> {
    let bytes = std::fs::read(sphere).map_err(io_error(sphere))?;
    let fail =
        |message: String| FeatureError::Extraction(format!("{}: {message}", sphere.display()));
    if !bytes.starts_with(b"NIST_1A\n") {
        return Err(fail(
            "not a NIST SPHERE file (no NIST_1A header)".to_string(),
        ));
    }
    let header_text = String::from_utf8_lossy(&bytes[..bytes.len().min(1024 * 16)]);
    let mut lines = header_text.lines().skip(1);
    let header_bytes: usize = lines
        .next()
        .and_then(|size| size.trim().parse().ok())
        .filter(|&size| size <= bytes.len())
        .ok_or_else(|| fail("the header size is missing or beyond the file".to_string()))?;
    let mut fields: HashMap<&str, &str> = HashMap::new();
    for line in lines {
        let line = line.trim();
        if line == "end_head" {
            break;
        }
        let mut parts = line.splitn(3, ' ');
        if let (Some(key), Some(_), Some(value)) = (parts.next(), parts.next(), parts.next()) {
            fields.insert(key, value.trim());
        }
    }
    let number = |key: &str, default: u32| -> Result<u32> {
        fields.get(key).map_or(Ok(default), |value| {
            value
                .parse()
                .map_err(|_| fail(format!("{key} is not a number: {value:?}")))
        })
    };
    let rate = number("sample_rate", 0)?;
    let channels = number("channel_count", 1)?;
    let width = number("sample_n_bytes", 2)?;
    let coding = fields.get("sample_coding").copied().unwrap_or("pcm");
    if rate == 0 || channels == 0 {
        return Err(fail(
            "no sample_rate or channel_count in the header".to_string(),
        ));
    }
    if width != 2 || !coding.starts_with("pcm") || coding.contains("shorten") {
        return Err(fail(format!(
            "{width}-byte {coding} samples: only uncompressed 16-bit PCM is read (decompress with \
             sph2pipe first)"
        )));
    }
    let mut data = bytes[header_bytes..].to_vec();
    data.truncate(data.len() / 2 * 2);
    match fields.get("sample_byte_format").copied().unwrap_or("01") {
        "01" => {}
        "10" => data.chunks_exact_mut(2).for_each(|pair| pair.swap(0, 1)),
        other => {
            return Err(fail(format!(
                "sample_byte_format {other:?} is not 01 or 10"
            )));
        }
    }
    let mut out = Vec::with_capacity(44 + data.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&(channels as u16).to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * channels * 2).to_le_bytes());
    out.extend_from_slice(&((channels * 2) as u16).to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    std::fs::write(wav, out).map_err(io_error(wav))
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
    /// An openSMILE configuration of the user's instead of `feature_set`'s (the paper's
    /// `emobase2010.conf` from openSMILE's sources, which the wheel does not ship). It must read
    /// its input and write its functionals through the `source` and `sink` includes, as
    /// openSMILE 3's standard configurations do, and names its functionals level `func`.
    pub smile_config: Option<&'a Path>,
    /// The CSV to write.
    pub output: &'a Path,
    /// A Python with the `opensmile` wheel ([`default_python`]).
    pub python: &'a Path,
    /// Python children run side by side, each on a contiguous share of the files.
    pub jobs: usize,
    /// Leave out (and list) files openSMILE cannot read instead of stopping.
    pub skip_unreadable: bool,
    /// Extract every file again, even those the output already has.
    pub force: bool,
}

/// What [`extract`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractReport {
    /// Rows of the output now.
    pub rows: usize,
    /// Files extracted by this run.
    pub extracted: usize,
    /// Rows kept from an earlier run's output.
    pub kept: usize,
    /// Features per row (from the output's header).
    pub features: usize,
    /// Files left out (`skip_unreadable`), with openSMILE's message.
    pub skipped: Vec<(PathBuf, String)>,
}

/// The header line and the utterance ids of an earlier output (gzip or not).
fn existing_output(path: &Path) -> Result<(String, HashSet<String>)> {
    let mut lines = text_lines(path)?;
    let header = lines
        .next()
        .transpose()
        .map_err(io_error(path))?
        .unwrap_or_default();
    let mut ids = HashSet::new();
    for line in lines {
        let line = line.map_err(io_error(path))?;
        let id = line.split(';').next().unwrap_or("").trim_matches('\'');
        if !id.is_empty() {
            ids.insert(id.to_string());
        }
    }
    Ok((header, ids))
}

/// The lines of a text file, gunzipped when it starts with gzip's magic bytes.
fn text_lines(path: &Path) -> Result<std::io::Lines<Box<dyn BufRead>>> {
    let mut file = std::fs::File::open(path).map_err(io_error(path))?;
    let mut magic = [0u8; 2];
    let gzip = matches!(file.read(&mut magic), Ok(2) if magic == [0x1f, 0x8b]);
    let file = std::fs::File::open(path).map_err(io_error(path))?;
    let reader: Box<dyn BufRead> = if gzip {
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(file)))
    } else {
        Box::new(BufReader::new(file))
    };
    Ok(reader.lines())
}

/// A directory removed with everything in it when dropped.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Computes `request.feature_set` for every file the output does not have yet (every file
/// with `force`) and writes the CSV (gzip when its name ends in `.gz`): an earlier run's rows
/// first, then the new ones in path order. `progress` hears the number of finished files of
/// this run after each one.
pub fn extract(
    request: &ExtractRequest<'_>,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<ExtractReport> {
    if request.files.is_empty() {
        return Err(FeatureError::Extraction(
            "no audio file to extract".to_string(),
        ));
    }
    if let Some(config) = request.smile_config
        && !config.is_file()
    {
        return Err(FeatureError::Extraction(format!(
            "{}: no such openSMILE configuration",
            config.display()
        )));
    }
    let earlier = if !request.force && request.output.is_file() {
        Some(existing_output(request.output)?)
    } else {
        None
    };
    let files: Vec<AudioFile> = match &earlier {
        Some((_, ids)) => request
            .files
            .iter()
            .filter(|file| !ids.contains(&file.id))
            .cloned()
            .collect(),
        None => request.files.to_vec(),
    };
    let kept = earlier.as_ref().map_or(0, |(_, ids)| ids.len());
    if files.is_empty() {
        return Ok(ExtractReport {
            rows: kept,
            extracted: 0,
            kept,
            features: earlier
                .as_ref()
                .map_or(0, |(header, _)| header_width(header)),
            skipped: Vec::new(),
        });
    }
    let files = files.as_slice();
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
    // openSMILE reads WAV: each SPHERE file is converted once, whatever its segments.
    let mut converted: HashMap<PathBuf, PathBuf> = HashMap::new();
    for file in files {
        let is_sphere = file
            .path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("sph"));
        if is_sphere && !converted.contains_key(&file.path) {
            let wav = work.0.join(format!("audio{}.wav", converted.len()));
            sphere_to_wav(&file.path, &wav)?;
            converted.insert(file.path.clone(), wav);
        }
    }
    let jobs = request.jobs.clamp(1, files.len());
    let share = files.len().div_ceil(jobs);
    let parts: Vec<&[AudioFile]> = files.chunks(share).collect();
    let done = AtomicUsize::new(0);
    type Part = (Vec<PathBuf>, Vec<(PathBuf, String)>);
    let results: Vec<Result<Part>> = std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .iter()
            .enumerate()
            .map(|(index, part)| {
                let (work, sink, done, converted) = (&work.0, &sink, &done, &converted);
                scope.spawn(move || -> Result<Part> {
                    let mut outputs = Vec::new();
                    let mut skipped = Vec::new();
                    let mut remaining: &[AudioFile] = part;
                    // A failed file ends its process (see smile.py); with skip_unreadable a new
                    // process takes the files after it.
                    for attempt in 0.. {
                        if remaining.is_empty() {
                            break;
                        }
                        let name = format!("part{index}-{attempt}");
                        let (finished, failure) = run_child(
                            request, work, sink, converted, remaining, &name, done, progress,
                        )?;
                        outputs.push(work.join(format!("{name}.csv")));
                        let Some(message) = failure else { break };
                        if !request.skip_unreadable {
                            return Err(FeatureError::Extraction(message));
                        }
                        skipped.push((remaining[finished].path.clone(), message));
                        progress(done.fetch_add(1, Ordering::Relaxed) + 1);
                        remaining = &remaining[finished + 1..];
                    }
                    Ok((outputs, skipped))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("an extraction thread panicked"))
            .collect()
    });
    let parts: Vec<Part> = results.into_iter().collect::<Result<_>>()?;
    let skipped: Vec<(PathBuf, String)> = parts
        .iter()
        .flat_map(|(_, skipped)| skipped.iter().cloned())
        .collect();
    let outputs: Vec<PathBuf> = parts.into_iter().flat_map(|(outputs, _)| outputs).collect();
    let extracted = files.len() - skipped.len();
    let (rows, header) = merge(&outputs, earlier.as_ref(), request.output, extracted)?;
    Ok(ExtractReport {
        rows,
        extracted,
        kept,
        features: header_width(&header),
        skipped,
    })
}

/// Features in a SMILExtract CSV header (`name;frameTime;<features>`).
fn header_width(header: &str) -> usize {
    header.split(';').count().saturating_sub(2)
}

/// Runs one Python child on `files` (listing, output and log named `name` in `work`): how many
/// files it finished, and the message of the file that ended it early, if one did.
#[allow(clippy::too_many_arguments)]
fn run_child(
    request: &ExtractRequest<'_>,
    work: &Path,
    sink: &Path,
    converted: &HashMap<PathBuf, PathBuf>,
    files: &[AudioFile],
    name: &str,
    done: &AtomicUsize,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<(usize, Option<String>)> {
    let listing = work.join(format!("{name}.tsv"));
    let mut text = String::new();
    for file in files {
        let audio = converted.get(&file.path).unwrap_or(&file.path);
        let path = audio.to_str().ok_or_else(|| {
            FeatureError::Extraction(format!("{}: the path is not UTF-8", file.path.display()))
        })?;
        let (start, end) = file
            .segment
            .map_or((String::new(), String::new()), |(start, end)| {
                (start.to_string(), end.to_string())
            });
        text.push_str(&format!("{}\t{path}\t{start}\t{end}\n", file.id));
    }
    std::fs::write(&listing, text).map_err(io_error(&listing))?;
    let output = work.join(format!("{name}.csv"));
    let log = work.join(format!("{name}.log"));
    let stderr = std::fs::File::create(&log).map_err(io_error(&log))?;
    let mut child = Command::new(request.python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(request.smile_config.map_or_else(
            || PathBuf::from(request.feature_set.config()),
            Path::to_path_buf,
        ))
        .arg(sink)
        .arg(&listing)
        .arg(&output)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|source| {
            FeatureError::Extraction(format!(
                "cannot run {} ({source}); set EMOCYCLE_PYTHON to a Python with the opensmile \
                 package, or run `just setup`",
                request.python.display()
            ))
        })?;
    let mut finished = 0;
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            if line.starts_with("done ") {
                finished += 1;
                progress(done.fetch_add(1, Ordering::Relaxed) + 1);
            }
        }
    }
    let status = child.wait().map_err(io_error(request.python))?;
    if status.success() {
        return Ok((finished, None));
    }
    let mut message = String::new();
    let _ = std::fs::File::open(&log).and_then(|mut file| file.read_to_string(&mut message));
    let message = message
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    // The file it stopped at, named as the user gave it (not a converted SPHERE copy).
    let at = files
        .get(finished)
        .map_or(String::new(), |file| format!("{}: ", file.path.display()));
    Ok((
        finished,
        Some(if message.is_empty() {
            format!("{at}openSMILE stopped ({status}) without a message")
        } else {
            format!("{at}{message}")
        }),
    ))
}

/// Writes `output` atomically (gzip when its name ends in `.gz`): the header, an earlier
/// output's rows, then the parts' rows; checks that the new files gave one row each and that
/// every header agrees.
fn merge(
    parts: &[PathBuf],
    earlier: Option<&(String, HashSet<String>)>,
    output: &Path,
    expected_rows: usize,
) -> Result<(usize, String)> {
    let (atomic, mut file) = AtomicFile::create(output)?;
    let gzip = output
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("gz"));
    let mut writer: Box<dyn Write> = if gzip {
        Box::new(flate2::write::GzEncoder::new(
            &mut file,
            flate2::Compression::default(),
        ))
    } else {
        Box::new(&mut file)
    };
    let mut header: Option<String> = None;
    let mut rows = 0;
    let mut kept = 0;
    if let Some((earlier_header, _)) = earlier {
        writeln!(writer, "{earlier_header}").map_err(io_error(output))?;
        header = Some(earlier_header.clone());
        for line in text_lines(output)?.skip(1) {
            let line = line.map_err(io_error(output))?;
            if !line.is_empty() {
                writeln!(writer, "{line}").map_err(io_error(output))?;
                kept += 1;
            }
        }
    }
    for part in parts {
        // A part whose every file was skipped has no file at all.
        if !part.is_file() {
            continue;
        }
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
            Some(header) if earlier.is_some() && *header != first => {
                return Err(FeatureError::Extraction(format!(
                    "{} holds other features than this extraction (another feature set?): \
                     remove it or extract with --force",
                    output.display()
                )));
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
    let Some(header) = header else {
        return Err(FeatureError::Extraction(
            "openSMILE could read none of the files".to_string(),
        ));
    };
    writer.flush().map_err(io_error(output))?;
    drop(writer);
    atomic.commit(file)?;
    Ok((kept + rows, header))
}
