//! Orchestration: which classifiers are trained on what, on how many workers, and the
//! aggregation of their results.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Instant;

use emocycle_features::{Emotion, Normaliser, SplitMix64};
use serde::Serialize;
use tch::Device;

use crate::classifier::{Dataset, train_and_predict};
use crate::config::{ClassifierParams, EvalConfig, Setup, SetupParams, SyntheticScope, Znorm};
use crate::data::{
    CrossData, EvalInputs, RawSet, gan_manifest_path, pooled_normaliser, read_cross,
    read_synthetic, read_target, split_folds,
};
use crate::error::{EvalError, Result};
use crate::metrics::{CLASSES, ConfusionMatrix, confusion, mean_counts, mean_std};
use crate::report;

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
    /// The GAN's lambda_cls (synthetic setups only).
    pub lambda_cls: Option<f64>,
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
}

impl RunResult {
    /// UAR on the test set (NaN when empty, which the stage never produces).
    pub fn uar(&self) -> f64 {
        self.confusion.uar().unwrap_or(f64::NAN)
    }

    /// Accuracy on the test set.
    pub fn accuracy(&self) -> f64 {
        self.confusion.accuracy().unwrap_or(f64::NAN)
    }
}

/// Aggregate of one (experiment, setup, lambda_cls) over folds and repeats.
///
/// For each repeat, the UAR is averaged over the folds (the paper's fold aggregate, the mean of
/// the per-fold UARs); `uar_mean` and `uar_std` are the mean and population standard deviation
/// of those per-repeat values. The mean equals the mean of the per-fold means over repeats; the
/// std measures the spread due to initialisation, shuffling and dropout, as the paper's
/// "repeat five times, report mean and standard deviation" does.
#[derive(Debug, Clone)]
pub struct Summary {
    /// What was tested.
    pub experiment: Experiment,
    /// The training set.
    pub setup: Setup,
    /// The GAN's lambda_cls (synthetic setups only).
    pub lambda_cls: Option<f64>,
    /// Folds averaged per repeat (1 for cross-corpus).
    pub folds: usize,
    /// Fold-averaged UAR per repeat.
    pub uar_per_repeat: Vec<f64>,
    /// Mean of `uar_per_repeat`.
    pub uar_mean: f64,
    /// Population std of `uar_per_repeat`.
    pub uar_std: f64,
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

/// Everything one evaluation produced.
#[derive(Debug, Clone)]
pub struct EvalReport {
    /// One entry per experiment x fold x setup x lambda_cls x repeat.
    pub results: Vec<RunResult>,
    /// One entry per experiment x setup x lambda_cls.
    pub summaries: Vec<Summary>,
    /// Files written.
    pub outputs: Vec<std::path::PathBuf>,
    /// Workers used (`parallel_jobs`).
    pub workers: usize,
    /// libtorch intra-op threads per worker.
    pub threads_per_worker: i32,
    /// Wall time of the whole evaluation, seconds.
    pub wall_seconds: f64,
}

/// Reported after each trained classifier.
#[derive(Debug, Clone)]
pub struct EvalProgress {
    /// Classifiers finished.
    pub done: usize,
    /// Classifiers in all.
    pub total: usize,
    /// `fold<k>` or `all` (cross-corpus).
    pub scope: String,
    /// The training set.
    pub setup: Setup,
    /// The GAN's lambda_cls (synthetic setups only).
    pub lambda_cls: Option<f64>,
    /// 0-based repeat.
    pub repeat: usize,
    /// UAR on the run's main test set (the fold, or the cross-corpus test part).
    pub uar: f64,
    /// The run's wall time, seconds.
    pub seconds: f64,
}

/// The test side of one scope.
enum TestSide<'a> {
    Fold {
        raw: &'a RawSet,
        fold: usize,
        session: String,
    },
    Cross(&'a CrossData),
}

impl TestSide<'_> {
    /// Scaled test sets, with `normaliser` or (`None`) each on its own statistics.
    fn scaled(&self, normaliser: Option<&Normaliser>) -> Vec<Arc<Dataset>> {
        let scale = |raw: &RawSet| match normaliser {
            Some(normaliser) => raw.scaled(normaliser),
            None => raw.scaled_on_itself(),
        };
        match self {
            Self::Fold { raw, .. } => vec![scale(raw)],
            // The cross-corpus set is one dataset: scaled as a whole, then cut into its parts.
            Self::Cross(cross) => {
                let (test, dev) = cross.parts(&scale(&cross.all));
                vec![test, dev]
            }
        }
    }

    fn experiments(&self) -> &'static [Experiment] {
        match self {
            Self::Fold { .. } => &[Experiment::Within],
            Self::Cross(_) => &[Experiment::CrossTest, Experiment::CrossDev],
        }
    }

    /// The name in a run's identity: `fold<k>` within corpus (whatever the synthetic scope),
    /// `all` across corpora.
    fn name(&self) -> String {
        match self {
            Self::Fold { fold, .. } => format!("fold{fold}"),
            Self::Cross(_) => "all".to_string(),
        }
    }
}

/// One experiment scope: a training part of the labelled corpus and what it is tested on.
struct ScopeSpec<'a> {
    /// The scope whose synthetic sets it reads (`fold<k>` or `all`).
    synthetic_scope: String,
    /// The session that scope's GANs must have held out (checked against their manifest).
    held_out: Option<String>,
    train: &'a RawSet,
    test: TestSide<'a>,
    params: &'a SetupParams,
}

/// A unit of data loading: one scope and one lambda_cls (`None`: no synthetic setup). At most
/// one group per worker is in memory at a time.
struct Group {
    scope: usize,
    lambda_cls: Option<f64>,
    setups: Vec<Setup>,
}

/// One training set with its test sets and hyper-parameters, shared by its repeats.
struct Prepared {
    setup: Setup,
    lambda_cls: Option<f64>,
    synthetic_scope: Option<String>,
    train: Vec<Arc<Dataset>>,
    tests: Vec<Arc<Dataset>>,
    params: ClassifierParams,
}

impl Prepared {
    fn train_rows(&self) -> usize {
        self.train.iter().map(|part| part.rows()).sum()
    }
}

/// Reads and scales one group's data: the synthetic set of its lambda_cls, and for each of its
/// setups the training parts and test sets under the configured z-normalisation.
fn prepare(
    group: &Group,
    scope: &ScopeSpec,
    inputs: &EvalInputs,
    config: &EvalConfig,
    names: &[String],
) -> Result<Vec<Prepared>> {
    let synthetic = match group.lambda_cls {
        Some(lambda_cls) => Some(read_synthetic(
            inputs,
            &scope.synthetic_scope,
            lambda_cls,
            scope.held_out.as_deref(),
            names,
        )?),
        None => None,
    };
    let train = scope.train;
    // Per-dataset statistics do not depend on the setup: scale once per group.
    let (real_own, tests_own) = match config.znorm {
        Znorm::PerDataset => (
            Some(train.scaled_on_itself()),
            Some(scope.test.scaled(None)),
        ),
        Znorm::TrainStatistics => (None, None),
    };
    // Under per-dataset statistics the raw synthetic rows are not needed once scaled.
    let (synthetic, synthetic_own) = match (config.znorm, synthetic) {
        (Znorm::PerDataset, Some(synthetic)) => (None, Some(synthetic.into_scaled_on_itself())),
        (_, synthetic) => (synthetic, None),
    };
    let mut prepared = Vec::new();
    for &setup in &group.setups {
        // Groups with a synthetic setup always have a lambda_cls, so its set was read above.
        const READ: &str = "a group with a synthetic setup has a lambda_cls";
        let (parts, tests) = match (config.znorm, setup) {
            (Znorm::PerDataset, Setup::Real) => (
                vec![Arc::clone(real_own.as_ref().expect("scaled above"))],
                tests_own.clone().expect("scaled above"),
            ),
            (Znorm::PerDataset, Setup::Syn) => (
                vec![Arc::clone(synthetic_own.as_ref().expect(READ))],
                tests_own.clone().expect("scaled above"),
            ),
            (Znorm::PerDataset, Setup::RealSyn) => (
                vec![
                    Arc::clone(real_own.as_ref().expect("scaled above")),
                    Arc::clone(synthetic_own.as_ref().expect(READ)),
                ],
                tests_own.clone().expect("scaled above"),
            ),
            (Znorm::TrainStatistics, Setup::Real) => {
                let normaliser = pooled_normaliser(&[train]);
                (
                    vec![train.scaled(&normaliser)],
                    scope.test.scaled(Some(&normaliser)),
                )
            }
            (Znorm::TrainStatistics, Setup::Syn) => {
                let synthetic = synthetic.as_ref().expect(READ);
                let normaliser = pooled_normaliser(&[synthetic]);
                (
                    vec![synthetic.scaled(&normaliser)],
                    scope.test.scaled(Some(&normaliser)),
                )
            }
            (Znorm::TrainStatistics, Setup::RealSyn) => {
                let synthetic = synthetic.as_ref().expect(READ);
                let normaliser = pooled_normaliser(&[train, synthetic]);
                (
                    vec![train.scaled(&normaliser), synthetic.scaled(&normaliser)],
                    scope.test.scaled(Some(&normaliser)),
                )
            }
        };
        let synthetic_setup = setup.uses_synthetic();
        prepared.push(Prepared {
            setup,
            lambda_cls: group.lambda_cls.filter(|_| synthetic_setup),
            synthetic_scope: synthetic_setup.then(|| scope.synthetic_scope.clone()),
            train: parts,
            tests,
            params: scope.params.get(setup).clone(),
        });
    }
    Ok(prepared)
}

/// A run's own generator seed from the repeat's seed and the run's identity, so no two runs of
/// an evaluation share a stream and none depends on scheduling.
pub(crate) fn run_seed(seed: u64, scope: &str, setup: Setup, lambda_cls: Option<f64>) -> u64 {
    // FNV-1a over the identity: stable across platforms and versions.
    let identity = format!(
        "{scope}|{}|{}",
        setup.as_str(),
        lambda_cls.map_or("-".to_string(), |v| v.to_string())
    );
    let hash = identity
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    SplitMix64::new(seed ^ hash).next_u64()
}

/// Runs the evaluation: reads the inputs, trains every configured classifier, writes
/// `results.parquet`, `tables.md` and the confusion PNGs into `inputs.output_dir`, and returns
/// what it measured. `progress` is called on the calling thread after every classifier.
pub fn run_evaluation(
    inputs: &EvalInputs,
    config: &EvalConfig,
    device: Device,
    progress: &mut dyn FnMut(&EvalProgress),
) -> Result<EvalReport> {
    config.validate()?;
    let started = Instant::now();
    let (target, ids) = read_target(&inputs.target)?;
    let folds = if config.within_corpus {
        split_folds(&target, &inputs.target, &ids, &inputs.target_folds)?
    } else {
        Vec::new()
    };
    let cross = match (&inputs.cross_corpus, config.cross_corpus) {
        (Some(cross), true) => {
            let data = read_cross(cross)?;
            if data.all.names != target.names {
                return Err(EvalError::input(
                    &cross.features,
                    "its features are not the labelled corpus's features",
                ));
            }
            Some(data)
        }
        _ => None,
    };
    if folds.is_empty() && cross.is_none() {
        return Err(EvalError::Config(
            "nothing to evaluate: within_corpus is off and no cross-corpus set is given".into(),
        ));
    }

    let mut scopes: Vec<ScopeSpec> = Vec::new();
    for fold in &folds {
        let (synthetic_scope, held_out) = match config.synthetic_scope {
            SyntheticScope::PerFold => (
                format!("fold{}", fold.fold.number),
                Some(fold.fold.test_session.clone()),
            ),
            SyntheticScope::AllSessions => ("all".to_string(), None),
        };
        scopes.push(ScopeSpec {
            synthetic_scope,
            held_out,
            train: &fold.train,
            test: TestSide::Fold {
                raw: &fold.test,
                fold: fold.fold.number,
                session: fold.fold.test_session.clone(),
            },
            params: &config.within,
        });
    }
    if let Some(cross) = &cross {
        scopes.push(ScopeSpec {
            synthetic_scope: "all".to_string(),
            held_out: None,
            train: &target,
            test: TestSide::Cross(cross),
            params: &config.cross,
        });
    }

    // Every file read, for the footer's input hashes.
    let mut read_files: BTreeSet<PathBuf> = [inputs.target.clone()].into();
    if !folds.is_empty() {
        read_files.insert(inputs.target_folds.clone());
    }
    if let (Some(files), Some(_)) = (&inputs.cross_corpus, &cross) {
        read_files.insert(files.features.clone());
        read_files.insert(files.split.clone());
    }

    // Groups: per scope, one per lambda_cls; the real setup rides with the first.
    let synthetic_setups: Vec<Setup> = config
        .setups
        .iter()
        .copied()
        .filter(|s| s.uses_synthetic())
        .collect();
    let real = config.setups.contains(&Setup::Real);
    let mut groups = Vec::new();
    for (index, scope) in scopes.iter().enumerate() {
        if synthetic_setups.is_empty() {
            groups.push(Group {
                scope: index,
                lambda_cls: None,
                setups: vec![Setup::Real],
            });
            continue;
        }
        for (position, &lambda_cls) in config.lambda_cls.iter().enumerate() {
            read_files.insert((inputs.synthetic)(&scope.synthetic_scope, lambda_cls));
            if let Some(minmax) = &inputs.synthetic_minmax {
                read_files.insert(minmax(&scope.synthetic_scope));
            }
            if let Some(manifest) = inputs
                .gan_root
                .as_ref()
                .map(|root| gan_manifest_path(root, &scope.synthetic_scope, lambda_cls))
                .filter(|path| path.is_file())
            {
                read_files.insert(manifest);
            }
            let mut setups = synthetic_setups.clone();
            if real && position == 0 {
                setups.insert(0, Setup::Real);
            }
            groups.push(Group {
                scope: index,
                lambda_cls: Some(lambda_cls),
                setups,
            });
        }
    }
    // Jobs in group order, so that groups load one after another; within a group the
    // presumably longest runs first (multiply-adds per row x epochs x rows, synthetic rows
    // unknown until read and counted as real ones), which shortens the tail of the last group.
    let mut jobs: Vec<Job> = Vec::new();
    for (group_index, group) in groups.iter().enumerate() {
        let scope = &scopes[group.scope];
        let mut members: Vec<Job> = (0..group.setups.len())
            .flat_map(|member| {
                (0..config.repeats).map(move |repeat| Job {
                    group: group_index,
                    member,
                    repeat,
                })
            })
            .collect();
        let cost = |job: &Job| {
            let setup = group.setups[job.member];
            let params = scope.params.get(setup);
            let mut dims = vec![target.width()];
            dims.extend(&params.hidden);
            dims.push(CLASSES);
            let per_row: usize = dims.windows(2).map(|pair| pair[0] * pair[1]).sum();
            let rows = scope.train.rows() * if setup == Setup::RealSyn { 2 } else { 1 };
            (per_row * params.epochs * rows) as f64
        };
        members.sort_by(|a, b| cost(b).total_cmp(&cost(a)).then(a.member.cmp(&b.member)));
        jobs.extend(members);
    }
    let total = jobs.len();

    let workers = config.workers().min(total.max(1));
    let threads_before = tch::get_num_threads();
    let threads_per_worker = match config.intra_op_threads {
        0 => threads_before,
        n => i32::try_from(n).unwrap_or(i32::MAX),
    };
    let schedule = Schedule {
        groups: &groups,
        scopes: &scopes,
        jobs: &jobs,
        slots: groups
            .iter()
            .map(|group| GroupSlot {
                data: Mutex::new(Loaded::Not),
                remaining: AtomicUsize::new(group.setups.len() * config.repeats),
            })
            .collect(),
        next: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        inputs,
        config,
        names: &target.names,
        device,
        threads: threads_per_worker,
    };
    let mut done = 0usize;
    let mut outcomes: Vec<JobOutcome> = Vec::with_capacity(total);
    let mut first_error: Option<EvalError> = None;
    let mut receive = |message: Result<JobOutcome>| match message {
        Ok(outcome) => {
            done += 1;
            progress(&EvalProgress {
                done,
                total,
                scope: scopes[groups[outcome.job.group].scope].test.name(),
                setup: outcome.setup,
                lambda_cls: outcome.lambda_cls,
                repeat: outcome.job.repeat,
                uar: outcome.confusions[0].uar().unwrap_or(f64::NAN),
                seconds: outcome.seconds,
            });
            outcomes.push(outcome);
        }
        Err(error) => {
            first_error.get_or_insert(error);
        }
    };
    if workers <= 1 {
        // The calling thread is the worker.
        schedule.work(&mut receive);
    } else {
        let (sender, receiver) = mpsc::channel();
        std::thread::scope(|threads| {
            for _ in 0..workers {
                let sender = sender.clone();
                let schedule = &schedule;
                threads.spawn(move || {
                    schedule.work(&mut |message| {
                        let _ = sender.send(message);
                    })
                });
            }
            drop(sender);
            for message in receiver {
                receive(message);
            }
        });
    }
    // libtorch keeps the last count set for threads it starts later: restore the caller's.
    tch::set_num_threads(threads_before);
    if let Some(error) = first_error {
        return Err(error);
    }

    let mut results = Vec::with_capacity(total * 2);
    for outcome in outcomes {
        let scope = &scopes[groups[outcome.job.group].scope];
        let (fold, test_session) = match &scope.test {
            TestSide::Fold { fold, session, .. } => (Some(*fold), Some(session.clone())),
            TestSide::Cross(_) => (None, None),
        };
        for (&experiment, confusion) in scope.test.experiments().iter().zip(&outcome.confusions) {
            results.push(RunResult {
                experiment,
                fold,
                test_session: test_session.clone(),
                setup: outcome.setup,
                lambda_cls: outcome.lambda_cls,
                synthetic_scope: outcome.synthetic_scope.clone(),
                repeat: outcome.job.repeat,
                seed: config.repeat_seed(outcome.job.repeat),
                run_seed: outcome.run_seed,
                train_rows: outcome.train_rows,
                confusion: *confusion,
                final_loss: outcome.final_loss,
                seconds: outcome.seconds,
            });
        }
    }
    // Completion order depends on scheduling; the report's order must not.
    results.sort_by(|a, b| {
        (a.experiment, a.fold, a.setup, a.repeat)
            .cmp(&(b.experiment, b.fold, b.setup, b.repeat))
            .then(
                a.lambda_cls
                    .partial_cmp(&b.lambda_cls)
                    .unwrap_or(Ordering::Equal),
            )
    });
    let summaries = summarise(&results);
    let outputs = report::write_all(
        &inputs.output_dir,
        config,
        &read_files.into_iter().collect::<Vec<_>>(),
        &results,
        &summaries,
    )?;
    Ok(EvalReport {
        results,
        summaries,
        outputs,
        workers,
        threads_per_worker,
        wall_seconds: started.elapsed().as_secs_f64(),
    })
}

/// One classifier to train: member `member` (a setup) of group `group`, repeat `repeat`.
#[derive(Debug, Clone, Copy)]
struct Job {
    group: usize,
    member: usize,
    repeat: usize,
}

struct JobOutcome {
    job: Job,
    setup: Setup,
    lambda_cls: Option<f64>,
    synthetic_scope: Option<String>,
    train_rows: usize,
    run_seed: u64,
    confusions: Vec<ConfusionMatrix>,
    final_loss: f64,
    seconds: f64,
}

/// A group's data: not yet read, in memory, or finished and dropped.
enum Loaded {
    Not,
    Ready(Arc<Vec<Prepared>>),
    Dropped,
}

struct GroupSlot {
    data: Mutex<Loaded>,
    remaining: AtomicUsize,
}

/// The shared job queue. Workers take jobs in order; the first worker to reach a group reads
/// it (others needing it wait), and the worker finishing its last job drops it, so memory
/// holds at most about one group per worker while no worker idles between groups.
struct Schedule<'a> {
    groups: &'a [Group],
    scopes: &'a [ScopeSpec<'a>],
    jobs: &'a [Job],
    slots: Vec<GroupSlot>,
    next: AtomicUsize,
    stop: AtomicBool,
    inputs: &'a EvalInputs,
    config: &'a EvalConfig,
    names: &'a [String],
    device: Device,
    threads: i32,
}

impl Schedule<'_> {
    /// Takes and runs jobs until none is left or one failed, reporting each through `report`.
    fn work(&self, report: &mut dyn FnMut(Result<JobOutcome>)) {
        // libtorch's thread count is per OS thread: set it on each worker.
        tch::set_num_threads(self.threads);
        while !self.stop.load(AtomicOrdering::Relaxed) {
            let index = self.next.fetch_add(1, AtomicOrdering::Relaxed);
            let Some(&job) = self.jobs.get(index) else {
                break;
            };
            let outcome = self.run(job);
            if outcome.is_err() {
                self.stop.store(true, AtomicOrdering::Relaxed);
            }
            report(outcome);
        }
    }

    fn group_data(&self, group: usize) -> Result<Arc<Vec<Prepared>>> {
        let mut slot = self.slots[group]
            .data
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Loaded::Ready(data) = &*slot {
            return Ok(Arc::clone(data));
        }
        let spec = &self.groups[group];
        let data = Arc::new(prepare(
            spec,
            &self.scopes[spec.scope],
            self.inputs,
            self.config,
            self.names,
        )?);
        *slot = Loaded::Ready(Arc::clone(&data));
        Ok(data)
    }

    fn run(&self, job: Job) -> Result<JobOutcome> {
        let started = Instant::now();
        let data = self.group_data(job.group)?;
        let item = &data[job.member];
        let scope = &self.scopes[self.groups[job.group].scope];
        let seed = run_seed(
            self.config.repeat_seed(job.repeat),
            &scope.test.name(),
            item.setup,
            item.lambda_cls,
        );
        let trained = train_and_predict(
            &item.train,
            &item.tests,
            &item.params,
            self.config.leaky_slope,
            &self.config.adam,
            seed,
            self.device,
        )?;
        let confusions = trained
            .predictions
            .iter()
            .zip(&item.tests)
            .map(|(predicted, test)| confusion(&test.labels, predicted))
            .collect();
        let outcome = JobOutcome {
            job,
            setup: item.setup,
            lambda_cls: item.lambda_cls,
            synthetic_scope: item.synthetic_scope.clone(),
            train_rows: item.train_rows(),
            run_seed: seed,
            confusions,
            final_loss: trained.final_loss,
            seconds: started.elapsed().as_secs_f64(),
        };
        drop(data);
        if self.slots[job.group]
            .remaining
            .fetch_sub(1, AtomicOrdering::AcqRel)
            == 1
        {
            *self.slots[job.group]
                .data
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Loaded::Dropped;
        }
        Ok(outcome)
    }
}

/// Aggregates the results per (experiment, setup, lambda_cls); see [`Summary`].
pub fn summarise(results: &[RunResult]) -> Vec<Summary> {
    type Key = (Experiment, Setup, Option<u64>);
    let mut groups: BTreeMap<Key, Vec<&RunResult>> = BTreeMap::new();
    for result in results {
        groups
            .entry((
                result.experiment,
                result.setup,
                result.lambda_cls.map(f64::to_bits),
            ))
            .or_default()
            .push(result);
    }
    let mut summaries: Vec<Summary> = groups
        .into_iter()
        .map(|((experiment, setup, lambda_bits), members)| {
            let mut per_repeat: BTreeMap<usize, Vec<&RunResult>> = BTreeMap::new();
            for member in &members {
                per_repeat.entry(member.repeat).or_default().push(member);
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
            let (accuracy_mean, accuracy_std) = mean_std(&accuracy);
            Summary {
                experiment,
                setup,
                lambda_cls: lambda_bits.map(f64::from_bits),
                folds,
                uar_per_repeat: uar,
                uar_mean,
                uar_std,
                accuracy_mean,
                accuracy_std,
                recall_mean,
                confusion_mean: mean_counts(&summed),
            }
        })
        .collect();
    summaries.sort_by(|a, b| {
        (a.experiment, a.setup).cmp(&(b.experiment, b.setup)).then(
            a.lambda_cls
                .partial_cmp(&b.lambda_cls)
                .unwrap_or(std::cmp::Ordering::Equal),
        )
    });
    summaries
}
