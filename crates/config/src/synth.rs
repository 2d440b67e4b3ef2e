//! The synthetic-data stage's configuration.

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// The default Figure 2 features, in emobase2010 spelling. The paper names no list ("12
/// features representing different feature categories"); these are 12 functionals that exist
/// in emobase2010 and IS10 alike, covering loudness, MFCCs and their deltas, mel bands, line
/// spectral pairs, pitch, voicing, jitter and shimmer, with both means and spreads.
pub const DEFAULT_FIGURE_FEATURES: [&str; 12] = [
    "pcm_loudness_sma_amean",
    "pcm_loudness_sma_stddev",
    "pcm_fftMag_mfcc_sma[1]_amean",
    "pcm_fftMag_mfcc_sma[2]_stddev",
    "pcm_fftMag_mfcc_sma_de[1]_stddev",
    "logMelFreqBand_sma[0]_amean",
    "lspFreq_sma[0]_amean",
    "voicingFinalUnclipped_sma_amean",
    "F0final_sma_amean",
    "F0final_sma_stddev",
    "jitterLocal_sma_amean",
    "shimmerLocal_sma_amean",
];

/// In which units a synthetic set's features are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeatureSpace {
    /// The target's min-max space, where the generators work (what the published code keeps).
    #[default]
    MinMax,
    /// Raw feature units: min-max inverted through the statistics of the scope's target
    /// training part.
    Raw,
}

impl FeatureSpace {
    /// `minmax` or `raw`, as written to the footer key `emocycle.feature_space`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MinMax => "minmax",
            Self::Raw => "raw",
        }
    }

    /// Parses [`FeatureSpace::as_str`]'s spelling.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "minmax" => Some(Self::MinMax),
            "raw" => Some(Self::Raw),
            _ => None,
        }
    }
}

/// Every setting of generation, quality report and Figure 2. Unknown keys are refused so that a
/// typo cannot fall back to a default silently.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SynthConfig {
    /// Synthetic vectors per emotion: `None` (default) transforms every source vector (|S| per
    /// emotion, as the published code); `Some(n)` the first n source rows of a seeded random
    /// order, the same rows for every emotion, written in source-file order.
    pub per_emotion: Option<usize>,
    /// Units of the written features (default: the target's min-max space).
    pub feature_space: FeatureSpace,
    /// Source rows per generator call and per parquet row group (4096).
    pub batch_rows: usize,
    /// k of the k-NN precision and recall (3, as Kynkaanniemi et al.).
    pub knn_k: usize,
    /// At most this many rows of each set enter the classifier two-sample test and the k-NN
    /// metrics (seeded subsample; 2000). Their costs grow with the square of it; the mean,
    /// standard deviation and Frechet metrics always use every row.
    pub metric_rows: usize,
    /// Seeds the subsamples and the train/test split of the two-sample test and the k-NN
    /// subsamples.
    pub metric_seed: u64,
    /// Features of Figure 2, by emobase2010 or IS10 name (either is looked up in the other
    /// naming when absent). Default: 12 functionals from different feature groups.
    pub figure_features: Vec<String>,
}

impl Default for SynthConfig {
    fn default() -> Self {
        Self {
            per_emotion: None,
            feature_space: FeatureSpace::MinMax,
            batch_rows: 4096,
            knn_k: 3,
            metric_rows: 2000,
            metric_seed: 0,
            figure_features: DEFAULT_FIGURE_FEATURES
                .iter()
                .map(|name| name.to_string())
                .collect(),
        }
    }
}

impl SynthConfig {
    /// Refuses values that cannot work: zero counts, a k the subsample cannot support, an empty
    /// or repeating figure list.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |why: String| Err(ConfigError::new("synth", why));
        if self.per_emotion == Some(0) {
            return bad("per_emotion must be positive (or null for every source row)".into());
        }
        if self.batch_rows == 0 {
            return bad("batch_rows must be positive".into());
        }
        if self.knn_k == 0 {
            return bad("knn_k must be positive".into());
        }
        // k-NN radii need k other points, the two-sample test one train and one test row per
        // class.
        if self.metric_rows <= self.knn_k.max(1) {
            return bad(format!(
                "metric_rows = {} must exceed knn_k = {} (and 1)",
                self.metric_rows, self.knn_k
            ));
        }
        if self.figure_features.is_empty() {
            return bad("figure_features is empty".into());
        }
        for (index, name) in self.figure_features.iter().enumerate() {
            if self.figure_features[..index].contains(name) {
                return bad(format!("figure_features lists {name:?} twice"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_unknown_keys() {
        let config: SynthConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config, SynthConfig::default());
        assert_eq!(config.knn_k, 3);
        assert_eq!(config.feature_space, FeatureSpace::MinMax);
        assert_eq!(config.figure_features.len(), 12);
        config.validate().unwrap();
        let raw: SynthConfig =
            serde_json::from_str(r#"{"feature_space": "raw", "per_emotion": 10}"#).unwrap();
        assert_eq!(raw.feature_space, FeatureSpace::Raw);
        assert_eq!(raw.per_emotion, Some(10));
        assert!(serde_json::from_str::<SynthConfig>(r#"{"knn": 3}"#).is_err());
        for bad in [
            SynthConfig {
                per_emotion: Some(0),
                ..SynthConfig::default()
            },
            SynthConfig {
                batch_rows: 0,
                ..SynthConfig::default()
            },
            SynthConfig {
                metric_rows: 3,
                ..SynthConfig::default()
            },
            SynthConfig {
                figure_features: vec!["a".into(), "a".into()],
                ..SynthConfig::default()
            },
        ] {
            assert_eq!(bad.validate().unwrap_err().section, "synth");
        }
        assert_eq!(FeatureSpace::parse("raw"), Some(FeatureSpace::Raw));
        assert_eq!(FeatureSpace::MinMax.as_str(), "minmax");
    }
}
