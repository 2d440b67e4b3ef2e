//! Where a synthetic training set comes from: a CycleGAN run (one per `lambda_cls`) or a
//! baseline augmentation method; the type is the run layout's ([`SyntheticSource`]).

use std::cmp::Ordering;

pub use emocycle_config::layout::{CYCLEGAN, SyntheticSource};

/// Compares optional sources, `None` (the real setup) first.
pub(crate) fn order_optional(a: Option<&SyntheticSource>, b: Option<&SyntheticSource>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => a.order(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_real_setup_comes_first() {
        let half = SyntheticSource::cyclegan(0.5);
        assert_eq!(order_optional(None, Some(&half)), Ordering::Less);
        assert_eq!(order_optional(Some(&half), None), Ordering::Greater);
        assert_eq!(order_optional(None, None), Ordering::Equal);
    }
}
