//! The run directory's layout: the scopes a run trains and the names every stage gives to the
//! parts of a run, in one place so that a stage finds another stage's outputs by construction.
//!
//! ```text
//! <run>/features/<corpus>.parquet, <corpus>.folds.parquet, norm/<corpus>.<subset>.parquet
//! <run>/gan/<scope>/pretrain<-seed-<s>>/          ScopeDirs::pretrain
//! <run>/gan/<scope>/lambda_cls-<v><-seed-<s>>/     ScopeDirs::train
//! <run>/synth/<scope>/<set>/synthetic.parquet      synthetic_path
//! ```
//!
//! `<scope>` is `fold<k>` or `all` ([`Scope::name`]), `<subset>` is `all` or `fold<k>-train`
//! ([`Scope::training_subset`]), `<v>` is the lambda_cls value in Rust's `f64` Display (`0`, `2`,
//! `0.5`; [`cyclegan_dir`]), and `<set>` is a CycleGAN's directory name or a baseline's name
//! ([`SyntheticSource::dir_name`]). `<-seed-<s>>` is present only for the extra generator seeds
//! of `gan.seeds` (`s` = 1, 2, ...): the first seed keeps the plain names, so a pipeline that
//! raises `gan.seeds` keeps every run it already trained.

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

/// `lambda_cls-<v>`, or `lambda_cls-<v>-seed-<s>` for generator seed `s` > 0: the directory of
/// one joint training below `gan/<scope>/` and of its synthetic set below `synth/<scope>/`.
pub fn cyclegan_dir(lambda_cls: f64, gan_seed: u32) -> String {
    format!("lambda_cls-{lambda_cls}{}", seed_suffix(gan_seed))
}

/// Parses [`cyclegan_dir`]'s names back into (lambda_cls, generator seed).
pub fn parse_cyclegan_dir(name: &str) -> Option<(f64, u32)> {
    let rest = name.strip_prefix("lambda_cls-")?;
    let (value, gan_seed) = match rest.split_once("-seed-") {
        Some((value, seed)) => (value, seed.parse().ok().filter(|&s| s > 0)?),
        None => (rest, 0),
    };
    let lambda_cls: f64 = value.parse().ok()?;
    (cyclegan_dir(lambda_cls, gan_seed) == name).then_some((lambda_cls, gan_seed))
}

fn seed_suffix(gan_seed: u32) -> String {
    match gan_seed {
        0 => String::new(),
        s => format!("-seed-{s}"),
    }
}

/// How progress lines and errors name one GAN run or its synthetic set: `fold2`,
/// `fold2 lambda_cls=2`, or `fold2 lambda_cls=2 gan_seed=1` where `name_seed` (pipelines with
/// several generator seeds).
pub fn run_label(scope: &Scope, lambda_cls: Option<f64>, gan_seed: u32, name_seed: bool) -> String {
    let mut label = scope.name();
    if let Some(lambda_cls) = lambda_cls {
        label.push_str(&format!(" lambda_cls={lambda_cls}"));
    }
    if name_seed {
        label.push_str(&format!(" gan_seed={gan_seed}"));
    }
    label
}

/// The seed of generator seed `gan_seed` (0-based) of a pipeline whose seed is `base`: the base
/// itself for the first, so that `gan.seeds: 1` trains what it always trained; the others are
/// spread by the golden-ratio increment that SplitMix64 itself uses, which puts them far from
/// each other and from the classifier repeats' seeds `base + r`.
pub fn gan_seed_value(base: u64, gan_seed: u32) -> u64 {
    base.wrapping_add(u64::from(gan_seed).wrapping_mul(0x9E37_79B9_7F4A_7C15))
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

/// Where one scope's GAN outputs of one generator seed go.
#[derive(Debug, Clone)]
pub struct ScopeDirs {
    root: PathBuf,
    gan_seed: u32,
}

impl ScopeDirs {
    /// Outputs of `scope`'s first generator seed below a run's `gan/` directory.
    pub fn new(gan_root: &Path, scope: &Scope) -> Self {
        Self::seeded(gan_root, scope, 0)
    }

    /// Outputs of `scope`'s generator seed `gan_seed` (0-based) below a run's `gan/` directory.
    pub fn seeded(gan_root: &Path, scope: &Scope, gan_seed: u32) -> Self {
        Self {
            root: gan_root.join(scope.name()),
            gan_seed,
        }
    }

    /// `pretrain/` (`pretrain-seed-<s>/` for a later generator seed).
    pub fn pretrain(&self) -> PathBuf {
        self.root
            .join(format!("pretrain{}", seed_suffix(self.gan_seed)))
    }

    /// `pretrain/generators.safetensors`.
    pub fn generators(&self) -> PathBuf {
        self.pretrain().join("generators.safetensors")
    }

    /// [`cyclegan_dir`]`/`.
    pub fn train(&self, lambda_cls: f64) -> PathBuf {
        self.root.join(cyclegan_dir(lambda_cls, self.gan_seed))
    }

    /// [`cyclegan_dir`]`/model.safetensors`.
    pub fn model(&self, lambda_cls: f64) -> PathBuf {
        self.train(lambda_cls).join("model.safetensors")
    }
}

/// The `method` of every CycleGAN set in `results.parquet`.
pub const CYCLEGAN: &str = "cyclegan";

/// One synthetic set per scope: the CycleGAN of a `lambda_cls` and generator seed, or a named
/// baseline.
#[derive(Debug, Clone, PartialEq)]
pub enum SyntheticSource {
    /// The CycleGANs trained with this classification-loss weight.
    CycleGan {
        /// The weight.
        lambda_cls: f64,
        /// Which of `gan.seeds` generator seeds trained them (0-based).
        gan_seed: u32,
    },
    /// A baseline, by its configured name (`smote`, `random-oversampling`, ...).
    Baseline {
        /// The name: the set's directory below `synth/<scope>/` and its `method` column.
        name: String,
    },
}

impl SyntheticSource {
    /// The CycleGAN source of the first generator seed.
    pub fn cyclegan(lambda_cls: f64) -> Self {
        Self::seeded(lambda_cls, 0)
    }

    /// The CycleGAN source of generator seed `gan_seed` (0-based).
    pub fn seeded(lambda_cls: f64, gan_seed: u32) -> Self {
        Self::CycleGan {
            lambda_cls,
            gan_seed,
        }
    }

    /// The generator seed of a CycleGAN set; `None` for a baseline.
    pub fn gan_seed(&self) -> Option<u32> {
        match self {
            Self::CycleGan { gan_seed, .. } => Some(*gan_seed),
            Self::Baseline { .. } => None,
        }
    }

    /// The set's family, what the tables aggregate over: the source with its generator seed
    /// dropped (set to 0), so that every seed of a lambda_cls maps to one row.
    pub fn family(&self) -> Self {
        match self {
            Self::CycleGan { lambda_cls, .. } => Self::cyclegan(*lambda_cls),
            Self::Baseline { .. } => self.clone(),
        }
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
            Self::CycleGan { lambda_cls, .. } => Some(*lambda_cls),
            Self::Baseline { .. } => None,
        }
    }

    /// The directory below `synth/<scope>/`: [`cyclegan_dir`] or the baseline's name.
    pub fn dir_name(&self) -> String {
        match self {
            Self::CycleGan {
                lambda_cls,
                gan_seed,
            } => cyclegan_dir(*lambda_cls, *gan_seed),
            Self::Baseline { name } => name.clone(),
        }
    }

    /// Whether this is a CycleGAN set.
    pub fn is_cyclegan(&self) -> bool {
        matches!(self, Self::CycleGan { .. })
    }

    /// Report order: CycleGANs by lambda_cls and generator seed, then baselines by name.
    pub fn order(&self, other: &Self) -> Ordering {
        match (self, other) {
            (
                Self::CycleGan {
                    lambda_cls: a,
                    gan_seed: seed_a,
                },
                Self::CycleGan {
                    lambda_cls: b,
                    gan_seed: seed_b,
                },
            ) => a.total_cmp(b).then(seed_a.cmp(seed_b)),
            (Self::CycleGan { .. }, Self::Baseline { .. }) => Ordering::Less,
            (Self::Baseline { .. }, Self::CycleGan { .. }) => Ordering::Greater,
            (Self::Baseline { name: a }, Self::Baseline { name: b }) => a.cmp(b),
        }
    }

    /// A key that sorts as [`SyntheticSource::order`] and can live in ordered maps.
    pub fn sort_key(&self) -> (u8, u64, u32, String) {
        match self {
            // Non-negative floats order like their bit patterns.
            Self::CycleGan {
                lambda_cls,
                gan_seed,
            } => (0, lambda_cls.to_bits(), *gan_seed, String::new()),
            Self::Baseline { name } => (1, 0, 0, name.clone()),
        }
    }
}

impl fmt::Display for SyntheticSource {
    /// `cyclegan lambda_cls=2`, `cyclegan lambda_cls=2 gan_seed=1` or the baseline's name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CycleGan {
                lambda_cls,
                gan_seed: 0,
            } => write!(f, "{CYCLEGAN} lambda_cls={lambda_cls}"),
            Self::CycleGan {
                lambda_cls,
                gan_seed,
            } => write!(f, "{CYCLEGAN} lambda_cls={lambda_cls} gan_seed={gan_seed}"),
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

    /// `<scope>/`[`cyclegan_dir`]`/synthetic.parquet`, named as the GAN stage's directory of
    /// the same run.
    pub fn synthetic(&self, scope: &Scope, lambda_cls: f64, gan_seed: u32) -> PathBuf {
        synthetic_path(
            &self.root,
            &scope.name(),
            &SyntheticSource::seeded(lambda_cls, gan_seed),
        )
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
        let third = ScopeDirs::seeded(Path::new("run/gan"), &Scope::All, 2);
        assert_eq!(third.pretrain(), Path::new("run/gan/all/pretrain-seed-2"));
        assert_eq!(
            third.model(0.5),
            Path::new("run/gan/all/lambda_cls-0.5-seed-2/model.safetensors")
        );
        assert_eq!(
            SynthLayout::new("s").synthetic(&Scope::All, 0.5, 2),
            Path::new("s/all/lambda_cls-0.5-seed-2/synthetic.parquet")
        );
    }

    #[test]
    fn cyclegan_dirs_parse_back() {
        for (lambda_cls, gan_seed) in [(0.0, 0), (2.0, 0), (0.5, 1), (4.0, 12)] {
            let name = cyclegan_dir(lambda_cls, gan_seed);
            assert_eq!(
                parse_cyclegan_dir(&name),
                Some((lambda_cls, gan_seed)),
                "{name}"
            );
        }
        for bad in [
            "lambda_cls-",
            "lambda_cls-x",
            "lambda_cls-2-seed-0",
            "lambda_cls-2-seed-",
            "lambda_cls-2.0",
            "smote",
        ] {
            assert_eq!(parse_cyclegan_dir(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_first_generator_seed_is_the_pipeline_seed_and_the_others_differ() {
        assert_eq!(gan_seed_value(2019, 0), 2019);
        let seeds: Vec<u64> = (0..4).map(|s| gan_seed_value(2019, s)).collect();
        for (index, seed) in seeds.iter().enumerate() {
            assert!(!seeds[..index].contains(seed));
            // Far from the classifier repeats' seeds `base + r`.
            assert!(index == 0 || seed.abs_diff(2019) > 1_000_000);
        }
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
        let two_again = SyntheticSource::seeded(2.0, 1);
        assert_eq!(two_again.dir_name(), "lambda_cls-2-seed-1");
        assert_eq!(two_again.to_string(), "cyclegan lambda_cls=2 gan_seed=1");
        assert_eq!(two_again.family(), two);
        assert_eq!(smote.family(), smote);
        assert_eq!((two_again.gan_seed(), smote.gan_seed()), (Some(1), None));
        assert_eq!(two.order(&two_again), Ordering::Less);
        assert!(two.sort_key() < two_again.sort_key() && two_again.sort_key() < smote.sort_key());
    }
}
