//! `emocycle extract` runs the real openSMILE library (the `opensmile` wheel that `just setup`
//! installs) on generated speech-like audio, and the feature stage reads what it writes.

use std::path::{Path, PathBuf};

use emocycle_features::{
    ExtractReport, ExtractRequest, FeatureSet, Layout, ReadOptions, audio_files, default_python,
    extract, feature_set_of, read_feature_file, read_header,
};

/// 16 kHz samples of `seconds` of a vibrato tone at `f0` Hz with a little noise.
fn samples(f0: f64, seconds: f64) -> Vec<i16> {
    let rate = 16_000.0;
    let count = (seconds * rate) as usize;
    let mut noise = 0x2545_f491_4f6c_dd1du64;
    (0..count)
        .map(|i| {
            noise ^= noise << 13;
            noise ^= noise >> 7;
            noise ^= noise << 17;
            let t = i as f64 / rate;
            let pitch = f0 * (1.0 + 0.05 * (std::f64::consts::TAU * 3.0 * t).sin());
            let envelope = 0.5 + 0.5 * (std::f64::consts::TAU * 0.7 * t).sin().abs();
            let value = 9000.0 * envelope * (std::f64::consts::TAU * pitch * t).sin()
                + 300.0 * ((noise >> 11) as f64 / (1u64 << 53) as f64 - 0.5);
            value as i16
        })
        .collect()
}

/// A NIST SPHERE file as TED-LIUM ships them: a 1024-byte header, then the samples.
fn write_sphere(path: &Path, samples: &[i16], big_endian: bool) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let header = format!(
        "NIST_1A\n   1024\nsample_count -i {}\nsample_rate -i 16000\nchannel_count -i 1\n\
         sample_n_bytes -i 2\nsample_byte_format -s2 {}\nsample_coding -s3 pcm\nend_head\n",
        samples.len(),
        if big_endian { "10" } else { "01" }
    );
    let mut bytes = header.into_bytes();
    bytes.resize(1024, b' ');
    for sample in samples {
        let pair = if big_endian {
            sample.to_be_bytes()
        } else {
            sample.to_le_bytes()
        };
        bytes.extend_from_slice(&pair);
    }
    std::fs::write(path, bytes).unwrap();
}

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
    run_with(input, output, feature_set, jobs, false).map(|report| report.rows)
}

fn run_with(
    input: &Path,
    output: &Path,
    feature_set: FeatureSet,
    jobs: usize,
    skip_unreadable: bool,
) -> Result<ExtractReport, String> {
    let files = audio_files(input).map_err(|e| e.to_string())?;
    let python = default_python();
    extract(
        &ExtractRequest {
            files: &files,
            feature_set,
            output,
            python: &python,
            jobs,
            skip_unreadable,
            force: false,
            smile_config: None,
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
    assert_eq!(feature_set_of(&table.names), Some("IS10"));
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
    assert_eq!(feature_set_of(&table.names), Some("eGeMAPS"));

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
        message.contains("no .wav file (or .stm segment list) below"),
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
            skip_unreadable: false,
            force: false,
            smile_config: None,
        },
        &|_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(message.contains("set EMOCYCLE_PYTHON"), "{message}");
}

#[test]
fn ted_lium_segments_are_cut_from_sphere_audio_in_either_byte_order() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("TEDLIUM_release2");
    let talk = samples(140.0, 6.0);
    // The same samples in both byte orders: the same features.
    write_sphere(&tree.join("train/sph/TalkA_2010.sph"), &talk, true);
    write_sphere(&tree.join("dev/sph/TalkB_2011.sph"), &talk, false);
    let stm = |name: &str| {
        format!(
            ";; comments open with two semicolons\n\
             {name} 1 {name} 0.50 2.25 <o,f0,male> so this is the first segment\n\
             {name} 1 inter_segment_gap 2.25 2.90 <o,,unknown> ignore_time_segment_in_scoring\n\
             {name} 1 {name} 2.90 5.10 <o,f0,male> and the second\n"
        )
    };
    std::fs::create_dir_all(tree.join("train/stm")).unwrap();
    std::fs::create_dir_all(tree.join("dev/stm")).unwrap();
    std::fs::write(tree.join("train/stm/TalkA_2010.stm"), stm("TalkA_2010")).unwrap();
    std::fs::write(tree.join("dev/stm/TalkB_2011.stm"), stm("TalkB_2011")).unwrap();

    let files = audio_files(&tree).unwrap();
    let ids: Vec<&str> = files.iter().map(|file| file.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "TalkB_2011@0.5-2.25",
            "TalkB_2011@2.9-5.1",
            "TalkA_2010@0.5-2.25",
            "TalkA_2010@2.9-5.1"
        ]
    );
    let output = dir.path().join("tedlium.csv");
    assert_eq!(run(&tree, &output, FeatureSet::Is10, 2), Ok(4));
    let table = read_feature_file(&output, &ReadOptions::default()).unwrap();
    assert_eq!(table.ids, ids);
    let columns = &table.chunks[0].columns;
    for column in columns {
        // Big- and little-endian copies of one talk: the same features, segment by segment.
        assert_eq!(column[0], column[2]);
        assert_eq!(column[1], column[3]);
    }
    let f0 = table
        .names
        .iter()
        .position(|n| n == "F0final_sma_amean")
        .unwrap();
    assert_ne!(
        columns[f0][0], columns[f0][1],
        "two segments, two sets of functionals"
    );

    // A segment openSMILE reads from the talk equals the same samples in a file of their own.
    let alone = dir.path().join("alone");
    let first: Vec<i16> = talk[(0.5 * 16_000.0) as usize..(2.25 * 16_000.0) as usize].to_vec();
    write_sphere(&alone.join("sph/Cut.sph"), &first, false);
    std::fs::create_dir_all(alone.join("stm")).unwrap();
    std::fs::write(
        alone.join("stm/Cut.stm"),
        "Cut 1 Cut 0 1.75 <o,f0,male> the cut\n",
    )
    .unwrap();
    let cut = dir.path().join("cut.csv");
    assert_eq!(run(&alone, &cut, FeatureSet::Is10, 1), Ok(1));
    let cut = read_feature_file(&cut, &ReadOptions::default()).unwrap();
    let loudness = table
        .names
        .iter()
        .position(|n| n == "pcm_loudness_sma_amean")
        .unwrap();
    let (segment, whole) = (columns[loudness][2], cut.chunks[0].columns[loudness][0]);
    assert!(
        (segment - whole).abs() <= 1e-3 * whole.abs(),
        "{segment} vs {whole}"
    );

    // Lines that do not parse name the file, line and column.
    std::fs::write(
        tree.join("dev/stm/TalkB_2011.stm"),
        "TalkB_2011 1 TalkB_2011 3.0 2.0 <o,f0,male> backwards\n",
    )
    .unwrap();
    let message = audio_files(&tree).unwrap_err().to_string();
    assert!(
        message.contains("TalkB_2011.stm:1, column \"end\""),
        "{message}"
    );
    std::fs::write(
        tree.join("dev/stm/TalkB_2011.stm"),
        "NoSuchTalk 1 x 1.0 2.0 <o> text\n",
    )
    .unwrap();
    let message = audio_files(&tree).unwrap_err().to_string();
    assert!(
        message.contains("no audio for talk \"NoSuchTalk\""),
        "{message}"
    );
}

#[test]
fn a_rerun_extracts_only_new_files_and_gzip_unreadable_and_mixed_sets_are_handled() {
    let dir = tempfile::tempdir().unwrap();
    let wavs = dir.path().join("wavs");
    write_wav(&wavs.join("a.wav"), 150.0, 1.0);
    write_wav(&wavs.join("b.wav"), 250.0, 1.0);
    let output = dir.path().join("out.csv.gz");
    let first = run_with(&wavs, &output, FeatureSet::Egemaps, 2, false).unwrap();
    assert_eq!((first.rows, first.extracted, first.kept), (2, 2, 0));
    // gzip, read as any other feature file.
    assert_eq!(std::fs::read(&output).unwrap()[..2], [0x1f, 0x8b]);
    let table = read_feature_file(&output, &ReadOptions::default()).unwrap();
    assert_eq!(table.ids, ["a", "b"]);

    // Nothing new: nothing extracted. One new file: only it, after the kept rows.
    let again = run_with(&wavs, &output, FeatureSet::Egemaps, 2, false).unwrap();
    assert_eq!((again.rows, again.extracted, again.kept), (2, 0, 2));
    write_wav(&wavs.join("0.wav"), 180.0, 1.0);
    let more = run_with(&wavs, &output, FeatureSet::Egemaps, 2, false).unwrap();
    assert_eq!((more.rows, more.extracted, more.kept), (3, 1, 2));
    let table = read_feature_file(&output, &ReadOptions::default()).unwrap();
    assert_eq!(table.ids, ["a", "b", "0"]);

    // Another feature set into the same file is refused; the file is untouched.
    write_wav(&wavs.join("c.wav"), 200.0, 1.0);
    let message = run_with(&wavs, &output, FeatureSet::Is10, 1, false).unwrap_err();
    assert!(message.contains("holds other features"), "{message}");
    assert_eq!(
        read_feature_file(&output, &ReadOptions::default())
            .unwrap()
            .ids
            .len(),
        3
    );

    // An unreadable file is listed and left out when asked, and stops the run otherwise.
    std::fs::write(wavs.join("d.wav"), b"not audio").unwrap();
    let fresh = dir.path().join("fresh.csv");
    let report = run_with(&wavs, &fresh, FeatureSet::Egemaps, 2, true).unwrap();
    assert_eq!((report.rows, report.extracted), (4, 4));
    assert_eq!(report.skipped.len(), 1, "{:?}", report.skipped);
    assert!(report.skipped[0].0.ends_with("d.wav"));
    assert!(
        report.skipped[0].1.contains("Error reading"),
        "{:?}",
        report.skipped
    );
    let table = read_feature_file(&fresh, &ReadOptions::default()).unwrap();
    assert_eq!(table.ids, ["0", "a", "b", "c"]);
}

#[test]
fn a_configuration_of_ones_own_is_run_like_the_built_in_ones() {
    let dir = tempfile::tempdir().unwrap();
    let wavs = dir.path().join("wavs");
    write_wav(&wavs.join("a.wav"), 150.0, 1.0);
    write_wav(&wavs.join("b.wav"), 240.0, 1.2);
    let files = audio_files(&wavs).unwrap();
    let python = default_python();
    // The wheel's own IS10 configuration, given by its path as a user's would be.
    let package = std::process::Command::new(&python)
        .args([
            "-c",
            "import importlib.util; print(list(importlib.util.find_spec('opensmile').submodule_search_locations)[0])",
        ])
        .output()
        .unwrap();
    let package = PathBuf::from(String::from_utf8(package.stdout).unwrap().trim());
    let config = package.join("core/config/is09-13/IS10_paraling_compat.conf");
    let run = |output: &Path, smile_config: Option<&Path>| {
        extract(
            &ExtractRequest {
                files: &files,
                feature_set: FeatureSet::Egemaps,
                smile_config,
                output,
                python: &python,
                jobs: 1,
                skip_unreadable: false,
                force: false,
            },
            &|_| {},
        )
    };
    let own = dir.path().join("own.csv");
    let report = run(&own, Some(&config)).unwrap();
    assert_eq!((report.rows, report.features), (2, 1582));
    let built_in = dir.path().join("built_in.csv");
    run_with(&wavs, &built_in, FeatureSet::Is10, 1, false).unwrap();
    assert_eq!(
        std::fs::read(&own).unwrap(),
        std::fs::read(&built_in).unwrap()
    );
    let missing = dir.path().join("emobase2010.conf");
    let message = run(&dir.path().join("x.csv"), Some(&missing))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("no such openSMILE configuration"),
        "{message}"
    );
}
