//! The run directory's layout: the scopes a run trains and the names every stage gives to the
//! parts of a run, in one place so that a stage finds another stage's outputs by construction.
//!
//! ```text
//! <run>/features/<corpus>.parquet, <corpus>.folds.parquet, norm/<corpus>.<subset>.parquet
//! <run>/gan/<scope>/pretrain/                 ScopeDirs::pretrain
//! <run>/gan/<scope>/lambda_cls-<v>/            ScopeDirs::train
//! <run>/synth/<scope>/<set>/synthetic.parquet  synthetic_path
//! ```
//!
//! `<scope>` is `fold<k>` or `all` ([`Scope::name`]), `<subset>` is `all` or `fold<k>-train`
//! ([`Scope::training_subset`]), `<v>` is the lambda_cls value in Rust's `f64` Display (`0`, `2`,
//! `0.5`; [`lambda_cls_dir`]), and `<set>` is `lambda_cls-<v>` or a baseline's name
//! ([`SyntheticSource::dir_name`]).

use std::cmp::Ordering;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Which part of the labelled corpus a set of CycleGANs (or a baseline) learns from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every session but the test session of this fold (1-based).
    Fold(usize),
    /// Every session (cross-corpus use, or the published code's within-corpus leakage).
    All,
}

impl Scope {
    /// `fold<k>` or `all`.
    pub fn name(&self) -> String {
        match self {
            Self::Fold(number) => format!("fold{number}"),
            Self::All => "all".to_string(),
        }
    }

    /// Parses `fold<k>` or `all`.
    pub fn parse(text: &str) -> Option<Self> {
        if text == "all" {
            return Some(Self::All);
        }
        text.strip_prefix("fold")?
            .parse()
            .ok()
            .filter(|&k| k > 0)
            .map(Self::Fold)
    }

    /// The feature stage's name of the scope's training part, whose normalisation statistics
    /// the scope uses: `all` or `fold<k>-train`.
    pub fn training_subset(&self) -> String {
        match self {
            Self::Fold(number) => format!("fold{number}-train"),
            Self::All => "all".to_string(),
        }
    }
}

/// `lambda_cls-<v>`: the directory of one joint training below `gan/<scope>/` and of its
/// synthetic set below `synth/<scope>/`.
pub fn lambda_cls_dir(lambda_cls: f64) -> String {
    format!("lambda_cls-{lambda_cls}")
}

/// The feature-stage files one GAN scope (or a baseline of it) reads.
#[derive(Debug, Clone)]
pub struct StageInputs {
    /// `features/<source>.parquet`.
    pub source: PathBuf,
    /// `features/norm/<source>.all.parquet`.
    pub source_normalisation: PathBuf,
    /// `features/<target>.parquet`.
    pub target: PathBuf,
    /// `features/<target>.folds.parquet` (needed for fold scopes).
    pub target_folds: PathBuf,
    /// `features/norm/<target>.<subset>.parquet` of the scope's training part.
    pub target_normalisation: PathBuf,
}

/// Where one scope's GAN outputs go.
#[derive(Debug, Clone)]
pub struct ScopeDirs {
    root: PathBuf,
}

impl ScopeDirs {
    /// Outputs of `scope` below a run's `gan/` directory.
    pub fn new(gan_root: &Path, scope: &Scope) -> Self {
        Self {
            root: gan_root.join(scope.name()),
        }
    }

    /// `pretrain/`.
    pub fn pretrain(&self) -> PathBuf {
        self.root.join("pretrain")
    }

    /// `pretrain/generators.safetensors`.
    pub fn generators(&self) -> PathBuf {
        self.pretrain().join("generators.safetensors")
    }

    /// `lambda_cls-<value>/`.
    pub fn train(&self, lambda_cls: f64) -> PathBuf {
        self.root.join(lambda_cls_dir(lambda_cls))
    }

    /// `lambda_cls-<value>/model.safetensors`.
    pub fn model(&self, lambda_cls: f64) -> PathBuf {
        self.train(lambda_cls).join("model.safetensors")
    }
}

/// The `method` of every CycleGAN set in `results.parquet`.
pub const CYCLEGAN: &str = "cyclegan";

/// One synthetic set per scope: the CycleGAN of a `lambda_cls`, or a named baseline.
#[derive(Debug, Clone, PartialEq)]
pub enum SyntheticSource {
    /// The CycleGANs trained with this classification-loss weight.
    CycleGan {
        /// The weight.
        lambda_cls: f64,
    },
    /// A baseline, by its configured name (`smote`, `random-oversampling`, ...).
    Baseline {
        /// The name: the set's directory below `synth/<scope>/` and its `method` column.
        name: String,
    },
}

impl SyntheticSource {
    /// A CycleGAN source.
    pub fn cyclegan(lambda_cls: f64) -> Self {
        Self::CycleGan { lambda_cls }
    }

    /// A baseline source.
    pub fn baseline(name: impl Into<String>) -> Self {
        Self::Baseline { name: name.into() }
    }

    /// `cyclegan` or the baseline's name (the `method` column).
    pub fn method(&self) -> &str {
        match self {
            Self::CycleGan { .. } => CYCLEGAN,
            Self::Baseline { name } => name,
        }
    }

    /// The CycleGAN's weight; `None` for a baseline.
    pub fn lambda_cls(&self) -> Option<f64> {
        match self {
            Self::CycleGan { lambda_cls } => Some(*lambda_cls),
            Self::Baseline { .. } => None,
        }
    }

    /// The directory below `synth/<scope>/`: [`lambda_cls_dir`] or the baseline's name.
    pub fn dir_name(&self) -> String {
        match self {
            Self::CycleGan { lambda_cls } => lambda_cls_dir(*lambda_cls),
            Self::Baseline { name } => name.clone(),
        }
    }

    /// Whether this is a CycleGAN set.
    pub fn is_cyclegan(&self) -> bool {
        matches!(self, Self::CycleGan { .. })
    }

    /// Report order: CycleGANs by lambda_cls, then baselines by name.
    pub fn order(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::CycleGan { lambda_cls: a }, Self::CycleGan { lambda_cls: b }) => a.total_cmp(b),
            (Self::CycleGan { .. }, Self::Baseline { .. }) => Ordering::Less,
            (Self::Baseline { .. }, Self::CycleGan { .. }) => Ordering::Greater,
            (Self::Baseline { name: a }, Self::Baseline { name: b }) => a.cmp(b),
        }
    }

    /// A key that sorts as [`SyntheticSource::order`] and can live in ordered maps.
    pub fn sort_key(&self) -> (u8, u64, String) {
        match self {
            // Non-negative floats order like their bit patterns.
            Self::CycleGan { lambda_cls } => (0, lambda_cls.to_bits(), String::new()),
            Self::Baseline { name } => (1, 0, name.clone()),
        }
    }
}

impl fmt::Display for SyntheticSource {
    /// `cyclegan lambda_cls=2` or the baseline's name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CycleGan { lambda_cls } => write!(f, "{CYCLEGAN} lambda_cls={lambda_cls}"),
            Self::Baseline { name } => f.write_str(name),
        }
    }
}

/// `<synth_root>/<scope>/<set>/synthetic.parquet`: where the synthesis stage writes a CycleGAN
/// set and the augmentation stage a baseline set, side by side.
pub fn synthetic_path(synth_root: &Path, scope: &str, source: &SyntheticSource) -> PathBuf {
    synth_root
        .join(scope)
        .join(source.dir_name())
        .join("synthetic.parquet")
}

/// Where the stage's outputs go below a run's `synth/` directory.
#[derive(Debug, Clone)]
pub struct SynthLayout {
    root: PathBuf,
}

impl SynthLayout {
    /// Outputs below `root` (a run's `synth/`).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The `synth/` directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<scope>/lambda_cls-<value>/synthetic.parquet`, the value in Rust's `f64` Display as the
    /// GAN stage's `lambda_cls-<value>/` directories.
    pub fn synthetic(&self, scope: &Scope, lambda_cls: f64) -> PathBuf {
        self.root
            .join(scope.name())
            .join(lambda_cls_dir(lambda_cls))
            .join("synthetic.parquet")
    }

    /// `quality.parquet`.
    pub fn quality(&self) -> PathBuf {
        self.root.join("quality.parquet")
    }

    /// `quality.md`.
    pub fn quality_markdown(&self) -> PathBuf {
        self.root.join("quality.md")
    }

    /// `figure2.png` (pooled over emotions).
    pub fn figure(&self) -> PathBuf {
        self.root.join("figure2.png")
    }

    /// `figure2_<emotion>.png`.
    pub fn figure_for(&self, emotion: impl fmt::Display) -> PathBuf {
        self.root.join(format!("figure2_{emotion}.png"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_names_parse_back() {
        for scope in [Scope::Fold(1), Scope::Fold(12), Scope::All] {
            assert_eq!(Scope::parse(&scope.name()), Some(scope));
        }
        for bad in ["fold0", "fold", "folds1", "ALL", ""] {
            assert_eq!(Scope::parse(bad), None, "{bad}");
        }
        assert_eq!(Scope::Fold(3).training_subset(), "fold3-train");
        assert_eq!(Scope::All.training_subset(), "all");
    }

    #[test]
    fn every_stage_spells_a_run_the_same_way() {
        let dirs = ScopeDirs::new(Path::new("run/gan"), &Scope::Fold(2));
        assert_eq!(dirs.train(0.5), Path::new("run/gan/fold2/lambda_cls-0.5"));
        assert_eq!(
            dirs.model(2.0),
            Path::new("run/gan/fold2/lambda_cls-2/model.safetensors")
        );
        assert_eq!(
            dirs.generators(),
            Path::new("run/gan/fold2/pretrain/generators.safetensors")
        );
        assert_eq!(
            synthetic_path(Path::new("s"), "all", &SyntheticSource::cyclegan(0.0)),
            Path::new("s/all/lambda_cls-0/synthetic.parquet")
        );
        assert_eq!(
            synthetic_path(Path::new("s"), "all", &SyntheticSource::baseline("smote")),
            Path::new("s/all/smote/synthetic.parquet")
        );
    }

    #[test]
    fn sources_name_and_order() {
        let half = SyntheticSource::cyclegan(0.5);
        let two = SyntheticSource::cyclegan(2.0);
        let smote = SyntheticSource::baseline("smote");
        assert_eq!(half.dir_name(), "lambda_cls-0.5");
        assert_eq!(two.dir_name(), "lambda_cls-2");
        assert_eq!(smote.dir_name(), "smote");
        assert_eq!(smote.method(), "smote");
        assert_eq!(two.method(), CYCLEGAN);
        assert_eq!(two.lambda_cls(), Some(2.0));
        assert_eq!(smote.lambda_cls(), None);
        assert_eq!(half.order(&two), Ordering::Less);
        assert_eq!(two.order(&smote), Ordering::Less);
        assert!(half.sort_key() < two.sort_key() && two.sort_key() < smote.sort_key());
        assert_eq!(two.to_string(), "cyclegan lambda_cls=2");
    }
}
