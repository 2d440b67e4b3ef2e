//! What an evaluation produces: one [`RunResult`] per trained classifier and their
//! aggregation into [`Summary`] rows, shared by the orchestration (`run`) and the tables and
//! files (`report`), neither of which needs the other's internals.

use std::collections::BTreeMap;

use emocycle_config::eval::Setup;
use emocycle_features::Emotion;
use serde::Serialize;

use crate::metrics::{CLASSES, ConfusionMatrix, mean_counts, mean_std};
use crate::source::{SyntheticSource, order_optional};

/// What a classifier is tested on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Experiment {
    /// Leave-one-session-out on the labelled corpus (Table 2).
    #[serde(rename = "within")]
    Within,
    /// Trained on the whole labelled corpus, tested on the cross-corpus set's test part
    /// (Table 3).
    #[serde(rename = "cross-test")]
    CrossTest,
    /// The same classifiers on the cross-corpus set's dev part.
    #[serde(rename = "cross-dev")]
    CrossDev,
}

impl Experiment {
    /// All three, in report order.
    pub const ALL: [Experiment; 3] = [Self::Within, Self::CrossTest, Self::CrossDev];

    /// `within`, `cross-test` or `cross-dev`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Within => "within",
            Self::CrossTest => "cross-test",
            Self::CrossDev => "cross-dev",
        }
    }
}

/// One trained classifier on one test set.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// What it was tested on.
    pub experiment: Experiment,
    /// 1-based fold number (within-corpus only).
    pub fold: Option<usize>,
    /// The fold's held-out session (within-corpus only).
    pub test_session: Option<String>,
    /// The training set.
    pub setup: Setup,
    /// Where the synthetic rows came from (synthetic setups only).
    pub source: Option<SyntheticSource>,
    /// The scope whose synthetic set was used (`fold<k>` or `all`; synthetic setups only).
    pub synthetic_scope: Option<String>,
    /// 0-based repeat.
    pub repeat: usize,
    /// The repeat's seed, `config.seed + repeat`.
    pub seed: u64,
    /// The seed of this run's own generator, derived from `seed` and the run's identity.
    pub run_seed: u64,
    /// Training rows.
    pub train_rows: usize,
    /// Confusion counts on the test set.
    pub confusion: ConfusionMatrix,
    /// Mean minibatch loss of the last epoch.
    pub final_loss: f64,
    /// Training and prediction wall time, seconds.
    pub seconds: f64,
    /// sha256 of everything the run depends on (code version, hyper-parameters, seed, input
    /// files): a later evaluation reuses the result instead of training again when it matches.
    pub run_key: String,
}

impl RunResult {
    /// The CycleGAN's lambda_cls (CycleGAN synthetic setups only).
    pub fn lambda_cls(&self) -> Option<f64> {
        self.source.as_ref().and_then(SyntheticSource::lambda_cls)
    }

    /// UAR on the test set (NaN when empty, which the stage never produces).
    pub fn uar(&self) -> f64 {
        self.confusion.uar().unwrap_or(f64::NAN)
    }

    /// Accuracy on the test set.
    pub fn accuracy(&self) -> f64 {
        self.confusion.accuracy().unwrap_or(f64::NAN)
    }
}

/// Aggregate of one (experiment, setup, synthetic source family) over folds, repeats and
/// generator seeds.
///
/// For each repeat (of each generator seed, for a CycleGAN family trained with `gan.seeds` > 1),
/// the UAR is averaged over the folds (the paper's fold aggregate, the mean of the per-fold
/// UARs); `uar_mean` and `uar_std` are the mean and population standard deviation of those
/// values. The mean equals the mean of the per-fold means over repeats; with one generator the
/// std measures the spread due to the classifier's initialisation, shuffling and dropout, as
/// the paper's "repeat five times, report mean and standard deviation" does, and with several
/// [`Summary::spread_parts`] splits it into the classifier's and the generator's part.
#[derive(Debug, Clone)]
pub struct Summary {
    /// What was tested.
    pub experiment: Experiment,
    /// The training set.
    pub setup: Setup,
    /// Where the synthetic rows came from (synthetic setups only).
    pub source: Option<SyntheticSource>,
    /// Folds averaged per repeat (1 for cross-corpus).
    pub folds: usize,
    /// Generator seeds aggregated (1 for the real setup, baselines and `gan.seeds` = 1).
    pub gan_seeds: usize,
    /// Fold-averaged UAR per repeat, generator seed by generator seed.
    pub uar_per_repeat: Vec<f64>,
    /// Mean of `uar_per_repeat`.
    pub uar_mean: f64,
    /// Population std of `uar_per_repeat`: the total spread of the fold-averaged UAR over
    /// repeats (and generator seeds).
    pub uar_std: f64,
    /// With two generator seeds or more and more values than seeds (some seed with two repeats
    /// or more): the spread of the fold-averaged UAR split into its classifier and generator
    /// parts.
    pub spread_parts: Option<SpreadParts>,
    /// Mean over folds of each fold's population std of the UAR over repeats: the ± of the
    /// authors' combining code (it averages the per-session stds), the one the paper's ± is
    /// comparable with. About sqrt(folds) larger than `uar_std` when the folds vary
    /// independently; equal to it with one fold (cross corpus). With several generator seeds
    /// each fold's std is over all of them and their repeats, the generator's spread included.
    pub uar_std_per_session: f64,
    /// Mean over repeats of the fold-averaged accuracy.
    pub accuracy_mean: f64,
    /// Population std over repeats of the fold-averaged accuracy.
    pub accuracy_std: f64,
    /// Per class: mean over repeats of the fold-averaged recall (folds without the class left
    /// out); `None` when no test set had the class.
    pub recall_mean: [Option<f64>; CLASSES],
    /// Confusion counts summed over folds and averaged over repeats (Figure 3 before row
    /// normalisation).
    pub confusion_mean: [[f64; CLASSES]; CLASSES],
}

/// The two parts of the UAR's spread over generator seeds and classifier repeats, estimated by
/// a one-way random-effects analysis of variance with the generator seed as the group: each
/// value is `y = mu + g + c`, `g` the generator's effect (variance `generator^2`) and `c` the
/// classifier's (variance `classifier^2`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpreadParts {
    /// The classifier's std: the square root of the within-seed mean square.
    pub classifier: f64,
    /// The generator's std: `sqrt(max(0, (MS_between - MS_within) / n0))`, `n0` the repeats
    /// per seed (Searle's n0 when unbalanced). 0 when the seeds differ no more than the
    /// classifier's noise explains.
    pub generator: f64,
}

impl SpreadParts {
    /// The estimate from fold-averaged values grouped by generator seed; `None` without two
    /// seeds or without a seed of two or more repeats (nothing to separate).
    pub fn estimate(groups: &[Vec<f64>]) -> Option<Self> {
        let groups: Vec<&Vec<f64>> = groups.iter().filter(|g| !g.is_empty()).collect();
        let n: usize = groups.iter().map(|g| g.len()).sum();
        let k = groups.len();
        if k < 2 || n <= k {
            return None;
        }
        let grand = groups.iter().flat_map(|g| g.iter()).sum::<f64>() / n as f64;
        let (mut within, mut between) = (0.0, 0.0);
        for group in &groups {
            let mean = group.iter().sum::<f64>() / group.len() as f64;
            within += group.iter().map(|y| (y - mean).powi(2)).sum::<f64>();
            between += group.len() as f64 * (mean - grand).powi(2);
        }
        let ms_within = within / (n - k) as f64;
        let ms_between = between / (k - 1) as f64;
        let sum_squares: f64 = groups.iter().map(|g| (g.len() as f64).powi(2)).sum();
        let n0 = (n as f64 - sum_squares / n as f64) / (k - 1) as f64;
        Some(Self {
            classifier: ms_within.sqrt(),
            generator: ((ms_between - ms_within) / n0).max(0.0).sqrt(),
        })
    }
}

impl Summary {
    /// The CycleGAN's lambda_cls (CycleGAN synthetic setups only).
    pub fn lambda_cls(&self) -> Option<f64> {
        self.source.as_ref().and_then(SyntheticSource::lambda_cls)
    }
}

/// Aggregates the results per (experiment, setup, synthetic source family: every generator
/// seed of a lambda_cls together); see [`Summary`].
pub fn summarise(results: &[RunResult]) -> Vec<Summary> {
    type Key = (Experiment, Setup, Option<(u8, u64, u32, String)>);
    let mut groups: BTreeMap<Key, Vec<&RunResult>> = BTreeMap::new();
    for result in results {
        groups
            .entry((
                result.experiment,
                result.setup,
                result
                    .source
                    .as_ref()
                    .map(|source| source.family().sort_key()),
            ))
            .or_default()
            .push(result);
    }
    let mut summaries: Vec<Summary> = groups
        .into_values()
        .map(|members| {
            let first = members[0];
            let (experiment, setup) = (first.experiment, first.setup);
            let source = first.source.as_ref().map(SyntheticSource::family);
            let gan_seed = |r: &RunResult| r.source.as_ref().and_then(SyntheticSource::gan_seed);
            let mut per_repeat: BTreeMap<(Option<u32>, usize), Vec<&RunResult>> = BTreeMap::new();
            for member in &members {
                per_repeat
                    .entry((gan_seed(member), member.repeat))
                    .or_default()
                    .push(member);
            }
            let folds = per_repeat.values().map(Vec::len).max().unwrap_or(0);
            let fold_mean = |runs: &[&RunResult], metric: &dyn Fn(&RunResult) -> Option<f64>| {
                let values: Vec<f64> = runs.iter().filter_map(|r| metric(r)).collect();
                (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
            };
            let uar: Vec<f64> = per_repeat
                .values()
                .filter_map(|runs| fold_mean(runs, &|r| r.confusion.uar()))
                .collect();
            let mut by_seed: BTreeMap<Option<u32>, Vec<f64>> = BTreeMap::new();
            for ((seed, _), runs) in &per_repeat {
                if let Some(value) = fold_mean(runs, &|r| r.confusion.uar()) {
                    by_seed.entry(*seed).or_default().push(value);
                }
            }
            let gan_seeds = by_seed.len();
            let spread_parts = SpreadParts::estimate(&by_seed.into_values().collect::<Vec<_>>());
            let accuracy: Vec<f64> = per_repeat
                .values()
                .filter_map(|runs| fold_mean(runs, &|r| r.confusion.accuracy()))
                .collect();
            let mut recall_mean = [None; CLASSES];
            for emotion in Emotion::ALL {
                let values: Vec<f64> = per_repeat
                    .values()
                    .filter_map(|runs| fold_mean(runs, &|r| r.confusion.recall(emotion)))
                    .collect();
                if !values.is_empty() {
                    recall_mean[emotion.index()] = Some(mean_std(&values).0);
                }
            }
            let summed: Vec<ConfusionMatrix> = per_repeat
                .values()
                .map(|runs| {
                    let mut total = ConfusionMatrix::default();
                    runs.iter().for_each(|r| total.add(&r.confusion));
                    total
                })
                .collect();
            let (uar_mean, uar_std) = mean_std(&uar);
            let mut per_fold: BTreeMap<Option<usize>, Vec<f64>> = BTreeMap::new();
            for member in &members {
                if let Some(value) = member.confusion.uar() {
                    per_fold.entry(member.fold).or_default().push(value);
                }
            }
            let fold_stds: Vec<f64> = per_fold.values().map(|values| mean_std(values).1).collect();
            let uar_std_per_session = mean_std(&fold_stds).0;
            let (accuracy_mean, accuracy_std) = mean_std(&accuracy);
            Summary {
                experiment,
                setup,
                source,
                folds,
                gan_seeds,
                uar_per_repeat: uar,
                uar_mean,
                uar_std,
                spread_parts,
                uar_std_per_session,
                accuracy_mean,
                accuracy_std,
                recall_mean,
                confusion_mean: mean_counts(&summed),
            }
        })
        .collect();
    summaries.sort_by(|a, b| {
        (a.experiment, a.setup)
            .cmp(&(b.experiment, b.setup))
            .then_with(|| order_optional(a.source.as_ref(), b.source.as_ref()))
    });
    summaries
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A within-corpus real run of `fold` and `repeat` with UAR `correct` %.
    fn run(fold: usize, repeat: usize, correct: u64) -> RunResult {
        let mut confusion = ConfusionMatrix::default();
        for class in 0..CLASSES {
            confusion.counts[class][class] = correct;
            confusion.counts[class][(class + 1) % CLASSES] = 100 - correct;
        }
        RunResult {
            experiment: Experiment::Within,
            fold: Some(fold),
            test_session: Some(format!("Ses{fold}")),
            setup: Setup::Real,
            source: None,
            synthetic_scope: None,
            repeat,
            seed: repeat as u64,
            run_seed: repeat as u64,
            train_rows: 10,
            confusion,
            final_loss: 0.0,
            seconds: 0.0,
            run_key: format!("{fold}-{repeat}"),
        }
    }

    #[test]
    fn the_two_spreads_over_repeats_by_hand() {
        // Fold 1 scores 50 then 60, fold 2 70 then 60: every repeat averages 60 over the folds,
        // so the fold-averaged UAR does not spread at all, while each session spreads by 5.
        let results = [run(1, 0, 50), run(1, 1, 60), run(2, 0, 70), run(2, 1, 60)];
        let summary = &summarise(&results)[0];
        assert_eq!(summary.folds, 2);
        assert!((summary.uar_mean - 0.60).abs() < 1e-12);
        assert!(summary.uar_std.abs() < 1e-12);
        assert!((summary.uar_std_per_session - 0.05).abs() < 1e-12);
        // Sessions that move together: both definitions agree.
        let together = [run(1, 0, 50), run(1, 1, 60), run(2, 0, 50), run(2, 1, 60)];
        let summary = &summarise(&together)[0];
        assert!((summary.uar_std - 0.05).abs() < 1e-12);
        assert!((summary.uar_std_per_session - 0.05).abs() < 1e-12);
        assert_eq!((summary.gan_seeds, summary.spread_parts), (1, None));
    }

    #[test]
    fn the_spread_splits_by_hand() {
        // Seeds at 0.50 and 0.60, each with repeats 0.50 +- 0.02 around its mean: MS_within =
        // (4 * 0.02^2) / (6 - 2) = 0.0004 -> classifier 0.02; MS_between = 3 * 2 * 0.05^2 / 1 =
        // 0.015 -> generator sqrt((0.015 - 0.0004) / 3).
        let groups = [vec![0.48, 0.50, 0.52], vec![0.58, 0.60, 0.62]];
        let parts = SpreadParts::estimate(&groups).unwrap();
        assert!((parts.classifier - 0.02).abs() < 1e-12, "{parts:?}");
        assert!((parts.generator - ((0.015 - 0.0004) / 3.0f64).sqrt()).abs() < 1e-12);
        // Seeds whose means differ less than the classifier's noise explains: no generator part.
        let same = [vec![0.48, 0.52], vec![0.52, 0.48]];
        let parts = SpreadParts::estimate(&same).unwrap();
        assert_eq!(parts.generator, 0.0);
        assert!((parts.classifier - (4.0 * 0.0004f64 / 2.0).sqrt()).abs() < 1e-12);
        // Nothing to separate: one seed, or single repeats.
        assert_eq!(SpreadParts::estimate(&[vec![0.5, 0.6]]), None);
        assert_eq!(SpreadParts::estimate(&[vec![0.5], vec![0.6]]), None);
    }

    #[test]
    fn generator_seeds_of_a_lambda_cls_share_one_summary() {
        let seeded = |fold, repeat, correct, gan_seed| RunResult {
            setup: Setup::Syn,
            source: Some(SyntheticSource::seeded(2.0, gan_seed)),
            ..run(fold, repeat, correct)
        };
        let results = [
            seeded(1, 0, 50, 0),
            seeded(1, 1, 52, 0),
            seeded(1, 0, 60, 1),
            seeded(1, 1, 62, 1),
        ];
        let summaries = summarise(&results);
        assert_eq!(summaries.len(), 1);
        let summary = &summaries[0];
        assert_eq!(summary.source, Some(SyntheticSource::cyclegan(2.0)));
        assert_eq!((summary.gan_seeds, summary.folds), (2, 1));
        assert_eq!(summary.uar_per_repeat.len(), 4);
        assert!((summary.uar_mean - 0.56).abs() < 1e-12);
        let parts = summary.spread_parts.unwrap();
        // Within each seed the repeats differ by 0.02 (MS_within 0.0002); the seeds by 0.10.
        assert!((parts.classifier - 0.0002f64.sqrt()).abs() < 1e-12);
        let between = 2.0 * 2.0 * 0.05f64.powi(2);
        assert!((parts.generator - ((between - 0.0002) / 2.0).sqrt()).abs() < 1e-12);
    }
}
