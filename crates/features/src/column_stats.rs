//! Count, min, max, mean and sum of squared deviations of float32 feature columns, two-pass in
//! f64, two columns at a time.
//!
//! Each column is summed in eight lanes, each lane in row order, and the lanes are added up in
//! lane order: the compiler turns the lanes into vector instructions, which a single running
//! sum (one dependent addition per value) forbids. The arithmetic is fixed by that order alone,
//! so the results are the same bits whether a column is summed alone or beside another. Two
//! columns side by side give the CPU two independent chains of additions to overlap.
//!
//! Values are finite here (the reader rejects the rest), so min and max need no NaN handling.

use crate::normalise::RunningStats;

const LANES: usize = 8;

/// The statistics of `column`.
pub(crate) fn column_stats(column: &[f32]) -> RunningStats {
    let [stats] = stats_of([column]);
    stats
}

/// The statistics of two columns of the same length.
pub(crate) fn column_pair_stats(first: &[f32], second: &[f32]) -> [RunningStats; 2] {
    assert_eq!(
        first.len(),
        second.len(),
        "a column pair must be of one length"
    );
    stats_of([first, second])
}

/// Columns must be of one length (the callers check).
fn stats_of<const K: usize>(columns: [&[f32]; K]) -> [RunningStats; K] {
    let len = columns[0].len();
    if len == 0 {
        return [RunningStats::default(); K];
    }
    let full = len / LANES * LANES;
    let mut sums = [[0.0f64; LANES]; K];
    let mut mins = [[f32::INFINITY; LANES]; K];
    let mut maxs = [[f32::NEG_INFINITY; LANES]; K];
    for start in (0..full).step_by(LANES) {
        for (k, column) in columns.iter().enumerate() {
            let group = lanes_at(column, start);
            for lane in 0..LANES {
                let value = group[lane];
                sums[k][lane] += f64::from(value);
                // Written as comparisons, not `f32::min`, so that they become vector min/max.
                mins[k][lane] = if value < mins[k][lane] {
                    value
                } else {
                    mins[k][lane]
                };
                maxs[k][lane] = if value > maxs[k][lane] {
                    value
                } else {
                    maxs[k][lane]
                };
            }
        }
    }
    let mut means = [0.0f64; K];
    for (k, column) in columns.iter().enumerate() {
        for (lane, &value) in column[full..].iter().enumerate() {
            sums[k][lane] += f64::from(value);
            mins[k][lane] = mins[k][lane].min(value);
            maxs[k][lane] = maxs[k][lane].max(value);
        }
        means[k] = sums[k].iter().sum::<f64>() / len as f64;
    }
    let mut squares = [[0.0f64; LANES]; K];
    for start in (0..full).step_by(LANES) {
        for (k, column) in columns.iter().enumerate() {
            let group = lanes_at(column, start);
            for lane in 0..LANES {
                let deviation = f64::from(group[lane]) - means[k];
                squares[k][lane] += deviation * deviation;
            }
        }
    }
    // A plain loop, not `std::array::from_fn`: with the closure writing to `squares`, the
    // compiler kept the accumulators in memory in the loops above, five times slower.
    let mut stats = [RunningStats::default(); K];
    for k in 0..K {
        for (lane, &value) in columns[k][full..].iter().enumerate() {
            let deviation = f64::from(value) - means[k];
            squares[k][lane] += deviation * deviation;
        }
        stats[k] = RunningStats {
            count: len as u64,
            min: f64::from(mins[k].into_iter().fold(f32::INFINITY, f32::min)),
            max: f64::from(maxs[k].into_iter().fold(f32::NEG_INFINITY, f32::max)),
            mean: means[k],
            m2: squares[k].iter().sum(),
        };
    }
    stats
}

/// The `LANES` values of `column` from `start`.
#[inline(always)]
fn lanes_at(column: &[f32], start: usize) -> &[f32; LANES] {
    column[start..start + LANES]
        .try_into()
        .expect("a group is LANES values")
}

#[cfg(test)]
mod tests {
    use super::*;
    use emocycle_rng::SplitMix64;

    /// The definition, one value at a time: lane `i % 8` takes value `i`.
    fn reference(values: &[f32]) -> RunningStats {
        if values.is_empty() {
            return RunningStats::default();
        }
        let mut sums = [0.0f64; LANES];
        for (index, &value) in values.iter().enumerate() {
            sums[index % LANES] += f64::from(value);
        }
        let mean = sums.iter().sum::<f64>() / values.len() as f64;
        let mut squares = [0.0f64; LANES];
        for (index, &value) in values.iter().enumerate() {
            let deviation = f64::from(value) - mean;
            squares[index % LANES] += deviation * deviation;
        }
        RunningStats {
            count: values.len() as u64,
            min: f64::from(values.iter().copied().fold(f32::INFINITY, f32::min)),
            max: f64::from(values.iter().copied().fold(f32::NEG_INFINITY, f32::max)),
            mean,
            m2: squares.iter().sum(),
        }
    }

    fn bits(stats: &RunningStats) -> [u64; 5] {
        [
            stats.count,
            stats.min.to_bits(),
            stats.max.to_bits(),
            stats.mean.to_bits(),
            stats.m2.to_bits(),
        ]
    }

    fn unit(random: &mut SplitMix64) -> f64 {
        (random.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn random_column(random: &mut SplitMix64, len: usize) -> Vec<f32> {
        // A large offset and a wide spread, so that the order of additions shows in the bits.
        let offset = (unit(random) - 0.5) * 1e6;
        (0..len)
            .map(|_| (offset + (unit(random) - 0.5) * 1e3 * unit(random)) as f32)
            .collect()
    }

    #[test]
    fn known_values() {
        let stats = column_stats(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]);
        assert_eq!(stats.count, 10);
        assert_eq!((stats.min, stats.max), (1.0, 10.0));
        assert_eq!(stats.mean, 5.5);
        assert_eq!(stats.m2, 82.5);
        assert_eq!(stats.std(), 8.25f64.sqrt());
        let constant = column_stats(&[0.25; 13]);
        assert_eq!((constant.mean, constant.m2), (0.25, 0.0));
        assert_eq!(bits(&column_stats(&[])), bits(&RunningStats::default()));
    }

    #[test]
    fn alone_or_in_pairs_the_bits_are_the_definitions() {
        let mut random = SplitMix64::new(17);
        for len in (0..40).chain([63, 64, 65, 4093, 4096]) {
            let first = random_column(&mut random, len);
            let second = random_column(&mut random, len);
            let [a, b] = column_pair_stats(&first, &second);
            assert_eq!(bits(&a), bits(&reference(&first)), "length {len}");
            assert_eq!(bits(&b), bits(&reference(&second)), "length {len}");
            assert_eq!(bits(&column_stats(&first)), bits(&a), "length {len}");
        }
    }

    #[test]
    fn lanes_are_summed_in_lane_order_not_one_running_sum() {
        // Lane 0 takes 1e30, 1e30, -1e30 and keeps 1e30; lane 1 takes 1, 1, -1e30 and loses
        // the ones; the other lanes hold 12 in all: the mean is 12 / 18. One running sum
        // would lose every one against 1e30 and end at 0.
        let values: Vec<f32> = (0..16)
            .map(|index| if index % 8 == 0 { 1e30 } else { 1.0 })
            .chain([-1e30, -1e30])
            .collect();
        let stats = column_stats(&values);
        assert_eq!(bits(&stats), bits(&reference(&values)));
        let running: f64 = values.iter().map(|&value| f64::from(value)).sum();
        assert_ne!(stats.mean, running / values.len() as f64);
    }

    #[test]
    #[should_panic(expected = "one length")]
    fn a_pair_of_two_lengths_is_refused() {
        column_pair_stats(&[1.0, 2.0], &[1.0]);
    }
}
