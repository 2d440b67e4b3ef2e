//! Every stage of the `emocycle` binary on a tiny pipeline: a second run does no work and says
//! so, deleting one synthetic set remakes only that set, and changing one lambda_cls reruns
//! only what depends on it.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// Runs one stage on `pipeline.json` and returns its output, which carries the progress lines.
fn stage(dir: &Path, args: &[&str]) -> String {
    common::emocycle(dir, &[args, &["--config", "pipeline.json"]].concat())
}

const STAGES: [&str; 7] = [
    "features", "augment", "pretrain", "train", "generate", "quality", "evaluate",
];

fn write_pipeline(dir: &Path) {
    common::write(dir, &common::tiny_pipeline(dir));
}

/// Every file below `dir` with its modification time: a file a stage wrote shows up new or
/// newer, whatever the stage printed.
fn written(dir: &Path) -> BTreeMap<PathBuf, SystemTime> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(written(&path));
        } else {
            files.insert(path, entry.metadata().unwrap().modified().unwrap());
        }
    }
    files
}

/// The files of `after` that are new or newer than in `before`, relative to `root`.
fn rewritten(
    root: &Path,
    before: &BTreeMap<PathBuf, SystemTime>,
    after: &BTreeMap<PathBuf, SystemTime>,
) -> Vec<String> {
    after
        .iter()
        .filter(|(path, time)| before.get(*path) != Some(*time))
        .map(|(path, _)| path.strip_prefix(root).unwrap().display().to_string())
        .collect()
}

/// Asserts that `output` holds `needle` exactly `count` times.
fn count(output: &str, needle: &str, count: usize) {
    assert_eq!(output.matches(needle).count(), count, "{needle}: {output}");
}

#[test]
fn a_rerun_does_nothing_and_a_change_reruns_only_its_dependants() {
    let dir = tempfile::tempdir().unwrap();
    write_pipeline(dir.path());
    for name in STAGES {
        stage(dir.path(), &[name]);
    }
    let run = dir.path().join("runs/tiny");
    for name in STAGES {
        assert!(
            run.join(format!("stages/{name}.json")).is_file(),
            "{name} left no stage record"
        );
    }
    let stderr = stage(dir.path(), &["report"]);
    assert!(stderr.contains("report: runs/tiny/report.md"), "{stderr}");
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    for section in [
        "Table 1",
        "Table 2",
        "Augmentation methods compared",
        "lambda_cls sweep",
        "| smote |",
    ] {
        assert!(
            report.contains(section),
            "{section} missing from the report"
        );
    }
    assert!(run.join("report/lambda_sweep.png").is_file());
    let before = written(&run);

    // Immediately again: every stage finds its outputs up to date, writes nothing, and keeps
    // the record of the run that made them; and says so.
    for name in STAGES {
        let stderr = stage(dir.path(), &[name]);
        assert!(stderr.contains("up to date"), "{name}: {stderr}");
    }
    assert_eq!(
        rewritten(&run, &before, &written(&run)),
        Vec::<String>::new()
    );

    // One synthetic set goes: generate makes that one again and nothing else. Generation is
    // deterministic, so the new file is the old one byte for byte and everything downstream,
    // which is keyed on content hashes, is still up to date.
    std::fs::remove_file(run.join("synth/fold2/lambda_cls-1/synthetic.parquet")).unwrap();
    let stderr = stage(dir.path(), &["generate"]);
    assert!(
        stderr.contains("generate: fold2 lambda_cls=1 -> "),
        "{stderr}"
    );
    assert_eq!(stderr.matches(" -> ").count(), 1, "{stderr}");
    for name in ["quality", "evaluate"] {
        let stderr = stage(dir.path(), &[name]);
        assert!(stderr.contains("up to date"), "{name}: {stderr}");
    }

    // One lambda_cls changes (1 -> 2): pretraining is shared and stays; only the new value's
    // GANs train and generate, and only the classifiers on their sets train: 3 folds x (syn,
    // real+syn) of 27 in all.
    let path = dir.path().join("pipeline.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut pipeline: serde_json::Value = serde_json::from_str(&text).unwrap();
    pipeline["gan"]["lambda_cls"] = serde_json::json!([0, 2]);
    std::fs::write(&path, pipeline.to_string()).unwrap();
    let before = written(&run);
    for name in ["features", "augment", "pretrain"] {
        assert!(stage(dir.path(), &[name]).contains("up to date"), "{name}");
    }
    let stderr = stage(dir.path(), &["train"]);
    // What it wrote: the new value's runs and the stage's record, nothing else.
    for path in rewritten(&run, &before, &written(&run)) {
        assert!(
            path.contains("/lambda_cls-2/") || path == "stages/train.json",
            "train rewrote {path}"
        );
    }
    // Three fold scopes: without a cross-corpus set nothing needs GANs of every session.
    assert_eq!(
        stderr.matches("lambda_cls=0 is up to date").count(),
        3,
        "{stderr}"
    );
    assert!(!stderr.contains("all lambda_cls"), "{stderr}");
    // Each run's own summary reaches the log, whether it ran here or in a child process.
    assert_eq!(
        stderr.matches(" lambda_cls=2 on cpu: ").count(),
        3,
        "{stderr}"
    );
    assert!(!stderr.contains("lambda_cls=2 is up to date"), "{stderr}");
    let stderr = stage(dir.path(), &["generate"]);
    assert_eq!(stderr.matches(" -> ").count(), 3, "{stderr}");
    stage(dir.path(), &["quality"]);
    let stderr = stage(dir.path(), &["evaluate"]);
    assert!(
        stderr.contains("evaluate: 6 classifiers trained, 21 reused"),
        "{stderr}"
    );

    // A second generator seed and a second repeat: the first seed's GANs, sets and classifiers
    // stay; the new seed pretrains (3 folds), trains and generates (3 folds x 2 lambda_cls),
    // and the classifiers new in seed or repeat train: 78 in all, 27 of them from before.
    pipeline["gan"]["seeds"] = serde_json::json!(2);
    pipeline["evaluation"]["repeats"] = serde_json::json!(2);
    std::fs::write(&path, pipeline.to_string()).unwrap();
    let stderr = stage(dir.path(), &["pretrain"]);
    count(&stderr, "gan_seed=0 is up to date", 3);
    count(&stderr, " gan_seed=1 on cpu: ", 3);
    let stderr = stage(dir.path(), &["train"]);
    count(&stderr, "gan_seed=0 is up to date", 6);
    count(&stderr, " gan_seed=1 on cpu: ", 6);
    let stderr = stage(dir.path(), &["generate"]);
    assert_eq!(stderr.matches(" -> ").count(), 6, "{stderr}");
    assert!(
        run.join("synth/fold1/lambda_cls-2-seed-1/synthetic.parquet")
            .is_file()
    );
    assert!(
        run.join("gan/fold3/pretrain-seed-1/generators.safetensors")
            .is_file()
    );
    stage(dir.path(), &["quality"]);
    let stderr = stage(dir.path(), &["evaluate"]);
    assert!(
        stderr.contains("evaluate: 51 classifiers trained, 27 reused"),
        "{stderr}"
    );
    let tables = std::fs::read_to_string(run.join("eval/tables.md")).unwrap();
    assert!(tables.contains("± classifier | ± generator"), "{tables}");
    stage(dir.path(), &["report"]);
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("pool 2 generator seeds"), "{report}");
    assert!(
        report.contains("mean over its 2 generator seeds"),
        "{report}"
    );
    assert!(report.contains("- `gan.seeds`: 1 -> 2"), "{report}");
    assert!(report.contains("± classifier | ± generator"), "{report}");
}

/// Every file below `dir` whose name ends in `.tmp`.
fn temporaries(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(temporaries(&path));
        } else if path.to_string_lossy().ends_with(".tmp") {
            found.push(path);
        }
    }
    found
}

#[test]
fn a_training_killed_mid_run_resumes_to_the_same_weights() {
    killed_training_resumes_to_the_same_weights("per-run");
}

#[test]
fn a_grid_killed_mid_run_resumes_to_the_same_weights() {
    killed_training_resumes_to_the_same_weights("grid");
}

/// Trains fold1 straight and, in another directory, kills it with SIGKILL between two
/// checkpoints and resumes it: the weights must be the same bits. The per-run engine trains
/// lambda_cls 1 alone, the grid engine lambda_cls 0 and 1 together.
fn killed_training_resumes_to_the_same_weights(engine: &str) {
    let grid = engine == "grid";
    // Long enough to be killed between two checkpoints.
    let prepare = || {
        let dir = tempfile::tempdir().unwrap();
        write_pipeline(dir.path());
        let path = dir.path().join("pipeline.json");
        let mut pipeline: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        pipeline["gan"]["engine"] = serde_json::json!(engine);
        pipeline["gan"]["network"]["train_epochs"] = serde_json::json!(400);
        pipeline["gan"]["network"]["checkpoint_every"] = serde_json::json!(1);
        std::fs::write(&path, pipeline.to_string()).unwrap();
        stage(dir.path(), &["features"]);
        stage(dir.path(), &["pretrain", "--scope", "fold1"]);
        dir
    };
    let train: &[&str] = if grid {
        &["train", "--scope", "fold1"]
    } else {
        &[
            "train",
            "--scope",
            "fold1",
            "--lambda-cls",
            "1",
            "--jobs",
            "1",
        ]
    };
    let lambdas: &[&str] = if grid { &["0", "1"] } else { &["1"] };
    let run_dir =
        |dir: &Path, lambda: &str| dir.join(format!("runs/tiny/gan/fold1/lambda_cls-{lambda}"));

    let straight = prepare();
    stage(straight.path(), train);

    let killed = prepare();
    let checkpoint = |lambda| run_dir(killed.path(), lambda).join("train.ckpt.safetensors");
    let mut child = Command::new(env!("CARGO_BIN_EXE_emocycle"))
        .args(train)
        .args(["--config", "pipeline.json"])
        .current_dir(killed.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let waited = std::time::Instant::now();
    while !lambdas.iter().all(|lambda| checkpoint(lambda).is_file()) {
        assert!(
            waited.elapsed().as_secs() < 60,
            "no checkpoint after a minute"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    std::thread::sleep(std::time::Duration::from_millis(50));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for lambda in lambdas {
        assert!(
            !run_dir(killed.path(), lambda)
                .join("model.safetensors")
                .exists(),
            "the run finished before it was killed: nothing was tested"
        );
        assert!(checkpoint(lambda).is_file());
    }

    let stderr = stage(killed.path(), &[train, &["--resume"]].concat());
    let done = if grid {
        "runs trained together"
    } else {
        "lambda_cls=1 on cpu: "
    };
    assert!(stderr.contains(done), "{stderr}");
    let model =
        |dir: &Path, lambda| std::fs::read(run_dir(dir, lambda).join("model.safetensors")).unwrap();
    for lambda in lambdas {
        assert!(
            model(killed.path(), lambda) == model(straight.path(), lambda),
            "lambda_cls {lambda}: the resumed run's weights differ from the uninterrupted run's"
        );
        // The finished run drops its checkpoint.
        assert!(!checkpoint(lambda).exists());
    }
    // Nothing half-written is left anywhere.
    assert_eq!(
        temporaries(&killed.path().join("runs")),
        Vec::<std::path::PathBuf>::new()
    );
    // The stage record says how it ran: in this one process, whatever --jobs allowed.
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(killed.path().join("runs/tiny/stages/train.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["jobs"], 1, "{record}");
    // A second --resume finds the run up to date instead of training it again.
    let stderr = stage(killed.path(), &[train, &["--resume"]].concat());
    assert!(stderr.contains("is up to date"), "{stderr}");
}
