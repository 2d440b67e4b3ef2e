//! The conditional GAN baseline (Sahu et al., Interspeech 2018): a generator G(z, y) from
//! Gaussian noise z and a discriminator D(x, y), both conditioned on the emotion y by a one-hot
//! vector concatenated to their input.
//!
//! Every random number (initial weights, minibatch order, noise, dropout masks) comes from
//! SplitMix64 streams derived from the seed, never from libtorch's process-wide generator, so a
//! run is reproducible however many other models the process trains at the same time.

use emocycle_config::gan::ModelLayout;
use emocycle_features::Emotion;
use emocycle_rng::SplitMix64;
use emocycle_torch::{Adam, Init, MlpStack};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Reduction, Tensor};

use crate::methods::{RealRows, SyntheticRows, fill_normal, stream, tags};
use crate::{AugmentError, CganConfig, CganOutput};

/// LeakyReLU slope of every hidden layer, as in the project's other networks.
const LEAKY_SLOPE: f64 = 0.2;

/// Adam's epsilon (TensorFlow's epsilon hat, as every optimiser of the project).
const ADAM_EPSILON: f64 = 1e-8;

/// Generated rows per forward pass when generating, to bound memory on large sets.
const GENERATE_CHUNK: usize = 4096;

/// One epoch's mean losses (means over the epoch's rows).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CganEpoch {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Discriminator loss: BCE(D(x, y), 1) + BCE(D(G(z, y), y), 0).
    pub d_loss: f64,
    /// Generator loss (non-saturating): BCE(D(G(z, y), y), 1).
    pub g_loss: f64,
}

/// One-hot rows of the four emotions.
fn one_hot(labels: &[Emotion], device: Device) -> Tensor {
    let mut values = vec![0f32; labels.len() * Emotion::ALL.len()];
    for (row, label) in labels.iter().enumerate() {
        values[row * Emotion::ALL.len() + label.index()] = 1.0;
    }
    Tensor::from_slice(&values)
        .reshape([labels.len() as i64, Emotion::ALL.len() as i64])
        .to_device(device)
}

fn bce(logits: &Tensor, target: f64) -> Tensor {
    logits.binary_cross_entropy_with_logits::<Tensor>(
        &logits.full_like(target),
        None,
        None,
        Reduction::Mean,
    )
}

/// A conditional GAN over `width`-dimensional vectors.
pub struct Cgan {
    config: CganConfig,
    width: usize,
    device: Device,
    generator: MlpStack,
    discriminator: MlpStack,
}

/// Glorot-uniform weights from `init`, zero biases; LeakyReLU and dropout after every hidden
/// layer.
fn network(
    name: &str,
    sizes: &[usize],
    dropout: f64,
    init: &mut SplitMix64,
    device: Device,
) -> MlpStack {
    MlpStack::new(
        name,
        None,
        sizes.iter().map(|&size| size as i64).collect(),
        dropout,
        LEAKY_SLOPE,
        ModelLayout::Separate,
        Init::Stream(init),
        device,
    )
}

impl Cgan {
    /// Fresh networks for `width` features on `device`, initialised from `seed`.
    pub fn new(
        config: &CganConfig,
        width: usize,
        seed: u64,
        device: Device,
    ) -> Result<Self, AugmentError> {
        config.validate()?;
        if width == 0 {
            return Err(AugmentError::Data(
                "the cGAN needs at least one feature".into(),
            ));
        }
        let classes = Emotion::ALL.len();
        let mut generator_sizes = vec![config.noise_dim + classes];
        generator_sizes.extend(&config.generator_hidden);
        generator_sizes.push(width);
        let mut discriminator_sizes = vec![width + classes];
        discriminator_sizes.extend(&config.discriminator_hidden);
        discriminator_sizes.push(1);
        let generator = network(
            "g",
            &generator_sizes,
            config.dropout,
            &mut stream(seed, tags::CGAN_INIT, 0),
            device,
        );
        let discriminator = network(
            "d",
            &discriminator_sizes,
            config.dropout,
            &mut stream(seed, tags::CGAN_INIT, 1),
            device,
        );
        Ok(Self {
            config: config.clone(),
            width,
            device,
            generator,
            discriminator,
        })
    }

    /// Features per generated vector.
    pub fn width(&self) -> usize {
        self.width
    }

    fn noise(&self, rng: &mut SplitMix64, rows: usize) -> Tensor {
        let mut values = vec![0f32; rows * self.config.noise_dim];
        fill_normal(rng, &mut values);
        Tensor::from_slice(&values)
            .reshape([rows as i64, self.config.noise_dim as i64])
            .to_device(self.device)
    }

    fn generate_batch(&self, noise: &Tensor, condition: &Tensor, train: bool) -> Tensor {
        let output = self
            .generator
            .forward_one(0, &Tensor::cat(&[noise, condition], 1), train);
        match self.config.output {
            CganOutput::Sigmoid => output.sigmoid(),
            CganOutput::Linear => output,
        }
    }

    /// Trains on `real` (min-max normalised vectors and their emotions) for the configured
    /// epochs. An epoch is one pass over `real` in a seeded random order, in minibatches of
    /// `batch_size` rows (the last one holds the remainder); each minibatch makes one
    /// discriminator step, on the real rows and as many generated ones with the same emotions,
    /// then one generator step on fresh noise. `progress` hears after every epoch. Returns
    /// the loss log.
    pub fn train(
        &mut self,
        real: &RealRows,
        seed: u64,
        progress: &mut dyn FnMut(&CganEpoch),
    ) -> Result<Vec<CganEpoch>, AugmentError> {
        if real.width() != self.width {
            return Err(AugmentError::Data(format!(
                "the cGAN has {} features but the data has {}",
                self.width,
                real.width()
            )));
        }
        let rows = real.rows();
        if rows == 0 {
            return Err(AugmentError::Data(
                "the cGAN has no rows to train on".into(),
            ));
        }
        let (beta1, beta2, learning_rate) = (
            self.config.beta1,
            self.config.beta2,
            self.config.learning_rate,
        );
        let mut g_optimiser = Adam::new(self.generator.leaves(), beta1, beta2, ADAM_EPSILON);
        let mut d_optimiser = Adam::new(self.discriminator.leaves(), beta1, beta2, ADAM_EPSILON);
        let x_all = Tensor::from_slice(real.values())
            .reshape([rows as i64, self.width as i64])
            .to_device(self.device);
        let y_all = one_hot(real.labels(), self.device);
        let batch_size = self.config.batch_size.min(rows);
        let mut log = Vec::with_capacity(self.config.epochs);
        for epoch in 1..=self.config.epochs {
            // A stream per epoch: an epoch's draws do not depend on how many the last one took.
            let mut rng = stream(seed, tags::CGAN_TRAIN, epoch);
            self.generator
                .set_dropout_streams(vec![stream(seed, tags::CGAN_DROPOUT, 2 * epoch)]);
            self.discriminator.set_dropout_streams(vec![stream(
                seed,
                tags::CGAN_DROPOUT,
                2 * epoch + 1,
            )]);
            let mut order: Vec<i64> = (0..rows as i64).collect();
            rng.shuffle(&mut order);
            let mut d_sum = Tensor::zeros([], (Kind::Float, self.device));
            let mut g_sum = Tensor::zeros([], (Kind::Float, self.device));
            for batch in order.chunks(batch_size) {
                let index = Tensor::from_slice(batch).to_device(self.device);
                let x = x_all.index_select(0, &index);
                let y = y_all.index_select(0, &index);
                let count = batch.len();

                let noise = self.noise(&mut rng, count);
                let fake = self.generate_batch(&noise, &y, true).detach();
                let d_real = self
                    .discriminator
                    .forward_one(0, &Tensor::cat(&[&x, &y], 1), true);
                let d_fake = self
                    .discriminator
                    .forward_one(0, &Tensor::cat(&[&fake, &y], 1), true);
                let d_loss = bce(&d_real, 1.0) + bce(&d_fake, 0.0);
                d_optimiser.minimise(&d_loss, learning_rate);

                let noise = self.noise(&mut rng, count);
                let fake = self.generate_batch(&noise, &y, true);
                let d_fake = self
                    .discriminator
                    .forward_one(0, &Tensor::cat(&[&fake, &y], 1), true);
                let g_loss = bce(&d_fake, 1.0);
                // Only G's parameters get gradients and updates; D is left as it is.
                g_optimiser.minimise(&g_loss, learning_rate);

                d_sum += d_loss.detach() * count as f64;
                g_sum += g_loss.detach() * count as f64;
            }
            let record = CganEpoch {
                epoch,
                d_loss: d_sum.double_value(&[]) / rows as f64,
                g_loss: g_sum.double_value(&[]) / rows as f64,
            };
            if !(record.d_loss.is_finite() && record.g_loss.is_finite()) {
                return Err(AugmentError::Data(format!(
                    "cGAN training diverged in epoch {epoch}: d_loss {}, g_loss {}",
                    record.d_loss, record.g_loss
                )));
            }
            tracing::debug!(
                epoch,
                d_loss = record.d_loss,
                g_loss = record.g_loss,
                "cGAN epoch"
            );
            progress(&record);
            log.push(record);
        }
        Ok(log)
    }

    /// `counts[c]` vectors of every emotion c from fresh noise (dropout off), class by class.
    /// Each class draws its noise from its own stream of `seed`.
    pub fn generate(&self, counts: [usize; 4], seed: u64) -> Result<SyntheticRows, AugmentError> {
        let mut out = SyntheticRows::new(self.width);
        tch::no_grad(|| -> Result<(), AugmentError> {
            for emotion in Emotion::ALL {
                let mut rng = stream(seed, tags::CGAN_GENERATE, emotion.index());
                let mut left = counts[emotion.index()];
                while left > 0 {
                    let rows = left.min(GENERATE_CHUNK);
                    let noise = self.noise(&mut rng, rows);
                    let condition = one_hot(&vec![emotion; rows], self.device);
                    let output = self
                        .generate_batch(&noise, &condition, false)
                        .to_device(Device::Cpu)
                        .to_kind(Kind::Float)
                        .contiguous()
                        .view([-1]);
                    let values = Vec::<f32>::try_from(&output)
                        .map_err(AugmentError::torch("reading generated vectors"))?;
                    for row in values.chunks_exact(self.width) {
                        out.push(emotion, row.iter().copied(), None, None, None);
                    }
                    left -= rows;
                }
            }
            Ok(())
        })?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::class_counts;

    /// Four well separated Gaussian blobs in [0, 1]^8: class c has mean 0.2 or 0.8 per
    /// feature by a fixed pattern, std 0.05.
    fn blobs(per_class: usize) -> (Vec<f32>, Vec<Emotion>, Vec<Vec<f64>>) {
        let width = 8;
        let means: Vec<Vec<f64>> = (0..4)
            .map(|class| {
                (0..width)
                    .map(|feature| if (feature + class) % 4 < 2 { 0.2 } else { 0.8 })
                    .collect()
            })
            .collect();
        let mut rng = SplitMix64::new(77);
        let mut values = Vec::new();
        let mut labels = Vec::new();
        let mut noise = vec![0f32; width];
        for row in 0..4 * per_class {
            let class = row % 4;
            labels.push(Emotion::from_index(class).unwrap());
            fill_normal(&mut rng, &mut noise);
            values.extend(
                means[class]
                    .iter()
                    .zip(&noise)
                    .map(|(mean, z)| (mean + 0.05 * f64::from(*z)) as f32),
            );
        }
        (values, labels, means)
    }

    /// Euclidean distance of each class's generated mean to the real class mean.
    fn mean_distances(rows: &SyntheticRows, means: &[Vec<f64>]) -> Vec<f64> {
        Emotion::ALL
            .iter()
            .map(|&emotion| {
                let members: Vec<usize> = (0..rows.rows())
                    .filter(|&r| rows.labels[r] == emotion)
                    .collect();
                let mean = &means[emotion.index()];
                (0..rows.width)
                    .map(|feature| {
                        let generated = members
                            .iter()
                            .map(|&r| f64::from(rows.row(r)[feature]))
                            .sum::<f64>()
                            / members.len() as f64;
                        (generated - mean[feature]).powi(2)
                    })
                    .sum::<f64>()
                    .sqrt()
            })
            .collect()
    }

    fn toy_config() -> CganConfig {
        CganConfig {
            noise_dim: 8,
            generator_hidden: vec![32, 32],
            discriminator_hidden: vec![32, 32],
            epochs: 60,
            batch_size: 32,
            learning_rate: 2e-3,
            ..CganConfig::default()
        }
    }

    #[test]
    fn generated_class_means_move_to_the_real_class_means() {
        let (values, labels, means) = blobs(100);
        let real = RealRows::new(&values, 8, &labels).unwrap();
        let config = toy_config();
        let mut cgan = Cgan::new(&config, 8, 3, Device::Cpu).unwrap();
        let counts = [500; 4];
        let before = mean_distances(&cgan.generate(counts, 1).unwrap(), &means);
        let mut heard = Vec::new();
        let log = cgan
            .train(&real, 3, &mut |epoch| heard.push(epoch.epoch))
            .unwrap();
        assert_eq!(heard, (1..=config.epochs).collect::<Vec<_>>());
        assert_eq!(log.len(), config.epochs);
        assert!(log.iter().all(|e| e.d_loss > 0.0 && e.g_loss > 0.0));
        let generated = cgan.generate(counts, 1).unwrap();
        assert_eq!(class_counts(&generated.labels), counts);
        assert!(generated.parents.iter().all(Option::is_none));
        assert!(generated.values.iter().all(|v| (0.0..=1.0).contains(v)));
        let after = mean_distances(&generated, &means);
        for class in 0..4 {
            assert!(
                after[class] < 0.5 * before[class],
                "class {class}: distance {} before training, {} after",
                before[class],
                after[class]
            );
        }
        // Conditioning works: each class's generated mean is nearest its own real mean.
        for class in 0..4 {
            let own = after[class];
            for other in (0..4).filter(|&o| o != class) {
                let mut shifted = means.to_vec();
                shifted[class] = means[other].clone();
                let to_other = mean_distances(&generated, &shifted)[class];
                assert!(
                    own < to_other,
                    "class {class} is closer to class {other}'s mean"
                );
            }
        }
    }

    #[test]
    fn training_and_generation_are_seeded() {
        let (values, labels, _) = blobs(10);
        let real = RealRows::new(&values, 8, &labels).unwrap();
        let config = CganConfig {
            epochs: 3,
            dropout: 0.3,
            ..toy_config()
        };
        let run = |seed: u64| {
            let mut cgan = Cgan::new(&config, 8, seed, Device::Cpu).unwrap();
            let log = cgan.train(&real, seed, &mut |_| {}).unwrap();
            (log, cgan.generate([3, 0, 2, 1], seed).unwrap())
        };
        let (log, rows) = run(4);
        assert_eq!(rows.counts(), [3, 0, 2, 1]);
        assert_eq!(run(4), (log.clone(), rows.clone()));
        assert_ne!(run(5).1.values, rows.values);
    }

    #[test]
    fn the_linear_output_is_unbounded_and_widths_must_agree() {
        let (values, labels, _) = blobs(5);
        let real = RealRows::new(&values, 8, &labels).unwrap();
        let config = CganConfig {
            output: CganOutput::Linear,
            generator_hidden: vec![],
            ..toy_config()
        };
        let cgan = Cgan::new(&config, 8, 1, Device::Cpu).unwrap();
        let rows = cgan.generate([200, 0, 0, 0], 2).unwrap();
        // A linear layer of Gaussian noise: some outputs fall outside [0, 1].
        assert!(rows.values.iter().any(|v| !(0.0..=1.0).contains(v)));
        let mut narrow = Cgan::new(&config, 7, 1, Device::Cpu).unwrap();
        let error = narrow.train(&real, 1, &mut |_| {}).unwrap_err().to_string();
        assert!(error.contains("7 features"), "{error}");
    }
}
