//! The one driver of every stage: takes the units a stage crate planned, skips those that are up
//! to date, runs the rest (long ones side by side in child processes), shows progress, and says
//! what happened.

use std::cell::Cell;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use emocycle_artifact::{Progress, WorkUnit};
use emocycle_torch::DeviceChoice;
use indicatif::{HumanDuration, ProgressBar, ProgressStyle};

use crate::parallel::{self, ChildJob};

/// What a stage command did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StageOutcome {
    /// Labels of the units that ran.
    pub ran: Vec<String>,
    /// Labels of the units found up to date.
    pub up_to_date: Vec<String>,
    /// The files the units that ran made or replaced.
    pub wrote: Vec<PathBuf>,
    /// Child processes that ran units side by side; 0 when every unit ran in this process.
    pub processes: usize,
}

impl StageOutcome {
    /// Whether it made or replaced an output; only then does the stage write its record
    /// (`stages/<stage>.json`).
    pub(crate) fn worked(&self) -> bool {
        !self.ran.is_empty()
    }
}

/// How a stage command runs its units.
pub(crate) struct Drive<'a> {
    /// `features`, `train`, ...: the subcommand, and the start of every line it prints.
    pub stage: &'static str,
    /// The pipeline file, passed on to child processes.
    pub config: &'a Path,
    /// Run units even when they are up to date.
    pub force: bool,
    /// Child processes at once for the units that want one (1: everything in this process).
    pub workers: usize,
    /// The `--device` given, passed on to child processes.
    pub device: Option<DeviceChoice>,
    /// `--resume`, passed on to child processes.
    pub resume: bool,
    /// libtorch threads of each child process.
    pub child_threads: usize,
}

/// The indicatif bar behind a unit's [`Progress`]: a spinner until the unit says how long it is.
/// Where stderr is no terminal (a log file, a Slurm job) indicatif draws nothing, so the bar
/// also prints its state as a plain line every [`LOG_EVERY`].
struct Bar {
    bar: ProgressBar,
    log: Option<Log>,
}

/// How often a unit's progress reaches a log: a GPU grid or a paper-size run trains for hours.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Plain progress lines, at most one per `every`.
struct Log {
    every: Duration,
    last: Cell<Instant>,
}

impl Log {
    /// The bar's state as a line, if one is due.
    fn line(&self, bar: &ProgressBar) -> Option<String> {
        if self.last.get().elapsed() < self.every {
            return None;
        }
        self.last.set(Instant::now());
        let length = bar
            .length()
            .map_or(String::new(), |length| format!("/{length}"));
        Some(format!(
            "{} {}{length} {} [{}]",
            bar.prefix(),
            bar.position(),
            bar.message(),
            HumanDuration(bar.elapsed())
        ))
    }
}

impl Bar {
    fn new(prefix: String) -> Self {
        let bar = ProgressBar::new_spinner().with_prefix(prefix);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix} {msg} [{elapsed}]")
                .expect("valid template"),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        let log = (!std::io::stderr().is_terminal()).then(|| Log {
            every: LOG_EVERY,
            last: Cell::new(Instant::now()),
        });
        Self { bar, log }
    }
}

impl Progress for Bar {
    fn set_length(&self, length: u64) {
        if self.bar.length() != Some(length) {
            self.bar.disable_steady_tick();
            self.bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} {msg} [{elapsed} < {eta}]",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            self.bar.set_length(length);
        }
    }

    fn set_position(&self, position: u64) {
        self.bar.set_position(position);
    }

    /// Units set their message after their position: the logged line has both of one step.
    fn set_message(&self, message: String) {
        self.bar.set_message(message);
        if let Some(line) = self.log.as_ref().and_then(|log| log.line(&self.bar)) {
            eprintln!("{line}");
        }
    }
}

/// `{stage}: {label}` or, for a stage of one unit, `{stage}:`.
fn heading(stage: &str, label: &str) -> String {
    if label.is_empty() {
        format!("{stage}:")
    } else {
        format!("{stage}: {label}")
    }
}

impl Drive<'_> {
    /// Runs `units` and says what happened, ending with the stage's closing line.
    pub(crate) fn run<U: WorkUnit>(&self, units: Vec<U>) -> Result<StageOutcome> {
        let started = Instant::now();
        let mut outcome = StageOutcome::default();
        let mut todo = Vec::new();
        for unit in units {
            let label = unit.label();
            let fresh = !self.force
                && unit
                    .is_fresh()
                    .with_context(|| format!("{} {label}: checking its outputs", self.stage))?;
            if fresh {
                eprintln!(
                    "{} is up to date (skipped; --force reruns it)",
                    heading(self.stage, &label)
                );
                outcome.up_to_date.push(label);
            } else {
                todo.push(unit);
            }
        }
        let (long, quick): (Vec<U>, Vec<U>) = todo
            .into_iter()
            .partition(|unit| unit.child_flags().is_some());
        let workers = self.workers.min(long.len());
        let mut here = quick;
        if workers > 1 {
            let jobs = long.iter().map(|unit| self.child_job(unit)).collect();
            let children = Instant::now();
            parallel::run_children(self.stage, jobs, workers, self.child_threads)?;
            outcome.processes = workers;
            eprintln!(
                "{}: {} runs done in {:.1} s, {workers} at a time",
                self.stage,
                long.len(),
                children.elapsed().as_secs_f64()
            );
            for unit in &long {
                outcome.ran.push(unit.label());
                outcome.wrote.extend(unit.outputs());
            }
        } else {
            here.extend(long);
        }
        for unit in here {
            let label = unit.label();
            let unit_started = Instant::now();
            let bar = Bar::new(heading(self.stage, &label));
            let done = unit
                .execute(&bar)
                .with_context(|| heading(self.stage, &label))?;
            bar.bar.finish_and_clear();
            for note in &done.notes {
                eprintln!("{} {note}", heading(self.stage, &label));
            }
            eprintln!(
                "{} {} in {:.1} s",
                heading(self.stage, &label),
                done.summary,
                unit_started.elapsed().as_secs_f64()
            );
            outcome.wrote.extend(unit.outputs());
            outcome.ran.push(label);
        }
        if outcome.worked() {
            eprintln!(
                "{}: done in {:.1} s",
                self.stage,
                started.elapsed().as_secs_f64()
            );
        } else {
            eprintln!("{}: nothing to do, every output is up to date", self.stage);
        }
        Ok(outcome)
    }

    /// This binary's arguments that run just `unit`, with the user's options passed on.
    fn child_job<U: WorkUnit>(&self, unit: &U) -> ChildJob {
        let mut args: Vec<OsString> = vec![
            self.stage.into(),
            "--config".into(),
            self.config.into(),
            "--jobs".into(),
            "1".into(),
        ];
        for (flag, value) in unit.child_flags().unwrap_or_default() {
            args.extend([flag.into(), value.into()]);
        }
        if let Some(device) = self.device {
            args.extend(["--device".into(), device.to_string().into()]);
        }
        if self.force {
            args.push("--force".into());
        }
        if self.resume {
            args.push("--resume".into());
        }
        ChildJob {
            label: unit.label(),
            args,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use emocycle_artifact::Done;

    /// A unit that counts its runs and fails on request.
    struct Fake {
        label: &'static str,
        fresh: bool,
        fail: bool,
        runs: Cell<usize>,
    }

    fn fake(label: &'static str, fresh: bool) -> Fake {
        Fake {
            label,
            fresh,
            fail: false,
            runs: Cell::new(0),
        }
    }

    impl WorkUnit for &Fake {
        type Error = std::io::Error;

        fn label(&self) -> String {
            self.label.into()
        }

        fn is_fresh(&self) -> Result<bool, std::io::Error> {
            Ok(self.fresh)
        }

        fn outputs(&self) -> Vec<PathBuf> {
            vec![PathBuf::from(format!("{}.parquet", self.label))]
        }

        fn execute(&self, progress: &dyn Progress) -> Result<Done, std::io::Error> {
            progress.set_length(2);
            progress.set_position(2);
            self.runs.set(self.runs.get() + 1);
            if self.fail {
                return Err(std::io::Error::other("no space left"));
            }
            Ok(Done::summary("-> 3 rows"))
        }
    }

    fn drive(force: bool) -> Drive<'static> {
        Drive {
            stage: "test",
            config: Path::new("pipeline.json"),
            force,
            workers: 1,
            device: None,
            resume: false,
            child_threads: 1,
        }
    }

    #[test]
    fn runs_only_stale_units_unless_forced_and_says_what_it_wrote() {
        let (a, b) = (fake("a", true), fake("b", false));
        let outcome = drive(false).run(vec![&a, &b]).unwrap();
        assert_eq!(outcome.ran, ["b"]);
        assert_eq!(outcome.up_to_date, ["a"]);
        assert_eq!(outcome.wrote, [PathBuf::from("b.parquet")]);
        assert!(outcome.worked());
        assert_eq!((a.runs.get(), b.runs.get()), (0, 1));

        let outcome = drive(true).run(vec![&a, &b]).unwrap();
        assert_eq!(outcome.ran, ["a", "b"]);
        assert!(outcome.up_to_date.is_empty());
        assert_eq!((a.runs.get(), b.runs.get()), (1, 2));
    }

    #[test]
    fn all_fresh_is_no_work() {
        let a = fake("a", true);
        let outcome = drive(false).run(vec![&a]).unwrap();
        assert!(!outcome.worked());
        assert!(outcome.wrote.is_empty());
    }

    #[test]
    fn a_failing_unit_stops_the_stage_with_its_name() {
        let a = Fake {
            fail: true,
            ..fake("fold2 smote", false)
        };
        let b = fake("later", false);
        let error = drive(false).run(vec![&a, &b]).unwrap_err();
        assert_eq!(format!("{error:#}"), "test: fold2 smote: no space left");
        assert_eq!(b.runs.get(), 0);
    }

    #[test]
    fn a_child_runs_exactly_its_unit_with_the_users_options() {
        struct Long;
        impl WorkUnit for Long {
            type Error = std::io::Error;
            fn label(&self) -> String {
                "fold1 lambda_cls=2".into()
            }
            fn is_fresh(&self) -> Result<bool, std::io::Error> {
                Ok(false)
            }
            fn outputs(&self) -> Vec<PathBuf> {
                Vec::new()
            }
            fn child_flags(&self) -> Option<Vec<(&'static str, String)>> {
                Some(vec![
                    ("--scope", "fold1".into()),
                    ("--lambda-cls", "2".into()),
                ])
            }
            fn execute(&self, _: &dyn Progress) -> Result<Done, std::io::Error> {
                unreachable!("a child process runs it")
            }
        }
        let mut drive = drive(true);
        drive.resume = true;
        drive.device = Some("cpu".parse().unwrap());
        let job = drive.child_job(&Long);
        let args: Vec<String> = job
            .args
            .iter()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args.join(" "),
            "test --config pipeline.json --jobs 1 --scope fold1 --lambda-cls 2 --device cpu \
             --force --resume"
        );
        assert_eq!(job.label, "fold1 lambda_cls=2");
    }

    #[test]
    fn without_a_terminal_progress_reaches_the_log_once_per_interval() {
        let bar = ProgressBar::hidden().with_prefix("train: grid of 12 runs");
        bar.set_length(24_000);
        bar.set_position(1234);
        bar.set_message("fold3 lambda_cls=2 epoch 102: d 0.693");
        let due = Log {
            every: Duration::ZERO,
            last: Cell::new(Instant::now()),
        };
        let line = due.line(&bar).unwrap();
        assert!(
            line.starts_with(
                "train: grid of 12 runs 1234/24000 fold3 lambda_cls=2 epoch 102: d 0.693 ["
            ),
            "{line}"
        );
        let quiet = Log {
            every: Duration::from_secs(3600),
            last: Cell::new(Instant::now()),
        };
        assert_eq!(quiet.line(&bar), None);
        // Once printed, the next line waits for the interval again.
        let hourly = Log {
            every: Duration::from_secs(3600),
            last: Cell::new(Instant::now() - Duration::from_secs(7200)),
        };
        assert!(hourly.line(&bar).is_some());
        assert_eq!(hourly.line(&bar), None);
    }
}
