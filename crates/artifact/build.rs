//! Records the git commit the code was built from, so every artifact names its code version.

use std::path::Path;
use std::process::Command;

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let git_dir = Path::new(&manifest_dir).join("../../.git");
    // Rebuild when HEAD moves; the commit hash is part of every artifact's fingerprint. Only
    // paths that exist are watched: cargo takes a missing one as changed on every build. A
    // commit on a branch whose ref is packed writes a new file below refs/heads, which the
    // directory watch sees.
    let mut watched = vec![
        git_dir.join("HEAD"),
        git_dir.join("packed-refs"),
        git_dir.join("refs/heads"),
    ];
    if let Ok(head) = std::fs::read_to_string(git_dir.join("HEAD"))
        && let Some(reference) = head.trim().strip_prefix("ref: ")
    {
        watched.push(git_dir.join(reference));
    }
    for path in watched.iter().filter(|path| path.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(&manifest_dir)
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|text| text.trim().to_string())
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=EMOCYCLE_GIT_COMMIT={commit}");
}
