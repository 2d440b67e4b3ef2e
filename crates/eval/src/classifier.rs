//! The emotion classifier: an MLP trained with Adam on softmax cross-entropy.
//!
//! Every random choice (initial weights, the order of each epoch, dropout masks) comes from the
//! run's own SplitMix64 streams, never from libtorch's process-global generator, so a run's
//! numbers depend on its seed alone and not on which other runs share the process or in what
//! order the workers pick them up.

use std::sync::Arc;

use emocycle_config::gan::ModelLayout;
use emocycle_features::Emotion;
use emocycle_rng::SplitMix64;
use emocycle_torch::{Adam, Init, MlpStack};
use tch::{Device, Kind, Tensor};

use crate::error::Result;
use crate::metrics::CLASSES;
use emocycle_config::eval::{AdamParams, ClassifierParams};

/// Normalised rows with their class indices, row-major float32.
#[derive(Debug, Clone)]
pub(crate) struct Dataset {
    pub width: usize,
    pub values: Vec<f32>,
    pub labels: Vec<Emotion>,
}

impl Dataset {
    pub(crate) fn rows(&self) -> usize {
        self.labels.len()
    }

    fn row(&self, row: usize) -> &[f32] {
        &self.values[row * self.width..(row + 1) * self.width]
    }
}

/// Independent streams of one run. Separate streams keep e.g. the initial weights the same
/// whatever the training set's size.
struct Streams {
    init: SplitMix64,
    order: SplitMix64,
    dropout: SplitMix64,
}

impl Streams {
    fn new(seed: u64) -> Self {
        // Distinct, fixed offsets decorrelate the three streams of one seed.
        let mut mixer = SplitMix64::new(seed);
        Self {
            init: SplitMix64::new(mixer.next_u64()),
            order: SplitMix64::new(mixer.next_u64()),
            dropout: SplitMix64::new(mixer.next_u64()),
        }
    }
}

/// What one trained classifier says about each test set.
pub(crate) struct TrainOutcome {
    /// Predicted class per row, one vector per test set.
    pub predictions: Vec<Vec<Emotion>>,
    /// Mean minibatch loss of the last epoch.
    pub final_loss: f64,
}

/// Trains a fresh classifier on the concatenation of `train` and predicts every test set.
///
/// An epoch is one pass over the shuffled training rows in minibatches of
/// `params.batch_size`; the last, partial batch is kept unless `params.drop_last_batch` (a set
/// smaller than one batch then trains no step, as in the published code). No early stopping, no
/// class weights.
pub(crate) fn train_and_predict(
    train: &[Arc<Dataset>],
    tests: &[Arc<Dataset>],
    params: &ClassifierParams,
    slope: f64,
    adam: &AdamParams,
    seed: u64,
    device: Device,
) -> Result<TrainOutcome> {
    let width = train.first().map_or(0, |part| part.width);
    let mut streams = Streams::new(seed);
    let mut dims = vec![width as i64];
    dims.extend(params.hidden.iter().map(|&h| h as i64));
    dims.push(CLASSES as i64);
    let model = MlpStack::new(
        "c",
        None,
        dims,
        params.dropout,
        slope,
        ModelLayout::Separate,
        Init::Stream(&mut streams.init),
        device,
    );
    // Masks are drawn from the run's own stream, layer by layer, as the forward pass needs them.
    model.set_dropout_streams(vec![streams.dropout]);
    let mut optimiser = Adam::new(model.leaves(), adam.beta1, adam.beta2, adam.epsilon);

    // Global row r of the training set: part `index[r].0`, row `index[r].1`.
    let mut order: Vec<(u32, u32)> = train
        .iter()
        .enumerate()
        .flat_map(|(part, data)| (0..data.rows() as u32).map(move |row| (part as u32, row)))
        .collect();
    let mut batch = Vec::with_capacity(params.batch_size * width);
    let mut labels = Vec::with_capacity(params.batch_size);
    let mut final_loss = f64::NAN;
    for _epoch in 0..params.epochs {
        streams.order.shuffle(&mut order);
        let mut loss_sum = Tensor::zeros([], (Kind::Float, device));
        let mut batches = 0usize;
        for chunk in order.chunks(params.batch_size) {
            if params.drop_last_batch && chunk.len() < params.batch_size {
                continue;
            }
            batch.clear();
            labels.clear();
            for &(part, row) in chunk {
                let data = &train[part as usize];
                batch.extend_from_slice(data.row(row as usize));
                labels.push(data.labels[row as usize].index() as i64);
            }
            let rows = chunk.len() as i64;
            let x = Tensor::from_slice(&batch)
                .view([rows, width as i64])
                .to_device(device);
            let y = Tensor::from_slice(&labels).to_device(device);
            let logits = model.forward_one(0, &x, true);
            let loss = logits.cross_entropy_for_logits(&y);
            optimiser.minimise(&loss, params.learning_rate);
            loss_sum += loss.detach();
            batches += 1;
        }
        final_loss = match batches {
            // The published loop on a set smaller than one batch: no step, no loss.
            0 => f64::NAN,
            _ => loss_sum.double_value(&[]) / batches as f64,
        };
    }

    let predictions = tests
        .iter()
        .map(|test| predict(&model, test, device))
        .collect::<Result<Vec<_>>>()?;
    Ok(TrainOutcome {
        predictions,
        final_loss,
    })
}

/// Class with the largest logit per row, dropout off, in chunks to bound memory.
fn predict(model: &MlpStack, test: &Dataset, device: Device) -> Result<Vec<Emotion>> {
    const CHUNK_ROWS: usize = 4096;
    let mut predicted = Vec::with_capacity(test.rows());
    tch::no_grad(|| -> Result<()> {
        for chunk in test.values.chunks(CHUNK_ROWS * test.width.max(1)) {
            let rows = (chunk.len() / test.width.max(1)) as i64;
            let x = Tensor::from_slice(chunk)
                .view([rows, test.width as i64])
                .to_device(device);
            let classes: Vec<i64> =
                Vec::try_from(model.forward_one(0, &x, false).argmax(1, false))?;
            predicted.extend(classes.into_iter().map(|class| {
                Emotion::from_index(class as usize).expect("the output layer has 4 units")
            }));
        }
        Ok(())
    })?;
    Ok(predicted)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A uniform float in [0, 1).
    fn unit(generator: &mut SplitMix64) -> f32 {
        (generator.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    fn blobs(rows_per_class: usize, width: usize, seed: u64) -> Dataset {
        let mut generator = SplitMix64::new(seed);
        let mut values = Vec::new();
        let mut labels = Vec::new();
        for emotion in Emotion::ALL {
            for _ in 0..rows_per_class {
                for feature in 0..width {
                    let centre = if feature % CLASSES == emotion.index() {
                        2.0
                    } else {
                        0.0
                    };
                    values.push(centre + unit(&mut generator) - 0.5);
                }
                labels.push(emotion);
            }
        }
        Dataset {
            width,
            values,
            labels,
        }
    }

    fn params(epochs: usize, dropout: f64) -> ClassifierParams {
        ClassifierParams {
            hidden: vec![16, 16],
            batch_size: 7,
            dropout,
            learning_rate: 1e-2,
            epochs,
            drop_last_batch: false,
        }
    }

    /// Serialises the tests that compare the bits of two trainings in one process. With each
    /// test on one libtorch thread of its own, the two tests below running at the same time
    /// still made identical trainings differ in the last bits about once in ten runs of the
    /// test binary (never when run one at a time); the cause inside libtorch is not known.
    fn bitwise_lock() -> std::sync::MutexGuard<'static, ()> {
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[test]
    fn learns_separable_classes_and_is_deterministic_per_seed() {
        let _serial = bitwise_lock();
        // Bit-identity holds for a fixed intra-op thread count (the stage fixes it per worker);
        // libtorch's default team can shrink under load, which reorders sums.
        emocycle_torch::set_libtorch_threads(1);
        let train = Arc::new(blobs(20, 8, 1));
        let test = Arc::new(blobs(10, 8, 2));
        let run = |seed| {
            train_and_predict(
                std::slice::from_ref(&train),
                std::slice::from_ref(&test),
                &params(30, 0.2),
                0.2,
                &AdamParams::default(),
                seed,
                Device::Cpu,
            )
            .unwrap()
        };
        let first = run(11);
        let correct = first.predictions[0]
            .iter()
            .zip(&test.labels)
            .filter(|(p, t)| p == t)
            .count();
        assert!(correct as f64 / test.rows() as f64 > 0.9, "{correct}");
        assert!(first.final_loss.is_finite());
        let again = run(11);
        assert_eq!(first.predictions, again.predictions);
        assert_eq!(first.final_loss.to_bits(), again.final_loss.to_bits());
        let other = run(12);
        assert_ne!(first.final_loss.to_bits(), other.final_loss.to_bits());
    }

    #[test]
    fn the_published_loop_leaves_out_the_last_partial_batch() {
        let _serial = bitwise_lock();
        emocycle_torch::set_libtorch_threads(1);
        let test = Arc::new(blobs(2, 4, 2));
        let run = |rows: usize, drop_last_batch: bool| {
            let train = Arc::new(blobs(rows, 4, 1));
            train_and_predict(
                std::slice::from_ref(&train),
                std::slice::from_ref(&test),
                &ClassifierParams {
                    drop_last_batch,
                    ..params(3, 0.0)
                },
                0.2,
                &AdamParams::default(),
                5,
                Device::Cpu,
            )
            .unwrap()
        };
        // blobs(n) has 4n rows: 4 rows is less than one batch of 7, so the published loop
        // trains no step at all and has no loss to report; 8 rows are one full batch and one
        // of a single row, which only the paper's loop trains on.
        assert!(run(1, true).final_loss.is_nan());
        assert!(run(1, false).final_loss.is_finite());
        let (kept, dropped) = (run(2, false), run(2, true));
        assert!(dropped.final_loss.is_finite());
        assert_ne!(kept.final_loss.to_bits(), dropped.final_loss.to_bits());
    }

    #[test]
    fn two_parts_train_like_their_concatenation_in_the_same_global_order() {
        let _serial = bitwise_lock();
        emocycle_torch::set_libtorch_threads(1);
        // Splitting the training rows into parts must not change the run: the global row order
        // is the parts' rows in sequence.
        let whole = blobs(6, 5, 9);
        let cut = whole.rows() / 2 * whole.width;
        let first = Dataset {
            width: 5,
            values: whole.values[..cut].to_vec(),
            labels: whole.labels[..whole.rows() / 2].to_vec(),
        };
        let second = Dataset {
            width: 5,
            values: whole.values[cut..].to_vec(),
            labels: whole.labels[whole.rows() / 2..].to_vec(),
        };
        let test = Arc::new(blobs(3, 5, 4));
        let run = |train: Vec<Arc<Dataset>>| {
            train_and_predict(
                &train,
                std::slice::from_ref(&test),
                &params(3, 0.5),
                0.2,
                &AdamParams::default(),
                5,
                Device::Cpu,
            )
            .unwrap()
        };
        let a = run(vec![Arc::new(whole.clone())]);
        let b = run(vec![Arc::new(first), Arc::new(second)]);
        assert_eq!(a.final_loss.to_bits(), b.final_loss.to_bits());
        assert_eq!(a.predictions, b.predictions);
    }
}
