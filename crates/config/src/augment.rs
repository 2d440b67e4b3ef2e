//! What a baseline augmentation run is configured with, and the checks that reject impossible
//! values before any data is read.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::layout::{Scope, StageInputs, SyntheticSource, synthetic_path};

/// One baseline augmentation method and its settings, e.g.
/// `{"method": "smote", "k": 5, "size": "balance"}`. Every key but `method` has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineConfig {
    /// The set's name, its directory next to the CycleGAN's `lambda_cls-<v>/` and its `method`
    /// column; defaults to the method's name ([`Method::kind`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The method and its own settings (the `method` key and the method's keys).
    #[serde(flatten)]
    pub method: Method,
    /// How many synthetic vectors each class gets.
    #[serde(default)]
    pub size: Size,
    /// Overrides the run's seed for this method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// The augmentation methods. Unknown keys are rejected, including keys of another method
/// (`{"method": "gaussian-noise", "k": 5}` is an error).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Method {
    /// Copies of real vectors drawn with replacement within each class.
    RandomOversampling {},
    /// SMOTE: interpolation between a real vector and one of its k nearest same-class
    /// neighbours (Chawla et al. 2002, as imbalanced-learn does it).
    Smote {
        /// Neighbours per vector (default 5). A class with fewer than `k + 1` rows uses all
        /// its other rows: k is clamped to the class size minus one.
        #[serde(default = "default_k")]
        k: usize,
    },
    /// Real vectors plus Gaussian noise.
    GaussianNoise {
        /// The noise's standard deviation as a fraction of each feature's population standard
        /// deviation in the training part (default 0.1). Constant features get no noise.
        #[serde(default = "default_sigma")]
        sigma: f64,
    },
    /// A conditional GAN trained from Gaussian noise (Sahu et al. 2018).
    Cgan(CganConfig),
    /// Class-conditional mixup (Zhang et al. 2018): `lambda x + (1 - lambda) y` for two rows x
    /// and y of the same class drawn uniformly, lambda from Beta(alpha, alpha). Both parents
    /// share the class because every synthetic row carries one emotion; mixup across classes
    /// needs soft labels, which the classifiers of the paper do not take.
    Mixup {
        /// Beta's parameter (default 0.2, common for tabular and speech features): small values
        /// keep most rows near one parent, 1 mixes uniformly.
        #[serde(default = "default_alpha")]
        alpha: f64,
    },
}

fn default_k() -> usize {
    5
}

fn default_sigma() -> f64 {
    0.1
}

fn default_alpha() -> f64 {
    0.2
}

impl Method {
    /// The method's name as written in the `method` key: `random-oversampling`, `smote`,
    /// `gaussian-noise` or `cgan`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RandomOversampling {} => "random-oversampling",
            Self::Smote { .. } => "smote",
            Self::GaussianNoise { .. } => "gaussian-noise",
            Self::Cgan(_) => "cgan",
            Self::Mixup { .. } => "mixup",
        }
    }
}

/// How many synthetic vectors each class gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Size {
    /// `"balance"`: every class is topped up to the largest class's count, as
    /// imbalanced-learn's `sampling_strategy="auto"` does, so real plus synthetic is exactly
    /// balanced and the largest class gets none.
    #[default]
    Balance,
    /// `{"per_class": N}`: N synthetic vectors for every class.
    PerClass(usize),
}

/// What the generator's last layer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CganOutput {
    /// A sigmoid: the vectors live in the training part's min-max [0, 1] space, and a sigmoid
    /// keeps the generated ones there as well (the default).
    #[default]
    Sigmoid,
    /// No activation, like the CycleGAN generators of the published code.
    Linear,
}

/// The conditional GAN's networks and training. One generator G(z, y) and one discriminator
/// D(x, y), both MLPs whose hidden layers are affine, then LeakyReLU (slope 0.2), then inverted
/// dropout; the emotion y enters both as a one-hot vector concatenated to the input. Trained
/// with sigmoid cross-entropy on D's logit (the non-saturating generator loss) and Adam.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CganConfig {
    /// Length of the Gaussian noise vector z (default 100).
    pub noise_dim: usize,
    /// Hidden layer widths of G (default [256, 256]).
    pub generator_hidden: Vec<usize>,
    /// Hidden layer widths of D (default [256, 256]).
    pub discriminator_hidden: Vec<usize>,
    /// Dropout rate after every hidden layer of both networks during training (default 0).
    pub dropout: f64,
    /// Passes over the training part (default 300).
    pub epochs: usize,
    /// Rows per minibatch (default 64); each epoch's last batch holds the remainder.
    pub batch_size: usize,
    /// Adam's learning rate for both networks (default 2e-4).
    pub learning_rate: f64,
    /// Adam's beta1 (default 0.5, the DCGAN setting).
    pub beta1: f64,
    /// Adam's beta2 (default 0.999).
    pub beta2: f64,
    /// The generator's output layer (default `sigmoid`).
    pub output: CganOutput,
}

impl Default for CganConfig {
    fn default() -> Self {
        Self {
            noise_dim: 100,
            generator_hidden: vec![256, 256],
            discriminator_hidden: vec![256, 256],
            dropout: 0.0,
            epochs: 300,
            batch_size: 64,
            learning_rate: 2e-4,
            beta1: 0.5,
            beta2: 0.999,
            output: CganOutput::Sigmoid,
        }
    }
}

impl CganConfig {
    /// Checks every value; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("noise_dim", self.noise_dim),
            ("epochs", self.epochs),
            ("batch_size", self.batch_size),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError::keyed("baseline", key, "must be at least 1"));
            }
        }
        for (key, widths) in [
            ("generator_hidden", &self.generator_hidden),
            ("discriminator_hidden", &self.discriminator_hidden),
        ] {
            if widths.contains(&0) {
                return Err(ConfigError::keyed(
                    "baseline",
                    key,
                    format!("layer widths must be at least 1, got {widths:?}"),
                ));
            }
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(ConfigError::keyed(
                "baseline",
                "learning_rate",
                format!("must be a positive number, got {}", self.learning_rate),
            ));
        }
        for (key, value) in [
            ("dropout", self.dropout),
            ("beta1", self.beta1),
            ("beta2", self.beta2),
        ] {
            if !(0.0..1.0).contains(&value) {
                return Err(ConfigError::keyed(
                    "baseline",
                    key,
                    format!("must lie in [0, 1), got {value}"),
                ));
            }
        }
        Ok(())
    }
}

impl BaselineConfig {
    /// The set's name: `name` when given, else the method's name.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(self.method.kind())
    }

    /// Checks every value; the error names the key.
    ///
    /// A name must be non-empty and made of `a-z`, `0-9` and `-`, because it becomes a directory
    /// next to the CycleGAN sets' `lambda_cls-<value>/`: the underscore-free alphabet means no
    /// name can ever be mistaken for one of those.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(name) = &self.name {
            if name.is_empty() {
                return Err(ConfigError::keyed("baseline", "name", "must not be empty"));
            }
            if let Some(bad) = name
                .chars()
                .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
            {
                return Err(ConfigError::keyed(
                    "baseline",
                    "name",
                    format!("{name:?} contains {bad:?}: use only a-z, 0-9 and -"),
                ));
            }
        }
        if self.size == Size::PerClass(0) {
            return Err(ConfigError::keyed(
                "baseline",
                "size.per_class",
                "must be at least 1",
            ));
        }
        match &self.method {
            Method::RandomOversampling {} => Ok(()),
            Method::Smote { k } if *k == 0 => {
                Err(ConfigError::keyed("baseline", "k", "must be at least 1"))
            }
            Method::Smote { .. } => Ok(()),
            Method::GaussianNoise { sigma } if !(sigma.is_finite() && *sigma > 0.0) => {
                Err(ConfigError::keyed(
                    "baseline",
                    "sigma",
                    format!("must be a positive number, got {sigma}"),
                ))
            }
            Method::GaussianNoise { .. } => Ok(()),
            Method::Mixup { alpha } if !(alpha.is_finite() && *alpha > 0.0) => {
                Err(ConfigError::keyed(
                    "baseline",
                    "alpha",
                    format!("must be a positive number, got {alpha}"),
                ))
            }
            Method::Mixup { .. } => Ok(()),
            Method::Cgan(cgan) => cgan.validate(),
        }
    }
}

/// `<synth_root>/<scope>/<name>/synthetic.parquet`: a baseline set sits next to the CycleGAN
/// sets' `lambda_cls-<value>/` directories of its scope.
pub fn baseline_path(synth_root: &Path, scope: &Scope, name: &str) -> PathBuf {
    synthetic_path(synth_root, &scope.name(), &SyntheticSource::baseline(name))
}

/// One baseline set to make.
#[derive(Debug, Clone)]
pub struct BaselineRequest {
    /// The method and its settings.
    pub config: BaselineConfig,
    /// The feature-stage files of the scope (only the target's are read: features,
    /// normalisation and, for fold scopes, folds).
    pub inputs: StageInputs,
    /// Whose training part the set is made from.
    pub scope: Scope,
    /// The run's seed; `config.seed` overrides it.
    pub seed: u64,
    /// Where the parquet goes (normally [`baseline_path`]).
    pub output: PathBuf,
}

impl BaselineRequest {
    /// The seed the set is made with: `config.seed` when given, else `seed`.
    pub fn effective_seed(&self) -> u64 {
        self.config.seed.unwrap_or(self.seed)
    }

    /// What the set records under `emocycle.config`: everything its contents depend on besides
    /// the input files (the method's settings, the scope and the seed), for freshness checks.
    pub fn recorded_config(&self) -> serde_json::Value {
        serde_json::json!({
            "baseline": self.config,
            "name": self.config.name(),
            "scope": self.scope.name(),
            "seed": self.effective_seed(),
        })
    }

    /// The files the set is made from (their sha256 go to `emocycle.inputs`).
    pub fn input_files(&self) -> Vec<PathBuf> {
        let mut files = vec![
            self.inputs.target.clone(),
            self.inputs.target_normalisation.clone(),
        ];
        if matches!(self.scope, Scope::Fold(_)) {
            files.push(self.inputs.target_folds.clone());
        }
        files
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<BaselineConfig, serde_json::Error> {
        serde_json::from_str(text)
    }

    #[test]
    fn every_method_parses_with_defaults_and_round_trips() {
        let smote = parse(r#"{"method": "smote"}"#).unwrap();
        assert_eq!(smote.method, Method::Smote { k: 5 });
        assert_eq!(smote.size, Size::Balance);
        assert_eq!(smote.name(), "smote");
        assert_eq!(smote.seed, None);

        let oversampling = parse(r#"{"method": "random-oversampling"}"#).unwrap();
        assert_eq!(oversampling.method, Method::RandomOversampling {});
        assert_eq!(oversampling.name(), "random-oversampling");

        let noise = parse(r#"{"method": "gaussian-noise", "size": {"per_class": 7}}"#).unwrap();
        assert_eq!(noise.method, Method::GaussianNoise { sigma: 0.1 });
        assert_eq!(noise.size, Size::PerClass(7));
        assert_eq!(noise.name(), "gaussian-noise");

        let cgan =
            parse(r#"{"method": "cgan", "epochs": 10, "name": "cgan-short", "seed": 3}"#).unwrap();
        assert_eq!(
            cgan.method,
            Method::Cgan(CganConfig {
                epochs: 10,
                ..CganConfig::default()
            })
        );
        assert_eq!(cgan.name(), "cgan-short");
        assert_eq!(cgan.seed, Some(3));

        let full = r#"{"method": "cgan", "noise_dim": 100, "generator_hidden": [256,256],
            "discriminator_hidden": [256,256], "epochs": 300, "batch_size": 64,
            "learning_rate": 2e-4}"#;
        assert_eq!(
            parse(full).unwrap().method,
            Method::Cgan(CganConfig::default())
        );

        let mixup = parse(r#"{"method": "mixup"}"#).unwrap();
        assert_eq!(mixup.method, Method::Mixup { alpha: 0.2 });
        assert_eq!(mixup.name(), "mixup");

        for config in [smote, oversampling, noise, cgan, mixup] {
            config.validate().unwrap();
            let text = serde_json::to_string(&config).unwrap();
            assert_eq!(parse(&text).unwrap(), config, "{text}");
        }
        let text = serde_json::to_value(parse(r#"{"method": "smote", "k": 3}"#).unwrap()).unwrap();
        assert_eq!(
            text,
            serde_json::json!({"method": "smote", "k": 3, "size": "balance"})
        );
    }

    #[test]
    fn unknown_keys_and_methods_are_rejected() {
        for text in [
            r#"{"method": "smote", "kk": 5}"#,
            r#"{"method": "gaussian-noise", "k": 5}"#,
            r#"{"method": "random-oversampling", "sigma": 0.1}"#,
            r#"{"method": "cgan", "noise": 10}"#,
            r#"{"method": "smote", "size": "equal"}"#,
            r#"{"method": "adasyn"}"#,
            r#"{"method": "mixup", "k": 5}"#,
            r#"{"k": 5}"#,
        ] {
            assert!(parse(text).is_err(), "{text} was accepted");
        }
        let error = parse(r#"{"method": "smote", "kk": 5}"#).unwrap_err();
        assert!(error.to_string().contains("kk"), "{error}");
    }

    #[test]
    fn impossible_values_name_their_key() {
        let cases = [
            (r#"{"method": "smote", "k": 0}"#, "k"),
            (r#"{"method": "gaussian-noise", "sigma": 0}"#, "sigma"),
            (r#"{"method": "gaussian-noise", "sigma": -0.1}"#, "sigma"),
            (r#"{"method": "mixup", "alpha": 0}"#, "alpha"),
            (
                r#"{"method": "smote", "size": {"per_class": 0}}"#,
                "size.per_class",
            ),
            (r#"{"method": "smote", "name": ""}"#, "name"),
            (r#"{"method": "smote", "name": "Smote"}"#, "name"),
            (r#"{"method": "smote", "name": "lambda_cls-2"}"#, "name"),
            (r#"{"method": "cgan", "noise_dim": 0}"#, "noise_dim"),
            (r#"{"method": "cgan", "epochs": 0}"#, "epochs"),
            (r#"{"method": "cgan", "batch_size": 0}"#, "batch_size"),
            (
                r#"{"method": "cgan", "generator_hidden": [8, 0]}"#,
                "generator_hidden",
            ),
            (
                r#"{"method": "cgan", "discriminator_hidden": [0]}"#,
                "discriminator_hidden",
            ),
            (r#"{"method": "cgan", "learning_rate": 0}"#, "learning_rate"),
            (r#"{"method": "cgan", "dropout": 1}"#, "dropout"),
            (r#"{"method": "cgan", "beta1": 1.5}"#, "beta1"),
            (r#"{"method": "cgan", "beta2": -0.1}"#, "beta2"),
        ];
        for (text, key) in cases {
            match parse(text).unwrap().validate() {
                Err(ConfigError {
                    key: Some(found), ..
                }) => {
                    assert_eq!(found, key, "{text}")
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        let good = parse(r#"{"method": "smote", "name": "smote-k3-2"}"#).unwrap();
        good.validate().unwrap();
        assert_eq!(good.name(), "smote-k3-2");
    }
}
