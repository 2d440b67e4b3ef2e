//! The evaluation's configuration; every default is the paper's (Section 4.3 and 4.4).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::layout::{CYCLEGAN, SyntheticSource};

type Result<T> = std::result::Result<T, ConfigError>;

/// The three training sets of the paper's Tables 2 and 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Setup {
    /// Real labelled utterances only.
    #[serde(rename = "real")]
    Real,
    /// Synthetic vectors only.
    #[serde(rename = "syn")]
    Syn,
    /// Real and synthetic together.
    #[serde(rename = "real+syn")]
    RealSyn,
}

impl Setup {
    /// All three, in the tables' column order.
    pub const ALL: [Setup; 3] = [Setup::Real, Setup::Syn, Setup::RealSyn];

    /// `real`, `syn` or `real+syn` (the `setup` column of `results.parquet`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Real => "real",
            Self::Syn => "syn",
            Self::RealSyn => "real+syn",
        }
    }

    /// Whether the setup trains on synthetic data (and so depends on `lambda_cls`).
    pub fn uses_synthetic(self) -> bool {
        self != Self::Real
    }

    /// A file-name-safe spelling (`real`, `syn`, `real-syn`).
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Real => "real",
            Self::Syn => "syn",
            Self::RealSyn => "real-syn",
        }
    }
}

impl fmt::Display for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which CycleGANs' synthetic data a within-corpus fold trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyntheticScope {
    /// Fold k reads `synth/fold<k>/`: CycleGANs that never saw fold k's test session.
    #[default]
    PerFold,
    /// Every fold reads `synth/all/`: the published code's behaviour, which lets each fold's
    /// test session shape its own synthetic training data.
    AllSessions,
}

/// Which statistics z-normalise each dataset before classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Znorm {
    /// The paper: the real training set, the test set, the synthetic set and the cross-corpus
    /// set are each z-normalised on their own statistics (for real+syn, the real part and the
    /// synthetic part each on their own).
    #[default]
    PerDataset,
    /// Every set is scaled with the statistics of the training set actually used (for
    /// real+syn: the real and synthetic rows pooled).
    TrainStatistics,
}

/// One classifier's hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierParams {
    /// Hidden layer widths (the paper: two layers).
    pub hidden: Vec<usize>,
    /// Minibatch size; the last partial batch of an epoch is kept.
    pub batch_size: usize,
    /// Inverted-dropout rate after each hidden layer.
    pub dropout: f64,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Passes over the shuffled training set.
    pub epochs: usize,
    /// Leave out the last, partial minibatch of every epoch, as the published code does
    /// (default: keep it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drop_last_batch: bool,
}

impl ClassifierParams {
    fn paper(hidden: usize, batch_size: usize, dropout: f64, lr: f64, epochs: usize) -> Self {
        Self {
            hidden: vec![hidden, hidden],
            batch_size,
            dropout,
            learning_rate: lr,
            epochs,
            drop_last_batch: false,
        }
    }

    /// The published code's training loop around these settings: `range(epochs + 1)` and the
    /// last partial minibatch of each epoch left out.
    pub fn published_loop(&self) -> Self {
        Self {
            epochs: self.epochs + 1,
            drop_last_batch: true,
            ..self.clone()
        }
    }

    fn validate(&self, key: &str) -> Result<()> {
        let fail = |message: String| Err(ConfigError::keyed("evaluation", key, message));
        if self.hidden.is_empty() || self.hidden.contains(&0) {
            return fail(format!(
                "hidden must list positive widths, got {:?}",
                self.hidden
            ));
        }
        if self.batch_size == 0 {
            return fail("batch_size must be positive".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return fail(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return fail(format!(
                "learning_rate must be positive, got {}",
                self.learning_rate
            ));
        }
        if self.epochs == 0 {
            return fail("epochs must be positive".into());
        }
        Ok(())
    }
}

/// Hyper-parameters of the three setups of one experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupParams {
    /// Training on real data.
    pub real: ClassifierParams,
    /// Training on synthetic data.
    pub syn: ClassifierParams,
    /// Training on real and synthetic data.
    #[serde(rename = "real+syn")]
    pub real_syn: ClassifierParams,
}

impl SetupParams {
    /// The parameters of `setup`.
    pub fn get(&self, setup: Setup) -> &ClassifierParams {
        match setup {
            Setup::Real => &self.real,
            Setup::Syn => &self.syn,
            Setup::RealSyn => &self.real_syn,
        }
    }

    /// Section 4.3: real 100-100/64/0.2/1e-5/70, syn 200-200/256/0.5/1e-5/5,
    /// real+syn 1000-1000/256/0.5/5e-6/30.
    pub fn within_paper() -> Self {
        Self {
            real: ClassifierParams::paper(100, 64, 0.2, 1e-5, 70),
            syn: ClassifierParams::paper(200, 256, 0.5, 1e-5, 5),
            real_syn: ClassifierParams::paper(1000, 256, 0.5, 5e-6, 30),
        }
    }

    /// Section 4.4: syn and real+syn 200-200, dropout 0.8, lr 1e-5, 20 epochs (batch size as
    /// within corpus: 256); real as within corpus.
    pub fn cross_paper() -> Self {
        Self {
            real: ClassifierParams::paper(100, 64, 0.2, 1e-5, 70),
            syn: ClassifierParams::paper(200, 256, 0.8, 1e-5, 20),
            real_syn: ClassifierParams::paper(200, 256, 0.8, 1e-5, 20),
        }
    }

    /// The published code's within-corpus defaults: the paper's, but real+syn at its `-lr`
    /// flag's 1e-5 (the paper's 5e-6 is dead code there).
    pub fn within_published_code() -> Self {
        Self {
            real_syn: ClassifierParams::paper(1000, 256, 0.5, 1e-5, 30),
            ..Self::within_paper()
        }
    }

    /// The published code's cross-corpus defaults: real 50-50, syn 200-200 with dropout 0.5 for
    /// 5 epochs, real+syn 200-200 with dropout 0.5 for 30 epochs (the paper: dropout 0.8, 20
    /// epochs); batch sizes and learning rates as the paper's.
    pub fn cross_published_code() -> Self {
        Self {
            real: ClassifierParams::paper(50, 64, 0.2, 1e-5, 70),
            syn: ClassifierParams::paper(200, 256, 0.5, 1e-5, 5),
            real_syn: ClassifierParams::paper(200, 256, 0.5, 1e-5, 30),
        }
    }

    /// Every classifier with the published code's loop ([`ClassifierParams::published_loop`]).
    pub fn published_loop(&self) -> Self {
        Self {
            real: self.real.published_loop(),
            syn: self.syn.published_loop(),
            real_syn: self.real_syn.published_loop(),
        }
    }

    fn validate(&self, key: &str) -> Result<()> {
        self.real.validate(&format!("{key}.real"))?;
        self.syn.validate(&format!("{key}.syn"))?;
        self.real_syn.validate(&format!("{key}.real+syn"))
    }
}

/// Adam's constants. The update is TensorFlow 1.x's (the published code's optimiser):
/// `lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t)`, `p -= lr_t * m / (sqrt(v) + eps)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamParams {
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// TF's epsilon hat.
    pub epsilon: f64,
}

impl Default for AdamParams {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
        }
    }
}

fn default_lambda_cls() -> Vec<f64> {
    vec![0.0, 2.0]
}
fn default_gan_seeds() -> u32 {
    1
}
fn default_repeats() -> usize {
    5
}
fn default_setups() -> Vec<Setup> {
    Setup::ALL.to_vec()
}
fn default_leaky_slope() -> f64 {
    0.2
}
fn default_parallel_jobs() -> usize {
    DEFAULT_PARALLEL_JOBS
}
fn default_intra_op_threads() -> usize {
    1
}
fn default_true() -> bool {
    true
}

/// Default worker count, 0: one worker per core (`std::thread::available_parallelism`). On the
/// 2-core development machine two workers with one libtorch thread each beat one worker with
/// two libtorch threads by 17% on an idle machine, and by 7x when another process keeps one
/// core busy (libtorch's OpenMP threads then wait on each other; see the crate docs).
pub const DEFAULT_PARALLEL_JOBS: usize = 0;

/// The evaluation stage's configuration. Defaults are the paper's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// The GAN runs to evaluate, one per value (the paper: 0 and 2).
    #[serde(default = "default_lambda_cls")]
    pub lambda_cls: Vec<f64>,
    /// Generators trained per lambda_cls and scope, from different seeds (`gan.seeds`); each is
    /// its own synthetic set, and the tables aggregate over them.
    #[serde(default = "default_gan_seeds")]
    pub gan_seeds: u32,
    /// Baseline synthetic sets evaluated next to the CycleGAN's, by name
    /// (`synth/<scope>/<name>/synthetic.parquet`).
    #[serde(default)]
    pub baselines: Vec<String>,
    /// Which setups to train (default all three).
    #[serde(default = "default_setups")]
    pub setups: Vec<Setup>,
    /// Classifiers trained per setup, fold and lambda_cls (the paper: 5).
    #[serde(default = "default_repeats")]
    pub repeats: usize,
    /// Base seed: repeat r uses seed `seed + r`.
    #[serde(default)]
    pub seed: u64,
    /// Per-fold (leakage-free, default) or all-sessions (published) synthetic data for the
    /// within-corpus folds.
    #[serde(default)]
    pub synthetic_scope: SyntheticScope,
    /// z-normalisation scope.
    #[serde(default)]
    pub znorm: Znorm,
    /// Within-corpus hyper-parameters.
    #[serde(default = "SetupParams::within_paper")]
    pub within: SetupParams,
    /// Cross-corpus hyper-parameters.
    #[serde(default = "SetupParams::cross_paper")]
    pub cross: SetupParams,
    /// LeakyReLU slope of the hidden layers.
    #[serde(default = "default_leaky_slope")]
    pub leaky_slope: f64,
    /// Adam's constants.
    #[serde(default)]
    pub adam: AdamParams,
    /// Classifiers trained at once, each on its own worker thread; 0: one per core. The
    /// numbers do not depend on it: every run has its own random streams and
    /// `intra_op_threads` threads.
    #[serde(default = "default_parallel_jobs")]
    pub parallel_jobs: usize,
    /// libtorch intra-op threads of each training run. It changes the order of floating-point
    /// sums inside matrix products, so results can differ in the last bits between values;
    /// keep it fixed when comparing runs. 0: libtorch's default (the core count).
    #[serde(default = "default_intra_op_threads")]
    pub intra_op_threads: usize,
    /// Run the leave-one-session-out experiment (needs the fold file).
    #[serde(default = "default_true")]
    pub within_corpus: bool,
    /// Run the cross-corpus experiment when a cross-corpus set is given.
    #[serde(default = "default_true")]
    pub cross_corpus: bool,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            lambda_cls: default_lambda_cls(),
            gan_seeds: default_gan_seeds(),
            baselines: Vec::new(),
            setups: default_setups(),
            repeats: default_repeats(),
            seed: 0,
            synthetic_scope: SyntheticScope::default(),
            znorm: Znorm::default(),
            within: SetupParams::within_paper(),
            cross: SetupParams::cross_paper(),
            leaky_slope: default_leaky_slope(),
            adam: AdamParams::default(),
            parallel_jobs: default_parallel_jobs(),
            intra_op_threads: default_intra_op_threads(),
            within_corpus: true,
            cross_corpus: true,
        }
    }
}

impl EvalConfig {
    /// Checks every value; the error names the key.
    pub fn validate(&self) -> Result<()> {
        let fail = |message: String| Err(ConfigError::new("evaluation", message));
        if self.repeats == 0 {
            return fail("repeats must be positive".into());
        }
        if self.gan_seeds == 0 {
            return fail("gan_seeds must be positive".into());
        }
        if self.setups.is_empty() {
            return fail("setups must name at least one of real, syn, real+syn".into());
        }
        let mut setups = self.setups.clone();
        setups.sort();
        setups.dedup();
        if setups.len() != self.setups.len() {
            return fail(format!("setups lists a setup twice: {:?}", self.setups));
        }
        if self.setups.iter().any(|setup| setup.uses_synthetic())
            && self.lambda_cls.is_empty()
            && self.baselines.is_empty()
        {
            return fail(
                "lambda_cls and baselines are empty but a synthetic setup is configured".into(),
            );
        }
        for (index, name) in self.baselines.iter().enumerate() {
            let valid = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !name.starts_with("lambda_cls")
                && name != CYCLEGAN;
            if !valid {
                return fail(format!(
                    "baselines[{index}]: {name:?} is not a baseline name (a-z, 0-9 and '-', \
                     not \"cyclegan\", not starting with \"lambda_cls\")"
                ));
            }
            if self.baselines[..index].contains(name) {
                return fail(format!("baselines lists {name:?} twice"));
            }
        }
        for (index, value) in self.lambda_cls.iter().enumerate() {
            if !(value.is_finite() && *value >= 0.0) {
                return fail(format!(
                    "lambda_cls[{index}] must be finite and >= 0, got {value}"
                ));
            }
            if self.lambda_cls[..index].contains(value) {
                return fail(format!("lambda_cls lists {value} twice"));
            }
        }
        if !(self.leaky_slope.is_finite() && self.leaky_slope >= 0.0) {
            return fail(format!(
                "leaky_slope must be finite and >= 0, got {}",
                self.leaky_slope
            ));
        }
        let adam = &self.adam;
        if !((0.0..1.0).contains(&adam.beta1)
            && (0.0..1.0).contains(&adam.beta2)
            && adam.epsilon > 0.0)
        {
            return fail(format!(
                "adam: need 0 <= beta1, beta2 < 1 and epsilon > 0, got {adam:?}"
            ));
        }
        if !self.within_corpus && !self.cross_corpus {
            return fail("within_corpus and cross_corpus are both off: nothing to do".into());
        }
        self.within.validate("within")?;
        self.cross.validate("cross")
    }

    /// Workers that `parallel_jobs` stands for on this machine (0: the core count).
    pub fn workers(&self) -> usize {
        match self.parallel_jobs {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// Every synthetic source: the CycleGAN of each lambda_cls and generator seed, then the
    /// baselines.
    pub fn sources(&self) -> Vec<SyntheticSource> {
        self.lambda_cls
            .iter()
            .flat_map(|&value| {
                (0..self.gan_seeds).map(move |seed| SyntheticSource::seeded(value, seed))
            })
            .chain(self.baselines.iter().map(SyntheticSource::baseline))
            .collect()
    }

    /// Seed of repeat `repeat` (`seed + repeat`).
    pub fn repeat_seed(&self, repeat: usize) -> u64 {
        self.seed.wrapping_add(repeat as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_papers_and_valid() {
        let config = EvalConfig::default();
        config.validate().unwrap();
        assert_eq!(config.within.real.hidden, [100, 100]);
        assert_eq!(config.within.real.batch_size, 64);
        assert_eq!(config.within.real.epochs, 70);
        assert_eq!(config.within.syn.epochs, 5);
        assert_eq!(config.within.real_syn.hidden, [1000, 1000]);
        assert_eq!(config.within.real_syn.learning_rate, 5e-6);
        assert_eq!(config.cross.syn.dropout, 0.8);
        assert_eq!(config.cross.real_syn.epochs, 20);
        assert_eq!(config.cross.real, config.within.real);
        assert_eq!(config.lambda_cls, [0.0, 2.0]);
        assert_eq!(config.repeats, 5);
    }

    #[test]
    fn json_with_defaults_and_unknown_keys() {
        let config: EvalConfig =
            serde_json::from_str(r#"{"repeats": 2, "znorm": "train-statistics"}"#).unwrap();
        assert_eq!(config.repeats, 2);
        assert_eq!(config.znorm, Znorm::TrainStatistics);
        assert!(serde_json::from_str::<EvalConfig>(r#"{"repeat": 2}"#).is_err());
        let setups: Vec<Setup> = serde_json::from_str(r#"["real", "real+syn"]"#).unwrap();
        assert_eq!(setups, [Setup::Real, Setup::RealSyn]);
        let round_trip: EvalConfig =
            serde_json::from_str(&serde_json::to_string(&EvalConfig::default()).unwrap()).unwrap();
        assert_eq!(round_trip, EvalConfig::default());
    }

    #[test]
    fn impossible_values_name_the_key() {
        let mut config = EvalConfig::default();
        config.within.syn.dropout = 1.0;
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("within.syn"), "{message}");
        let cases = [
            (
                EvalConfig {
                    lambda_cls: vec![2.0, 2.0],
                    ..EvalConfig::default()
                },
                "twice",
            ),
            (
                EvalConfig {
                    repeats: 0,
                    ..EvalConfig::default()
                },
                "repeats",
            ),
            (
                EvalConfig {
                    gan_seeds: 0,
                    ..EvalConfig::default()
                },
                "gan_seeds",
            ),
        ];
        for (config, key) in cases {
            let message = config.validate().unwrap_err().to_string();
            assert!(message.contains(key), "{key}: {message}");
        }
        assert!(EvalConfig::default().workers() >= 1);
    }

    #[test]
    fn every_generator_seed_is_a_source() {
        let config = EvalConfig {
            lambda_cls: vec![0.0, 2.0],
            gan_seeds: 2,
            baselines: vec!["smote".into()],
            ..EvalConfig::default()
        };
        assert_eq!(
            config.sources(),
            [
                SyntheticSource::seeded(0.0, 0),
                SyntheticSource::seeded(0.0, 1),
                SyntheticSource::seeded(2.0, 0),
                SyntheticSource::seeded(2.0, 1),
                SyntheticSource::baseline("smote"),
            ]
        );
    }
}
