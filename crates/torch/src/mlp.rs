//! The one MLP of emocycle: a stack of K same-shaped MLPs (the K CycleGANs' G, F, D_T or D_S;
//! K = 1 for the evaluation's classifier and the conditional GAN's networks), in either layout.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Range;

use emocycle_rng::SplitMix64;
use tch::{Device, Kind, Tensor};

use emocycle_config::gan::ModelLayout;

/// Activations of K models: `[K, n, width]` in the batched layout, K `[n, width]` tensors in the
/// separate one.
pub enum Acts {
    /// One `[K, n, width]` tensor (batched layout).
    Stacked(Tensor),
    /// K `[n, width]` tensors (separate layout).
    List(Vec<Tensor>),
}

impl Acts {
    /// Splits `[K * n, width]` rows, model-major, into K activations without copying.
    pub fn from_rows(rows: &Tensor, models: usize, layout: ModelLayout) -> Acts {
        match layout {
            ModelLayout::Batched => {
                let width = rows.size()[1];
                Acts::Stacked(rows.view([models as i64, -1, width]))
            }
            _ => Acts::List(rows.chunk(models as i64, 0)),
        }
    }

    /// The K activations as `[K * n, width]` rows, model-major.
    pub fn to_rows(&self) -> Tensor {
        match self {
            Acts::Stacked(x) => x.flatten(0, 1),
            Acts::List(xs) => Tensor::cat(xs, 0),
        }
    }

    /// Model k's rows of `self` followed by its rows of `other`: `[2n, width]` per model.
    pub fn cat_rows(&self, other: &Acts) -> Acts {
        match (self, other) {
            (Acts::Stacked(a), Acts::Stacked(b)) => Acts::Stacked(Tensor::cat(&[a, b], 1)),
            (Acts::List(a), Acts::List(b)) => Acts::List(
                a.iter()
                    .zip(b)
                    .map(|(a, b)| Tensor::cat(&[a, b], 0))
                    .collect(),
            ),
            _ => unreachable!("activations of one step always share a layout"),
        }
    }

    /// Splits every model's rows into the first `n` and the rest (views, no copy).
    pub fn split_rows(&self, n: i64) -> (Acts, Acts) {
        match self {
            Acts::Stacked(x) => {
                let rest = x.size()[1] - n;
                (
                    Acts::Stacked(x.narrow(1, 0, n)),
                    Acts::Stacked(x.narrow(1, n, rest)),
                )
            }
            Acts::List(xs) => {
                let (head, tail) = xs
                    .iter()
                    .map(|x| (x.narrow(0, 0, n), x.narrow(0, n, x.size()[0] - n)))
                    .unzip();
                (Acts::List(head), Acts::List(tail))
            }
        }
    }

    /// The activations of models `range` (separate layout), sharing the tensors.
    ///
    /// # Panics
    /// On stacked activations.
    pub fn select(&self, range: Range<usize>) -> Acts {
        match self {
            Acts::List(xs) => Acts::List(xs[range].iter().map(Tensor::shallow_clone).collect()),
            Acts::Stacked(_) => panic!("stacked activations cannot be split by model"),
        }
    }

    /// The per-model tensors (separate layout).
    ///
    /// # Panics
    /// On stacked activations.
    pub fn tensors(&self) -> &[Tensor] {
        match self {
            Acts::List(xs) => xs,
            Acts::Stacked(_) => panic!("stacked activations are one tensor"),
        }
    }

    /// Rows per model.
    pub fn rows(&self) -> i64 {
        match self {
            Acts::Stacked(x) => x.size()[1],
            Acts::List(xs) => xs.first().map_or(0, |x| x.size()[0]),
        }
    }

    /// Mean of `f(self_k, other_k)`'s elements per model, as a `[K]` tensor.
    fn per_model(&self, other: &Acts, f: impl Fn(&Tensor, &Tensor) -> Tensor) -> Tensor {
        match (self, other) {
            (Acts::Stacked(a), Acts::Stacked(b)) => {
                f(a, b).mean_dim([1i64, 2].as_slice(), false, Kind::Float)
            }
            (Acts::List(a), Acts::List(b)) => {
                let means: Vec<Tensor> = a
                    .iter()
                    .zip(b)
                    .map(|(a, b)| f(a, b).mean(Kind::Float))
                    .collect();
                Tensor::stack(&means, 0)
            }
            _ => unreachable!("activations of one step always share a layout"),
        }
    }

    /// Sigmoid cross-entropy of logits against a constant target, mean per model: `[K]`.
    ///
    /// Stacked, each model's logits are padded to a multiple of 32 values first, so that its
    /// numbers do not depend on how many models share the stack. libtorch's element-wise
    /// kernels run blocks of 32 floats (two AVX-512 vectors) and finish a tensor's remainder
    /// with scalar code, whose `log1p` and sigmoid round differently from the vector code: a
    /// model with 16 logits would land in the remainder alone and in a vector block beside
    /// another model.
    pub fn bce_with_logits(&self, target: f64) -> Tensor {
        match self {
            Acts::Stacked(logits) => {
                let size = logits.size();
                let per_model = size[1] * size[2];
                let padded = (per_model + 31) / 32 * 32;
                let flat = logits.reshape([size[0], per_model]);
                let flat = if padded == per_model {
                    flat
                } else {
                    flat.constant_pad_nd([0, padded - per_model])
                };
                bce_elementwise(&flat, target)
                    .narrow(1, 0, per_model)
                    .contiguous()
                    .mean_dim(1, false, Kind::Float)
            }
            Acts::List(_) => self.per_model(self, |logits, _| bce_elementwise(logits, target)),
        }
    }

    /// Mean squared difference per model: `[K]`.
    pub fn mse(&self, other: &Acts) -> Tensor {
        self.per_model(other, |a, b| (a - b).square())
    }
}

/// Element-wise sigmoid cross-entropy on logits, TF's `sigmoid_cross_entropy_with_logits`:
/// `max(x, 0) - x * z + log(1 + exp(-|x|))`.
pub fn bce_elementwise(logits: &Tensor, target: f64) -> Tensor {
    let targets = logits.full_like(target);
    logits.binary_cross_entropy_with_logits::<Tensor>(&targets, None, None, tch::Reduction::None)
}

/// One affine layer: weight `[out, in]` (batched: `[K, out, in]`), bias `[out]` (`[K, out]`).
pub struct Linear {
    /// `[out, in]` or `[K, out, in]`.
    pub weight: Tensor,
    /// `[out]` or `[K, out]`.
    pub bias: Tensor,
}

enum Layers {
    Separate(Vec<Vec<Linear>>),
    Batched(Vec<Linear>),
}

/// A parameter tensor and the checkpoint names of the per-model tensors it holds.
pub struct Leaf {
    /// The parameter.
    pub tensor: Tensor,
    /// One name per model; a batched leaf holds model k at index k of dimension 0.
    pub names: Vec<String>,
    /// Whether dimension 0 is the model (batched layout).
    pub stacked: bool,
}

impl Leaf {
    /// Splits `value` (shaped like this leaf) into per-model `[out, in]` / `[out]` tensors named
    /// `{prefix}{name}`, on the CPU and contiguous, ready for safetensors.
    pub fn export(&self, prefix: &str, value: &Tensor) -> Vec<(String, Tensor)> {
        let cpu = value.detach().to_device(Device::Cpu);
        if self.stacked {
            self.names
                .iter()
                .enumerate()
                .map(|(k, name)| (format!("{prefix}{name}"), cpu.get(k as i64).contiguous()))
                .collect()
        } else {
            vec![(format!("{prefix}{}", self.names[0]), cpu.contiguous())]
        }
    }

    /// Copies the per-model tensors named `{prefix}{name}` from `tensors` into `into` (shaped
    /// like this leaf). Returns the first missing or misshapen name.
    pub fn import(
        &self,
        prefix: &str,
        tensors: &HashMap<String, Tensor>,
        into: &Tensor,
    ) -> Result<(), String> {
        let shape = into.size();
        let parts: Vec<Tensor> = self
            .names
            .iter()
            .map(|name| {
                let key = format!("{prefix}{name}");
                tensors
                    .get(&key)
                    .map(Tensor::shallow_clone)
                    .ok_or(format!("tensor {key} is missing"))
            })
            .collect::<Result<_, _>>()?;
        let joined = if self.stacked {
            Tensor::stack(&parts, 0)
        } else {
            parts[0].shallow_clone()
        };
        if joined.numel() != into.numel() || joined.kind() != into.kind() {
            return Err(format!(
                "tensor {prefix}{} has shape {:?} and kind {:?}, expected {shape:?} {:?}",
                self.names[0],
                parts[0].size(),
                parts[0].kind(),
                into.kind()
            ));
        }
        let joined = joined.reshape(shape.as_slice()).to_device(into.device());
        tch::no_grad(|| {
            let mut target = into.shallow_clone();
            target.copy_(&joined);
        });
        Ok(())
    }
}

/// Where a stack's initial weights come from.
pub enum Init<'a> {
    /// libtorch's process-wide generator (`uniform_`), as the GAN stage draws them; the caller
    /// seeds it and keeps other threads from drawing meanwhile.
    Libtorch,
    /// A SplitMix64 stream of the caller's: each weight is `(2u - 1) * limit` for `u` from the
    /// stream's top 24 bits (exact in f32), row-major, so a network depends on its seed alone.
    Stream(&'a mut SplitMix64),
}

/// A uniform float in [0, 1) from the top 24 bits (exactly representable in f32).
fn unit(generator: &mut SplitMix64) -> f32 {
    (generator.next_u64() >> 40) as f32 / (1u64 << 24) as f32
}

/// K MLPs of one shape: affine layers, LeakyReLU and inverted dropout after every hidden layer,
/// a linear output layer.
pub struct MlpStack {
    /// Checkpoint prefix: `g`, `f`, `d_t`, `d_s` or `c`.
    prefix: String,
    /// Model indices used in checkpoint names; `None` for the single unindexed classifier.
    models: Option<Vec<usize>>,
    dropout: f64,
    slope: Tensor,
    layers: Layers,
    /// Per-model dropout streams (separate layout): when set, masks come from these instead of
    /// libtorch's process-wide generator.
    dropout_streams: RefCell<Option<Vec<SplitMix64>>>,
}

impl MlpStack {
    /// Glorot-uniform weights and zero biases, drawn model by model, layer by layer, so both
    /// layouts start from the same numbers.
    #[allow(clippy::too_many_arguments)] // Each is one property of the stack, none optional.
    pub fn new(
        prefix: &str,
        models: Option<Vec<usize>>,
        sizes: Vec<i64>,
        dropout: f64,
        slope: f64,
        layout: ModelLayout,
        mut init: Init<'_>,
        device: Device,
    ) -> Self {
        let count = models.as_ref().map_or(1, Vec::len);
        let per_model: Vec<Vec<Linear>> = (0..count)
            .map(|_| {
                sizes
                    .windows(2)
                    .map(|pair| {
                        let (fan_in, fan_out) = (pair[0], pair[1]);
                        let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
                        let weight = match &mut init {
                            Init::Libtorch => {
                                Tensor::empty([fan_out, fan_in], (Kind::Float, Device::Cpu))
                                    .uniform_(-limit, limit)
                            }
                            Init::Stream(generator) => {
                                let limit = limit as f32;
                                let values: Vec<f32> = (0..fan_in * fan_out)
                                    .map(|_| (2.0 * unit(generator) - 1.0) * limit)
                                    .collect();
                                Tensor::from_slice(&values).view([fan_out, fan_in])
                            }
                        };
                        Linear {
                            weight,
                            bias: Tensor::zeros([fan_out], (Kind::Float, Device::Cpu)),
                        }
                    })
                    .collect()
            })
            .collect();
        let to_leaf = |t: Tensor| t.to_device(device).set_requires_grad(true);
        let layers = match layout {
            ModelLayout::Batched if models.is_some() => {
                let depth = sizes.len() - 1;
                Layers::Batched(
                    (0..depth)
                        .map(|j| {
                            let weights: Vec<&Tensor> =
                                per_model.iter().map(|m| &m[j].weight).collect();
                            let biases: Vec<&Tensor> =
                                per_model.iter().map(|m| &m[j].bias).collect();
                            Linear {
                                weight: to_leaf(Tensor::stack(&weights, 0)),
                                bias: to_leaf(Tensor::stack(&biases, 0)),
                            }
                        })
                        .collect(),
                )
            }
            _ => Layers::Separate(
                per_model
                    .into_iter()
                    .map(|m| {
                        m.into_iter()
                            .map(|l| Linear {
                                weight: to_leaf(l.weight),
                                bias: to_leaf(l.bias),
                            })
                            .collect()
                    })
                    .collect(),
            ),
        };
        Self {
            prefix: prefix.to_string(),
            models,
            dropout,
            slope: Tensor::from_slice(&[slope as f32]).to_device(device),
            layers,
            dropout_streams: RefCell::new(None),
        }
    }

    /// The models `range` of a separate-layout stack, sharing its parameter tensors.
    ///
    /// # Panics
    /// On a batched stack, whose models share tensors.
    pub fn select(&self, range: Range<usize>) -> MlpStack {
        let Layers::Separate(models) = &self.layers else {
            panic!("only a separate-layout stack has per-model tensors to select");
        };
        let layers = models[range.clone()]
            .iter()
            .map(|layers| {
                layers
                    .iter()
                    .map(|l| Linear {
                        weight: l.weight.shallow_clone(),
                        bias: l.bias.shallow_clone(),
                    })
                    .collect()
            })
            .collect();
        MlpStack {
            prefix: self.prefix.clone(),
            models: self.models.as_ref().map(|m| m[range].to_vec()),
            dropout: self.dropout,
            slope: self.slope.shallow_clone(),
            layers: Layers::Separate(layers),
            dropout_streams: RefCell::new(None),
        }
    }

    /// From now on model `slot` draws its dropout masks from `streams[slot]`, in either layout:
    /// a model's masks are the same numbers whichever layout and whichever other models share
    /// its stack.
    ///
    /// # Panics
    /// With a stream count other than the model count.
    pub fn set_dropout_streams(&self, streams: Vec<SplitMix64>) {
        let count = self.models.as_ref().map_or(1, Vec::len);
        assert_eq!(streams.len(), count, "one dropout stream per model");
        *self.dropout_streams.borrow_mut() = Some(streams);
    }

    fn model_name(&self, slot: usize) -> String {
        match &self.models {
            Some(models) => format!("{}.{}", self.prefix, models[slot]),
            None => self.prefix.clone(),
        }
    }

    /// Every parameter with its checkpoint names, layer by layer (weight, then bias).
    pub fn leaves(&self) -> Vec<Leaf> {
        match &self.layers {
            Layers::Separate(models) => models
                .iter()
                .enumerate()
                .flat_map(|(slot, layers)| {
                    let model = self.model_name(slot);
                    layers.iter().enumerate().flat_map(move |(j, layer)| {
                        [
                            Leaf {
                                tensor: layer.weight.shallow_clone(),
                                names: vec![format!("{model}.layers.{j}.weight")],
                                stacked: false,
                            },
                            Leaf {
                                tensor: layer.bias.shallow_clone(),
                                names: vec![format!("{model}.layers.{j}.bias")],
                                stacked: false,
                            },
                        ]
                    })
                })
                .collect(),
            Layers::Batched(layers) => {
                let count = self.models.as_ref().map_or(1, Vec::len);
                layers
                    .iter()
                    .enumerate()
                    .flat_map(|(j, layer)| {
                        let names = |what: &str| -> Vec<String> {
                            (0..count)
                                .map(|slot| format!("{}.layers.{j}.{what}", self.model_name(slot)))
                                .collect()
                        };
                        [
                            Leaf {
                                tensor: layer.weight.shallow_clone(),
                                names: names("weight"),
                                stacked: true,
                            },
                            Leaf {
                                tensor: layer.bias.shallow_clone(),
                                names: names("bias"),
                                stacked: true,
                            },
                        ]
                    })
                    .collect()
            }
        }
    }

    /// Scalars over all parameters.
    pub fn parameter_count(&self) -> i64 {
        self.leaves()
            .iter()
            .map(|leaf| leaf.tensor.numel() as i64)
            .sum()
    }

    /// Turns gradients of every parameter on or off (a frozen network's weights get none).
    pub fn set_requires_grad(&self, on: bool) {
        for leaf in self.leaves() {
            let _ = leaf.tensor.set_requires_grad(on);
        }
    }

    /// Clears every parameter's accumulated gradient.
    pub fn zero_grad(&self) {
        for mut leaf in self.leaves() {
            leaf.tensor.zero_grad();
        }
    }

    /// LeakyReLU and inverted dropout, as `Tensor::dropout` computes it (`x * mask`, the mask
    /// `1 / keep` or 0), with the mask from model `slot`'s own stream when it has one (for
    /// stacked `[K, n, width]` activations, every model's part from its own stream).
    fn hidden(&self, slot: usize, x: Tensor, train: bool) -> Tensor {
        let x = x.prelu(&self.slope);
        if !train || self.dropout == 0.0 {
            return x;
        }
        let mut streams = self.dropout_streams.borrow_mut();
        match streams.as_mut() {
            Some(streams) => {
                let mut mask = vec![0f32; x.numel()];
                if x.dim() == 3 {
                    // Stacked `[K, n, width]`: model k's part from its own stream.
                    let per_model = mask.len() / streams.len().max(1);
                    for (stream, part) in streams.iter_mut().zip(mask.chunks_mut(per_model)) {
                        stream.fill_dropout_mask(1.0 - self.dropout, part);
                    }
                } else {
                    streams[slot].fill_dropout_mask(1.0 - self.dropout, &mut mask);
                }
                let mask = Tensor::from_slice(&mask)
                    .view(x.size().as_slice())
                    .to_device(x.device());
                x * mask
            }
            None => x.dropout(self.dropout, train),
        }
    }

    /// Runs all K models on their own inputs.
    pub fn forward(&self, x: &Acts, train: bool) -> Acts {
        match (&self.layers, x) {
            (Layers::Separate(models), Acts::List(xs)) => Acts::List(
                models
                    .iter()
                    .zip(xs)
                    .enumerate()
                    .map(|(slot, (layers, x))| self.forward_layers(slot, layers, x, train))
                    .collect(),
            ),
            (Layers::Batched(layers), Acts::Stacked(x)) => {
                let last = layers.len() - 1;
                let mut h = x.shallow_clone();
                for (j, layer) in layers.iter().enumerate() {
                    h = layer.bias.unsqueeze(1).baddbmm(
                        &h,
                        &layer.weight.transpose(1, 2),
                        1.0,
                        1.0,
                    );
                    if j < last {
                        h = self.hidden(0, h, train);
                    }
                }
                Acts::Stacked(h)
            }
            _ => unreachable!("a stack only sees activations of its own layout"),
        }
    }

    fn forward_layers(&self, slot: usize, layers: &[Linear], x: &Tensor, train: bool) -> Tensor {
        let last = layers.len() - 1;
        let mut h = x.shallow_clone();
        for (j, layer) in layers.iter().enumerate() {
            h = h.linear(&layer.weight, Some(&layer.bias));
            if j < last {
                h = self.hidden(slot, h, train);
            }
        }
        h
    }

    /// Runs model `slot` alone on `[n, in]` rows (any layout).
    pub fn forward_one(&self, slot: usize, x: &Tensor, train: bool) -> Tensor {
        match &self.layers {
            Layers::Separate(models) => self.forward_layers(slot, &models[slot], x, train),
            Layers::Batched(layers) => {
                let own: Vec<Linear> = layers
                    .iter()
                    .map(|layer| Linear {
                        weight: layer.weight.get(slot as i64),
                        bias: layer.bias.get(slot as i64),
                    })
                    .collect();
                self.forward_layers(slot, &own, x, train)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(dropout: f64, models: usize) -> MlpStack {
        MlpStack::new(
            "g",
            Some((0..models).collect()),
            vec![3, 4, 3],
            dropout,
            0.2,
            ModelLayout::Separate,
            Init::Stream(&mut SplitMix64::new(7)),
            Device::Cpu,
        )
    }

    fn kept(mask: &Tensor) -> Vec<bool> {
        Vec::<f32>::try_from(mask.flatten(0, -1))
            .unwrap()
            .iter()
            .map(|&m| m != 0.0)
            .collect()
    }

    #[test]
    fn per_model_streams_drop_units_at_the_rate_and_scale_the_rest() {
        let dropout = 0.3;
        let stack = stack(dropout, 2);
        let ones = || Tensor::ones([500, 40], (Kind::Float, Device::Cpu));
        let seeds = |a: u64, b: u64| vec![SplitMix64::new(a), SplitMix64::new(b)];

        stack.set_dropout_streams(seeds(1, 2));
        let first = stack.hidden(0, ones(), true);
        let second = stack.hidden(1, ones(), true);
        // Positive inputs pass LeakyReLU unchanged: every value is 0 or 1 / keep.
        let values = Vec::<f32>::try_from(first.flatten(0, -1)).unwrap();
        let scale = (1.0 / (1.0 - dropout)) as f32;
        assert!(values.iter().all(|&v| v == 0.0 || v == scale));
        let dropped = values.iter().filter(|&&v| v == 0.0).count() as f64 / values.len() as f64;
        assert!((dropped - dropout).abs() < 0.02, "dropped {dropped}");
        assert_ne!(kept(&first), kept(&second), "each model has its own stream");

        // The same seeds give the same masks; the next draw of a stream differs.
        stack.set_dropout_streams(seeds(1, 2));
        let again = stack.hidden(0, ones(), true);
        assert_eq!(kept(&first), kept(&again));
        assert_ne!(kept(&again), kept(&stack.hidden(0, ones(), true)));

        // Evaluation mode drops nothing.
        assert!(stack.hidden(0, ones(), false).equal(&ones()));
    }

    #[test]
    fn stream_initialisation_is_glorot_uniform_and_depends_on_the_seed_alone() {
        let weights = |seed: u64| -> Vec<f32> {
            let stack = MlpStack::new(
                "c",
                None,
                vec![30, 20, 4],
                0.0,
                0.2,
                ModelLayout::Separate,
                Init::Stream(&mut SplitMix64::new(seed)),
                Device::Cpu,
            );
            let leaves = stack.leaves();
            assert_eq!(leaves[0].names, ["c.layers.0.weight"]);
            assert!(
                leaves[1]
                    .tensor
                    .equal(&Tensor::zeros([20], (Kind::Float, Device::Cpu)))
            );
            Vec::<f32>::try_from(leaves[0].tensor.detach().flatten(0, -1)).unwrap()
        };
        let first = weights(5);
        // Layer 0's limit: sqrt(6 / (30 + 20)).
        let limit = (6.0f64 / 50.0).sqrt() as f32;
        assert!(first.iter().all(|w| w.abs() <= limit));
        let mean_square = first.iter().map(|w| w * w).sum::<f32>() / first.len() as f32;
        // Uniform(-l, l) has variance l^2 / 3.
        assert!(
            (mean_square - limit * limit / 3.0).abs() < 0.01,
            "{mean_square}"
        );
        assert_eq!(first, weights(5));
        assert_ne!(first, weights(6));
    }
}
