//! The GAN stage's configuration: every size, rate and count, with the paper's values as defaults.

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// How the K models of a stack (the four CycleGANs' networks, or the grid engine's runs x
/// CycleGANs) are laid out in memory.
///
/// Both layouts compute the same function. The per-run trainer on the CPU uses the separate
/// layout, the grid engine (and a run alone on CUDA) the batched one; a loaded model
/// (generation) takes [`ModelLayout::resolve`]'s choice for its device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelLayout {
    /// The faster layout for the device: see [`ModelLayout::resolve`].
    #[default]
    Auto,
    /// One set of weight matrices per CycleGAN; every layer is one `addmm` per CycleGAN.
    Separate,
    /// The same layer of all CycleGANs stacked (`[K, out, in]`); every layer is one `baddbmm`.
    Batched,
}

impl ModelLayout {
    /// The concrete layout on a CUDA device (`on_cuda`) or the CPU.
    ///
    /// `Auto` is `Batched` on CUDA, where it launches a quarter of the kernels, and `Separate`
    /// on the CPU, where batched matrix products on `[K, 64, d]` are slower in libtorch's
    /// kernels than K plain ones (a paper-size training iteration took 1.11x to 1.25x longer
    /// batched in five rounds; docs/benchmarks.md's history).
    pub fn resolve(self, on_cuda: bool) -> ModelLayout {
        match (self, on_cuda) {
            (ModelLayout::Auto, false) => ModelLayout::Separate,
            (ModelLayout::Auto, true) => ModelLayout::Batched,
            (other, _) => other,
        }
    }

    /// `separate` or `batched` (`auto` for the unresolved choice).
    pub fn name(self) -> &'static str {
        match self {
            ModelLayout::Auto => "auto",
            ModelLayout::Separate => "separate",
            ModelLayout::Batched => "batched",
        }
    }
}

/// How the GAN stage's runs (pretrainings and joint trainings) train; neither engine changes
/// the method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    /// The grid on CUDA, one process per run on the CPU: see [`Engine::resolve`].
    #[default]
    Auto,
    /// Every (scope, lambda_cls, generator seed) run in a process of its own, `--jobs` at once.
    PerRun,
    /// The stage's runs trained together as one batched model (the fused grid engine), in
    /// groups that fit `gan.grid_memory_gib`.
    Grid,
}

impl Engine {
    /// The concrete engine on a CUDA device (`on_cuda`) or the CPU.
    ///
    /// `Auto` is `Grid` on CUDA, where one small run leaves the GPU waiting on kernel launches,
    /// and `PerRun` on the CPU, where `just bench` measures the grid no faster than one run per
    /// core (docs/benchmarks.md).
    pub fn resolve(self, on_cuda: bool) -> Engine {
        match (self, on_cuda) {
            (Engine::Auto, false) => Engine::PerRun,
            (Engine::Auto, true) => Engine::Grid,
            (other, _) => other,
        }
    }
}

/// Every number of the GAN stage. Defaults are the paper's and the published code's values
/// (see `docs` method reference); unknown keys are refused so a typo cannot silently fall back
/// to a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GanConfig {
    /// Hidden layer sizes of every G_i and F_i (paper: 1000-500-1000).
    pub generator_hidden: Vec<usize>,
    /// Hidden layer sizes of every D_T_i and D_S_i (paper: 1000-1000).
    pub discriminator_hidden: Vec<usize>,
    /// Hidden layer sizes of the auxiliary classifier C (paper: 100-100).
    pub classifier_hidden: Vec<usize>,
    /// Dropout rate after every hidden layer of G_i and F_i (paper: 0.2).
    pub generator_dropout: f64,
    /// Dropout rate after every hidden layer of the discriminators. The method reference says
    /// every hidden layer has dropout but gives no rate for D; 0.2 (the generators' rate) is our
    /// reading.
    pub discriminator_dropout: f64,
    /// Dropout rate after every hidden layer of C (published code: 0.5).
    pub classifier_dropout: f64,
    /// Negative slope of the LeakyReLU after every hidden layer (0.2).
    pub leaky_slope: f64,
    /// Initial learning rate of every Adam optimiser (2e-4); pretraining keeps it constant.
    pub learning_rate: f64,
    /// Factor applied to the joint-training learning rate every `lr_decay_every` epochs (0.8).
    pub lr_decay: f64,
    /// Epochs between learning-rate decays in joint training (50).
    pub lr_decay_every: usize,
    /// Adam beta1 (0.9).
    pub adam_beta1: f64,
    /// Adam beta2 (0.999).
    pub adam_beta2: f64,
    /// Adam epsilon, TF's "epsilon hat" added to sqrt(v) (1e-8).
    pub adam_epsilon: f64,
    /// Minibatch size of every set (64).
    pub batch_size: usize,
    /// Cycle-only pretraining epochs of every (G_i, F_i) pair (10,000).
    pub pretrain_epochs: usize,
    /// Joint training epochs (2,000).
    pub train_epochs: usize,
    /// Weight of the cycle-consistency loss (5).
    pub lambda_cyc: f64,
    /// Weight of the auxiliary classification loss (paper: 0 or 2). Zero builds no classifier.
    pub lambda_cls: f64,
    /// Target of "real" samples in the adversarial losses: one-sided label smoothing (0.9).
    pub real_label: f64,
    /// Generator steps after every discriminator step, on the same minibatches (2).
    pub generator_steps: usize,
    /// Quirk of the published code (default true): the discriminator optimiser's variable list
    /// also holds every G_i (not F_i), so each D step also moves G_i down the gradient of the D
    /// loss, with Adam slots of its own. False gives textbook CycleGAN updates.
    pub d_step_updates_generator: bool,
    /// Epochs between checkpoints (a checkpoint is also written when a run ends or stops).
    pub checkpoint_every: usize,
    /// The one seed behind initialisation, shuffling and dropout.
    pub seed: u64,
}

impl Default for GanConfig {
    fn default() -> Self {
        Self {
            generator_hidden: vec![1000, 500, 1000],
            discriminator_hidden: vec![1000, 1000],
            classifier_hidden: vec![100, 100],
            generator_dropout: 0.2,
            discriminator_dropout: 0.2,
            classifier_dropout: 0.5,
            leaky_slope: 0.2,
            learning_rate: 2e-4,
            lr_decay: 0.8,
            lr_decay_every: 50,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-8,
            batch_size: 64,
            pretrain_epochs: 10_000,
            train_epochs: 2_000,
            lambda_cyc: 5.0,
            lambda_cls: 2.0,
            real_label: 0.9,
            generator_steps: 2,
            d_step_updates_generator: true,
            checkpoint_every: 50,
            seed: 0,
        }
    }
}

impl GanConfig {
    /// The settings pretraining's outputs depend on, for freshness checks: the generators'
    /// shape, dropout and slope, Adam, batch size, epochs and seed. Every field is named here, so
    /// a new field does not compile until it is sorted into this key or out of it.
    pub fn pretraining_key(&self) -> serde_json::Value {
        let GanConfig {
            generator_hidden,
            discriminator_hidden: _,
            classifier_hidden: _,
            generator_dropout,
            discriminator_dropout: _,
            classifier_dropout: _,
            leaky_slope,
            learning_rate,
            lr_decay: _,
            lr_decay_every: _,
            adam_beta1,
            adam_beta2,
            adam_epsilon,
            batch_size,
            pretrain_epochs,
            train_epochs: _,
            lambda_cyc: _,
            lambda_cls: _,
            real_label: _,
            generator_steps: _,
            d_step_updates_generator: _,
            checkpoint_every: _,
            seed,
        } = self;
        serde_json::json!({
            "generator_hidden": generator_hidden,
            "generator_dropout": generator_dropout,
            "leaky_slope": leaky_slope,
            "learning_rate": learning_rate,
            "adam_beta1": adam_beta1,
            "adam_beta2": adam_beta2,
            "adam_epsilon": adam_epsilon,
            "batch_size": batch_size,
            "pretrain_epochs": pretrain_epochs,
            "seed": seed,
        })
    }

    /// The settings joint training's outputs depend on, for freshness checks: all but how often
    /// it checkpoints and `pretrain_epochs`, which reaches training through the pretrained
    /// generators (an input file of its own). Every field is named, as in
    /// [`GanConfig::pretraining_key`].
    pub fn training_key(&self) -> serde_json::Value {
        let GanConfig {
            generator_hidden,
            discriminator_hidden,
            classifier_hidden,
            generator_dropout,
            discriminator_dropout,
            classifier_dropout,
            leaky_slope,
            learning_rate,
            lr_decay,
            lr_decay_every,
            adam_beta1,
            adam_beta2,
            adam_epsilon,
            batch_size,
            pretrain_epochs: _,
            train_epochs,
            lambda_cyc,
            lambda_cls,
            real_label,
            generator_steps,
            d_step_updates_generator,
            checkpoint_every: _,
            seed,
        } = self;
        serde_json::json!({
            "generator_hidden": generator_hidden,
            "discriminator_hidden": discriminator_hidden,
            "classifier_hidden": classifier_hidden,
            "generator_dropout": generator_dropout,
            "discriminator_dropout": discriminator_dropout,
            "classifier_dropout": classifier_dropout,
            "leaky_slope": leaky_slope,
            "learning_rate": learning_rate,
            "lr_decay": lr_decay,
            "lr_decay_every": lr_decay_every,
            "adam_beta1": adam_beta1,
            "adam_beta2": adam_beta2,
            "adam_epsilon": adam_epsilon,
            "batch_size": batch_size,
            "train_epochs": train_epochs,
            "lambda_cyc": lambda_cyc,
            "lambda_cls": lambda_cls,
            "real_label": real_label,
            "generator_steps": generator_steps,
            "d_step_updates_generator": d_step_updates_generator,
            "seed": seed,
        })
    }

    /// The joint-training learning rate of `epoch` (0-based): `lr * decay^floor(epoch / every)`.
    pub fn learning_rate_at(&self, epoch: usize) -> f64 {
        let decays = epoch / self.lr_decay_every.max(1);
        self.learning_rate
            * self
                .lr_decay
                .powi(i32::try_from(decays).unwrap_or(i32::MAX))
    }

    /// Whether the auxiliary classifier C exists (`lambda_cls != 0`).
    pub fn has_classifier(&self) -> bool {
        self.lambda_cls != 0.0
    }

    /// Refuses values that cannot train: zero sizes, rates outside their range, non-finite
    /// weights.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |why: String| Err(ConfigError::new("GAN", why));
        for (name, sizes) in [
            ("generator_hidden", &self.generator_hidden),
            ("discriminator_hidden", &self.discriminator_hidden),
            ("classifier_hidden", &self.classifier_hidden),
        ] {
            if sizes.contains(&0) {
                return bad(format!("{name} contains a zero-sized layer"));
            }
        }
        for (name, rate) in [
            ("generator_dropout", self.generator_dropout),
            ("discriminator_dropout", self.discriminator_dropout),
            ("classifier_dropout", self.classifier_dropout),
        ] {
            if !(0.0..1.0).contains(&rate) {
                return bad(format!("{name} = {rate} is outside [0, 1)"));
            }
        }
        for (name, beta) in [
            ("adam_beta1", self.adam_beta1),
            ("adam_beta2", self.adam_beta2),
        ] {
            if !(0.0..1.0).contains(&beta) {
                return bad(format!("{name} = {beta} is outside [0, 1)"));
            }
        }
        for (name, value) in [
            ("leaky_slope", self.leaky_slope),
            ("learning_rate", self.learning_rate),
            ("lr_decay", self.lr_decay),
            ("adam_epsilon", self.adam_epsilon),
            ("lambda_cyc", self.lambda_cyc),
            ("lambda_cls", self.lambda_cls),
            ("real_label", self.real_label),
        ] {
            if !value.is_finite() || value < 0.0 {
                return bad(format!("{name} = {value} must be finite and not negative"));
            }
        }
        if self.learning_rate == 0.0 {
            return bad("learning_rate must be positive".into());
        }
        if self.real_label > 1.0 {
            return bad(format!("real_label = {} is above 1", self.real_label));
        }
        for (name, value) in [
            ("batch_size", self.batch_size),
            ("lr_decay_every", self.lr_decay_every),
            ("checkpoint_every", self.checkpoint_every),
        ] {
            if value == 0 {
                return bad(format!("{name} must be positive"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learning_rate_schedule_decays_every_fifty_epochs() {
        let config = GanConfig::default();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-15;
        assert!(close(config.learning_rate_at(0), 2e-4));
        assert!(close(config.learning_rate_at(49), 2e-4));
        assert!(close(config.learning_rate_at(50), 1.6e-4));
        assert!(close(config.learning_rate_at(100), 1.28e-4));
        assert!(close(config.learning_rate_at(1999), 2e-4 * 0.8f64.powi(39)));
    }

    #[test]
    fn freshness_keys_hold_what_each_phase_depends_on() {
        let base = GanConfig::default();
        let changed = |edit: fn(&mut GanConfig)| {
            let mut config = base.clone();
            edit(&mut config);
            (
                config.pretraining_key() != base.pretraining_key(),
                config.training_key() != base.training_key(),
            )
        };
        // (pretraining stale, training stale)
        assert_eq!(changed(|c| c.lambda_cls = 0.0), (false, true));
        assert_eq!(changed(|c| c.train_epochs += 1), (false, true));
        assert_eq!(changed(|c| c.discriminator_hidden = vec![8]), (false, true));
        assert_eq!(changed(|c| c.pretrain_epochs += 1), (true, false));
        assert_eq!(changed(|c| c.checkpoint_every += 1), (false, false));
        assert_eq!(changed(|c| c.generator_hidden = vec![8]), (true, true));
        assert_eq!(changed(|c| c.seed += 1), (true, true));
        assert_eq!(changed(|c| c.learning_rate = 1e-3), (true, true));
    }

    #[test]
    fn defaults_are_the_papers_and_unknown_keys_are_refused() {
        let config: GanConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config, GanConfig::default());
        assert_eq!(config.generator_hidden, [1000, 500, 1000]);
        assert_eq!(config.discriminator_hidden, [1000, 1000]);
        assert_eq!(config.classifier_hidden, [100, 100]);
        assert_eq!(
            (
                config.batch_size,
                config.pretrain_epochs,
                config.train_epochs
            ),
            (64, 10_000, 2_000)
        );
        assert!(config.d_step_updates_generator);
        let partial: GanConfig = serde_json::from_str(r#"{"lambda_cls": 0.0}"#).unwrap();
        assert!(!partial.has_classifier());
        assert!(serde_json::from_str::<GanConfig>(r#"{"lamda_cls": 0.0}"#).is_err());
        assert_eq!(ModelLayout::Auto.resolve(false), ModelLayout::Separate);
        assert_eq!(ModelLayout::Auto.resolve(true), ModelLayout::Batched);
        assert_eq!(ModelLayout::Batched.resolve(false), ModelLayout::Batched);
        config.validate().unwrap();
        let bad = GanConfig {
            generator_dropout: 1.0,
            ..GanConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().section, "GAN");
    }
}
