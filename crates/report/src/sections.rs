//! The sections of `report.md`, in order.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use emocycle_artifact::{keys, read_parquet_metadata};
use emocycle_config::fidelity::Fidelity;
use emocycle_config::gan::GanConfig;
use emocycle_config::layout::cyclegan_dir;
use emocycle_eval::{EvalConfig, Experiment, Setup, Summary, SyntheticSource, paper_uar};
use emocycle_features::Emotion;

use crate::Context;
use crate::diff::{ConfigChange, config_diff};
use crate::error::ReportError;
use crate::plot::{Reference, SweepLine, colour, draw_losses, draw_sweep};
use crate::read::{
    QualityRecord, SetKey, SetMetrics, mean_over_scopes, quality_baselines, quality_lambdas,
    quality_scopes, read_set_size, scope_metrics,
};
use crate::stats::{self, Paired};

/// The paper's Table 1: |target - source| and |target - syn| for lambda_cls 0 and 2.
const PAPER_TABLE1_SOURCE: f64 = 0.084;
const PAPER_TABLE1_SYNTHETIC: [(f64, f64); 2] = [(0.0, 0.013), (2.0, 0.049)];

/// Keys that decide how fast a stage runs but not what it computes.
const EXECUTION_ONLY: [&str; 2] = ["gan.network.checkpoint_every", "evaluation.parallel_jobs"];

/// Keys the pipeline sets elsewhere: seeds are listed in the configuration section.
const NOT_COMPARED: [&str; 3] = [
    "gan.network.lambda_cls",
    "gan.network.seed",
    "evaluation.seed",
];

/// `mean ± std` of fractions, in %.
fn percent(mean: f64, std: f64) -> String {
    if mean.is_finite() && std.is_finite() {
        format!("{:.2} ± {:.2}", mean * 100.0, std * 100.0)
    } else {
        "n/a".to_string()
    }
}

fn summary_cell(summary: Option<&Summary>) -> String {
    summary.map_or("–".to_string(), |s| percent(s.uar_mean, s.uar_std))
}

/// A Markdown table cell: pipes would end the cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// `2025-11-24 16:00 UTC` from seconds since 1970 (the civil calendar, proleptic Gregorian).
pub(crate) fn utc(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let seconds = unix % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        seconds / 3600,
        seconds % 3600 / 60
    )
}

fn experiment_title(experiment: Experiment) -> &'static str {
    match experiment {
        Experiment::Within => "within corpus",
        Experiment::CrossTest => "cross corpus, test part",
        Experiment::CrossDev => "cross corpus, dev part",
    }
}

/// Why an experiment has no results, and what to do about it.
fn missing_experiment(context: &Context, experiment: Experiment) -> String {
    let config = &context.eval_config;
    match experiment {
        Experiment::Within if !config.within_corpus => {
            "`evaluation.within_corpus` is off, so there are no within-corpus results.".to_string()
        }
        Experiment::CrossTest | Experiment::CrossDev
            if context.pipeline.config.roles.cross_corpus.is_none() =>
        {
            "The pipeline has no cross-corpus set (`roles.cross_corpus`), so there are no \
             cross-corpus results."
                .to_string()
        }
        Experiment::CrossTest | Experiment::CrossDev if !config.cross_corpus => {
            "`evaluation.cross_corpus` is off, so there are no cross-corpus results.".to_string()
        }
        _ => format!(
            "`eval/results.parquet` has no {} results: run {}.",
            experiment_title(experiment),
            context.command("evaluate")
        ),
    }
}

/// Section 1: what ran, where, with which code and seeds.
pub(crate) fn header(context: &Context, out: &mut String) {
    let config = &context.pipeline.config;
    let _ = writeln!(out, "# Run report: {}\n", config.name);
    let _ = writeln!(
        out,
        "Pipeline file `{}`, run directory `{}`. Every number below is read from the run's \
         artifacts; the paper's (Bao, Neumann and Vu, Interspeech 2019) are labelled as such.\n",
        context.pipeline.path.display(),
        context.run_dir.display()
    );
    let _ = writeln!(out, "| | |\n|---|---|");
    let code_version = context
        .results_metadata
        .get(keys::CODE_VERSION)
        .unwrap_or("unknown");
    let _ = writeln!(
        out,
        "| code version | `{code_version}` (`eval/results.parquet`) |"
    );
    let mut other_versions: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (stage, record) in &context.stages {
        if let Some(record) = record
            && record.code_version != code_version
        {
            other_versions
                .entry(record.code_version.as_str())
                .or_default()
                .push(stage);
        }
    }
    for (version, stages) in other_versions {
        let _ = writeln!(
            out,
            "| other code version | `{version}` (stage records of {}) |",
            stages.join(", ")
        );
    }
    let configured = serde_json::to_value(config.device)
        .ok()
        .and_then(|value| value.as_str().map(str::to_string))
        .unwrap_or_default();
    let mut devices: Vec<(&str, Vec<&str>)> = Vec::new();
    for (stage, record) in &context.stages {
        let Some(record) = record else { continue };
        match devices
            .iter_mut()
            .find(|(device, _)| *device == record.device)
        {
            Some((_, stages)) => stages.push(stage),
            None => devices.push((record.device.as_str(), vec![stage])),
        }
    }
    let device = if devices.is_empty() {
        format!("configured `{configured}`; no stage records")
    } else {
        let used: Vec<String> = devices
            .iter()
            .map(|(device, stages)| format!("{device} for {}", stages.join(", ")))
            .collect();
        format!("{}; configured `{configured}`", used.join("; "))
    };
    let _ = writeln!(out, "| device | {} |", cell(&device));
    let mut seeds: Vec<u64> = context.results.iter().map(|r| r.seed).collect();
    seeds.sort_unstable();
    seeds.dedup();
    let seeds: Vec<String> = seeds.iter().map(u64::to_string).collect();
    let generators = if config.gan.seeds > 1 {
        let values: Vec<String> = (0..config.gan.seeds)
            .map(|s| emocycle_config::layout::gan_seed_value(config.seed, s).to_string())
            .collect();
        format!("; generator seeds {}", values.join(", "))
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "| seeds | pipeline seed {}; evaluation repeat seeds {}{generators} |",
        config.seed,
        seeds.join(", ")
    );
    let newest = context
        .stages
        .iter()
        .filter_map(|(stage, record)| record.as_ref().map(|r| (r.finished_unix, *stage)))
        .max();
    let finished = newest.map_or("no stage records".to_string(), |(unix, stage)| {
        format!("{} ({stage})", utc(unix))
    });
    let _ = writeln!(out, "| last stage finished | {finished} |\n");
}

fn change_line(change: &ConfigChange) -> String {
    let execution = if EXECUTION_ONLY.contains(&change.key.as_str()) {
        " (execution only: the numbers do not depend on it)"
    } else {
        ""
    };
    let show = |value: &Option<serde_json::Value>| {
        value
            .as_ref()
            .map_or("(absent)".to_string(), serde_json::Value::to_string)
    };
    format!(
        "- `{}`: {} -> {}{execution}",
        change.key,
        show(&change.paper),
        show(&change.run)
    )
}

/// The differences between two serialisable configurations below `prefix`, the keys in
/// [`NOT_COMPARED`] left out.
fn differences<T: serde::Serialize>(prefix: &str, paper: &T, run: &T) -> Vec<ConfigChange> {
    match (serde_json::to_value(paper), serde_json::to_value(run)) {
        (Ok(paper), Ok(run)) => config_diff(prefix, &paper, &run)
            .into_iter()
            .filter(|change| !NOT_COMPARED.contains(&change.key.as_str()))
            .collect(),
        _ => Vec::new(),
    }
}

/// Section 2: every hyper-parameter that differs from the paper's.
pub(crate) fn changes(context: &Context, out: &mut String) {
    let config = &context.pipeline.config;
    let _ = writeln!(out, "## What this run changes from the paper\n");
    let mut changes = differences(
        "gan.network",
        &GanConfig::default(),
        &config.fidelity.gan(&config.gan.network),
    );
    changes.extend(differences(
        "evaluation",
        &EvalConfig::default(),
        &context.eval_config,
    ));
    // The evaluated configuration carries the generator seeds, but the pipeline's key is
    // `gan.seeds`: name the key the user sets.
    for change in &mut changes {
        if change.key == "evaluation.gan_seeds" {
            change.key = "gan.seeds".to_string();
        }
    }
    let mut lines: Vec<String> = changes.iter().map(change_line).collect();
    if config.fidelity != Fidelity::Paper {
        lines.insert(
            0,
            format!(
                "- `fidelity`: \"paper\" -> \"{}\" (where the paper and its published code \
                 differ, the code: one more epoch in every loop, the last partial classifier \
                 batch left out, the code's classifier defaults; the changes below include it)",
                config.fidelity.as_str()
            ),
        );
    }
    if let Some(count) = config.synth.per_emotion {
        lines.push(format!(
            "- `synth.per_emotion`: every source vector, per emotion -> {count}"
        ));
    }
    if lines.is_empty() {
        let _ = writeln!(
            out,
            "The paper's hyper-parameters are used unchanged: the CycleGANs' (`gan.network`), \
             the classifiers' (`evaluation`) and the synthetic set size (every source vector).\n"
        );
    } else {
        let _ = writeln!(
            out,
            "Compared key by key with the paper's values (the defaults of `gan.network` and \
             `evaluation`), as `key: paper -> this run`; the evaluated configuration includes \
             the pipeline-wide settings (`gan.lambda_cls`, `baselines`):\n"
        );
        for line in lines {
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(out);
    }
    let scope = match context.eval_config.synthetic_scope {
        emocycle_eval::SyntheticScope::PerFold => {
            "Within-corpus folds train on synthetic data from CycleGANs that never saw the \
             fold's test session (`per-fold`); the published code trains one set of CycleGANs on \
             every session (`all-sessions`), which lets each test session shape its own \
             synthetic training data."
        }
        emocycle_eval::SyntheticScope::AllSessions => {
            "Within-corpus folds train on synthetic data from CycleGANs trained on every \
             session (`all-sessions`), as the published code does: each fold's test session \
             shaped its own synthetic training data."
        }
    };
    let _ = writeln!(out, "{scope}\n");

    // The results are only this pipeline's if they were made with its evaluation settings.
    if let Ok(recorded) = context
        .results_metadata
        .get_json::<serde_json::Value>(keys::CONFIG, Path::new("eval/results.parquet"))
        && let Ok(current) = serde_json::to_value(&context.eval_config)
    {
        let stale: Vec<String> = config_diff("evaluation", &recorded, &current)
            .into_iter()
            .filter(|change| !EXECUTION_ONLY.contains(&change.key.as_str()))
            .map(|change| format!("`{}`", change.key))
            .collect();
        if !stale.is_empty() {
            let _ = writeln!(
                out,
                "**Warning**: `eval/results.parquet` was made with other evaluation settings \
                 than the pipeline file gives now ({}): run {} to bring it up to date.\n",
                stale.join(", "),
                context.command("evaluate")
            );
        }
    }
}

fn paper_table1(key: SetKey) -> Option<f64> {
    match key {
        SetKey::Source => Some(PAPER_TABLE1_SOURCE),
        SetKey::Reference => None,
        SetKey::CycleGan(lambda_cls) => PAPER_TABLE1_SYNTHETIC
            .iter()
            .find(|(value, _)| *value == lambda_cls)
            .map(|(_, mad)| *mad),
        SetKey::Baseline(_) => None,
    }
}

/// The significance level of the findings' paired tests.
const ALPHA: f64 = 0.05;

/// One of the paper's findings checked on this run's numbers: `ours.0` should exceed `ours.1`
/// (UARs) or fall below it (Table 1 distances).
pub(crate) struct Finding {
    /// What the paper found (or, for a baseline, what is compared), in words.
    pub claim: String,
    /// This run's two numbers (means over the paired units); `None` when the run lacks one.
    pub ours: Option<(f64, f64)>,
    /// The paper's two numbers; `None` for the baselines, which the paper does not have.
    pub paper: Option<(f64, f64)>,
    /// Whether the comparison is "lower is better" (Table 1) rather than "higher" (UAR).
    pub lower: bool,
    /// The paired test of the per-unit differences `a - b`.
    pub test: Option<Paired>,
    /// What the pairs are (`scopes`, `folds x repeats`, `repeats`).
    pub units: &'static str,
}

/// What a finding's paired test says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// This run's difference points the paper's way and is significant.
    Holds,
    /// It points the other way, significantly.
    DoesNotHold,
    /// It is not significant at [`ALPHA`], whichever way it points.
    NotSignificant,
    /// The run lacks one of the two configurations.
    NotMeasured,
}

impl Finding {
    fn points_papers_way(&self, (a, b): (f64, f64)) -> bool {
        if self.lower { a < b } else { a > b }
    }

    pub(crate) fn verdict(&self) -> Verdict {
        match (self.ours, &self.test) {
            (Some(ours), Some(test)) if test.p < ALPHA => {
                if self.points_papers_way(ours) {
                    Verdict::Holds
                } else {
                    Verdict::DoesNotHold
                }
            }
            (Some(_), _) => Verdict::NotSignificant,
            (None, _) => Verdict::NotMeasured,
        }
    }

    /// The two numbers with the relation they are in: the paper's way (`<` for distances, `>`
    /// for UARs) or the other (`≥`, `≤`).
    fn pair(&self, (a, b): (f64, f64)) -> String {
        let sign = match (self.lower, self.points_papers_way((a, b))) {
            (true, true) => "<",
            (true, false) => "≥",
            (false, true) => ">",
            (false, false) => "≤",
        };
        if self.lower {
            format!("{a:.3} {sign} {b:.3}")
        } else {
            format!("{a:.2} {sign} {b:.2}")
        }
    }

    /// The test's numbers: `p = 0.003 over 25 folds x repeats`.
    fn test_text(&self) -> String {
        match &self.test {
            Some(test) => format!("p = {} over {} {}", p_text(test.p), test.n, self.units),
            None => String::new(),
        }
    }

    /// The verdict in words, with this run's numbers and the test's p-value.
    pub(crate) fn verdict_text(&self) -> String {
        let word = match self.verdict() {
            Verdict::Holds => "holds",
            Verdict::DoesNotHold => "does not hold",
            Verdict::NotSignificant => "not significant",
            Verdict::NotMeasured => return "not measured in this run".to_string(),
        };
        match self.ours {
            Some(ours) => format!("{word} ({}; {})", self.pair(ours), self.test_text()),
            None => word.to_string(),
        }
    }
}

/// A p-value with two significant digits, or a bound below what the test resolves.
fn p_text(p: f64) -> String {
    if p < 1e-4 {
        "< 0.0001".to_string()
    } else if p < 0.01 {
        format!("{p:.4}")
    } else {
        format!("{p:.3}")
    }
}

/// The paper's findings, each as this run's and the paper's numbers and a paired test: Table
/// 1's order (paired over scopes) and the UAR comparisons its text draws from Tables 2 and 3
/// (paired over folds and repeats, each pair on the same test data).
pub(crate) fn findings(context: &Context) -> Vec<Finding> {
    let seed = context.pipeline.config.seed;
    let table1 = |claim: &str, a: SetKey, b: SetKey, paper: (f64, f64)| {
        let rows = context.quality.as_ref().ok();
        let pairs: Vec<(f64, f64)> = rows
            .map(|rows| {
                quality_scopes(rows)
                    .iter()
                    .filter_map(|scope| {
                        let mad = |key| scope_metrics(rows, scope, key).map(|m| m.mad);
                        mad(a).zip(mad(b))
                    })
                    .collect()
            })
            .unwrap_or_default();
        finding(claim.to_string(), pairs, Some(paper), true, "scopes", seed)
    };
    type Side = (Setup, Option<SyntheticSource>);
    let uar = |claim: String, experiment, (setup_a, source_a): Side, (setup_b, source_b): Side| {
        // A CycleGAN trained from several generator seeds enters each (fold, repeat) pair with
        // its mean over the seeds: the pair still compares classifiers on the same test data.
        let values = |setup, source: &Option<SyntheticSource>| -> BTreeMap<_, f64> {
            let mut units: BTreeMap<_, Vec<f64>> = BTreeMap::new();
            for r in context.results.iter().filter(|r| {
                r.experiment == experiment
                    && r.setup == setup
                    && &r.source.as_ref().map(SyntheticSource::family) == source
            }) {
                units
                    .entry((r.fold, r.repeat))
                    .or_default()
                    .push(r.uar() * 100.0);
            }
            units
                .into_iter()
                .map(|(unit, uars)| (unit, uars.iter().sum::<f64>() / uars.len() as f64))
                .collect()
        };
        let (a, b) = (values(setup_a, &source_a), values(setup_b, &source_b));
        let pairs = a
            .iter()
            .filter_map(|(unit, &a)| b.get(unit).map(|&b| (a, b)))
            .collect();
        let paper = paper_uar(experiment, setup_a, source_a.as_ref())
            .zip(paper_uar(experiment, setup_b, source_b.as_ref()))
            .map(|((a, _), (b, _))| (a, b));
        let units = if experiment == Experiment::Within {
            "folds x repeats"
        } else {
            "repeats"
        };
        finding(claim, pairs, paper, false, units, seed)
    };
    let gan = |lambda_cls| Some(SyntheticSource::cyclegan(lambda_cls));
    let (paper_syn0, paper_syn2) = (PAPER_TABLE1_SYNTHETIC[0].1, PAPER_TABLE1_SYNTHETIC[1].1);
    let mut findings = vec![
        table1(
            "Table 1: the CycleGAN's data (λcls 0) is closer to the target than the source is",
            SetKey::CycleGan(0.0),
            SetKey::Source,
            (paper_syn0, PAPER_TABLE1_SOURCE),
        ),
        table1(
            "Table 1: the classification loss moves the data away from the target (λcls 0 closer than 2)",
            SetKey::CycleGan(0.0),
            SetKey::CycleGan(2.0),
            (paper_syn0, paper_syn2),
        ),
        table1(
            "Table 1: with λcls 2 the data is still closer to the target than the source is",
            SetKey::CycleGan(2.0),
            SetKey::Source,
            (paper_syn2, PAPER_TABLE1_SOURCE),
        ),
        uar(
            "Table 2: syn-only, λcls 0 beats λcls 2 within corpus".into(),
            Experiment::Within,
            (Setup::Syn, gan(0.0)),
            (Setup::Syn, gan(2.0)),
        ),
        uar(
            "Table 2: real+syn (λcls 2) beats real within corpus".into(),
            Experiment::Within,
            (Setup::RealSyn, gan(2.0)),
            (Setup::Real, None),
        ),
        uar(
            "Table 3: syn-only, λcls 2 beats λcls 0 across corpora".into(),
            Experiment::CrossTest,
            (Setup::Syn, gan(2.0)),
            (Setup::Syn, gan(0.0)),
        ),
        uar(
            "Table 3: real+syn (λcls 2) beats real across corpora".into(),
            Experiment::CrossTest,
            (Setup::RealSyn, gan(2.0)),
            (Setup::Real, None),
        ),
    ];
    // The same comparison against each baseline the run evaluated (real+syn: the setup every
    // baseline has), where the paper has nothing to compare with.
    for baseline in context.sources().into_iter().filter(|s| !s.is_cyclegan()) {
        for (experiment, table, place) in [
            (Experiment::Within, 2, "within corpus"),
            (Experiment::CrossTest, 3, "across corpora"),
        ] {
            let evaluated = context.results.iter().any(|r| {
                r.experiment == experiment
                    && r.setup == Setup::RealSyn
                    && r.source.as_ref() == Some(&baseline)
            });
            if evaluated {
                findings.push(uar(
                    format!(
                        "Table {table}: real+syn, the CycleGAN (λcls 2) beats {} {place}",
                        baseline.method()
                    ),
                    experiment,
                    (Setup::RealSyn, gan(2.0)),
                    (Setup::RealSyn, Some(baseline.clone())),
                ));
            }
        }
    }
    findings
}

/// A finding from its paired values `(a_i, b_i)`.
fn finding(
    claim: String,
    pairs: Vec<(f64, f64)>,
    paper: Option<(f64, f64)>,
    lower: bool,
    units: &'static str,
    seed: u64,
) -> Finding {
    let n = pairs.len() as f64;
    let ours = (!pairs.is_empty()).then(|| {
        let (a, b) = pairs
            .iter()
            .fold((0.0, 0.0), |(sa, sb), (a, b)| (sa + a, sb + b));
        (a / n, b / n)
    });
    let differences: Vec<f64> = pairs.iter().map(|(a, b)| a - b).collect();
    Finding {
        claim,
        ours,
        paper,
        lower,
        test: stats::paired(&differences, seed),
        units,
    }
}

/// Section 1b: whether this run shows what the paper found.
pub(crate) fn findings_section(findings: &[Finding], gan_seeds: u32, out: &mut String) {
    let _ = writeln!(out, "## The paper's findings in this run\n");
    let generators = if gan_seeds > 1 {
        format!(
            "each CycleGAN enters a pair as its mean over its {gan_seeds} generator seeds, whose \
             spread is the ± generator of Tables 2 and 3"
        )
    } else {
        "one GAN run per scope and λcls".to_string()
    };
    let _ = writeln!(
        out,
        "Each comparison the paper draws, with this run's numbers (Table 1: means over scopes; \
         Tables 2 and 3: mean UAR in %) beside the paper's, then the CycleGAN against each \
         baseline the run evaluated (real+syn; the paper has none), each with a paired test: the difference \
         per scope (Table 1) or per fold and repeat (Tables 2 and 3, each pair on the same test \
         data), an exact sign-flip permutation test of its mean (two-sided) and a 95% bootstrap \
         interval. A finding holds when the difference points the paper's way at p < {ALPHA}; \
         the tests cover the classifiers' randomness, not the GANs' ({generators}).\n"
    );
    let _ = writeln!(
        out,
        "| finding | verdict | this run | paper | mean difference [95% interval] | p |\n\
         |---|---|---|---|---|---|"
    );
    let mut floors = Vec::new();
    for finding in findings {
        let verdict = match finding.verdict() {
            Verdict::Holds => "holds",
            Verdict::DoesNotHold => "does not hold",
            Verdict::NotSignificant => "not significant",
            Verdict::NotMeasured => "not measured",
        };
        let (ours, difference, p) = match (finding.ours, &finding.test) {
            (Some(ours), Some(test)) => {
                let digits = if finding.lower { 3 } else { 2 };
                if test.p_floor >= ALPHA {
                    floors.push((&finding.claim, test.n, test.p_floor));
                }
                (
                    finding.pair(ours),
                    format!(
                        "{:+.digits$} [{:+.digits$}, {:+.digits$}]",
                        test.mean, test.interval.0, test.interval.1
                    ),
                    format!("{} ({} {})", p_text(test.p), test.n, finding.units),
                )
            }
            _ => ("–".to_string(), "–".to_string(), "–".to_string()),
        };
        let _ = writeln!(
            out,
            "| {} | {verdict} | {ours} | {} | {difference} | {p} |",
            finding.claim,
            finding
                .paper
                .map_or("–".to_string(), |paper| finding.pair(paper))
        );
    }
    let _ = writeln!(out);
    for (claim, n, floor) in floors {
        let _ = writeln!(
            out,
            "- {claim}: with {n} pairs no difference can reach p < {ALPHA} (the smallest \
             possible p is {}); more repeats (`evaluation.repeats`) or scopes would.",
            p_text(floor)
        );
    }
    let _ = writeln!(out);
}

/// Section 3: the paper's Table 1 figure per scope.
pub(crate) fn table1(context: &Context, out: &mut String) {
    let _ = writeln!(
        out,
        "## Table 1: distance of the synthetic data to the target\n"
    );
    let rows = match &context.quality {
        Ok(rows) => rows,
        Err(problem) => {
            let _ = writeln!(
                out,
                "No quality table ({problem}): run {} after {}.\n",
                context.command("quality"),
                context.command("generate")
            );
            return;
        }
    };
    let _ = writeln!(
        out,
        "MAD: mean absolute difference between the feature means of the target's training part \
         and the other set, in the target's min-max space, averaged over features and over the \
         four emotions (the paper's Table 1 figure; lower is closer). The reference row splits \
         the target's training part in two halves (each emotion by a seeded shuffle) and \
         compares them: about what a generator that samples the target's own distribution \
         would reach with that many rows. More metrics: [synth/quality.md](<synth/quality.md>).\n"
    );
    let scopes = quality_scopes(rows);
    let _ = writeln!(
        out,
        "| comparison | {} | mean over scopes | paper |",
        scopes.join(" | ")
    );
    let _ = writeln!(out, "|---|{}---|---|", "---|".repeat(scopes.len()));
    let baselines = quality_baselines(rows);
    let mut keys: Vec<(String, SetKey)> = vec![("\\|target − source\\|".into(), SetKey::Source)];
    if scopes
        .iter()
        .any(|scope| scope_metrics(rows, scope, SetKey::Reference).is_some())
    {
        keys.push((
            "\\|half − half\\| of the target (reference)".into(),
            SetKey::Reference,
        ));
    }
    for lambda_cls in quality_lambdas(rows) {
        keys.push((
            format!("\\|target − syn(λcls={lambda_cls})\\|"),
            SetKey::CycleGan(lambda_cls),
        ));
    }
    for name in &baselines {
        keys.push((
            format!("\\|target − syn({name})\\|"),
            SetKey::Baseline(name),
        ));
    }
    for (label, key) in &keys {
        let cells: Vec<String> = scopes
            .iter()
            .map(|scope| {
                scope_metrics(rows, scope, *key)
                    .map_or("–".to_string(), |m| format!("{:.3}", m.mad))
            })
            .collect();
        let mean = mean_over_scopes(rows, *key)
            .map_or("–".to_string(), |(m, _)| format!("{:.3}", m.mad));
        let paper = paper_table1(*key).map_or("–".to_string(), |value| format!("{value:.3}"));
        let _ = writeln!(
            out,
            "| {label} | {} | {mean} | {paper} |",
            cells.join(" | ")
        );
    }
    let _ = writeln!(out);
    memorisation(rows, &keys, out);
}

/// Distances to the closest record beside Table 1: a set of copies of the target's training
/// rows is as close as can be on MAD and says nothing new.
fn memorisation(rows: &[QualityRecord], keys: &[(String, SetKey)], out: &mut String) {
    let _ = writeln!(
        out,
        "Memorisation: DCR is the median distance of a set's rows to the closest row of the \
         target's training part, over the target rows' own median distance to their closest \
         other row (about 1 for rows as new as real ones, near 0 for copies); copies is the \
         share of rows within 1% of that distance of a target row. Pooled over emotions, mean \
         over scopes; a set with a low MAD and a low DCR is close because it copies.\n\n\
         | set | DCR | copies |\n|---|---|---|"
    );
    let number = |value: f64| {
        if value.is_finite() {
            format!("{value:.2}")
        } else {
            "–".to_string()
        }
    };
    for (label, key) in keys {
        let (dcr, copies) = mean_over_scopes(rows, *key)
            .map_or(("–".to_string(), "–".to_string()), |(m, _)| {
                (number(m.dcr_ratio), number(m.copied_share))
            });
        let label = label.replace("\\|target − ", "").replace("\\|", "");
        let _ = writeln!(out, "| {label} | {dcr} | {copies} |");
    }
    let _ = writeln!(out);
}

/// Section 4: Tables 2 and 3 beside the paper.
pub(crate) fn tables_2_and_3(context: &Context, out: &mut String) {
    for (experiment, title) in [
        (
            Experiment::Within,
            "Table 2: within corpus (leave-one-session-out)",
        ),
        (Experiment::CrossTest, "Table 3: cross corpus, test part"),
    ] {
        let _ = writeln!(out, "## {title}\n");
        if !context.has_experiment(experiment) {
            let _ = writeln!(out, "{}\n", missing_experiment(context, experiment));
            continue;
        }
        let shown = context
            .summaries
            .iter()
            .filter(|s| s.experiment == experiment);
        let repeats = shown
            .clone()
            .map(|s| s.uar_per_repeat.len() / s.gan_seeds.max(1))
            .max()
            .unwrap_or(0);
        let folds = shown.map(|s| s.folds).max().unwrap_or(0);
        let averaged = if experiment == Experiment::Within {
            format!("the UAR averaged over {folds} folds")
        } else {
            "the UAR on the cross-corpus test part".to_string()
        };
        let table = if experiment == Experiment::Within {
            2
        } else {
            3
        };
        let _ = writeln!(
            out,
            "UAR in %: mean ± population standard deviation over {repeats} repeats of \
             {averaged}. \"± per session\": the mean over folds of each fold's standard \
             deviation over repeats, how the authors' code combines sessions, and the spread to \
             compare with the paper's ±. Paper: the published Table {table}; it reports λcls 0 \
             and 2 only.\n"
        );
        let gan_seeds = context
            .summaries
            .iter()
            .filter(|s| s.experiment == experiment)
            .map(|s| s.gan_seeds)
            .max()
            .unwrap_or(1);
        // The columns only where a split exists (two seeds, and more than one repeat).
        let split = context
            .summaries
            .iter()
            .any(|s| s.experiment == experiment && s.spread_parts.is_some());
        if gan_seeds > 1 {
            let _ = writeln!(
                out,
                "The CycleGAN rows pool {gan_seeds} generator seeds (`gan.seeds`), each \
                 evaluated over the same repeats: their ± is the total spread over seeds and \
                 repeats{}.\n",
                if split {
                    ", and \"± classifier\" and \"± generator\" split it by a one-way \
                     random-effects analysis of variance with the seed as the group (the \
                     generator part is 0 when the seeds differ no more than the classifiers' \
                     noise explains)"
                } else {
                    "; with one repeat per seed it cannot be split into a classifier and a \
                     generator part"
                }
            );
        }
        let _ = writeln!(
            out,
            "| setup | λcls | UAR (ours) | ± per session |{} UAR (paper) | ours − paper |\n\
             |---|---|---|---|{}---|---|",
            if split {
                " ± classifier | ± generator |"
            } else {
                ""
            },
            if split { "---|---|" } else { "" },
        );
        let mut rows: Vec<(Setup, Option<SyntheticSource>)> = vec![(Setup::Real, None)];
        for setup in [Setup::Syn, Setup::RealSyn] {
            for lambda_cls in context.lambdas() {
                rows.push((setup, Some(SyntheticSource::cyclegan(lambda_cls))));
            }
        }
        for (setup, source) in rows {
            if !context.eval_config.setups.contains(&setup)
                && context
                    .summary(experiment, setup, source.as_ref())
                    .is_none()
            {
                continue;
            }
            let summary = context.summary(experiment, setup, source.as_ref());
            let paper = paper_uar(experiment, setup, source.as_ref());
            let difference = match (summary, paper) {
                (Some(summary), Some((mean, _))) if summary.uar_mean.is_finite() => {
                    format!("{:+.2}", summary.uar_mean * 100.0 - mean)
                }
                _ => "–".to_string(),
            };
            let per_session = summary
                .filter(|s| s.uar_std_per_session.is_finite())
                .map_or("–".to_string(), |s| {
                    format!("± {:.2}", s.uar_std_per_session * 100.0)
                });
            let parts = match (split, summary.and_then(|s| s.spread_parts)) {
                (false, _) => String::new(),
                (true, None) => " – | – |".to_string(),
                (true, Some(parts)) => format!(
                    " ± {:.2} | ± {:.2} |",
                    parts.classifier * 100.0,
                    parts.generator * 100.0
                ),
            };
            let _ = writeln!(
                out,
                "| {setup} | {} | {} | {per_session} |{parts} {} | {difference} |",
                source
                    .as_ref()
                    .and_then(SyntheticSource::lambda_cls)
                    .map_or("–".to_string(), |v| v.to_string()),
                summary_cell(summary),
                paper.map_or("–".to_string(), |(m, s)| format!("{m:.2} ± {s:.2}")),
            );
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "Per-fold UARs, per-class recalls and the cross-corpus dev part: \
         [eval/tables.md](<eval/tables.md>).\n"
    );
}

/// Why a configured setup of a source has no result in an experiment.
fn missing_reason(context: &Context, experiment: Experiment, source: &SyntheticSource) -> String {
    let scope = context.synthetic_scope(experiment);
    let path = context.synthetic_set(scope, source);
    match read_set_size(&path) {
        Ok(size) => {
            let missing = size.missing();
            if missing.len() == Emotion::ALL.len() {
                format!("{source}: the {scope} set is empty, so neither setup was trained")
            } else if !missing.is_empty() {
                format!(
                    "{source}, {}: not evaluated: the {scope} set has no {} vectors, and a \
                     classifier trained without a class can never predict it",
                    experiment_title(experiment),
                    missing.join(", ")
                )
            } else {
                format!(
                    "{source}, {}: not in `eval/results.parquet`: run {}",
                    experiment_title(experiment),
                    context.command("evaluate")
                )
            }
        }
        Err(_) if !path.is_file() => format!(
            "{source}: {} does not exist: run {}",
            path.display(),
            context.command(if source.is_cyclegan() {
                "generate"
            } else {
                "augment"
            })
        ),
        Err(problem) => format!("{source}: {problem}"),
    }
}

/// Section 5: every augmentation method in one table.
pub(crate) fn methods(context: &Context, out: &mut String, notes: &mut Vec<String>) {
    let _ = writeln!(out, "## Augmentation methods compared\n");
    let experiments = [Experiment::Within, Experiment::CrossTest];
    let sources = context.sources();
    let _ = writeln!(
        out,
        "UAR in % (mean ± std over repeats) of classifiers trained on synthetic data alone \
         (syn) and on real and synthetic data (real+syn). The `real` row trains on real data \
         alone (no augmentation); it stands in the real+syn columns for comparison. Bold: the \
         best real+syn (or real) per corpus. Vectors per class: from the footer of each \
         method's `{}` set.\n",
        context.synthetic_scope(Experiment::Within)
    );
    let _ = writeln!(
        out,
        "| method | within syn | within real+syn | cross-test syn | cross-test real+syn | vectors per class |\n\
         |---|---|---|---|---|---|"
    );
    let mut best: BTreeMap<Experiment, f64> = BTreeMap::new();
    for experiment in experiments {
        let candidates = std::iter::once(context.summary(experiment, Setup::Real, None))
            .chain(
                sources
                    .iter()
                    .map(|source| context.summary(experiment, Setup::RealSyn, Some(source))),
            )
            .flatten()
            .map(|s| s.uar_mean)
            .filter(|v| v.is_finite());
        if let Some(top) = candidates.max_by(f64::total_cmp) {
            best.insert(experiment, top);
        }
    }
    let bold = |experiment: Experiment, summary: Option<&Summary>| -> String {
        let text = summary_cell(summary);
        match (summary, best.get(&experiment)) {
            (Some(s), Some(top)) if s.uar_mean == *top => format!("**{text}**"),
            _ => text,
        }
    };
    let mut cells = vec!["real (no augmentation)".to_string()];
    for experiment in experiments {
        cells.push("–".to_string());
        cells.push(bold(
            experiment,
            context.summary(experiment, Setup::Real, None),
        ));
    }
    cells.push("–".to_string());
    let _ = writeln!(out, "| {} |", cells.join(" | "));

    let mut footnotes: Vec<String> = Vec::new();
    for source in &sources {
        let mut cells = vec![match source {
            SyntheticSource::CycleGan { lambda_cls, .. } => format!("CycleGAN λcls={lambda_cls}"),
            SyntheticSource::Baseline { name } => name.clone(),
        }];
        for experiment in experiments {
            for setup in [Setup::Syn, Setup::RealSyn] {
                let summary = context.summary(experiment, setup, Some(source));
                let configured = context.eval_config.setups.contains(&setup)
                    && context.has_experiment(experiment);
                if summary.is_none() && configured {
                    let reason = missing_reason(context, experiment, source);
                    let number = match footnotes.iter().position(|n| *n == reason) {
                        Some(index) => index + 1,
                        None => {
                            footnotes.push(reason);
                            footnotes.len()
                        }
                    };
                    cells.push(format!("– [{number}]"));
                } else if setup == Setup::RealSyn {
                    cells.push(bold(experiment, summary));
                } else {
                    cells.push(summary_cell(summary));
                }
            }
        }
        let within_scope = context.synthetic_scope(Experiment::Within);
        let size = match context.footer_set(source) {
            Some((scope, path)) => match read_set_size(&path) {
                Ok(size) if scope == within_scope => size.describe(),
                Ok(size) => format!("{} (scope {scope})", size.describe()),
                Err(problem) => {
                    notes.push(problem);
                    "unreadable".to_string()
                }
            },
            None => "–".to_string(),
        };
        cells.push(size);
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    let _ = writeln!(out);
    for (index, footnote) in footnotes.iter().enumerate() {
        let _ = writeln!(out, "[{}] {footnote}.  ", index + 1);
    }
    if !footnotes.is_empty() {
        let _ = writeln!(out);
    }
    for experiment in experiments {
        if !context.has_experiment(experiment) {
            let _ = writeln!(out, "{}\n", missing_experiment(context, experiment));
        }
    }
}

fn metric_cells(metrics: Option<SetMetrics>) -> String {
    match metrics {
        Some(m) => format!(
            "{:.3} | {:.2} | {:.3} | {:.3} | {:.3}",
            m.mad, m.frechet_distance, m.c2st_accuracy, m.knn_precision, m.knn_recall
        ),
        None => "– | – | – | – | –".to_string(),
    }
}

/// Section 6: the lambda_cls sweep as a table and `report/lambda_sweep.png`; returns whether
/// the PNG was drawn.
pub(crate) fn sweep(context: &Context, out: &mut String, png: &Path) -> Result<bool, ReportError> {
    let _ = writeln!(out, "## The lambda_cls sweep\n");
    let lambdas = context.lambdas();
    if lambdas.is_empty() {
        let _ = writeln!(
            out,
            "No CycleGAN lambda_cls is configured (`gan.lambda_cls`).\n"
        );
        return Ok(false);
    }
    let columns = [
        (Experiment::Within, Setup::Syn, "within syn"),
        (Experiment::Within, Setup::RealSyn, "within real+syn"),
        (Experiment::CrossTest, Setup::Syn, "cross-test syn"),
        (Experiment::CrossTest, Setup::RealSyn, "cross-test real+syn"),
    ];
    let quality = context.quality.as_ref().ok();
    let _ = writeln!(
        out,
        "UAR in % (mean ± std over repeats); quality of the CycleGAN's sets averaged over the \
         scopes that measured them: MAD (the Table 1 figure, four-emotion mean), and from the \
         pooled rows FD (Frechet distance), C2ST (two-sample classifier accuracy, 0.5 is best) \
         and k-NN precision and recall.{}\n",
        if quality.is_none() {
            format!(" No quality table yet: run {}.", context.command("quality"))
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        out,
        "| λcls | {} | MAD | FD | C2ST | precision | recall |\n|---|---|---|---|---|---|---|---|---|---|",
        columns.map(|c| c.2).join(" | ")
    );
    let mut lines: Vec<SweepLine> = columns
        .iter()
        .enumerate()
        .map(|(index, (_, _, label))| SweepLine {
            label: label.to_string(),
            colour: colour(index),
            points: Vec::new(),
        })
        .collect();
    for &lambda_cls in &lambdas {
        let source = SyntheticSource::cyclegan(lambda_cls);
        let mut cells = Vec::new();
        for (line, (experiment, setup, _)) in lines.iter_mut().zip(columns) {
            let summary = context.summary(experiment, setup, Some(&source));
            if let Some(s) = summary.filter(|s| s.uar_mean.is_finite() && s.uar_std.is_finite()) {
                line.points
                    .push((lambda_cls, s.uar_mean * 100.0, s.uar_std * 100.0));
            }
            cells.push(summary_cell(summary));
        }
        let metrics = quality
            .and_then(|rows| mean_over_scopes(rows, SetKey::CycleGan(lambda_cls)))
            .map(|(m, _)| m);
        let _ = writeln!(
            out,
            "| {lambda_cls} | {} | {} |",
            cells.join(" | "),
            metric_cells(metrics)
        );
    }
    if let Some(rows) = quality {
        let source = mean_over_scopes(rows, SetKey::Source).map(|(m, _)| m);
        let _ = writeln!(
            out,
            "| source, untransformed | – | – | – | – | {} |",
            metric_cells(source)
        );
    }
    let _ = writeln!(out);

    let mut references = Vec::new();
    for (index, experiment) in [Experiment::Within, Experiment::CrossTest]
        .into_iter()
        .enumerate()
    {
        if let Some(real) = context
            .summary(experiment, Setup::Real, None)
            .filter(|s| s.uar_mean.is_finite())
        {
            references.push(Reference {
                label: format!("{} real", experiment.as_str()),
                // Grey and purple: no sweep line has these colours.
                colour: colour([7, 4][index]),
                value: real.uar_mean * 100.0,
            });
        }
    }
    lines.retain(|line| !line.points.is_empty());
    if lines.is_empty() {
        let _ = writeln!(
            out,
            "No CycleGAN UAR to plot: run {}.\n",
            context.command("evaluate")
        );
        return Ok(false);
    }
    draw_sweep(png, &lines, &references)?;
    let _ = writeln!(
        out,
        "![UAR over lambda_cls](<report/lambda_sweep.png>)\n\nDashed: the real setup's UAR \
         (no synthetic data); error bars: ± one standard deviation over repeats.\n"
    );
    Ok(true)
}

/// Section 7: Figure 2 and the confusion matrices of the Table 2 and 3 rows.
pub(crate) fn figures(context: &Context, out: &mut String) {
    let _ = writeln!(out, "## Figures\n");
    let _ = writeln!(
        out,
        "### Figure 2: feature means and standard deviations of source, target and synthetic data\n"
    );
    let synth = context.run_dir.join("synth");
    if synth.join("figure2.png").is_file() {
        let _ = writeln!(out, "![Figure 2](<synth/figure2.png>)\n");
        let per_emotion: Vec<String> = Emotion::ALL
            .iter()
            .map(|emotion| format!("figure2_{}.png", emotion.as_str()))
            .filter(|name| synth.join(name).is_file())
            .map(|name| format!("[{}](<synth/{name}>)", &name[8..name.len() - 4]))
            .collect();
        if !per_emotion.is_empty() {
            let _ = writeln!(out, "Per emotion: {}.\n", per_emotion.join(" · "));
        }
    } else {
        let _ = writeln!(
            out,
            "`synth/figure2.png` does not exist: run {}.\n",
            context.command("quality")
        );
    }
    let _ = writeln!(
        out,
        "### Figure 3: confusion matrices (rows: true class, row-normalised, summed over folds, \
         averaged over repeats)\n"
    );
    let eval = context.run_dir.join("eval");
    let image = |experiment: Experiment, setup: Setup, source: Option<&SyntheticSource>| {
        let name = emocycle_eval::confusion_file_name(experiment, setup, source);
        if eval.join(&name).is_file() {
            format!("![{name}](<eval/{name}>)")
        } else {
            "–".to_string()
        }
    };
    for experiment in [Experiment::Within, Experiment::CrossTest] {
        if !context.has_experiment(experiment) {
            continue;
        }
        let _ = writeln!(out, "#### {}\n", experiment_title(experiment));
        let _ = writeln!(out, "real: {}\n", image(experiment, Setup::Real, None));
        let _ = writeln!(out, "| λcls | syn | real+syn |\n|---|---|---|");
        for lambda_cls in context.lambdas() {
            let source = SyntheticSource::cyclegan(lambda_cls);
            let _ = writeln!(
                out,
                "| {lambda_cls} | {} | {} |",
                image(experiment, Setup::Syn, Some(&source)),
                image(experiment, Setup::RealSyn, Some(&source))
            );
        }
        let _ = writeln!(out);
    }
}

fn last(curve: &[(f64, f64)]) -> Option<f64> {
    curve.last().map(|point| point.1)
}

fn number(value: Option<f64>) -> String {
    value.map_or("–".to_string(), |v| format!("{v:.4}"))
}

/// Section 8: one loss figure per GAN scope, and each run's final losses.
pub(crate) fn losses(
    context: &Context,
    out: &mut String,
    report_dir: &Path,
) -> Result<Vec<PathBuf>, ReportError> {
    let _ = writeln!(out, "## GAN losses\n");
    if context.gan.is_empty() {
        let _ = writeln!(
            out,
            "No loss logs below `gan/`: run {} and {}.\n",
            context.command("pretrain"),
            context.command("train")
        );
        return Ok(Vec::new());
    }
    let _ = writeln!(
        out,
        "Pretraining: the cycle loss of each generator pair, trained alone. Joint training: the \
         discriminator, generator, cycle and classifier losses, each averaged over the four \
         emotions' CycleGANs, one line per λcls (log scale; a run without a classifier has no \
         classifier loss). Final epoch:\n"
    );
    let _ = writeln!(
        out,
        "| scope | run | epochs | discriminator | generator | cycle | classifier |\n|---|---|---|---|---|---|---|"
    );
    for logs in &context.gan {
        if let Some(pretrain) = &logs.pretrain {
            let finals: Vec<f64> = pretrain.pairs.iter().filter_map(|(_, c)| last(c)).collect();
            let epochs = pretrain
                .pairs
                .iter()
                .map(|(_, c)| c.len())
                .max()
                .unwrap_or(0);
            let cycle =
                (!finals.is_empty()).then(|| finals.iter().sum::<f64>() / finals.len() as f64);
            let _ = writeln!(
                out,
                "| {} | pretraining | {epochs} | – | – | {} | – |",
                logs.scope,
                number(cycle)
            );
        }
        for run in &logs.train {
            let _ = writeln!(
                out,
                "| {} | λcls={} | {} | {} | {} | {} | {} |",
                logs.scope,
                run.lambda_cls,
                run.d.len(),
                number(last(&run.d)),
                number(last(&run.g)),
                number(last(&run.cycle)),
                if run.lambda_cls == 0.0 {
                    "–".to_string()
                } else {
                    number(last(&run.cls))
                },
            );
        }
    }
    let _ = writeln!(out);
    let mut written = Vec::new();
    for logs in &context.gan {
        let name = format!("loss_{}.png", logs.scope);
        let path = report_dir.join(&name);
        draw_losses(&path, logs)?;
        written.push(path);
        let _ = writeln!(
            out,
            "### {}\n\n![losses of {}](<report/{name}>)\n",
            logs.scope, logs.scope
        );
    }
    Ok(written)
}

/// Section 9: the pipeline file as run, and every artifact's seeds.
pub(crate) fn configuration(context: &Context, out: &mut String) {
    let _ = writeln!(out, "## Configuration\n");
    let _ = writeln!(
        out,
        "`{}`, verbatim:\n\n```json\n{}\n```\n",
        context.pipeline.path.display(),
        context.pipeline_text.trim_end()
    );
    let _ = writeln!(
        out,
        "Seeds (footer key `{}` of each artifact; every stage derives its seeds from the \
         pipeline's `seed`, {}):\n",
        keys::SEEDS,
        context.pipeline.config.seed
    );
    let mut files: Vec<String> = vec![
        "eval/results.parquet".to_string(),
        "synth/quality.parquet".to_string(),
    ];
    if let Some(first) = context.gan.first() {
        files.push(format!("gan/{}/pretrain/loss_log.parquet", first.scope));
        for run in &first.train {
            files.push(format!(
                "gan/{}/{}/loss_log.parquet",
                first.scope,
                cyclegan_dir(run.lambda_cls, 0)
            ));
        }
    }
    for source in context.sources() {
        if let Some((scope, _)) = context.footer_set(&source) {
            files.push(format!(
                "synth/{scope}/{}/synthetic.parquet",
                source.dir_name()
            ));
        }
    }
    let _ = writeln!(out, "| artifact | seeds |\n|---|---|");
    for file in files {
        let path = context.run_dir.join(&file);
        if !path.is_file() {
            continue;
        }
        let seeds = read_parquet_metadata(&path)
            .ok()
            .and_then(|metadata| metadata.get(keys::SEEDS).map(str::to_string))
            .map_or("–".to_string(), |seeds| format!("`{}`", cell(&seeds)));
        let _ = writeln!(out, "| `{file}` | {seeds} |");
    }
    let _ = writeln!(out);
}

/// Section 10: wall time per stage from `stages/<stage>.json`.
pub(crate) fn wall_time(context: &Context, out: &mut String) {
    let _ = writeln!(out, "## Wall time per stage\n");
    let _ = writeln!(
        out,
        "The last run of each stage that did work (`stages/<stage>.json`); a stage that found \
         its outputs up to date keeps its earlier record.\n"
    );
    let _ = writeln!(
        out,
        "| stage | wall time (s) | device | threads | jobs | finished | command |\n|---|---|---|---|---|---|---|"
    );
    let mut total = 0.0;
    for (stage, record) in &context.stages {
        match record {
            Some(record) => {
                total += record.wall_seconds;
                let _ = writeln!(
                    out,
                    "| {stage} | {:.1} | {} | {} | {} | {} | `{}` |",
                    record.wall_seconds,
                    cell(&record.device),
                    record.threads,
                    record.jobs,
                    utc(record.finished_unix),
                    cell(&record.command)
                );
            }
            None => {
                let _ = writeln!(out, "| {stage} | not run | | | | | |");
            }
        }
    }
    let _ = writeln!(
        out,
        "| **total** | **{total:.1}** | | | | | |\n\n{:.1} minutes in all.\n",
        total / 60.0
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_calendar_days() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_764_000_000), "2025-11-24 16:00 UTC");
        // 2024 is a leap year: 29 February exists.
        assert_eq!(utc(1_709_210_096), "2024-02-29 12:34 UTC");
    }

    #[test]
    fn a_finding_holds_only_when_significant_and_the_papers_way() {
        let finding = |pairs: Vec<(f64, f64)>, lower| {
            finding("claim".into(), pairs, None, lower, "scopes", 0)
        };
        // Six scopes, every one closer (lower): the smallest p six pairs give, 2/64.
        let closer = finding(vec![(0.02, 0.07); 6], true);
        assert_eq!(closer.verdict(), Verdict::Holds);
        assert_eq!(
            closer.verdict_text(),
            "holds (0.020 < 0.070; p = 0.031 over 6 scopes)"
        );
        // The same numbers the other way round, significantly.
        let farther = finding(vec![(0.123, 0.073); 6], true);
        assert_eq!(farther.verdict(), Verdict::DoesNotHold);
        assert!(
            farther
                .verdict_text()
                .starts_with("does not hold (0.123 ≥ 0.073;")
        );
        // Five repeats can never reach p < 0.05, however large the difference.
        let five = finding(vec![(56.0, 50.0); 5], false);
        assert_eq!(five.verdict(), Verdict::NotSignificant);
        assert_eq!(five.test.as_ref().unwrap().p_floor, 0.0625);
        // Mixed signs: no effect.
        let mixed = finding(
            vec![(51.0, 50.0), (49.0, 50.0), (50.5, 50.0), (49.5, 50.0)],
            false,
        );
        assert_eq!(mixed.verdict(), Verdict::NotSignificant);
        assert_eq!(mixed.pair((50.0, 50.0)), "50.00 ≤ 50.00");
        let missing = finding(Vec::new(), false);
        assert_eq!(missing.verdict(), Verdict::NotMeasured);
        assert_eq!(missing.verdict_text(), "not measured in this run");
    }

    #[test]
    fn percentages_and_cells() {
        assert_eq!(percent(0.5948, 0.0071), "59.48 ± 0.71");
        assert_eq!(percent(f64::NAN, 0.0), "n/a");
        assert_eq!(cell("a | b"), "a \\| b");
    }
}
