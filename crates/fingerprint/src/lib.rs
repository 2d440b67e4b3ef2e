//! Code fingerprints for emocycle's freshness keys, computed by the stage crates' build scripts.
//!
//! A stage's outputs are up to date when they were made from the same inputs, the same settings
//! and the same code. "The same code" is this fingerprint: a sha256 over the sources that shape
//! the stage's output, namely the stage crate and every workspace crate it depends on (their
//! `src/` and `assets/` trees and `Cargo.toml`), and the workspace's `Cargo.lock` (the versions
//! of libtorch's bindings, polars and the rest). Documentation, benchmarks, other stages and
//! the CLI are not part of it, so editing them leaves trained models fresh; an edit of the GAN's
//! sources, committed or not, makes them stale.
//!
//! # What it reads and writes
//!
//! [`emit`] reads the including crate's `Cargo.toml` (for its `emocycle-*` dependencies, found
//! as `crates/<name>` beside it), those crates' source trees and `Cargo.lock`, and prints cargo
//! instructions: `EMOCYCLE_CODE_FINGERPRINT` for the crate's code (read with
//! `env!("EMOCYCLE_CODE_FINGERPRINT")`) and a `rerun-if-changed` line for every path hashed. It
//! writes no file.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The name prefix of the workspace's own crates; `emocycle-gan` lives in `crates/gan`.
const PREFIX: &str = "emocycle-";

/// A crate's fingerprint and every path that went into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// The first 16 hex digits of the sha256.
    pub hex: String,
    /// The files and directories hashed, for cargo's `rerun-if-changed`.
    pub watched: Vec<PathBuf>,
}

/// Called from a build script: sets `EMOCYCLE_CODE_FINGERPRINT` for the crate being built.
///
/// # Panics
/// When the crate's sources cannot be read, which fails the build with the path named.
pub fn emit() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let fingerprint = fingerprint(&manifest_dir)
        .unwrap_or_else(|error| panic!("code fingerprint of {}: {error}", manifest_dir.display()));
    for path in &fingerprint.watched {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    println!(
        "cargo:rustc-env=EMOCYCLE_CODE_FINGERPRINT={}",
        fingerprint.hex
    );
}

/// The fingerprint of the crate in `crate_dir` (a `crates/<name>` directory of the workspace).
pub fn fingerprint(crate_dir: &Path) -> io::Result<Fingerprint> {
    let crates_dir = crate_dir.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut names = BTreeSet::new();
    let own = crate_dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    collect(&crates_dir, &own, &mut names)?;

    let mut hasher = Sha256::new();
    let mut watched = Vec::new();
    for name in &names {
        let dir = crates_dir.join(name);
        let manifest = dir.join("Cargo.toml");
        hash_file(&mut hasher, &crates_dir, &manifest)?;
        watched.push(manifest);
        for tree in ["src", "assets"] {
            let root = dir.join(tree);
            if root.is_dir() {
                for file in files_below(&root)? {
                    hash_file(&mut hasher, &crates_dir, &file)?;
                }
                watched.push(root);
            }
        }
    }
    let lock = crates_dir.join("../Cargo.lock");
    if lock.is_file() {
        hash_file(&mut hasher, &crates_dir, &lock)?;
        watched.push(lock);
    }
    let digest = hasher.finalize();
    let hex = digest[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    Ok(Fingerprint { hex, watched })
}

/// Adds `name` and the workspace crates it depends on (not its dev-dependencies) to `names`.
fn collect(crates_dir: &Path, name: &str, names: &mut BTreeSet<String>) -> io::Result<()> {
    if !names.insert(name.to_string()) {
        return Ok(());
    }
    let manifest = crates_dir.join(name).join("Cargo.toml");
    let text = fs::read_to_string(&manifest).map_err(|error| {
        io::Error::new(error.kind(), format!("{}: {error}", manifest.display()))
    })?;
    for dependency in workspace_dependencies(&text) {
        collect(crates_dir, &dependency, names)?;
    }
    Ok(())
}

/// The `crates/<name>` directory names of the `emocycle-*` entries of a manifest's
/// `[dependencies]` and `[build-dependencies]` tables.
fn workspace_dependencies(manifest: &str) -> Vec<String> {
    let mut table = "";
    let mut found = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            table = line;
            continue;
        }
        if table != "[dependencies]" && table != "[build-dependencies]" {
            continue;
        }
        let Some(rest) = line.strip_prefix(PREFIX) else {
            continue;
        };
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(rest.len());
        if end > 0 {
            found.push(rest[..end].to_string());
        }
    }
    found
}

/// Every file below `root`, sorted, so the hash does not depend on directory order.
fn files_below(root: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Hashes a file's path relative to the crates directory and its contents, each
/// length-prefixed, so that moving bytes between files changes the hash.
fn hash_file(hasher: &mut Sha256, crates_dir: &Path, path: &Path) -> io::Result<()> {
    let bytes = fs::read(path)
        .map_err(|error| io::Error::new(error.kind(), format!("{}: {error}", path.display())))?;
    let name = path
        .strip_prefix(crates_dir)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned();
    for part in [name.as_bytes(), &bytes] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A workspace with a stage crate `gan` on `artifact`, a `synth` crate on `gan`, docs and a
    /// lock file.
    fn workspace() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let write = |path: &str, text: &str| {
            let path = root.path().join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        };
        write("Cargo.lock", "version = 4\n");
        write("docs/method.md", "# Method\n");
        write(
            "crates/artifact/Cargo.toml",
            "[package]\nname = \"emocycle-artifact\"\n",
        );
        write("crates/artifact/src/lib.rs", "pub fn write() {}\n");
        write(
            "crates/gan/Cargo.toml",
            "[package]\nname = \"emocycle-gan\"\n\n[dependencies]\n\
             emocycle-artifact.workspace = true\ntch = \"0.24\"\n\n\
             [dev-dependencies]\nemocycle-report = { workspace = true }\n",
        );
        write("crates/gan/src/lib.rs", "pub fn train() {}\n");
        write("crates/gan/src/train/adam.rs", "pub fn step() {}\n");
        write("crates/gan/assets/kernel.pt", "weights");
        write("crates/gan/tests/stage.rs", "#[test] fn t() {}\n");
        write("crates/gan/README.md", "GAN\n");
        write(
            "crates/synth/Cargo.toml",
            "[dependencies]\nemocycle-gan = { workspace = true, features = [\"x\"] }\n",
        );
        write("crates/synth/src/lib.rs", "pub fn generate() {}\n");
        write("crates/report/Cargo.toml", "[dependencies]\n");
        write("crates/report/src/lib.rs", "pub fn report() {}\n");
        root
    }

    fn of(root: &Path, name: &str) -> String {
        fingerprint(&root.join("crates").join(name)).unwrap().hex
    }

    #[test]
    fn dependencies_are_the_workspace_crates_of_the_normal_and_build_tables() {
        let manifest = "[package]\nname = \"emocycle-cli\"\n[dependencies]\n\
                        emocycle-gan.workspace = true\nemocycle-eval = { workspace = true }\n\
                        anyhow = \"1\"\n[build-dependencies]\nemocycle-fingerprint.workspace = true\n\
                        [dev-dependencies]\nemocycle-features = { workspace = true }\n";
        assert_eq!(
            workspace_dependencies(manifest),
            ["gan", "eval", "fingerprint"]
        );
    }

    #[test]
    fn only_the_sources_that_shape_a_stage_change_its_fingerprint() {
        let root = workspace();
        let path = root.path();
        let gan = of(path, "gan");
        assert_eq!(gan.len(), 16);
        assert_eq!(
            of(path, "gan"),
            gan,
            "the same sources give the same fingerprint"
        );
        let synth = of(path, "synth");
        assert_ne!(synth, gan);

        // Docs, tests, a README and another stage leave the GAN's fingerprint alone.
        fs::write(path.join("docs/method.md"), "# Method, reworded\n").unwrap();
        fs::write(path.join("crates/gan/tests/stage.rs"), "// more\n").unwrap();
        fs::write(path.join("crates/gan/README.md"), "GAN, longer\n").unwrap();
        fs::write(path.join("crates/report/src/lib.rs"), "pub fn other() {}\n").unwrap();
        assert_eq!(of(path, "gan"), gan);

        // An uncommitted edit anywhere in what the GAN is built from changes it, and the
        // fingerprint of every stage that depends on the GAN.
        let edits: [(&str, &str); 5] = [
            (
                "crates/gan/src/train/adam.rs",
                "pub fn step() { /* eps */ }\n",
            ),
            ("crates/gan/assets/kernel.pt", "other weights"),
            ("crates/artifact/src/lib.rs", "pub fn write() { }\n"),
            ("crates/gan/Cargo.toml", "[dependencies]\n"),
            ("Cargo.lock", "version = 4\n# tch 0.25\n"),
        ];
        let mut seen = BTreeSet::from([gan.clone()]);
        for (file, text) in edits {
            let before = of(path, "synth");
            fs::write(path.join(file), text).unwrap();
            assert!(
                seen.insert(of(path, "gan")),
                "{file} left the GAN's fingerprint alone"
            );
            assert_ne!(
                of(path, "synth"),
                before,
                "{file} left synth's fingerprint alone"
            );
        }
        // A new source file counts too.
        fs::write(path.join("crates/gan/src/new.rs"), "").unwrap();
        assert!(seen.insert(of(path, "gan")));
    }

    #[test]
    fn every_hashed_path_is_watched() {
        let root = workspace();
        let watched = fingerprint(&root.path().join("crates/synth"))
            .unwrap()
            .watched;
        let crates = root.path().join("crates");
        for path in [
            crates.join("synth/src"),
            crates.join("gan/src"),
            crates.join("gan/assets"),
            crates.join("gan/Cargo.toml"),
            crates.join("artifact/src"),
            crates.join("../Cargo.lock"),
        ] {
            assert!(watched.contains(&path), "{} is not watched", path.display());
        }
        assert!(!watched.iter().any(|path| path.ends_with("tests")));
    }

    #[test]
    fn a_missing_dependency_names_its_manifest() {
        let root = workspace();
        fs::remove_dir_all(root.path().join("crates/artifact")).unwrap();
        let error = fingerprint(&root.path().join("crates/gan")).unwrap_err();
        assert!(error.to_string().contains("artifact/Cargo.toml"), "{error}");
    }
}
