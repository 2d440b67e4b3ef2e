//! The networks of the four CycleGANs and C, their losses, and the trained-model handles.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use emocycle_rng::SplitMix64;

use tch::{Device, Kind, Tensor};

use crate::checkpoint::{read_safetensors, write_safetensors_atomic};
use crate::{GanConfig, GanError, ModelLayout};
use emocycle_torch::{Acts, Init, Leaf, MlpStack};

fn sizes(features: i64, hidden: &[usize], out: i64) -> Vec<i64> {
    std::iter::once(features)
        .chain(hidden.iter().map(|&h| h as i64))
        .chain(std::iter::once(out))
        .collect()
}

pub(crate) fn generator_stack(
    config: &GanConfig,
    prefix: &str,
    models: Vec<usize>,
    features: i64,
    layout: ModelLayout,
    device: Device,
) -> MlpStack {
    MlpStack::new(
        prefix,
        Some(models),
        sizes(features, &config.generator_hidden, features),
        config.generator_dropout,
        config.leaky_slope,
        layout,
        Init::Libtorch,
        device,
    )
}

/// Parameter counts of a built model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ParameterCounts {
    /// One G_i (F_i has the same count).
    pub generator: i64,
    /// One D_T_i (D_S_i has the same count).
    pub discriminator: i64,
    /// C; zero when `lambda_cls` is 0.
    pub classifier: i64,
    /// Everything: K x (G, F, D_T, D_S) + C.
    pub total: i64,
}

/// All networks of joint training: K x (G, F, D_T, D_S) and, when `lambda_cls != 0`, C.
pub(crate) struct Nets {
    pub layout: ModelLayout,
    pub models: usize,
    pub g: MlpStack,
    pub f: MlpStack,
    pub d_t: MlpStack,
    pub d_s: MlpStack,
    pub c: Option<MlpStack>,
}

/// Per-model losses of one generator step, `[K]` tensors and scalars, still in the graph.
pub(crate) struct GeneratorLosses {
    pub g: Tensor,
    pub cycle: Tensor,
    pub cls: Tensor,
    pub total: Tensor,
}

/// The part of a generator step that involves no C: per model `[K]` losses in the graph, and
/// G(s), which C classifies.
pub(crate) struct CycleGanLosses {
    /// `BCE(D_T(G(s)), real) + BCE(D_S(F(t)), real) + lambda_cyc * cycle`.
    pub g: Tensor,
    /// `mse(s, F(G(s))) + mse(t, G(F(t)))`.
    pub cycle: Tensor,
    pub generated: Acts,
}

impl Nets {
    /// Fresh networks, drawn from libtorch's current random state in a fixed order (G_k, F_k,
    /// D_T_k, D_S_k stacks, then C), identical for both layouts.
    pub(crate) fn new(
        config: &GanConfig,
        models: usize,
        features: i64,
        layout: ModelLayout,
        device: Device,
    ) -> Self {
        let all: Vec<usize> = (0..models).collect();
        let disc = |prefix: &str| {
            MlpStack::new(
                prefix,
                Some(all.clone()),
                sizes(features, &config.discriminator_hidden, 1),
                config.discriminator_dropout,
                config.leaky_slope,
                layout,
                Init::Libtorch,
                device,
            )
        };
        let g = generator_stack(config, "g", all.clone(), features, layout, device);
        let f = generator_stack(config, "f", all.clone(), features, layout, device);
        let d_t = disc("d_t");
        let d_s = disc("d_s");
        let c = config.has_classifier().then(|| {
            MlpStack::new(
                "c",
                None,
                sizes(features, &config.classifier_hidden, models as i64),
                config.classifier_dropout,
                config.leaky_slope,
                ModelLayout::Separate,
                Init::Libtorch,
                device,
            )
        });
        Self {
            layout,
            models,
            g,
            f,
            d_t,
            d_s,
            c,
        }
    }

    /// The CycleGANs `range` of a separate-layout model, sharing its tensors, without C: what
    /// one thread trains while others train the rest.
    pub(crate) fn share(&self, range: Range<usize>) -> Nets {
        Nets {
            layout: ModelLayout::Separate,
            models: range.len(),
            g: self.g.select(range.clone()),
            f: self.f.select(range.clone()),
            d_t: self.d_t.select(range.clone()),
            d_s: self.d_s.select(range),
            c: None,
        }
    }

    /// Gives every model its own dropout streams for the next step, one seed per model: G, F,
    /// D_T and D_S of model k draw from four streams split off `seeds[k]`.
    pub(crate) fn set_dropout_seeds(&self, seeds: &[u64]) {
        let mut streams: [Vec<SplitMix64>; 4] = Default::default();
        for &seed in seeds {
            let mut mixer = SplitMix64::new(seed);
            for per_stack in &mut streams {
                per_stack.push(SplitMix64::new(mixer.next_u64()));
            }
        }
        let [g, f, d_t, d_s] = streams;
        self.g.set_dropout_streams(g);
        self.f.set_dropout_streams(f);
        self.d_t.set_dropout_streams(d_t);
        self.d_s.set_dropout_streams(d_s);
    }

    pub(crate) fn stacks(&self) -> impl Iterator<Item = &MlpStack> {
        [&self.g, &self.f, &self.d_t, &self.d_s]
            .into_iter()
            .chain(self.c.as_ref())
    }

    pub(crate) fn leaves(&self) -> Vec<Leaf> {
        self.stacks().flat_map(MlpStack::leaves).collect()
    }

    pub(crate) fn export(&self) -> Vec<(String, Tensor)> {
        self.leaves()
            .iter()
            .flat_map(|leaf| leaf.export("", &leaf.tensor))
            .collect()
    }

    pub(crate) fn import(&self, tensors: &HashMap<String, Tensor>) -> Result<(), String> {
        self.leaves()
            .iter()
            .try_for_each(|leaf| leaf.import("", tensors, &leaf.tensor))
    }

    pub(crate) fn counts(&self) -> ParameterCounts {
        let per_model = |stack: &MlpStack| stack.parameter_count() / self.models as i64;
        let classifier = self.c.as_ref().map_or(0, MlpStack::parameter_count);
        ParameterCounts {
            generator: per_model(&self.g),
            discriminator: per_model(&self.d_t),
            classifier,
            total: self.stacks().map(MlpStack::parameter_count).sum(),
        }
    }

    /// The discriminator loss of every CycleGAN, `[K]`:
    /// `0.5 [BCE(D_T(t), real) + BCE(D_T(G(s)), 0)] + 0.5 [BCE(D_S(s), real) + BCE(D_S(F(t)), 0)]`.
    /// With `through_generator`, G(s) stays in the graph so the loss also reaches G (the published
    /// code's quirk); F(t) never does.
    pub(crate) fn discriminator_losses(
        &self,
        config: &GanConfig,
        s: &Acts,
        t: &Acts,
        through_generator: bool,
    ) -> Tensor {
        let fake_t = if through_generator {
            self.g.forward(s, true)
        } else {
            tch::no_grad(|| self.g.forward(s, true))
        };
        let fake_s = tch::no_grad(|| self.f.forward(t, true));
        let real = config.real_label;
        // Each discriminator sees its real and its fake batch as one: one matmul per layer on
        // twice the rows and one weight gradient instead of two plus their sum, which on the
        // CPU also halves the packing of every weight matrix (docs/benchmarks.md's history).
        let both = |d: &MlpStack, real_rows: &Acts, fake_rows: &Acts| {
            let logits = d.forward(&real_rows.cat_rows(fake_rows), true);
            let (on_real, on_fake) = logits.split_rows(real_rows.rows());
            on_real.bce_with_logits(real) + on_fake.bce_with_logits(0.0)
        };
        let target_side = both(&self.d_t, t, &fake_t);
        let source_side = both(&self.d_s, s, &fake_s);
        (target_side + source_side) * 0.5
    }

    /// The generator losses: per CycleGAN `BCE(D_T(G(s)), real) + BCE(D_S(F(t)), real) +
    /// lambda_cyc * cycle`, with `cycle = mse(s, F(G(s))) + mse(t, G(F(t)))`, and C's softmax
    /// cross-entropy on the K generated batches stacked with labels 0..K.
    pub(crate) fn generator_losses(
        &self,
        config: &GanConfig,
        s: &Acts,
        t: &Acts,
        labels: &Tensor,
    ) -> GeneratorLosses {
        let CycleGanLosses {
            g,
            cycle,
            generated,
        } = self.cycle_gan_losses(config, s, t);
        let mut total = g.sum(Kind::Float);
        let cls = match &self.c {
            Some(c) => {
                let cls = c
                    .forward_one(0, &generated.to_rows(), true)
                    .cross_entropy_for_logits(labels);
                total += &cls * config.lambda_cls;
                cls
            }
            None => Tensor::zeros([], (Kind::Float, labels.device())),
        };
        GeneratorLosses {
            g,
            cycle,
            cls,
            total,
        }
    }

    /// The generator losses without C's term (see [`Nets::generator_losses`]).
    pub(crate) fn cycle_gan_losses(
        &self,
        config: &GanConfig,
        s: &Acts,
        t: &Acts,
    ) -> CycleGanLosses {
        // G runs once on s and F(t) together (the rows of one matmul doubled, one weight
        // gradient instead of two plus their sum); F cannot do the same, as F(G(s)) needs G(s).
        let ft = self.f.forward(t, true);
        let (gs, gft) = self.g.forward(&s.cat_rows(&ft), true).split_rows(s.rows());
        let cycle = s.mse(&self.f.forward(&gs, true)) + t.mse(&gft);
        let real = config.real_label;
        let adversarial = self.d_t.forward(&gs, true).bce_with_logits(real)
            + self.d_s.forward(&ft, true).bce_with_logits(real);
        CycleGanLosses {
            g: adversarial + &cycle * config.lambda_cyc,
            cycle,
            generated: gs,
        }
    }
}

/// The trained model: K generator pairs, discriminators and (with `lambda_cls != 0`) C.
pub struct CycleGanModel {
    pub(crate) nets: Nets,
}

impl CycleGanModel {
    /// Number of CycleGANs (emotions).
    pub fn emotions(&self) -> usize {
        self.nets.models
    }

    /// Parameter counts per network kind and in total.
    pub fn parameter_counts(&self) -> ParameterCounts {
        self.nets.counts()
    }

    /// Whether the auxiliary classifier C exists.
    pub fn has_classifier(&self) -> bool {
        self.nets.c.is_some()
    }

    /// The layout the model was built with.
    pub fn layout(&self) -> ModelLayout {
        self.nets.layout
    }

    /// Builds a freshly initialised model (seeded from `config.seed`) without training it.
    pub fn new_initialised(
        config: &GanConfig,
        emotions: usize,
        features: i64,
        layout: ModelLayout,
        device: Device,
    ) -> Result<Self, GanError> {
        config.validate()?;
        emocycle_torch::seed_everything(config.seed);
        Ok(Self {
            nets: Nets::new(
                config,
                emotions,
                features,
                layout.resolve(device.is_cuda()),
                device,
            ),
        })
    }

    /// G_emotion(source) with dropout off: the synthetic vectors of one emotion, `[n, d]`, in the
    /// target's min-max space. Feed large sources in chunks to bound memory.
    pub fn generate(&self, emotion: usize, source: &Tensor) -> Result<Tensor, GanError> {
        if emotion >= self.nets.models {
            return Err(GanError::InvalidConfig(format!(
                "emotion {emotion} does not exist; the model has {}",
                self.nets.models
            )));
        }
        let device = self.nets.g.leaves()[0].tensor.device();
        Ok(tch::no_grad(|| {
            self.nets
                .g
                .forward_one(emotion, &source.to_device(device), false)
        }))
    }

    /// Every network tensor, named as in the crate docs, on the CPU.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        self.nets.export()
    }

    /// Writes the network weights (no optimiser state) atomically as safetensors.
    pub fn save_weights(&self, path: &Path) -> Result<(), GanError> {
        write_safetensors_atomic(path, &self.named_tensors())
    }

    /// Loads the networks from a weights or training-checkpoint file written by this crate.
    /// Sizes come from `config`; the emotion and feature counts from the file.
    pub fn load(
        path: &Path,
        config: &GanConfig,
        layout: ModelLayout,
        device: Device,
    ) -> Result<Self, GanError> {
        let tensors = read_safetensors(path)?;
        let first = tensors.get("g.0.layers.0.weight").ok_or_else(|| {
            crate::checkpoint::corrupt(path, "tensor g.0.layers.0.weight is missing")
        })?;
        let features = first.size()[1];
        let emotions = (0..)
            .take_while(|k| tensors.contains_key(&format!("g.{k}.layers.0.weight")))
            .count();
        let model = Self::new_initialised(config, emotions, features, layout, device)?;
        model
            .nets
            .import(&tensors)
            .map_err(|reason| crate::checkpoint::corrupt(path, reason))?;
        Ok(model)
    }
}

/// The pretrained (G_i, F_i) pairs, as named CPU tensors (`g.<i>.layers.<j>.weight` ...).
#[derive(Debug)]
pub struct PretrainedGenerators {
    pub(crate) tensors: HashMap<String, Tensor>,
}

impl PretrainedGenerators {
    /// Reads pretrained generators from a file written by [`PretrainedGenerators::save`] or a
    /// pretraining checkpoint.
    pub fn load(path: &Path) -> Result<Self, GanError> {
        let tensors = read_safetensors(path)?
            .into_iter()
            .filter(|(name, _)| name.starts_with("g.") || name.starts_with("f."))
            .collect();
        Ok(Self { tensors })
    }

    /// Writes the generator pairs atomically as safetensors.
    pub fn save(&self, path: &Path) -> Result<(), GanError> {
        let mut named: Vec<(String, Tensor)> = self
            .tensors
            .iter()
            .map(|(k, v)| (k.clone(), v.shallow_clone()))
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        write_safetensors_atomic(path, &named)
    }

    /// The named tensors.
    pub fn tensors(&self) -> &HashMap<String, Tensor> {
        &self.tensors
    }
}
