//! The CSV and ARFF readers on arbitrary and mutated bytes: whatever the file holds, reading it
//! returns rows or an error, never a panic; what it returns is what the file says; and a line
//! that the one-pass line parser takes gives the same bits when the general, field-by-field
//! parser has to read it instead.
//!
//! The cases are drawn from a fixed seed, so a failure repeats; `EMOCYCLE_FUZZ_CASES` (default
//! 1500 per test) runs more.

use std::panic::AssertUnwindSafe;
use std::path::Path;

use emocycle_features::{FeatureTable, NanPolicy, ReadOptions, read_feature_file};
use emocycle_rng::SplitMix64;

fn cases() -> usize {
    std::env::var("EMOCYCLE_FUZZ_CASES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(1500)
}

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/formats")
        .join(name);
    std::fs::read(path).unwrap()
}

/// Bytes that matter to the readers, more often than chance would pick them.
const SPECIAL: &[u8] = b";,'\"\n\r\t ?@{}-+.eE0123456789\xff\xc3\x00";

fn mutate(bytes: &mut Vec<u8>, random: &mut SplitMix64) {
    let edits = 1 + random.below(4);
    for _ in 0..edits {
        let len = bytes.len() as u64;
        let byte = |random: &mut SplitMix64| {
            if random.below(2) == 0 {
                SPECIAL[random.below(SPECIAL.len() as u64) as usize]
            } else {
                random.next_u64() as u8
            }
        };
        match random.below(6) {
            0 if len > 0 => {
                let at = random.below(len) as usize;
                bytes[at] = byte(random);
            }
            1 => {
                let at = random.below(len + 1) as usize;
                bytes.insert(at, byte(random));
            }
            2 if len > 0 => {
                let at = random.below(len) as usize;
                let end = (at + 1 + random.below(8) as usize).min(bytes.len());
                bytes.drain(at..end);
            }
            3 => {
                let at = random.below(len + 1) as usize;
                bytes.truncate(at);
            }
            4 if len > 0 => {
                // A line (or any stretch) repeated elsewhere.
                let from = random.below(len) as usize;
                let to = (from + 1 + random.below(80) as usize).min(bytes.len());
                let piece = bytes[from..to].to_vec();
                let at = random.below(bytes.len() as u64 + 1) as usize;
                bytes.splice(at..at, piece);
            }
            _ => {
                let at = random.below(len + 1) as usize;
                bytes.insert(at, b'\n');
            }
        }
    }
}

/// Reads `bytes` as a file called `name`; a panic fails the test with the bytes that caused it.
fn read(dir: &Path, name: &str, bytes: &[u8], options: &ReadOptions) -> Option<FeatureTable> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    match std::panic::catch_unwind(AssertUnwindSafe(|| read_feature_file(&path, options))) {
        Ok(result) => result.ok(),
        Err(_) => panic!(
            "the reader panicked on {name}:\n{}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

/// The values of a table, row-major.
fn rows(table: &FeatureTable) -> Vec<Vec<f32>> {
    let mut rows = Vec::new();
    for chunk in &table.chunks {
        for row in 0..chunk.rows {
            rows.push(chunk.columns.iter().map(|column| column[row]).collect());
        }
    }
    rows
}

/// What a read table must satisfy whatever the bytes were.
fn check_consistent(table: &FeatureTable, policy: NanPolicy) {
    let width = table.names.len();
    assert!(width > 0);
    let rows = rows(table);
    assert_eq!(rows.len(), table.ids.len());
    assert_eq!(table.lines.len(), table.ids.len());
    assert!(table.lines.windows(2).all(|pair| pair[0] < pair[1]));
    for row in &rows {
        assert_eq!(row.len(), width);
        if policy != NanPolicy::Zero {
            assert!(row.iter().all(|value| value.is_finite()), "{row:?}");
        }
    }
    assert!(table.ids.iter().all(|id| !id.is_empty()));
}

#[test]
fn mutated_files_are_read_or_refused_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let seeds: [(&str, Vec<u8>); 5] = [
        ("a.csv", fixture("smilextract.csv")),
        ("b.arff", fixture("smilextract.arff")),
        ("c.csv", fixture("opensmile_python.csv")),
        ("d.csv", fixture("smilextract_headerless.csv")),
        ("e.csv", fixture("smilextract_headerless_no_frametime.csv")),
    ];
    let names: Vec<String> = String::from_utf8(fixture("feature_names.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let mut random = SplitMix64::new(0x5EED_F00D);
    let mut read_ok = 0;
    for case in 0..cases() {
        let (name, original) = &seeds[case % seeds.len()];
        let mut bytes = original.clone();
        mutate(&mut bytes, &mut random);
        let policy = [NanPolicy::Error, NanPolicy::DropRow, NanPolicy::Zero][case % 3];
        let options = ReadOptions {
            feature_names: name.starts_with('d').then(|| names.clone()),
            nan_policy: policy,
            chunk_rows: 1 + random.below(4) as usize,
            memory_map: random.below(2) == 0,
            ..ReadOptions::default()
        };
        if let Some(table) = read(dir.path(), name, &bytes, &options) {
            check_consistent(&table, policy);
            read_ok += 1;
        }
    }
    // Most mutations break a file, but the readers must still take many of them.
    assert!(read_ok > cases() / 50, "only {read_ok} files read");
}

#[test]
fn arbitrary_bytes_are_refused_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut random = SplitMix64::new(7);
    for case in 0..cases() {
        let len = random.below(300) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                if random.below(3) == 0 {
                    SPECIAL[random.below(SPECIAL.len() as u64) as usize]
                } else {
                    random.next_u64() as u8
                }
            })
            .collect();
        let name = if case % 2 == 0 { "x.csv" } else { "x.arff" };
        if let Some(table) = read(dir.path(), name, &bytes, &ReadOptions::default()) {
            check_consistent(&table, NanPolicy::Error);
        }
    }
}

/// A number as SMILExtract (`%e`), pandas (shortest) or a person (plain) would write it.
fn number_text(random: &mut SplitMix64) -> (String, f32) {
    // Any finite normal float, either sign: exponent field 1 to 254, any mantissa.
    let exponent = 1 + random.below(254) as u32;
    let mantissa = random.next_u64() as u32 & 0x007F_FFFF;
    let sign = (random.below(2) as u32) << 31;
    let value = f32::from_bits(sign | exponent << 23 | mantissa);
    let text = match random.below(4) {
        0 => format!("{value:.6e}"),
        1 => format!("{value}"),
        2 => format!("{value:e}"),
        _ => format!("{}", random.below(100_000)),
    };
    let parsed: f32 = text.parse().unwrap();
    (text, parsed)
}

#[test]
fn valid_rows_read_back_the_same_bits_whichever_parser_takes_them() {
    // Each file twice: plain (the one-pass line parser) and with a space after every
    // delimiter, which only the general field-by-field parser accepts.
    let dir = tempfile::tempdir().unwrap();
    let mut random = SplitMix64::new(0xC0FF_EE00);
    for case in 0..cases() / 10 {
        let width = 1 + random.below(12) as usize;
        let rows = 1 + random.below(20) as usize;
        let arff = case % 2 == 1;
        let names: Vec<String> = (0..width).map(|j| format!("f{j}")).collect();
        let mut expected = Vec::new();
        let mut lines = Vec::new();
        for row in 0..rows {
            let (texts, values): (Vec<String>, Vec<f32>) =
                (0..width).map(|_| number_text(&mut random)).unzip();
            expected.push(values);
            lines.push((format!("'u{row}'"), texts));
        }
        let render = |spaced: bool| -> String {
            let delimiter = if arff { "," } else { ";" };
            let join = if spaced {
                format!("{delimiter} ")
            } else {
                delimiter.to_string()
            };
            let mut text = String::new();
            if arff {
                text.push_str("@relation r\n@attribute name string\n");
                for name in &names {
                    text.push_str(&format!("@attribute {name} numeric\n"));
                }
                text.push_str("@data\n");
            } else {
                text.push_str(&format!("name;frameTime;{}\n", names.join(";")));
            }
            for (id, texts) in &lines {
                let mut fields = vec![id.clone()];
                if !arff {
                    fields.push("0.000000".into());
                }
                fields.extend(texts.iter().cloned());
                text.push_str(&fields.join(&join));
                text.push('\n');
            }
            text
        };
        let name = if arff { "v.arff" } else { "v.csv" };
        for spaced in [false, true] {
            let table = read(
                dir.path(),
                name,
                render(spaced).as_bytes(),
                &ReadOptions::default(),
            )
            .unwrap_or_else(|| panic!("refused:\n{}", render(spaced)));
            assert_eq!(table.names, names);
            let got: Vec<Vec<u32>> = self::rows(&table)
                .iter()
                .map(|row| row.iter().map(|v| v.to_bits()).collect())
                .collect();
            let want: Vec<Vec<u32>> = expected
                .iter()
                .map(|row| row.iter().map(|v| v.to_bits()).collect())
                .collect();
            assert_eq!(got, want, "spaced {spaced}:\n{}", render(spaced));
        }
    }
}
