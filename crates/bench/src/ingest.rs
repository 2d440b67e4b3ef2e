//! Ingestion benchmark: a SMILExtract-sized CSV through emocycle's feature stage and through
//! pandas + pyarrow, each in a child process of its own.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use emocycle_features::{ReadOptions, read_header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::table::{Table, verdict};

pub(crate) const ROWS: usize = 20_000;
/// Bump when the generated text changes, so cached files from older generators are replaced.
const GENERATOR_VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Stamp {
    generator: u32,
    rows: usize,
    width: usize,
    bytes: u64,
    sha256: String,
}

/// xorshift-multiply (splitmix64): deterministic on every platform, no dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// The generated CSV, ready for both tools.
pub(crate) struct Dataset {
    pub path: PathBuf,
    pub bytes: u64,
    pub rows: usize,
    pub width: usize,
}

/// Returns the cached CSV, generating it when it is missing or its stamp does not match its
/// size and sha256 (hashing it also leaves it in the page cache, so both tools start warm).
pub(crate) fn dataset(repo: &Path, cache: &Path) -> Result<Dataset> {
    let fixture = repo.join("fixtures/corpus/labelled.csv.gz");
    let (_, names) = read_header(&fixture, &ReadOptions::default())
        .with_context(|| format!("reading the feature names of {}", fixture.display()))?;
    let dir = cache.join("bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("smile-{ROWS}x{}.csv", names.len()));
    let stamp_path = path.with_extension("stamp.json");
    let stamp: Option<Stamp> = std::fs::read(&stamp_path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    if let Some(stamp) = stamp
        && stamp.generator == GENERATOR_VERSION
        && stamp.rows == ROWS
        && stamp.width == names.len()
        && std::fs::metadata(&path).map(|m| m.len()).ok() == Some(stamp.bytes)
        && emocycle_artifact::sha256_file(&path)? == stamp.sha256
    {
        eprintln!("bench: reusing {}", path.display());
        return Ok(Dataset {
            path,
            bytes: stamp.bytes,
            rows: ROWS,
            width: names.len(),
        });
    }
    eprintln!("bench: generating {} ({ROWS} rows)", path.display());
    let stamp = generate(&path, &names)?;
    std::fs::write(&stamp_path, serde_json::to_vec_pretty(&stamp)?)?;
    Ok(Dataset {
        path,
        bytes: stamp.bytes,
        rows: ROWS,
        width: names.len(),
    })
}

/// Writes what `SMILExtract -csvoutput` writes for IS10 functionals: `;`, a `name;frameTime;...`
/// header, quoted ids, `%e` values with six decimals and whole numbers for the frame positions
/// and onset counts. Per column a fixed order of magnitude, as real functionals have.
fn generate(path: &Path, names: &[String]) -> Result<Stamp> {
    let temporary = path.with_extension("csv.tmp");
    let mut hasher = Sha256::new();
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&temporary)?);
    let mut random = SplitMix(2019);
    let integer: Vec<bool> = names
        .iter()
        .map(|n| n.ends_with("maxPos") || n.ends_with("minPos") || n.contains("numOnsets"))
        .collect();
    let magnitude: Vec<i64> = names.iter().map(|_| random.below(7) as i64 - 4).collect();
    let mut line = String::from("name;frameTime");
    for name in names {
        line.push(';');
        line.push_str(name);
    }
    line.push('\n');
    let mut bytes = 0u64;
    let mut emit = |line: &str, out: &mut BufWriter<File>| -> Result<()> {
        hasher.update(line.as_bytes());
        bytes += line.len() as u64;
        out.write_all(line.as_bytes())?;
        Ok(())
    };
    emit(&line, &mut out)?;
    for row in 0..ROWS {
        line.clear();
        line.push_str(&format!("'bench_{row:06}';0.000000"));
        for (column, &whole) in integer.iter().enumerate() {
            line.push(';');
            if whole {
                line.push_str(&random.below(1000).to_string());
                continue;
            }
            let draw = random.next();
            let mantissa = 1_000_000 + (draw >> 8) % 9_000_000;
            let exponent = magnitude[column] + ((draw & 0xff) % 3) as i64 - 1;
            let sign = if (draw >> 63) == 1 && draw & 0x300 == 0 {
                "-"
            } else {
                ""
            };
            let (exp_sign, exp) = if exponent < 0 {
                ('-', -exponent)
            } else {
                ('+', exponent)
            };
            use std::fmt::Write as _;
            let _ = write!(
                line,
                "{sign}{}.{:06}e{exp_sign}{exp:02}",
                mantissa / 1_000_000,
                mantissa % 1_000_000
            );
        }
        line.push('\n');
        emit(&line, &mut out)?;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&temporary, path)?;
    let sha256 = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Stamp {
        generator: GENERATOR_VERSION,
        rows: ROWS,
        width: names.len(),
        bytes,
        sha256,
    })
}

/// What one child run reported, plus its wall time as seen from here.
struct Run {
    /// The work itself (emocycle: the whole feature stage; pandas: read_csv + to_parquet).
    seconds: f64,
    /// The child process from spawn to exit, start-up and imports included.
    process_seconds: f64,
    peak_rss_kib: u64,
    output_bytes: u64,
}

fn run_child(command: &mut Command) -> Result<serde_json::Value> {
    let output = command
        .output()
        .with_context(|| format!("starting {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).with_context(|| format!("{command:?} printed {stdout:?}"))
}

fn number(value: &serde_json::Value, key: &str) -> Result<f64> {
    value[key]
        .as_f64()
        .with_context(|| format!("child output lacks {key}: {value}"))
}

fn size_of(path: &Path) -> u64 {
    if path.is_dir() {
        std::fs::read_dir(path)
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| size_of(&entry.path()))
            .sum()
    } else {
        std::fs::metadata(path).map_or(0, |m| m.len())
    }
}

fn emocycle_run(data: &Dataset, out: &Path) -> Result<Run> {
    let _ = std::fs::remove_dir_all(out);
    let child = std::env::current_exe()?.with_file_name("emocycle-bench-ingest");
    if !child.exists() {
        bail!(
            "{} is missing: build the package (`cargo build --release -p emocycle-bench`), not only its main binary",
            child.display()
        );
    }
    let started = Instant::now();
    let report = run_child(Command::new(&child).arg(&data.path).arg(out))?;
    let process_seconds = started.elapsed().as_secs_f64();
    let rows = report["rows"].as_u64().unwrap_or(0) as usize;
    if rows != data.rows || report["width"].as_u64() != Some(data.width as u64) {
        bail!("emocycle ingested {report}, expected {} rows", data.rows);
    }
    let run = Run {
        seconds: number(&report, "seconds")?,
        process_seconds,
        peak_rss_kib: number(&report, "peak_rss_kib")? as u64,
        output_bytes: size_of(&out.join("bench.parquet")),
    };
    std::fs::remove_dir_all(out)?;
    Ok(run)
}

fn pandas_run(python: &Path, script: &Path, data: &Dataset, out: &Path) -> Result<Run> {
    let _ = std::fs::remove_file(out);
    let started = Instant::now();
    let report = run_child(Command::new(python).arg(script).arg(&data.path).arg(out))?;
    let process_seconds = started.elapsed().as_secs_f64();
    if report["rows"].as_u64() != Some(data.rows as u64) {
        bail!("pandas read {report}, expected {} rows", data.rows);
    }
    let run = Run {
        seconds: number(&report, "read_s")? + number(&report, "write_s")?,
        process_seconds,
        peak_rss_kib: number(&report, "peak_rss_kib")? as u64,
        output_bytes: size_of(out),
    };
    std::fs::remove_file(out)?;
    Ok(run)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The pandas virtualenv's python, created by tools/bench/setup.sh when missing.
fn pandas_python(repo: &Path) -> Result<PathBuf> {
    let script = repo.join("tools/bench/setup.sh");
    let output = Command::new("bash")
        .arg(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !output.status.success() {
        bail!("{} failed ({})", script.display(), output.status);
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim().to_string(),
    ))
}

/// Runs both tools `runs` times, alternating, and renders the section.
pub(crate) fn bench(repo: &Path, cache: &Path, warmup: usize, runs: usize) -> Result<String> {
    let python = pandas_python(repo)?;
    let data = dataset(repo, cache)?;
    let script = repo.join("tools/bench/pandas_ingest.py");
    let work = cache.join("bench");
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    // The first run of either tool is its slowest (up to 1.9x for emocycle after a build,
    // 1.7x for pandas): files and libraries come into the page cache, the allocator grows.
    // Untimed rounds first keep that out of both medians.
    for round in 0..warmup + runs {
        if round < warmup {
            eprintln!("bench: ingestion warm-up round {} of {warmup}", round + 1);
        } else {
            eprintln!("bench: ingestion round {} of {runs}", round - warmup + 1);
        }
        let emocycle = emocycle_run(&data, &work.join("out-emocycle"))?;
        let pandas = pandas_run(&python, &script, &data, &work.join("out-pandas.parquet"))?;
        if round >= warmup {
            ours.push(emocycle);
            theirs.push(pandas);
        }
    }
    let float32_bytes = (data.rows * data.width * 4) as f64;
    let mib = |bytes: f64| bytes / (1u64 << 20) as f64;
    let mut table = Table::new(&[
        "tool",
        "seconds per run",
        "median s",
        "process wall, median s",
        "peak RSS MiB (max of runs)",
        "peak RSS / float32 data",
        "parquet MiB",
    ]);
    let mut summary = |name: &str, runs: &[Run]| -> (f64, f64) {
        let mut seconds: Vec<f64> = runs.iter().map(|r| r.seconds).collect();
        let listed = seconds
            .iter()
            .map(|s| format!("{s:.2}"))
            .collect::<Vec<_>>()
            .join(", ");
        let middle = median(&mut seconds);
        let mut process: Vec<f64> = runs.iter().map(|r| r.process_seconds).collect();
        let peak = runs.iter().map(|r| r.peak_rss_kib).max().unwrap_or(0) as f64 * 1024.0;
        table.row(vec![
            name.to_string(),
            listed,
            format!("{middle:.2}"),
            format!("{:.2}", median(&mut process)),
            format!("{:.0}", mib(peak)),
            format!("{:.2}x", peak / float32_bytes),
            format!("{:.0}", mib(runs[0].output_bytes as f64)),
        ]);
        (middle, peak)
    };
    let (ours_s, ours_peak) = summary(
        "emocycle feature stage (CSV -> parquet + normalisation stats)",
        &ours,
    );
    let (theirs_s, _) = summary(
        "pandas `read_csv(sep=';')` + `to_parquet` (pyarrow, snappy)",
        &theirs,
    );
    let speedup = theirs_s / ours_s;
    let memory = ours_peak / float32_bytes;
    // Ingestion only has to stay far below the GAN's minutes: beating pandas is the bar, not a
    // multiple of it.
    let mut targets = Table::new(&["target", "measured", "verdict"]);
    targets.row(vec![
        "emocycle faster than pandas".into(),
        format!("{speedup:.2}x"),
        verdict(speedup > 1.0),
    ]);
    targets.row(vec![
        "emocycle peak RSS < 2x float32 data".into(),
        format!("{memory:.2}x"),
        verdict(memory < 2.0),
    ]);
    Ok(format!(
        "## Ingestion: {} rows x {} features, {:.0} MB CSV ({:.0} MiB as float32), {runs} runs each after {warmup} untimed\n\n{}\n{}\n",
        data.rows,
        data.width,
        data.bytes as f64 / 1e6,
        mib(float32_bytes),
        table.render(),
        targets.render()
    ))
}
