//! Training data, its checks, the leakage guard, and the per-epoch shuffling.

use tch::{Device, Kind, Tensor};

use crate::GanError;

/// The GAN's inputs: the min-max normalised source corpus and one target set per emotion
/// (order 0 angry, 1 happy, 2 neutral, 3 sad), all float32 with the same feature count.
#[derive(Debug)]
pub struct TrainingData {
    /// Source corpus, `[n_s, d]`.
    pub source: Tensor,
    /// Target set of emotion i, `[n_i, d]`.
    pub targets: Vec<Tensor>,
}

/// Shapes of the data a run was trained on, recorded in checkpoints and manifests.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DataShape {
    /// Feature count d.
    pub features: i64,
    /// Source rows.
    pub source_rows: i64,
    /// Rows of every target set.
    pub target_rows: Vec<i64>,
}

impl TrainingData {
    /// Builds the data from a source matrix and the target matrices.
    pub fn new(source: Tensor, targets: Vec<Tensor>) -> Self {
        Self { source, targets }
    }

    /// Checks that every set is a finite float32 matrix with the source's feature count and at
    /// least one minibatch of rows; returns the shapes.
    pub fn validate(&self, batch_size: usize) -> Result<DataShape, GanError> {
        if self.targets.is_empty() {
            return Err(GanError::NoTargets);
        }
        let features = check_matrix("source", &self.source, None, batch_size)?;
        let mut target_rows = Vec::with_capacity(self.targets.len());
        for (index, target) in self.targets.iter().enumerate() {
            check_matrix(
                &format!("target {index}"),
                target,
                Some(features),
                batch_size,
            )?;
            target_rows.push(target.size()[0]);
        }
        Ok(DataShape {
            features,
            source_rows: self.source.size()[0],
            target_rows,
        })
    }
}

fn check_matrix(
    set: &str,
    tensor: &Tensor,
    features: Option<i64>,
    batch_size: usize,
) -> Result<i64, GanError> {
    let shape = tensor.size();
    if shape.len() != 2 || tensor.kind() != Kind::Float {
        return Err(GanError::NotAMatrix {
            set: set.to_string(),
            kind: format!("{:?}", tensor.kind()),
            shape,
        });
    }
    if let Some(expected) = features
        && shape[1] != expected
    {
        return Err(GanError::DimensionMismatch {
            set: set.to_string(),
            expected,
            found: shape[1],
        });
    }
    if shape[0] < i64::try_from(batch_size).unwrap_or(i64::MAX) {
        return Err(GanError::NotEnoughRows {
            set: set.to_string(),
            rows: shape[0],
            batch_size,
        });
    }
    let finite = tch::no_grad(|| tensor.isfinite().all().int64_value(&[]) == 1);
    if !finite {
        return Err(GanError::NonFinite {
            set: set.to_string(),
        });
    }
    Ok(shape[1])
}

/// Training phases, part of every derived seed so the phases never share a random stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    PretrainInit,
    Pretrain,
    TrainInit,
    Train,
}

/// A seed for one (phase, pair, epoch), so that every epoch can reseed libtorch and a resumed run
/// draws exactly what an uninterrupted one draws, without saving generator state.
pub(crate) fn derived_seed(seed: u64, phase: Phase, pair: usize, epoch: usize) -> u64 {
    let tag = match phase {
        Phase::PretrainInit => 1u64,
        Phase::Pretrain => 2,
        Phase::TrainInit => 3,
        Phase::Train => 4,
    };
    let mut state = splitmix(seed ^ splitmix(tag));
    state = splitmix(state ^ (pair as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    splitmix(state ^ (epoch as u64))
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Row indices of one epoch: row `it` of each matrix holds the `K * batch` rows of iteration `it`,
/// model-major (CycleGAN 0's batch first).
pub(crate) struct EpochPlan {
    pub iterations: i64,
    pub source_rows: Tensor,
    pub target_rows: Tensor,
}

/// Draws one epoch's permutations (each CycleGAN its own source permutation, each target set its
/// own), cut into `iterations` full batches; the tail is dropped. Target indices are offset into
/// the concatenation of the target sets. Permutations come from libtorch's CPU generator, so
/// they do not depend on the device.
pub(crate) fn plan_epoch(
    source_rows: i64,
    target_rows: &[i64],
    target_offsets: &[i64],
    batch: i64,
    device: Device,
) -> EpochPlan {
    let iterations = target_rows
        .iter()
        .map(|rows| rows / batch)
        .chain(std::iter::once(source_rows / batch))
        .min()
        .unwrap_or(0);
    let take = iterations * batch;
    let sources: Vec<Tensor> = target_rows
        .iter()
        .map(|_| Tensor::randperm(source_rows, (Kind::Int64, Device::Cpu)).narrow(0, 0, take))
        .collect();
    let targets: Vec<Tensor> = target_rows
        .iter()
        .zip(target_offsets)
        .map(|(&rows, &offset)| {
            Tensor::randperm(rows, (Kind::Int64, Device::Cpu)).narrow(0, 0, take) + offset
        })
        .collect();
    let arrange = |parts: &[Tensor]| {
        Tensor::stack(parts, 0)
            .view([parts.len() as i64, iterations, batch])
            .permute([1, 0, 2])
            .contiguous()
            .view([iterations, parts.len() as i64 * batch])
            .to_device(device)
    };
    EpochPlan {
        iterations,
        source_rows: arrange(&sources),
        target_rows: arrange(&targets),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rows: i64, cols: i64) -> Tensor {
        Tensor::rand([rows, cols], (Kind::Float, Device::Cpu))
    }

    #[test]
    fn validation_names_the_offending_set() {
        let _rng = crate::libtorch_rng_lock();
        let ok = TrainingData::new(matrix(10, 3), vec![matrix(4, 3), matrix(5, 3)]);
        let shape = ok.validate(4).unwrap();
        assert_eq!(shape.target_rows, [4, 5]);
        let wide = TrainingData::new(matrix(10, 3), vec![matrix(4, 3), matrix(5, 2)]);
        assert!(matches!(
            wide.validate(4),
            Err(GanError::DimensionMismatch { ref set, expected: 3, found: 2 }) if set == "target 1"
        ));
        let short = TrainingData::new(matrix(10, 3), vec![matrix(3, 3)]);
        assert!(matches!(
            short.validate(4),
            Err(GanError::NotEnoughRows { rows: 3, .. })
        ));
        let nan = TrainingData::new(
            matrix(10, 3),
            vec![Tensor::full([4, 3], f64::NAN, (Kind::Float, Device::Cpu))],
        );
        assert!(matches!(nan.validate(4), Err(GanError::NonFinite { .. })));
        let double = TrainingData::new(matrix(10, 3).to_kind(Kind::Double), vec![matrix(4, 3)]);
        assert!(matches!(
            double.validate(4),
            Err(GanError::NotAMatrix { .. })
        ));
        assert!(matches!(
            TrainingData::new(matrix(10, 3), vec![]).validate(4),
            Err(GanError::NoTargets)
        ));
    }

    #[test]
    fn an_epoch_is_a_pass_over_the_smallest_set_without_replacement() {
        let _rng = crate::libtorch_rng_lock();
        tch::manual_seed(3);
        let plan = plan_epoch(50, &[9, 13], &[0, 9], 4, Device::Cpu);
        assert_eq!(plan.iterations, 2);
        assert_eq!(plan.source_rows.size(), [2, 8]);
        let targets: Vec<i64> = Vec::try_from(plan.target_rows.flatten(0, -1)).unwrap();
        // Target 0 owns rows 0..9, target 1 rows 9..22; each batch draws without replacement.
        for iteration in targets.chunks(8) {
            assert!(iteration[..4].iter().all(|&row| (0..9).contains(&row)));
            assert!(iteration[4..].iter().all(|&row| (9..22).contains(&row)));
        }
        let mut first: Vec<i64> = targets.chunks(8).flat_map(|c| c[..4].to_vec()).collect();
        first.sort_unstable();
        first.dedup();
        assert_eq!(first.len(), 8);
    }

    #[test]
    fn derived_seeds_differ_by_phase_pair_and_epoch() {
        let base = derived_seed(7, Phase::Train, 0, 0);
        assert_ne!(base, derived_seed(7, Phase::Train, 0, 1));
        assert_ne!(base, derived_seed(7, Phase::Train, 1, 0));
        assert_ne!(base, derived_seed(7, Phase::Pretrain, 0, 0));
        assert_ne!(base, derived_seed(8, Phase::Train, 0, 0));
        assert_eq!(base, derived_seed(7, Phase::Train, 0, 0));
    }
}
