//! The pipeline on a real Slurm cluster: `.ci/slurm/test.sh` starts a one-node cluster on
//! localhost and runs the ignored tests here. A tiny pipeline is submitted, one of its training
//! tasks is requeued while it trains, and the tables and weights must equal those of the same
//! pipeline run locally.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::emocycle;

/// The tiny pipeline with one lambda_cls and one baseline, and a training long enough (400
/// epochs, a checkpoint after each) to be interrupted.
fn write_pipeline(dir: &Path) {
    let mut pipeline = common::tiny_pipeline(dir);
    pipeline["threads"] = serde_json::json!(1);
    pipeline["gan"]["lambda_cls"] = serde_json::json!([1]);
    pipeline["gan"]["network"]["train_epochs"] = serde_json::json!(400);
    pipeline["gan"]["network"]["checkpoint_every"] = serde_json::json!(1);
    pipeline["baselines"] =
        serde_json::json!([{"method": "smote", "k": 2, "size": {"per_class": 4}}]);
    pipeline["slurm"] = serde_json::json!({"cpus": 1, "time": "30:00"});
    common::write(dir, &pipeline);
}

/// A stand-in for Slurm's commands in `dir/bin`: `sbatch` records its arguments in
/// `dir/calls` and prints job ids from 100 on (failing on call number `fail_at`, when given),
/// `squeue` prints `dir/queue`, `sacct` fails as on a cluster without accounting.
fn fake_slurm(dir: &Path, fail_at: Option<usize>) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fail = fail_at.map_or(String::new(), |n| {
        format!(
            "[ \"$count\" -eq {n} ] && {{ echo 'sbatch: error: invalid partition' >&2; exit 1; }}\n"
        )
    });
    let scripts = [
        (
            "sbatch",
            format!(
                "#!/bin/sh\ncount=$(( $(wc -l < '{d}/calls' 2>/dev/null || echo 0) + 1 ))\n\
                 echo \"$@\" >> '{d}/calls'\n{fail}echo $(( 99 + count ))\n",
                d = dir.display()
            ),
        ),
        (
            "squeue",
            format!("#!/bin/sh\ncat '{}/queue' 2>/dev/null\n", dir.display()),
        ),
        (
            "sacct",
            "#!/bin/sh\necho 'accounting storage is disabled' >&2\nexit 1\n".to_string(),
        ),
    ];
    for (name, text) in scripts {
        let path = bin.join(name);
        std::fs::write(&path, text).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

fn with_path(dir: &Path, bin: &Path, args: &[&str]) -> std::process::Output {
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new(env!("CARGO_BIN_EXE_emocycle"))
        .args(args)
        .current_dir(dir)
        .env("PATH", path)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

#[test]
fn submit_chains_one_array_per_stage_and_status_reads_them_back() {
    let dir = tempfile::tempdir().unwrap();
    write_pipeline(dir.path());
    let slurm = dir.path().join("fake");
    let bin = fake_slurm(&slurm, None);

    // Before the feature stage: the feature stage and the job that submits the rest.
    let output = with_path(dir.path(), &bin, &["submit", "--config", "pipeline.json"]);
    assert!(output.status.success(), "{output:?}");
    let calls = std::fs::read_to_string(slurm.join("calls")).unwrap();
    let calls: Vec<&str> = calls.lines().collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(
        calls[0].ends_with("runs/tiny/slurm/features.sbatch"),
        "{calls:?}"
    );
    assert!(
        calls[1].contains("--dependency=afterok:100 --kill-on-invalid-dep=yes")
            && calls[1].ends_with("continue.sbatch"),
        "{calls:?}"
    );
    let run = dir.path().join("runs/tiny");
    let script = std::fs::read_to_string(run.join("slurm/continue.sbatch")).unwrap();
    assert!(script.contains("submit --config"), "{script}");
    assert!(script.contains("args=(--from augment)"), "{script}");
    // Requeued after it submitted, it would submit the rest twice.
    assert!(script.contains("#SBATCH --no-requeue"), "{script}");
    let features = std::fs::read_to_string(run.join("slurm/features.sbatch")).unwrap();
    assert!(features.contains("#SBATCH --requeue"), "{features}");
    // The feature stage's task has no arguments of its own.
    assert!(features.contains("  0) args=() ;;"), "{features}");

    // After it: every later stage, one task per share, chained.
    emocycle(dir.path(), &["features", "--config", "pipeline.json"]);
    std::fs::remove_file(slurm.join("calls")).unwrap();
    let output = with_path(
        dir.path(),
        &bin,
        &["submit", "--config", "pipeline.json", "--from", "augment"],
    );
    assert!(output.status.success(), "{output:?}");
    let calls = std::fs::read_to_string(slurm.join("calls")).unwrap();
    let calls: Vec<&str> = calls.lines().collect();
    let stages = [
        "augment", "pretrain", "train", "generate", "quality", "evaluate", "report",
    ];
    assert_eq!(calls.len(), stages.len(), "{calls:?}");
    // Job ids 100.. in the order above.
    let after = [
        None,
        None,
        Some("afterok:101"),
        Some("afterok:102"),
        Some("afterok:103:100"),
        Some("afterok:103:100"),
        Some("afterok:104:105"),
    ];
    for ((call, stage), after) in calls.iter().zip(stages).zip(after) {
        assert!(call.ends_with(&format!("{stage}.sbatch")), "{call}");
        match after {
            Some(after) => assert!(call.contains(&format!("--dependency={after} ")), "{call}"),
            None => assert!(!call.contains("--dependency"), "{call}"),
        }
    }
    let train = std::fs::read_to_string(run.join("slurm/train.sbatch")).unwrap();
    assert!(train.contains("#SBATCH --array=0-2"), "{train}");
    assert!(train.contains("#SBATCH --time=30:00"), "{train}");
    assert!(train.contains("#SBATCH --cpus-per-task=1"), "{train}");
    assert!(
        train.contains("  2) args=(--scope fold3 --lambda-cls 1 --gan-seed 0 --jobs 1 --resume) ;; # fold3 lambda_cls=1"),
        "{train}"
    );

    // Status: train task 0 done, 1 running, 2 failed; generate pending as an unsplit array.
    std::fs::write(slurm.join("queue"), "102_1|RUNNING\n103_[0-2]|PENDING\n").unwrap();
    let tasks = run.join("slurm/tasks");
    std::fs::write(tasks.join("train.102_0.exit"), "0\n").unwrap();
    std::fs::write(tasks.join("train.102_2.exit"), "1\n").unwrap();
    // An earlier submission's record of a task does not speak for this submission's.
    std::fs::write(tasks.join("report.90_0.exit"), "0\n").unwrap();
    let output = with_path(dir.path(), &bin, &["status", "--config", "pipeline.json"]);
    assert!(output.status.success(), "{output:?}");
    let status = String::from_utf8_lossy(&output.stdout);
    let row = |stage: &str| -> Vec<String> {
        status
            .lines()
            .find(|line| line.starts_with(&format!("{stage} ")))
            .unwrap_or_else(|| panic!("no {stage} row: {status}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    // stage, job, tasks, done, running, queued, failed, unknown
    assert_eq!(row("train"), ["train", "102", "3", "1", "1", "0", "1", "0"]);
    assert_eq!(
        row("generate"),
        ["generate", "103", "3", "0", "0", "3", "0", "0"]
    );
    assert_eq!(
        row("report"),
        ["report", "106", "1", "0", "0", "0", "0", "1"]
    );
    assert!(
        status.contains("failed: train task 2 (fold3 lambda_cls=1): exit 1; log ")
            && status.contains("runs/tiny/slurm/logs/train-102_2.out"),
        "{status}"
    );

    // sbatch refusing the third array: the two before it are recorded and named.
    let refusing = dir.path().join("refusing");
    let bin = fake_slurm(&refusing, Some(3));
    let output = with_path(
        dir.path(),
        &bin,
        &["submit", "--config", "pipeline.json", "--from", "augment"],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("submitting stage train: sbatch exited")
            && stderr.contains("invalid partition")
            && stderr.contains("jobs 100, 101"),
        "{stderr}"
    );
}

#[test]
fn with_the_grid_engine_each_gan_stage_is_one_task() {
    let dir = tempfile::tempdir().unwrap();
    write_pipeline(dir.path());
    let path = dir.path().join("pipeline.json");
    let mut pipeline: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    pipeline["gan"]["engine"] = serde_json::json!("grid");
    std::fs::write(&path, pipeline.to_string()).unwrap();
    emocycle(dir.path(), &["features", "--config", "pipeline.json"]);
    emocycle(
        dir.path(),
        &[
            "submit",
            "--config",
            "pipeline.json",
            "--from",
            "pretrain",
            "--dry-run",
        ],
    );
    let script = |stage: &str| {
        std::fs::read_to_string(dir.path().join(format!("runs/tiny/slurm/{stage}.sbatch"))).unwrap()
    };
    for stage in ["pretrain", "train"] {
        let text = script(stage);
        assert!(text.contains("#SBATCH --array=0-0"), "{stage}: {text}");
        assert!(text.contains("  0) args=(--resume) ;;"), "{stage}: {text}");
    }
    // Generating stays one task per run.
    assert!(!script("generate").contains("#SBATCH --array=0-0"));
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The job id of `stage`'s latest array in `jobs.json`.
fn job_id(run: &Path, stage: &str) -> Option<String> {
    let text = std::fs::read_to_string(run.join("slurm/jobs.json")).ok()?;
    let submissions: serde_json::Value = serde_json::from_str(&text).ok()?;
    submissions
        .as_array()?
        .iter()
        .flat_map(|s| s["jobs"].as_array().cloned().unwrap_or_default())
        .filter(|job| job["stage"] == stage)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .find_map(|job| job["job_id"].as_str().map(str::to_string))
}

/// The `## ...Table...` sections of a report, whose numbers must not depend on where it ran.
fn tables(report: &str) -> Vec<String> {
    report
        .split("\n## ")
        .filter(|section| section.starts_with("Table"))
        .map(str::to_string)
        .collect()
}

fn files_below(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_below(&path, name));
        } else if path.file_name().is_some_and(|n| n == name) {
            found.push(path);
        }
    }
    found.sort();
    found
}

#[test]
#[ignore = "needs a Slurm cluster: run by .ci/slurm/test.sh"]
fn a_submitted_pipeline_equals_a_local_run_even_when_a_task_is_requeued() {
    let local = tempfile::tempdir().unwrap();
    write_pipeline(local.path());
    for stage in [
        "features", "augment", "pretrain", "train", "generate", "quality", "evaluate", "report",
    ] {
        emocycle(local.path(), &[stage, "--config", "pipeline.json"]);
    }

    let cluster = tempfile::tempdir().unwrap();
    write_pipeline(cluster.path());
    let dry = emocycle(
        cluster.path(),
        &["submit", "--config", "pipeline.json", "--dry-run"],
    );
    assert!(dry.contains("#SBATCH --array=0-0"), "{dry}");
    let submitted = emocycle(cluster.path(), &["submit", "--config", "pipeline.json"]);
    // No fold file yet: the feature stage, and a job that submits the rest after it.
    assert!(
        submitted.contains("submit: features as job "),
        "{submitted}"
    );
    assert!(
        submitted.contains("submit: continue as job "),
        "{submitted}"
    );
    let run = cluster.path().join("runs/tiny");

    // Requeue fold1's training once it has written a checkpoint.
    let checkpoint = run.join("gan/fold1/lambda_cls-1/train.ckpt.safetensors");
    wait_for("fold1's first checkpoint", Duration::from_secs(600), || {
        checkpoint.is_file()
    });
    let train = job_id(&run, "train").expect("the continue job submitted the training");
    let requeue = Command::new("scontrol")
        .args(["requeue", &format!("{train}_0")])
        .output()
        .unwrap();
    assert!(
        requeue.status.success(),
        "{}",
        String::from_utf8_lossy(&requeue.stderr)
    );

    let report = run.join("report.md");
    wait_for("the report", Duration::from_secs(900), || {
        if report.is_file() {
            return true;
        }
        // A failed task stops the chain: fail now, with its log.
        let status = emocycle(cluster.path(), &["status", "--config", "pipeline.json"]);
        assert!(!status.contains("failed:"), "{status}");
        false
    });
    let status = emocycle(cluster.path(), &["status", "--config", "pipeline.json"]);
    for stage in [
        "features", "continue", "augment", "pretrain", "train", "generate",
    ] {
        assert!(
            status.lines().any(|line| line.starts_with(stage)),
            "{stage}: {status}"
        );
    }
    assert!(!status.contains("failed:"), "{status}");

    // The requeued task ran twice and the second attempt resumed.
    let log = std::fs::read_to_string(run.join(format!("slurm/logs/train-{train}_0.out"))).unwrap();
    assert!(log.contains("attempt 2"), "{log}");
    assert!(log.contains("resum"), "{log}");

    // Same numbers as the local run: tables, quality and every trained weight.
    let local_run = local.path().join("runs/tiny");
    for file in ["eval/tables.md", "synth/quality.md"] {
        assert_eq!(
            std::fs::read_to_string(run.join(file)).unwrap(),
            std::fs::read_to_string(local_run.join(file)).unwrap(),
            "{file}"
        );
    }
    let local_report = std::fs::read_to_string(local_run.join("report.md")).unwrap();
    let cluster_report = std::fs::read_to_string(&report).unwrap();
    assert!(!tables(&local_report).is_empty());
    assert_eq!(tables(&cluster_report), tables(&local_report));
    let models = files_below(&run.join("gan"), "model.safetensors");
    assert_eq!(models.len(), 3);
    for model in models {
        let relative = model.strip_prefix(&run).unwrap();
        assert_eq!(
            std::fs::read(&model).unwrap(),
            std::fs::read(local_run.join(relative)).unwrap(),
            "{}",
            relative.display()
        );
    }
}
