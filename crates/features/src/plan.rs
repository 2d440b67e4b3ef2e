//! The feature stage's work: one unit per corpus.

use std::path::PathBuf;

use emocycle_artifact::{Done, Expected, Progress, WorkUnit, is_fresh, whole};

use crate::stage::{CorpusSpec, FeatureLayout, FeaturesConfig, FoldScheme};
use crate::{DEFAULT_CHUNK_ROWS, FeatureError, Result, check_corpora, ingest_corpus, label_files};

/// One corpus to ingest.
pub struct CorpusUnit {
    corpus: CorpusSpec,
    layout: FeatureLayout,
}

/// The feature stage's units, one per corpus, after checking that every corpus has the same
/// feature list (reading only the files' headers), so that a mismatch stops the stage before
/// anything is written.
///
/// # Errors
/// An invalid configuration, an unreadable header, or corpora with different features.
pub fn plan(config: &FeaturesConfig, layout: &FeatureLayout) -> Result<Vec<CorpusUnit>> {
    check_corpora(config)?;
    Ok(config
        .corpora
        .iter()
        .map(|corpus| CorpusUnit {
            corpus: corpus.clone(),
            layout: layout.clone(),
        })
        .collect())
}

impl WorkUnit for CorpusUnit {
    type Error = FeatureError;

    fn label(&self) -> String {
        self.corpus.name.clone()
    }

    fn is_fresh(&self) -> Result<bool> {
        let corpus = &self.corpus;
        let expected = Expected {
            code: crate::CODE_FINGERPRINT,
            config: serde_json::to_value(corpus).map_err(|error| {
                FeatureError::Config(format!("corpus {}: {error}", corpus.name))
            })?,
            inputs: std::iter::once(corpus.features.clone())
                .chain(match &corpus.labels {
                    Some(labels) => label_files(labels)?,
                    None => Vec::new(),
                })
                .chain(corpus.feature_names.clone())
                .collect(),
        };
        let outputs = self.outputs();
        Ok(is_fresh(&outputs[0], &expected, &outputs[1..], whole)?)
    }

    /// The corpus parquet first (its footer is the freshness record), then the statistics of
    /// all rows, the folds and the split where the corpus has them. Each fold's statistics are
    /// written with the folds.
    fn outputs(&self) -> Vec<PathBuf> {
        let (corpus, layout) = (&self.corpus, &self.layout);
        let mut outputs = vec![
            layout.corpus(&corpus.name),
            layout.normalisation(&corpus.name, "all"),
        ];
        if corpus.folds != FoldScheme::None {
            outputs.push(layout.folds(&corpus.name));
        }
        if corpus.split.is_some() {
            outputs.push(layout.split(&corpus.name));
        }
        outputs
    }

    fn execute(&self, progress: &dyn Progress) -> Result<Done> {
        progress.set_message("reading".into());
        let report = ingest_corpus(&self.corpus, &self.layout, DEFAULT_CHUNK_ROWS)?;
        Ok(Done::summary(format!(
            "-> {} utterances x {} features",
            report.rows, report.width
        )))
    }
}
