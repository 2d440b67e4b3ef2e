//! Orchestration: which classifiers are trained on what, on how many workers, and the
//! aggregation of their results.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Instant;

use emocycle_features::{Emotion, Normaliser};
use emocycle_rng::SplitMix64;
use tch::Device;

use crate::classifier::{Dataset, train_and_predict};
use crate::data::{
    CrossData, EvalInputs, RawSet, gan_manifest_path, pooled_normaliser, read_cross,
    read_synthetic, read_target, split_folds,
};
use crate::error::{EvalError, Result};
use crate::metrics::{CLASSES, ConfusionMatrix, confusion};
use crate::report;
use crate::results::{Experiment, RunResult, Summary, summarise};
use crate::source::{SyntheticSource, order_optional};
use emocycle_config::eval::{
    ClassifierParams, EvalConfig, Setup, SetupParams, SyntheticScope, Znorm,
};

/// Everything one evaluation produced.
#[derive(Debug, Clone)]
pub struct EvalReport {
    /// One entry per experiment x fold x setup x synthetic source x repeat.
    pub results: Vec<RunResult>,
    /// One entry per experiment x setup x synthetic source.
    pub summaries: Vec<Summary>,
    /// Classifiers whose results came from the previous `results.parquet` (same run key).
    pub reused: usize,
    /// Classifiers trained by this call.
    pub trained: usize,
    /// Setups left out, with the reason (a synthetic set that lacks a class cannot train the
    /// `syn` setup).
    pub skipped: Vec<String>,
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
    /// Where the synthetic rows came from (synthetic setups only).
    pub source: Option<SyntheticSource>,
    /// 0-based repeat.
    pub repeat: usize,
    /// Whether the result was reused from the previous evaluation rather than trained.
    pub reused: bool,
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

/// A unit of data loading: one scope and one synthetic source (`None`: no synthetic setup).
/// At most one group per worker is in memory at a time.
struct Group {
    scope: usize,
    source: Option<SyntheticSource>,
    setups: Vec<Setup>,
}

/// One training set with its test sets and hyper-parameters, shared by its repeats.
struct Prepared {
    setup: Setup,
    source: Option<SyntheticSource>,
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

/// Reads and scales one group's data: the synthetic set of its source, and for each of its
/// setups the training parts and test sets under the configured z-normalisation.
fn prepare(
    group: &Group,
    scope: &ScopeSpec,
    inputs: &EvalInputs,
    config: &EvalConfig,
    names: &[String],
) -> Result<Vec<Prepared>> {
    let synthetic = match &group.source {
        Some(source) => Some(read_synthetic(
            inputs,
            &scope.synthetic_scope,
            source,
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
        // Groups with a synthetic setup always have a source, so its set was read above.
        const READ: &str = "a group with a synthetic setup has a source";
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
            source: group.source.clone().filter(|_| synthetic_setup),
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
pub(crate) fn run_seed(
    seed: u64,
    scope: &str,
    setup: Setup,
    source: Option<&SyntheticSource>,
) -> u64 {
    // FNV-1a over the identity: stable across platforms and versions.
    let source = match source {
        None => "-".to_string(),
        Some(SyntheticSource::CycleGan {
            lambda_cls,
            gan_seed: 0,
        }) => lambda_cls.to_string(),
        Some(SyntheticSource::CycleGan {
            lambda_cls,
            gan_seed,
        }) => format!("{lambda_cls}|gan_seed:{gan_seed}"),
        Some(SyntheticSource::Baseline { name }) => format!("baseline:{name}"),
    };
    let identity = format!("{scope}|{}|{source}", setup.as_str());
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

    // Every file read, for the footer's input hashes and the run keys.
    let mut read_files: BTreeSet<PathBuf> = [inputs.target.clone()].into();
    if !folds.is_empty() {
        read_files.insert(inputs.target_folds.clone());
    }
    if let (Some(files), Some(_)) = (&inputs.cross_corpus, &cross) {
        read_files.insert(files.features.clone());
        read_files.insert(files.split.clone());
    }

    // Groups: per scope, one per synthetic source; the real setup rides with the first.
    let synthetic_setups: Vec<Setup> = config
        .setups
        .iter()
        .copied()
        .filter(|s| s.uses_synthetic())
        .collect();
    let real = config.setups.contains(&Setup::Real);
    let sources = config.sources();
    let mut groups = Vec::new();
    let mut skipped = Vec::new();
    // Per group: the files its synthetic setups depend on (the set, its min-max statistics).
    let mut group_files: Vec<Vec<PathBuf>> = Vec::new();
    for (index, scope) in scopes.iter().enumerate() {
        if synthetic_setups.is_empty() {
            groups.push(Group {
                scope: index,
                source: None,
                setups: vec![Setup::Real],
            });
            group_files.push(Vec::new());
            continue;
        }
        for (position, source) in sources.iter().enumerate() {
            let path = (inputs.synthetic)(&scope.synthetic_scope, source);
            let mut files = vec![path.clone()];
            if let Some(minmax) = &inputs.synthetic_minmax {
                files.push(minmax(&scope.synthetic_scope));
            }
            if let (
                SyntheticSource::CycleGan {
                    lambda_cls,
                    gan_seed,
                },
                Some(root),
            ) = (source, &inputs.gan_root)
            {
                let manifest =
                    gan_manifest_path(root, &scope.synthetic_scope, *lambda_cls, *gan_seed);
                if manifest.is_file() {
                    files.push(manifest);
                }
            }
            read_files.extend(files.iter().cloned());
            let mut setups = synthetic_setups.clone();
            let (rows, missing) = class_coverage(&path)?;
            if rows == 0 {
                // Nothing to add (a balancing method on a balanced training part): real+syn
                // would be the real setup again and syn has nothing to learn from.
                setups.clear();
                skipped.push(format!(
                    "{} syn and real+syn {source}: the set is empty",
                    scope.test.name()
                ));
            } else if setups.contains(&Setup::Syn) && !missing.is_empty() {
                // A classifier trained without a class can never predict it: its UAR would
                // measure the set's coverage, not its quality.
                setups.retain(|setup| *setup != Setup::Syn);
                skipped.push(format!(
                    "{} syn {source}: the set has no {} vectors",
                    scope.test.name(),
                    missing.join(", ")
                ));
            }
            if real && position == 0 {
                setups.insert(0, Setup::Real);
            }
            if setups.is_empty() {
                continue;
            }
            // A group left with the real setup alone must not read its (unusable) set.
            let synthetic = setups.iter().any(|setup| setup.uses_synthetic());
            groups.push(Group {
                scope: index,
                source: synthetic.then(|| source.clone()),
                setups,
            });
            group_files.push(if synthetic { files } else { Vec::new() });
        }
    }
    let hashes: BTreeMap<PathBuf, String> = read_files
        .iter()
        .map(|path| Ok((path.clone(), emocycle_artifact::sha256_file(path)?)))
        .collect::<Result<_>>()?;
    let previous = if inputs.reuse {
        report::read_previous_results(&inputs.output_dir.join("results.parquet"))
    } else {
        BTreeMap::new()
    };

    // Jobs in group order, so that groups load one after another; within a group the
    // presumably longest runs first (multiply-adds per row x epochs x rows, synthetic rows
    // unknown until read and counted as real ones), which shortens the tail of the last group.
    // A job whose run key matches a previous result is not trained again.
    let mut jobs: Vec<Job> = Vec::new();
    let mut reused: Vec<RunResult> = Vec::new();
    let mut group_jobs = vec![0usize; groups.len()];
    for (group_index, group) in groups.iter().enumerate() {
        let scope = &scopes[group.scope];
        let mut members: Vec<Job> = Vec::new();
        for (member, &setup) in group.setups.iter().enumerate() {
            let source = group.source.as_ref().filter(|_| setup.uses_synthetic());
            for repeat in 0..config.repeats {
                let key = run_key(&RunIdentity {
                    config,
                    scope,
                    setup,
                    source,
                    repeat_seed: config.repeat_seed(repeat),
                    inputs,
                    within: !folds.is_empty(),
                    synthetic_files: if source.is_some() {
                        &group_files[group_index]
                    } else {
                        &[]
                    },
                    hashes: &hashes,
                });
                let earlier = previous.get(&key).filter(|rows| {
                    rows.len() == scope.test.experiments().len()
                        && rows.iter().all(|row| row.repeat == repeat)
                });
                match earlier {
                    Some(rows) => reused.extend(rows.iter().cloned()),
                    None => members.push(Job {
                        group: group_index,
                        member,
                        repeat,
                        key,
                    }),
                }
            }
        }
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
        group_jobs[group_index] = members.len();
        jobs.extend(members);
    }
    // A cross-corpus run has two result rows (test and dev part): count runs by key.
    let reused_runs = reused
        .iter()
        .map(|r| r.run_key.as_str())
        .collect::<BTreeSet<_>>()
        .len();
    let total = jobs.len() + reused_runs;

    let workers = config.workers().min(jobs.len().max(1));
    let threads_before = tch::get_num_threads();
    let threads_per_worker = match config.intra_op_threads {
        0 => threads_before,
        n => i32::try_from(n).unwrap_or(i32::MAX),
    };
    let schedule = Schedule {
        groups: &groups,
        scopes: &scopes,
        jobs: &jobs,
        slots: group_jobs
            .iter()
            .map(|&count| GroupSlot {
                data: Mutex::new(Loaded::Not),
                remaining: AtomicUsize::new(count),
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
    for run in reused
        .iter()
        .filter(|r| r.experiment != Experiment::CrossDev)
    {
        done += 1;
        progress(&EvalProgress {
            done,
            total,
            scope: run
                .fold
                .map_or("all".to_string(), |fold| format!("fold{fold}")),
            setup: run.setup,
            source: run.source.clone(),
            repeat: run.repeat,
            reused: true,
            uar: run.uar(),
            seconds: 0.0,
        });
    }
    let mut outcomes: Vec<JobOutcome> = Vec::with_capacity(jobs.len());
    let mut first_error: Option<EvalError> = None;
    let mut receive = |message: Result<JobOutcome>| match message {
        Ok(outcome) => {
            done += 1;
            progress(&EvalProgress {
                done,
                total,
                scope: scopes[groups[outcome.job.group].scope].test.name(),
                setup: outcome.setup,
                source: outcome.source.clone(),
                repeat: outcome.job.repeat,
                reused: false,
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
    emocycle_torch::set_libtorch_threads(threads_before);
    if let Some(error) = first_error {
        return Err(error);
    }

    let trained = outcomes.len();
    let reused_count = reused_runs;
    let mut results = reused;
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
                source: outcome.source.clone(),
                synthetic_scope: outcome.synthetic_scope.clone(),
                repeat: outcome.job.repeat,
                seed: config.repeat_seed(outcome.job.repeat),
                run_seed: outcome.run_seed,
                train_rows: outcome.train_rows,
                confusion: *confusion,
                final_loss: outcome.final_loss,
                seconds: outcome.seconds,
                run_key: outcome.job.key.clone(),
            });
        }
    }
    // Completion order depends on scheduling; the report's order must not.
    results.sort_by(|a, b| {
        (a.experiment, a.fold, a.setup)
            .cmp(&(b.experiment, b.fold, b.setup))
            .then_with(|| order_optional(a.source.as_ref(), b.source.as_ref()))
            .then(a.repeat.cmp(&b.repeat))
    });
    let summaries = summarise(&results);
    let outputs = report::write_all(
        &inputs.output_dir,
        config,
        &hashes,
        &results,
        &summaries,
        &skipped,
    )?;
    Ok(EvalReport {
        results,
        summaries,
        outputs,
        reused: reused_count,
        trained,
        skipped,
        workers,
        threads_per_worker,
        wall_seconds: started.elapsed().as_secs_f64(),
    })
}

/// A synthetic set's row count and the emotions it has no row of (read from its `emotion`
/// column alone).
fn class_coverage(path: &std::path::Path) -> Result<(usize, Vec<&'static str>)> {
    let frame = emocycle_artifact::read_parquet_columns(path, &["emotion"])?;
    let column = frame
        .column("emotion")
        .and_then(|column| column.str().cloned())
        .map_err(|source| {
            EvalError::Artifact(emocycle_artifact::ArtifactError::Parquet {
                path: path.to_path_buf(),
                source,
            })
        })?;
    let present: BTreeSet<&str> = column.iter().flatten().collect();
    let missing = Emotion::ALL
        .iter()
        .map(|emotion| emotion.as_str())
        .filter(|name| !present.contains(name))
        .collect();
    Ok((column.len(), missing))
}

/// Everything one classifier's result depends on.
struct RunIdentity<'a> {
    config: &'a EvalConfig,
    scope: &'a ScopeSpec<'a>,
    setup: Setup,
    source: Option<&'a SyntheticSource>,
    repeat_seed: u64,
    inputs: &'a EvalInputs,
    within: bool,
    synthetic_files: &'a [PathBuf],
    hashes: &'a BTreeMap<PathBuf, String>,
}

/// The sha256 of a run's identity: the code version, the settings that shape training (not
/// the worker count, which changes nothing), the setup's hyper-parameters, the seeds, and the
/// sha256 of every file the run reads.
fn run_key(identity: &RunIdentity) -> String {
    let config = identity.config;
    let settings = serde_json::json!({
        "znorm": config.znorm,
        "leaky_slope": config.leaky_slope,
        "adam": config.adam,
        "intra_op_threads": config.intra_op_threads,
        "params": identity.scope.params.get(identity.setup),
    });
    let mut files: Vec<&PathBuf> = vec![&identity.inputs.target];
    match &identity.scope.test {
        TestSide::Fold { .. } => {
            debug_assert!(identity.within);
            files.push(&identity.inputs.target_folds);
        }
        TestSide::Cross(_) => {
            if let Some(cross) = &identity.inputs.cross_corpus {
                files.push(&cross.features);
                files.push(&cross.split);
            }
        }
    }
    files.extend(identity.synthetic_files);
    let mut hasher = emocycle_artifact::Sha256Hasher::new()
        .part("code", crate::CODE_FINGERPRINT)
        .part("settings", &settings.to_string())
        .part("scope", &identity.scope.test.name())
        .part("synthetic_scope", &identity.scope.synthetic_scope)
        .part("setup", identity.setup.as_str())
        .part(
            "source",
            &identity.source.map_or("-".to_string(), ToString::to_string),
        )
        .part("seed", &identity.repeat_seed.to_string());
    for file in files {
        let hash = identity.hashes.get(file).map_or("missing", String::as_str);
        hasher = hasher.part("input", hash);
    }
    hasher.finish()
}

/// One classifier to train: member `member` (a setup) of group `group`, repeat `repeat`.
#[derive(Debug, Clone)]
struct Job {
    group: usize,
    member: usize,
    repeat: usize,
    /// The run's identity hash ([`run_key`]).
    key: String,
}

struct JobOutcome {
    job: Job,
    setup: Setup,
    source: Option<SyntheticSource>,
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
        emocycle_torch::set_libtorch_threads(self.threads);
        while !self.stop.load(AtomicOrdering::Relaxed) {
            let index = self.next.fetch_add(1, AtomicOrdering::Relaxed);
            let Some(job) = self.jobs.get(index).cloned() else {
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
            item.source.as_ref(),
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
            source: item.source.clone(),
            synthetic_scope: item.synthetic_scope.clone(),
            train_rows: item.train_rows(),
            run_seed: seed,
            confusions,
            final_loss: trained.final_loss,
            seconds: started.elapsed().as_secs_f64(),
        };
        drop(data);
        if self.slots[outcome.job.group]
            .remaining
            .fetch_sub(1, AtomicOrdering::AcqRel)
            == 1
        {
            *self.slots[outcome.job.group]
                .data
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Loaded::Dropped;
        }
        Ok(outcome)
    }
}
