//! Every layout openSMILE and opensmile-python write is read to the same values.

use std::io::Write;
use std::path::{Path, PathBuf};

use emocycle_features::{Layout, NanPolicy, ReadOptions, UtteranceIds, read_feature_file};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/formats")
        .join(name)
}

fn feature_names() -> Vec<String> {
    std::fs::read_to_string(fixture("feature_names.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

const IDS: [&str; 6] = [
    "Ses01F_0001",
    "Ses01M_0002",
    "Ses02F_0003",
    "Ses02M_0004",
    "Ses01F_0005",
    "Ses02F_0006",
];

/// Row-major values of the fixtures, as f32.
fn expected_rows() -> Vec<[f32; 5]> {
    vec![
        [12.0, 0.622463, -12.34, 25.0, 0.001],
        [7.0, 0.51, -11.0, 31.25, -0.002],
        [30.0, 0.7, -9.5, 40.0, 0.0],
        [3.0, 0.4, -13.0, 18.0, 0.0005],
        [15.0, 0.65, -12.0, 22.0, 0.0015],
        [21.0, 0.69, -10.0, 39.0, -0.001],
    ]
}

fn rows_of(table: &emocycle_features::FeatureTable) -> Vec<Vec<f32>> {
    let mut rows = Vec::new();
    for chunk in &table.chunks {
        for row in 0..chunk.rows {
            rows.push(chunk.columns.iter().map(|column| column[row]).collect());
        }
    }
    rows
}

fn options() -> ReadOptions {
    ReadOptions {
        chunk_rows: 4,
        ..ReadOptions::default()
    }
}

fn assert_standard_table(table: &emocycle_features::FeatureTable, layout: Layout) {
    assert_eq!(table.layout, layout);
    assert_eq!(table.names, feature_names());
    assert_eq!(table.ids, IDS);
    let rows = rows_of(table);
    assert_eq!(rows.len(), 6);
    for (row, expected) in rows.iter().zip(expected_rows()) {
        assert_eq!(row.as_slice(), expected.as_slice());
    }
    // Chunks are exactly chunk_rows long, but for the last.
    assert_eq!(
        table
            .chunks
            .iter()
            .map(|chunk| chunk.rows)
            .collect::<Vec<_>>(),
        [4, 2]
    );
}

#[test]
fn smilextract_csv_with_header() {
    let table = read_feature_file(&fixture("smilextract.csv"), &options()).unwrap();
    assert_standard_table(&table, Layout::SmileCsv);
    assert_eq!(table.lines, [2, 3, 4, 5, 6, 7]);
    assert_eq!(
        table.sha256,
        emocycle_artifact::sha256_file(&fixture("smilextract.csv")).unwrap()
    );
}

#[test]
fn smilextract_csv_without_header_with_and_without_frame_time() {
    let options = ReadOptions {
        feature_names: Some(feature_names()),
        ..options()
    };
    for name in [
        "smilextract_headerless.csv",
        "smilextract_headerless_no_frametime.csv",
    ] {
        let table = read_feature_file(&fixture(name), &options).unwrap();
        assert_standard_table(&table, Layout::SmileCsvHeaderless);
        assert_eq!(table.lines[0], 1, "{name}");
    }
}

#[test]
fn every_plain_layout_reads_the_same_mapped_or_read_into_buffers() {
    for (name, feature_names) in [
        ("smilextract.csv", None),
        ("smilextract_headerless.csv", Some(feature_names())),
        (
            "smilextract_headerless_no_frametime.csv",
            Some(feature_names()),
        ),
        ("opensmile_python.csv", None),
        ("smilextract.arff", None),
    ] {
        let [mapped, read] = [true, false].map(|memory_map| {
            read_feature_file(
                &fixture(name),
                &ReadOptions {
                    feature_names: feature_names.clone(),
                    memory_map,
                    ..options()
                },
            )
            .unwrap()
        });
        assert_same_tables(&mapped, &read);
        assert_eq!(
            mapped.sha256,
            emocycle_artifact::sha256_file(&fixture(name)).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn headerless_without_names_asks_for_them() {
    let error = read_feature_file(&fixture("smilextract_headerless.csv"), &options()).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("smilextract_headerless.csv:1"),
        "{message}"
    );
    assert!(message.contains("feature_names"), "{message}");
}

#[test]
fn opensmile_python_pandas_csv() {
    let table = read_feature_file(&fixture("opensmile_python.csv"), &options()).unwrap();
    assert_standard_table(&table, Layout::OpensmilePython);
}

#[test]
fn opensmile_python_ids_are_file_stems_or_what_the_corpus_asks_for() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, rows: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("file,start,end,a,b\n{rows}")).unwrap();
        path
    };
    // `process_files([...]).to_csv()`: the paths as given, whole files.
    let whole = write(
        "whole.csv",
        "wav/Ses01F_impro01_F000.wav,0 days,0 days 00:00:02.908500,1.0,2.0\n\
         /data/IEMOCAP/Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_M001.wav,0 days,\
         0 days 00:00:01.500000,3.0,4.0\n",
    );
    let read = |path: &Path, ids: UtteranceIds| {
        read_feature_file(
            path,
            &ReadOptions {
                utterance_ids: ids,
                ..options()
            },
        )
    };
    let table = read(&whole, UtteranceIds::Stem).unwrap();
    assert_eq!(table.ids, ["Ses01F_impro01_F000", "Ses01F_impro01_M001"]);
    let table = read(&whole, UtteranceIds::Path).unwrap();
    assert_eq!(table.ids[0], "wav/Ses01F_impro01_F000.wav");
    let table = read(&whole, UtteranceIds::Segment).unwrap();
    assert_eq!(
        table.ids,
        ["Ses01F_impro01_F000@0-2.9085", "Ses01F_impro01_M001@0-1.5"]
    );
    // One file cut into segments (the second row on the field-by-field path: a NaN zeroed).
    let segments = write(
        "segments.csv",
        "talk.wav,0 days,0 days 00:00:02.500000,1.0,2.0\n\
         talk.wav,0 days 00:00:02.500000,0 days 00:01:04.750000,nan,4.0\n\
         talk.wav,1 days 00:00:00,NaT,5.0,6.0\n",
    );
    let options_zero = ReadOptions {
        utterance_ids: UtteranceIds::Segment,
        nan_policy: NanPolicy::Zero,
        ..options()
    };
    let table = read_feature_file(&segments, &options_zero).unwrap();
    assert_eq!(table.ids, ["talk@0-2.5", "talk@2.5-64.75", "talk@86400-"]);
    // As stems, a later segment would be named like the whole file: refused, with the way out.
    let as_stems = ReadOptions {
        utterance_ids: UtteranceIds::Stem,
        ..options_zero.clone()
    };
    let message = read_feature_file(&segments, &as_stems)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("segments.csv:3, column \"start\": this row is a segment of \"talk.wav\" starting at 2.5 s"),
        "{message}"
    );
    assert!(
        message.contains("\"utterance_ids\": \"segment\""),
        "{message}"
    );
    let bad = write("bad.csv", "x.wav,0 days,soon,1.0,2.0\n");
    let message = read(&bad, UtteranceIds::Segment).unwrap_err().to_string();
    assert!(
        message.contains("bad.csv:2, column \"end\": not a time"),
        "{message}"
    );
}

#[test]
fn arff_with_class_and_missing_class() {
    let table = read_feature_file(&fixture("smilextract.arff"), &options()).unwrap();
    assert_standard_table(&table, Layout::Arff);
    let classes = table.classes.as_ref().unwrap();
    assert_eq!(classes[0].as_deref(), Some("ang"));
    assert_eq!(classes[5], None);
    assert_eq!(table.lines[0], 13);
}

#[test]
fn arff_rows_on_either_path_give_the_same_classes_and_values() {
    // Rows 1 and 4 (an unknown class) take the one-pass parser; row 2 (a missing value,
    // zeroed by the policy) and row 3 (a quoted class with the delimiter in it) take the
    // field-by-field path.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.arff");
    std::fs::write(
        &path,
        "@relation x\n@attribute name string\n@attribute a numeric\n@attribute b numeric\n\
         @attribute class {ang,'n,u'}\n@data\n\
         'u1',1.500000e+00,2,ang\n\
         'u2',?,3.000000e-01,ang\n\
         'u3',4,5.000000e-01,'n,u'\n\
         % a comment\n\
         'u4',-6.250000e-02,7,?\n",
    )
    .unwrap();
    let table = read_feature_file(
        &path,
        &ReadOptions {
            nan_policy: NanPolicy::Zero,
            ..options()
        },
    )
    .unwrap();
    assert_eq!(table.ids, ["u1", "u2", "u3", "u4"]);
    assert_eq!(table.lines, [7, 8, 9, 11]);
    assert_eq!(
        rows_of(&table),
        [[1.5, 2.0], [0.0, 0.3], [4.0, 0.5], [-0.0625, 7.0]]
    );
    let classes: Vec<Option<&str>> = table
        .classes
        .as_ref()
        .unwrap()
        .iter()
        .map(|class| class.as_deref())
        .collect();
    assert_eq!(classes, [Some("ang"), Some("ang"), Some("n,u"), None]);
}

#[test]
fn gzip_compressed_files_of_every_layout() {
    let dir = tempfile::tempdir().unwrap();
    for (name, layout, names) in [
        ("smilextract.csv", Layout::SmileCsv, None),
        (
            "smilextract_headerless.csv",
            Layout::SmileCsvHeaderless,
            Some(feature_names()),
        ),
        ("opensmile_python.csv", Layout::OpensmilePython, None),
        ("smilextract.arff", Layout::Arff, None),
    ] {
        let compressed = dir.path().join(format!("{name}.gz"));
        let mut encoder = flate2::write::GzEncoder::new(
            std::fs::File::create(&compressed).unwrap(),
            flate2::Compression::default(),
        );
        encoder
            .write_all(&std::fs::read(fixture(name)).unwrap())
            .unwrap();
        encoder.finish().unwrap();
        let options = ReadOptions {
            feature_names: names,
            ..options()
        };
        let table = read_feature_file(&compressed, &options).unwrap();
        assert_standard_table(&table, layout);
        // The hash is of the file on disk, not of the decompressed text.
        assert_eq!(
            table.sha256,
            emocycle_artifact::sha256_file(&compressed).unwrap()
        );
    }
}

/// A wide file (ComParE's 6373 features) split over many blocks and pieces reads back exactly.
#[test]
fn wide_and_long_file_reads_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("compare.csv");
    let width = 6373;
    let rows = 300;
    let mut text = String::from("name;frameTime");
    for feature in 0..width {
        text.push_str(&format!(";f{feature}"));
    }
    text.push('\n');
    for row in 0..rows {
        text.push_str(&format!("'utt{row}';0.000000"));
        for feature in 0..width {
            let value = ((row * 31 + feature * 7) % 1000) as f32 / 37.0 - 10.0;
            text.push_str(&format!(";{value:e}"));
        }
        text.push('\n');
    }
    std::fs::write(&path, &text).unwrap();
    let [table, read] = [true, false].map(|memory_map| {
        read_feature_file(
            &path,
            &ReadOptions {
                chunk_rows: 64,
                memory_map,
                ..ReadOptions::default()
            },
        )
        .unwrap()
    });
    assert_same_tables(&table, &read);
    assert_eq!(table.names.len(), width);
    assert_eq!(table.rows(), rows);
    let read = rows_of(&table);
    for row in [0, 63, 64, 299] {
        for feature in [0, 1, 4000, width - 1] {
            let expected = ((row * 31 + feature * 7) % 1000) as f32 / 37.0 - 10.0;
            assert_eq!(read[row][feature], expected);
        }
    }
    assert_eq!(table.lines[299], 301);
    // Hashed over several blocks, beside the parse or read by read: the file's sha256.
    assert_eq!(table.sha256, emocycle_artifact::sha256_file(&path).unwrap());
}

#[test]
fn nan_policies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nan.csv");
    std::fs::write(&path, "name;frameTime;a;b\n'u1';0.000000;1;2\n'u2';0.000000;nan;2\n'u3';0.000000;3;-inf\n'u4';0.000000;4;\n").unwrap();

    let error = read_feature_file(&path, &options())
        .unwrap_err()
        .to_string();
    assert!(error.contains("nan.csv:3, column \"a\""), "{error}");
    assert!(error.contains("non-finite"), "{error}");

    let zero = read_feature_file(
        &path,
        &ReadOptions {
            nan_policy: NanPolicy::Zero,
            ..options()
        },
    )
    .unwrap();
    assert_eq!(
        rows_of(&zero),
        vec![
            vec![1.0, 2.0],
            vec![0.0, 2.0],
            vec![3.0, 0.0],
            vec![4.0, 0.0]
        ]
    );

    let dropped = read_feature_file(
        &path,
        &ReadOptions {
            nan_policy: NanPolicy::DropRow,
            ..options()
        },
    )
    .unwrap();
    assert_eq!(dropped.ids, ["u1"]);
    assert_eq!(dropped.dropped_non_finite, 3);
}

/// Mapped and read into buffers, a file gives the same table.
fn assert_same_tables(
    mapped: &emocycle_features::FeatureTable,
    read: &emocycle_features::FeatureTable,
) {
    assert_eq!(mapped.layout, read.layout);
    assert_eq!(mapped.names, read.names);
    assert_eq!(mapped.ids, read.ids);
    assert_eq!(mapped.lines, read.lines);
    assert_eq!(mapped.classes, read.classes);
    assert_eq!(mapped.sha256, read.sha256);
    assert_eq!(rows_of(mapped), rows_of(read));
}

/// An ARFF header longer than the first read (over a megabyte of attributes) is read again from
/// a whole block: the same names, rows and hash as a short one would give (and as the mapped
/// file gives).
#[test]
fn an_arff_header_longer_than_the_first_read_still_parses() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long_header.arff");
    let width = 40_000;
    let mut text = String::from("@relation 'openSMILE_features'\n\n@attribute name string\n");
    for feature in 0..width {
        text.push_str(&format!(
            "@attribute a_rather_long_feature_name_{feature} numeric\n"
        ));
    }
    text.push_str("@attribute class {ang,hap}\n\n@data\n\n");
    assert!(text.len() > 3 << 19, "the header is {} bytes", text.len());
    for (row, class) in [(0, "ang"), (1, "hap")] {
        text.push_str(&format!("'u{row}'"));
        for feature in 0..width {
            text.push_str(&format!(",{}", row * 100_000 + feature));
        }
        text.push_str(&format!(",{class}\n"));
    }
    std::fs::write(&path, &text).unwrap();
    let [mapped, table] = [true, false].map(|memory_map| {
        read_feature_file(
            &path,
            &ReadOptions {
                memory_map,
                ..options()
            },
        )
        .unwrap()
    });
    assert_same_tables(&mapped, &table);
    assert_eq!(table.layout, Layout::Arff);
    assert_eq!(table.names.len(), width);
    assert_eq!(
        table.names[width - 1],
        format!("a_rather_long_feature_name_{}", width - 1)
    );
    assert_eq!(table.ids, ["u0", "u1"]);
    assert_eq!(table.lines, [40_008, 40_009]);
    let rows = rows_of(&table);
    assert_eq!(rows[1][width - 1], (100_000 + width - 1) as f32);
    assert_eq!(
        table.classes.as_deref(),
        Some(&[Some("ang".to_string()), Some("hap".to_string())][..])
    );
    assert_eq!(table.sha256, emocycle_artifact::sha256_file(&path).unwrap());
}
