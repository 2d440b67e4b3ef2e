//! `emocycle extract` runs the real openSMILE library (the `opensmile` wheel that `just setup`
//! installs) on generated speech-like audio, and the feature stage reads what it writes.

use std::path::{Path, PathBuf};

use emocycle_features::{
    ExtractRequest, FeatureSet, Layout, ReadOptions, audio_files, default_python, extract,
    read_feature_file, read_header,
};

/// A 16 kHz mono 16-bit WAV of `seconds` of a vibrato tone at `f0` Hz with a little noise.
fn write_wav(path: &Path, f0: f64, seconds: f64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let rate = 16_000u32;
    let samples = (seconds * f64::from(rate)) as usize;
    let mut noise = 0x2545_f491_4f6c_dd1du64;
    let mut data = Vec::with_capacity(samples * 2);
    for i in 0..samples {
        noise ^= noise << 13;
        noise ^= noise >> 7;
        noise ^= noise << 17;
        let t = i as f64 / f64::from(rate);
        let pitch = f0 * (1.0 + 0.05 * (std::f64::consts::TAU * 3.0 * t).sin());
        let envelope = (std::f64::consts::PI * t / seconds).sin();
        let value = 9000.0 * envelope * (std::f64::consts::TAU * pitch * t).sin()
            + 300.0 * ((noise >> 11) as f64 / (1u64 << 53) as f64 - 0.5);
        data.extend_from_slice(&(value as i16).to_le_bytes());
    }
    let mut bytes = Vec::with_capacity(44 + data.len());
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    bytes.extend_from_slice(&16u32.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes()); // PCM
    bytes.extend_from_slice(&1u16.to_le_bytes()); // mono
    bytes.extend_from_slice(&rate.to_le_bytes());
    bytes.extend_from_slice(&(rate * 2).to_le_bytes());
    bytes.extend_from_slice(&2u16.to_le_bytes());
    bytes.extend_from_slice(&16u16.to_le_bytes());
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&(data.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&data);
    std::fs::write(path, bytes).unwrap();
}

fn run(input: &Path, output: &Path, feature_set: FeatureSet, jobs: usize) -> Result<usize, String> {
    let files = audio_files(input).map_err(|e| e.to_string())?;
    let python = default_python();
    extract(
        &ExtractRequest {
            files: &files,
            feature_set,
            output,
            python: &python,
            jobs,
        },
        &|_| {},
    )
    .map_err(|e| e.to_string())
}

#[test]
fn an_iemocap_tree_gives_is10_rows_named_like_its_labels() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("IEMOCAP_full_release");
    let sentences = tree.join("Session1/sentences/wav/Ses01F_impro01");
    write_wav(&sentences.join("Ses01F_impro01_F000.wav"), 210.0, 1.5);
    write_wav(&sentences.join("Ses01F_impro01_M001.wav"), 120.0, 2.0);
    write_wav(
        &tree.join("Session2/sentences/wav/Ses02M_script01_1/Ses02M_script01_1_F003.wav"),
        230.0,
        1.2,
    );
    // Whole dialogues and macOS copies are not utterances.
    write_wav(
        &tree.join("Session1/dialog/wav/Ses01F_impro01.wav"),
        180.0,
        0.5,
    );
    std::fs::write(
        sentences.join("._Ses01F_impro01_F000.wav"),
        b"resource fork",
    )
    .unwrap();

    let files = audio_files(&tree).unwrap();
    let ids: Vec<&str> = files.iter().map(|file| file.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "Ses01F_impro01_F000",
            "Ses01F_impro01_M001",
            "Ses02M_script01_1_F003"
        ]
    );
    let output = dir.path().join("out/iemocap_is10.csv");
    assert_eq!(run(&tree, &output, FeatureSet::Is10, 2), Ok(3));
    let table = read_feature_file(&output, &ReadOptions::default()).unwrap();
    assert_eq!(table.layout, Layout::SmileCsv);
    assert_eq!(table.ids, ids);
    assert_eq!(table.names.len(), 1582);
    // The names are those of the embedded corpus, which opensmile-python's IS10 wrote.
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/corpus/labelled.csv.gz");
    let (_, fixture_names) = read_header(&fixture, &ReadOptions::default()).unwrap();
    assert_eq!(table.names, fixture_names);
    let columns = &table.chunks[0].columns;
    assert!(columns.iter().flatten().all(|v| v.is_finite()));
    // Different voices give different functionals (F0's mean among them).
    let f0 = table
        .names
        .iter()
        .position(|n| n == "F0final_sma_amean")
        .unwrap();
    assert_ne!(columns[f0][0], columns[f0][1]);
    // No working files are left beside the output.
    let left: Vec<PathBuf> = std::fs::read_dir(output.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(left, std::slice::from_ref(&output));
}

#[test]
fn egemaps_of_a_flat_directory_and_errors_that_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let flat = dir.path().join("wavs");
    write_wav(&flat.join("a.wav"), 150.0, 1.0);
    write_wav(&flat.join("b.WAV"), 250.0, 1.0);
    let output = dir.path().join("egemaps.csv");
    assert_eq!(run(&flat, &output, FeatureSet::Egemaps, 1), Ok(2));
    let table = read_feature_file(&output, &ReadOptions::default()).unwrap();
    assert_eq!(table.ids, ["a", "b"]);
    assert_eq!(table.names.len(), FeatureSet::Egemaps.width());

    // A file openSMILE cannot read: the message names it, and no output is written.
    std::fs::write(flat.join("c.wav"), b"not a wav file").unwrap();
    let broken = dir.path().join("broken.csv");
    let message = run(&flat, &broken, FeatureSet::Is10, 2).unwrap_err();
    assert!(
        message.contains("c.wav: openSMILE could not read it"),
        "{message}"
    );
    assert!(!broken.exists());

    // Two files with one stem, no audio at all, no Python with opensmile.
    write_wav(&flat.join("more/a.wav"), 150.0, 0.5);
    let message = run(&flat, &broken, FeatureSet::Is10, 1).unwrap_err();
    assert!(
        message.contains("share the utterance id \"a\""),
        "{message}"
    );
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let message = run(&empty, &broken, FeatureSet::Is10, 1).unwrap_err();
    assert!(
        message.contains("no .wav file below this directory"),
        "{message}"
    );
    let files = audio_files(&dir.path().join("wavs/more")).unwrap();
    let missing = dir.path().join("no-python");
    let message = extract(
        &ExtractRequest {
            files: &files,
            feature_set: FeatureSet::Is10,
            output: &broken,
            python: &missing,
            jobs: 1,
        },
        &|_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(message.contains("set EMOCYCLE_PYTHON"), "{message}");
}
