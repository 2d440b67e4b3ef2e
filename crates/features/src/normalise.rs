//! Per-feature normalisation statistics: min-max to [0, 1] and z-score (population std).
//!
//! Statistics are fitted on a named subset (a fold's training part, a whole corpus), stored as
//! parquet with columns `feature, min, max, mean, std` (float64), and applied and inverted by
//! later stages. A constant feature (zero range or zero std) is scaled by 1 instead of 0, so it
//! maps to 0 and back without NaN or Inf.

use std::path::Path;

use emocycle_artifact::{ArtifactError, Metadata, read_parquet, require_column, write_parquet};
use polars::prelude::*;
use rayon::prelude::*;

use crate::error::{FeatureError, Result};

/// Running statistics of one feature, mergeable across groups (Chan et al.'s parallel update).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunningStats {
    /// Values seen.
    pub count: u64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Mean.
    pub mean: f64,
    /// Sum of squared deviations from the mean.
    pub m2: f64,
}

impl Default for RunningStats {
    fn default() -> Self {
        Self {
            count: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            mean: 0.0,
            m2: 0.0,
        }
    }
}

impl RunningStats {
    /// Adds one value (Welford's update).
    #[inline]
    pub fn push(&mut self, value: f64) {
        self.count += 1;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        let delta = value - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (value - self.mean);
    }

    /// Combines the statistics of two disjoint groups.
    pub fn merge(&self, other: &Self) -> Self {
        if self.count == 0 {
            return *other;
        }
        if other.count == 0 {
            return *self;
        }
        let count = self.count + other.count;
        let delta = other.mean - self.mean;
        Self {
            count,
            min: self.min.min(other.min),
            max: self.max.max(other.max),
            mean: self.mean + delta * other.count as f64 / count as f64,
            m2: self.m2
                + other.m2
                + delta * delta * (self.count as f64 * other.count as f64) / count as f64,
        }
    }

    /// Population standard deviation.
    pub fn std(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            (self.m2 / self.count as f64).sqrt()
        }
    }
}

/// Fitted statistics for every feature of a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Normaliser {
    /// Feature names, in column order.
    pub features: Vec<String>,
    /// Per-feature minimum.
    pub min: Vec<f64>,
    /// Per-feature maximum.
    pub max: Vec<f64>,
    /// Per-feature mean.
    pub mean: Vec<f64>,
    /// Per-feature population standard deviation.
    pub std: Vec<f64>,
    /// Rows the statistics were fitted on.
    pub rows: u64,
}

/// Which scaling to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scaling {
    /// `(x - min) / (max - min)`: the fitted data land in [0, 1].
    MinMax,
    /// `(x - mean) / std`, population std.
    ZScore,
}

impl Normaliser {
    /// Statistics from per-feature running statistics.
    pub fn from_stats(features: Vec<String>, stats: &[RunningStats]) -> Self {
        Self {
            features,
            min: stats.iter().map(|s| s.min).collect(),
            max: stats.iter().map(|s| s.max).collect(),
            mean: stats.iter().map(|s| s.mean).collect(),
            std: stats.iter().map(RunningStats::std).collect(),
            rows: stats.first().map_or(0, |s| s.count),
        }
    }

    /// Fits on row-major data (`rows x features.len()`).
    pub fn fit_rows(features: Vec<String>, data: &[f32]) -> Self {
        let width = features.len();
        let stats: Vec<RunningStats> = (0..width)
            .into_par_iter()
            .map(|column| {
                let mut stats = RunningStats::default();
                for row in data.chunks_exact(width) {
                    stats.push(f64::from(row[column]));
                }
                stats
            })
            .collect();
        Self::from_stats(features, &stats)
    }

    /// Per-feature `(offset, scale)` so that `scaled = (x - offset) / scale`; a zero range or
    /// std becomes a scale of 1, so constant features map to 0 instead of NaN.
    pub fn offset_scale(&self, scaling: Scaling) -> (Vec<f64>, Vec<f64>) {
        let guard = |scale: f64| {
            if scale > 0.0 && scale.is_finite() {
                scale
            } else {
                1.0
            }
        };
        match scaling {
            Scaling::MinMax => (
                self.min.clone(),
                self.min
                    .iter()
                    .zip(&self.max)
                    .map(|(min, max)| guard(max - min))
                    .collect(),
            ),
            Scaling::ZScore => (
                self.mean.clone(),
                self.std.iter().map(|&std| guard(std)).collect(),
            ),
        }
    }

    /// Scales row-major data in place (computed in f64, stored as f32).
    pub fn transform_rows(&self, data: &mut [f32], scaling: Scaling) {
        let (offset, scale) = self.offset_scale(scaling);
        let width = self.features.len();
        data.par_chunks_mut(width.max(1) * 64).for_each(|rows| {
            for row in rows.chunks_exact_mut(width) {
                for ((value, offset), scale) in row.iter_mut().zip(&offset).zip(&scale) {
                    *value = ((f64::from(*value) - offset) / scale) as f32;
                }
            }
        });
    }

    /// Undoes [`Normaliser::transform_rows`] in place.
    pub fn inverse_rows(&self, data: &mut [f32], scaling: Scaling) {
        let (offset, scale) = self.offset_scale(scaling);
        let width = self.features.len();
        data.par_chunks_mut(width.max(1) * 64).for_each(|rows| {
            for row in rows.chunks_exact_mut(width) {
                for ((value, offset), scale) in row.iter_mut().zip(&offset).zip(&scale) {
                    *value = (f64::from(*value) * scale + offset) as f32;
                }
            }
        });
    }

    /// Writes the statistics as parquet (`feature, min, max, mean, std`) with `metadata`.
    pub fn write(&self, path: &Path, metadata: &Metadata) -> Result<()> {
        let mut frame = DataFrame::new(
            self.features.len(),
            vec![
                Column::new("feature".into(), &self.features),
                Column::new("min".into(), &self.min),
                Column::new("max".into(), &self.max),
                Column::new("mean".into(), &self.mean),
                Column::new("std".into(), &self.std),
            ],
        )
        .map_err(FeatureError::frame(format!(
            "normalisation table for {}",
            path.display()
        )))?;
        let mut metadata = metadata.clone();
        metadata.insert("emocycle.normalisation.rows", self.rows.to_string());
        write_parquet(path, &mut frame, &metadata)?;
        Ok(())
    }

    /// Reads statistics written by [`Normaliser::write`].
    pub fn read(path: &Path) -> Result<Self> {
        let (frame, metadata) = read_parquet(path)?;
        require_column(&frame, path, "feature", &DataType::String)?;
        for column in ["min", "max", "mean", "std"] {
            require_column(&frame, path, column, &DataType::Float64)?;
        }
        let floats = |name: &str| -> Vec<f64> {
            frame
                .column(name)
                .and_then(|column| {
                    column
                        .f64()
                        .map(|values| values.into_no_null_iter().collect())
                })
                .unwrap_or_default()
        };
        let features = frame
            .column("feature")
            .and_then(|column| {
                column.str().map(|values| {
                    values
                        .iter()
                        .map(|name| name.unwrap_or_default().to_string())
                        .collect()
                })
            })
            .map_err(|source| ArtifactError::Parquet {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Self {
            features,
            min: floats("min"),
            max: floats("max"),
            mean: floats("mean"),
            std: floats("std"),
            rows: metadata
                .get("emocycle.normalisation.rows")
                .and_then(|rows| rows.parse().ok())
                .unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(count: usize) -> Vec<String> {
        (0..count).map(|index| format!("f{index}")).collect()
    }

    #[test]
    fn known_statistics_and_population_std() {
        // Columns: [1, 2, 3, 4] and the constant [5, 5, 5, 5].
        let data = [1.0, 5.0, 2.0, 5.0, 3.0, 5.0, 4.0, 5.0];
        let normaliser = Normaliser::fit_rows(names(2), &data);
        assert_eq!(normaliser.min, [1.0, 5.0]);
        assert_eq!(normaliser.max, [4.0, 5.0]);
        assert_eq!(normaliser.mean, [2.5, 5.0]);
        assert!((normaliser.std[0] - 1.25f64.sqrt()).abs() < 1e-12);
        assert_eq!(normaliser.std[1], 0.0);

        let mut minmax = data;
        normaliser.transform_rows(&mut minmax, Scaling::MinMax);
        assert_eq!(minmax, [0.0, 0.0, 1.0 / 3.0, 0.0, 2.0 / 3.0, 0.0, 1.0, 0.0]);
        let mut z = data;
        normaliser.transform_rows(&mut z, Scaling::ZScore);
        assert!((z[0] - (-1.5 / 1.25f64.sqrt()) as f32).abs() < 1e-6);
        assert!(z.iter().all(|value| value.is_finite()));
        assert_eq!(z[1], 0.0);
    }

    #[test]
    fn inverse_undoes_transform_within_1e_6_relative() {
        let mut state = 12345u64;
        let mut data = Vec::new();
        for row in 0..500 {
            for column in 0..6 {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let unit = (state >> 40) as f64 / (1u64 << 24) as f64;
                let value = match column {
                    0 => unit * 1e4 + 3e4,
                    1 => unit * 1e-3 - 5e-4,
                    2 => 7.25, // constant
                    3 => (unit - 0.5) * 2e6,
                    4 => row as f64,
                    _ => unit,
                };
                data.push(value as f32);
            }
        }
        let normaliser = Normaliser::fit_rows(names(6), &data);
        for scaling in [Scaling::MinMax, Scaling::ZScore] {
            let mut round_trip = data.clone();
            normaliser.transform_rows(&mut round_trip, scaling);
            assert!(round_trip.iter().all(|value| value.is_finite()));
            normaliser.inverse_rows(&mut round_trip, scaling);
            for (index, (&back, &original)) in round_trip.iter().zip(&data).enumerate() {
                let column = index % 6;
                let range = normaliser.max[column] - normaliser.min[column];
                let tolerance = 1e-6 * f64::from(original.abs()).max(range);
                assert!(
                    (f64::from(back) - f64::from(original)).abs() <= tolerance,
                    "{scaling:?} column {column}: {original} -> {back}"
                );
            }
        }
    }

    #[test]
    fn merged_groups_equal_one_pass() {
        let values: Vec<f64> = (0..100).map(|i| (i as f64 * 0.37).sin() * 10.0).collect();
        let mut whole = RunningStats::default();
        values.iter().for_each(|&v| whole.push(v));
        let mut left = RunningStats::default();
        let mut right = RunningStats::default();
        values[..37].iter().for_each(|&v| left.push(v));
        values[37..].iter().for_each(|&v| right.push(v));
        let merged = left.merge(&right);
        assert_eq!(merged.count, whole.count);
        assert!((merged.mean - whole.mean).abs() < 1e-12);
        assert!((merged.std() - whole.std()).abs() < 1e-12);
        assert_eq!((merged.min, merged.max), (whole.min, whole.max));
    }

    #[test]
    fn parquet_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("norm.parquet");
        let normaliser = Normaliser::fit_rows(names(3), &[1.0, 2.0, 3.0, 4.0, 6.0, 9.0]);
        normaliser
            .write(
                &path,
                &Metadata::for_stage("features", crate::CODE_FINGERPRINT),
            )
            .unwrap();
        assert_eq!(Normaliser::read(&path).unwrap(), normaliser);
    }
}
