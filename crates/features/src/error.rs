use std::path::PathBuf;

/// Where in an input file a problem is: the file, the 1-based line, and the column when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The input file.
    pub path: PathBuf,
    /// 1-based line number in the (decompressed) text.
    pub line: u64,
    /// The column's name (or `#index` when the file has no names), if the problem has one.
    pub column: Option<String>,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.path.display(), self.line)?;
        if let Some(column) = &self.column {
            write!(f, ", column {column:?}")?;
        }
        Ok(())
    }
}

/// Everything the feature stage can reject. Every variant names the file, and the line and
/// column where there is one.
#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
    /// A malformed line or value.
    #[error("{location}: {message}")]
    Parse {
        /// Where.
        location: Location,
        /// What is wrong.
        message: String,
    },
    /// The file holds no data at all, or a header but no rows.
    #[error("{path}: {message}")]
    Empty {
        /// The file.
        path: PathBuf,
        /// Which kind of emptiness.
        message: String,
    },
    /// Two corpora that must share a feature set do not.
    #[error("{0}")]
    IncompatibleFeatures(Box<FeatureMismatch>),
    /// Labels and features do not fit together.
    #[error("{message}")]
    Labels {
        /// What does not fit, naming both files.
        message: String,
    },
    /// The configuration is impossible.
    #[error("feature stage configuration: {0}")]
    Config(String),
    /// The feature stage's outputs do not fit together (a later stage reading them found a
    /// normalisation of another subset, a fold file without a fold, ...).
    #[error("{path}: {message}")]
    Inconsistent {
        /// The file at fault.
        path: PathBuf,
        /// What does not fit.
        message: String,
    },
    /// Extracting features from audio failed (`emocycle extract`).
    #[error("extract: {0}")]
    Extraction(String),
    /// A row of a fold's test session would be training data: the leakage the per-fold scopes
    /// exist to prevent.
    #[error(
        "the training data contains session {session:?}, which is the fold's test session: that would leak test data into training"
    )]
    TestSessionInTraining {
        /// The offending session.
        session: String,
    },
    /// Writing an artifact failed.
    #[error(transparent)]
    Artifact(#[from] emocycle_artifact::ArtifactError),
    /// polars rejected a frame while it was being assembled.
    #[error("{context}: {source}")]
    Frame {
        /// What was being built.
        context: String,
        /// The polars error.
        #[source]
        source: polars::error::PolarsError,
    },
}

/// Where two feature lists that must be equal first differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureMismatch {
    /// The file being checked.
    pub path: PathBuf,
    /// The file it must match.
    pub reference: PathBuf,
    /// 0-based index of the first differing feature.
    pub index: usize,
    /// Its name in `path` (empty when `path` has fewer features).
    pub ours: String,
    /// Its name in `reference` (empty when `reference` has fewer features).
    pub theirs: String,
    /// Feature counts of both.
    pub widths: (usize, usize),
    /// The openSMILE sets both lists were recognised as ([`crate::feature_set_of`]).
    pub sets: (Option<&'static str>, Option<&'static str>),
}

impl std::fmt::Display for FeatureMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} does not have the same features as {}: {} features vs {} (first difference at feature {}: {:?} vs {:?})",
            self.path.display(),
            self.reference.display(),
            self.widths.0,
            self.widths.1,
            self.index,
            self.ours,
            self.theirs
        )?;
        if let Some(why) = self.explanation() {
            write!(f, ". {why}")?;
        }
        Ok(())
    }
}

/// How the MFCC functionals of openSMILE's emobase2010 set open; IS10's are `mfcc_sma...`.
const EMOBASE2010_MFCC: &str = "pcm_fftMag_mfcc_sma";
const IS10_MFCC: &str = "mfcc_sma";

impl FeatureMismatch {
    /// What the first difference says about the two files, where it says something: two
    /// openSMILE configurations that share their functionals but not their settings.
    pub fn explanation(&self) -> Option<String> {
        if let (Some(ours), Some(theirs)) = self.sets
            && ours != theirs
            && self.widths.0 != self.widths.1
        {
            return Some(format!(
                "{} holds openSMILE's {ours} set and {} the {theirs} set: extract both corpora \
                 with one configuration (`emocycle extract --feature-set`)",
                self.path.display(),
                self.reference.display()
            ));
        }
        let set_of = |name: &str| {
            if name.starts_with(EMOBASE2010_MFCC) {
                Some("emobase2010")
            } else if name.starts_with(IS10_MFCC) {
                Some("IS10 (opensmile-python's FeatureSet.IS10)")
            } else {
                None
            }
        };
        let (ours, theirs) = (set_of(&self.ours)?, set_of(&self.theirs)?);
        if ours == theirs || self.widths.0 != self.widths.1 {
            return None;
        }
        Some(format!(
            "{} was extracted with openSMILE's {ours} set and {} with {theirs}: the two have the \
             same 1582 functionals in the same order but name the MFCCs differently and compute \
             some of them with other settings (e.g. maxPos and minPos), so their values must not \
             be mixed. Extract both corpora with one configuration: emobase2010.conf is the \
             paper's, IS10 is the one opensmile-python ships",
            self.path.display(),
            self.reference.display()
        ))
    }
}

impl FeatureError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn parse(
        path: &std::path::Path,
        line: u64,
        column: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::Parse {
            location: Location {
                path: path.to_path_buf(),
                line,
                column,
            },
            message: message.into(),
        }
    }

    pub(crate) fn frame(
        context: impl Into<String>,
    ) -> impl FnOnce(polars::error::PolarsError) -> Self {
        let context = context.into();
        move |source| Self::Frame { context, source }
    }
}

/// Result type of this crate.
pub type Result<T, E = FeatureError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn mismatch(ours: &str, theirs: &str, widths: (usize, usize)) -> FeatureMismatch {
        FeatureMismatch {
            path: PathBuf::from("tedlium_is10.csv"),
            reference: PathBuf::from("iemocap_emobase2010.csv"),
            index: 2,
            ours: ours.to_string(),
            theirs: theirs.to_string(),
            widths,
            sets: (None, None),
        }
    }

    #[test]
    fn emobase2010_against_is10_says_why_and_what_to_do() {
        let message = mismatch(
            "mfcc_sma[3]_amean",
            "pcm_fftMag_mfcc_sma[3]_amean",
            (1582, 1582),
        )
        .to_string();
        assert!(
            message.contains("first difference at feature 2: \"mfcc_sma[3]_amean\""),
            "{message}"
        );
        assert!(
            message.contains(
                "tedlium_is10.csv was extracted with openSMILE's IS10 (opensmile-python's \
                 FeatureSet.IS10) set and iemocap_emobase2010.csv with emobase2010"
            ),
            "{message}"
        );
        assert!(message.contains("Extract both corpora with one configuration"));
        // Other differences get no guess.
        for (ours, theirs, widths) in [
            (
                "F0final_sma_amean",
                "pcm_fftMag_mfcc_sma[3]_amean",
                (1582, 1582),
            ),
            ("mfcc_sma[3]_amean", "mfcc_sma[4]_amean", (1582, 1582)),
            (
                "mfcc_sma[3]_amean",
                "pcm_fftMag_mfcc_sma[3]_amean",
                (1582, 988),
            ),
        ] {
            assert_eq!(mismatch(ours, theirs, widths).explanation(), None);
        }
        // Sets recognised by their whole lists: named when they differ.
        let mixed = FeatureMismatch {
            sets: (Some("eGeMAPS"), Some("IS10")),
            ..mismatch(
                "F0semitoneFrom27.5Hz_sma3nz_amean",
                "pcm_loudness_sma_maxPos",
                (88, 1582),
            )
        };
        let message = mixed.explanation().unwrap();
        assert!(
            message.contains("tedlium_is10.csv holds openSMILE's eGeMAPS set and iemocap_emobase2010.csv the IS10 set"),
            "{message}"
        );
    }
}
