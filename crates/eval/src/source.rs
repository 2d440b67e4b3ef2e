//! Where a synthetic training set comes from: a CycleGAN run (one per `lambda_cls`) or a
//! baseline augmentation method (random oversampling, SMOTE, noise, a conditional GAN...).

use std::cmp::Ordering;
use std::fmt;

/// The `method` of every CycleGAN set in `results.parquet`.
pub const CYCLEGAN: &str = "cyclegan";

/// One synthetic set per scope: the CycleGAN of a `lambda_cls`, or a named baseline.
#[derive(Debug, Clone, PartialEq)]
pub enum SyntheticSource {
    /// The CycleGANs trained with this classification-loss weight.
    CycleGan {
        /// The weight.
        lambda_cls: f64,
    },
    /// A baseline, by its configured name (`smote`, `random-oversampling`, ...).
    Baseline {
        /// The name: the set's directory below `synth/<scope>/` and its `method` column.
        name: String,
    },
}

impl SyntheticSource {
    /// A CycleGAN source.
    pub fn cyclegan(lambda_cls: f64) -> Self {
        Self::CycleGan { lambda_cls }
    }

    /// A baseline source.
    pub fn baseline(name: impl Into<String>) -> Self {
        Self::Baseline { name: name.into() }
    }

    /// `cyclegan` or the baseline's name (the `method` column).
    pub fn method(&self) -> &str {
        match self {
            Self::CycleGan { .. } => CYCLEGAN,
            Self::Baseline { name } => name,
        }
    }

    /// The CycleGAN's weight; `None` for a baseline.
    pub fn lambda_cls(&self) -> Option<f64> {
        match self {
            Self::CycleGan { lambda_cls } => Some(*lambda_cls),
            Self::Baseline { .. } => None,
        }
    }

    /// The directory below `synth/<scope>/`: `lambda_cls-<v>` (v in Rust's f64 Display, as the
    /// GAN stage names its runs) or the baseline's name.
    pub fn dir_name(&self) -> String {
        match self {
            Self::CycleGan { lambda_cls } => format!("lambda_cls-{lambda_cls}"),
            Self::Baseline { name } => name.clone(),
        }
    }

    /// Whether this is a CycleGAN set.
    pub fn is_cyclegan(&self) -> bool {
        matches!(self, Self::CycleGan { .. })
    }

    /// Report order: CycleGANs by lambda_cls, then baselines by name.
    pub fn order(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::CycleGan { lambda_cls: a }, Self::CycleGan { lambda_cls: b }) => a.total_cmp(b),
            (Self::CycleGan { .. }, Self::Baseline { .. }) => Ordering::Less,
            (Self::Baseline { .. }, Self::CycleGan { .. }) => Ordering::Greater,
            (Self::Baseline { name: a }, Self::Baseline { name: b }) => a.cmp(b),
        }
    }

    /// A key that sorts as [`SyntheticSource::order`] and can live in ordered maps.
    pub fn sort_key(&self) -> (u8, u64, String) {
        match self {
            // Non-negative floats order like their bit patterns.
            Self::CycleGan { lambda_cls } => (0, lambda_cls.to_bits(), String::new()),
            Self::Baseline { name } => (1, 0, name.clone()),
        }
    }
}

/// Compares optional sources, `None` (the real setup) first.
pub(crate) fn order_optional(a: Option<&SyntheticSource>, b: Option<&SyntheticSource>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => a.order(b),
    }
}

impl fmt::Display for SyntheticSource {
    /// `cyclegan lambda_cls=2` or the baseline's name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CycleGan { lambda_cls } => write!(f, "{CYCLEGAN} lambda_cls={lambda_cls}"),
            Self::Baseline { name } => f.write_str(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_order() {
        let half = SyntheticSource::cyclegan(0.5);
        let two = SyntheticSource::cyclegan(2.0);
        let smote = SyntheticSource::baseline("smote");
        assert_eq!(half.dir_name(), "lambda_cls-0.5");
        assert_eq!(two.dir_name(), "lambda_cls-2");
        assert_eq!(smote.dir_name(), "smote");
        assert_eq!(smote.method(), "smote");
        assert_eq!(two.method(), CYCLEGAN);
        assert_eq!(two.lambda_cls(), Some(2.0));
        assert_eq!(smote.lambda_cls(), None);
        assert_eq!(half.order(&two), Ordering::Less);
        assert_eq!(two.order(&smote), Ordering::Less);
        assert!(half.sort_key() < two.sort_key() && two.sort_key() < smote.sort_key());
        assert_eq!(order_optional(None, Some(&half)), Ordering::Less);
        assert_eq!(two.to_string(), "cyclegan lambda_cls=2");
    }
}
