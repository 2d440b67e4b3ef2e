//! Small corpora for other crates' tests (enabled by the `testing` feature, dev-dependencies
//! only): written in SMILExtract's CSV layout so tests go through the real ingestion path.

use std::path::{Path, PathBuf};

use crate::{CorpusSpec, FeaturesConfig, FoldScheme, LabelMap, NanPolicy, UtteranceIds};

/// Writes a tiny labelled corpus (3 sessions x 4 emotions x 3 utterances, 6 features, named
/// `labelled`, leave-one-session-out) and an unlabelled source of 12 utterances (`source`) into
/// `dir`, and returns the feature stage's configuration for them.
pub fn tiny_corpora(dir: &Path) -> FeaturesConfig {
    let names: Vec<String> = (0..6).map(|i| format!("f{i}")).collect();
    let header = format!("name;frameTime;{}\n", names.join(";"));
    let mut labelled = header.clone();
    let mut labels = String::from("utterance_id,emotion,session,speaker\n");
    let codes = ["ang", "hap", "neu", "sad"];
    for session in 1..=3 {
        for (emotion, code) in codes.iter().enumerate() {
            for take in 0..3 {
                let id = format!("S{session}_{code}_{take}");
                let values: Vec<String> = (0..6)
                    .map(|f| format!("{:e}", (emotion * 10 + f + take + session) as f32 / 7.0))
                    .collect();
                labelled.push_str(&format!("'{id}';0.000000;{}\n", values.join(";")));
                labels.push_str(&format!("{id},{code},Ses{session},Ses{session}_F\n"));
            }
        }
    }
    let mut source = header;
    for row in 0..12 {
        let values: Vec<String> = (0..6)
            .map(|f| format!("{:e}", ((row * 3 + f) % 11) as f32 / 3.0))
            .collect();
        source.push_str(&format!("'src{row}';0.000000;{}\n", values.join(";")));
    }
    let write = |name: &str, text: &str| -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let base = CorpusSpec {
        name: "labelled".into(),
        features: write("labelled.csv", &labelled),
        labels: Some(write("labels.csv", &labels)),
        label_map: LabelMap::Iemocap,
        feature_names: None,
        folds: FoldScheme::LeaveOneSessionOut,
        split: None,
        nan_policy: NanPolicy::Error,
        utterance_ids: UtteranceIds::Stem,
    };
    FeaturesConfig {
        corpora: vec![
            base.clone(),
            CorpusSpec {
                name: "source".into(),
                features: write("source.csv", &source),
                labels: None,
                folds: FoldScheme::None,
                ..base
            },
        ],
    }
}
