use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{ArtifactError, Result};

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Removes the temporary file unless the write completed, also when the producer panics.
struct TempGuard {
    path: PathBuf,
    armed: bool,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn temp_prefix(target: &Path) -> String {
    let name = target
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.")
}

/// Deletes temporary files that killed writers of `target` left behind.
///
/// Only files of a process that no longer exists are removed, so a concurrent writer of the same
/// target (which should not happen, but may) keeps its file.
fn remove_stale_temporaries(target: &Path, dir: &Path) {
    let prefix = temp_prefix(target);
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let Some(rest) = rest.strip_suffix(".tmp") else {
            continue;
        };
        let pid = rest
            .split('.')
            .next()
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid
            && pid != std::process::id()
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            tracing::debug!(file = %entry.path().display(), "removing a killed writer's temporary file");
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// A file being written under a hidden temporary name beside its target, which takes the
/// target's place only on [`AtomicFile::commit`]: flushed, synced to disk and renamed.
///
/// Dropped without a commit (an error, a panic), it removes the temporary file, and the target
/// keeps its previous contents (or stays absent). A killed process leaves the temporary file,
/// which the next writer of the same target removes.
pub struct AtomicFile {
    target: PathBuf,
    dir: PathBuf,
    guard: TempGuard,
}

impl AtomicFile {
    /// Creates the temporary file (and the target's parent directories) and returns a buffered
    /// writer into it.
    pub fn create(target: &Path) -> Result<(Self, BufWriter<File>)> {
        let dir = match target.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&dir).map_err(|source| ArtifactError::io(&dir, source))?;
        remove_stale_temporaries(target, &dir);
        let temp_path = dir.join(format!(
            "{}{}.{}.tmp",
            temp_prefix(target),
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp_path)
            .map_err(|source| ArtifactError::io(&temp_path, source))?;
        let atomic = Self {
            target: target.to_path_buf(),
            dir,
            guard: TempGuard {
                path: temp_path,
                armed: true,
            },
        };
        Ok((atomic, BufWriter::with_capacity(1 << 20, file)))
    }

    /// The file's final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// The temporary file's path, for producers that can only write to a path (libtorch's
    /// safetensors writer): they overwrite the file in place, and [`AtomicFile::commit`] syncs
    /// and renames it as for bytes written through the returned writer.
    pub fn temp_path(&self) -> &Path {
        &self.guard.path
    }

    /// Flushes `writer` (the one [`AtomicFile::create`] returned), syncs the file and renames
    /// it over the target.
    pub fn commit(mut self, writer: BufWriter<File>) -> Result<()> {
        let temp_path = self.guard.path.clone();
        let file = writer
            .into_inner()
            .map_err(|error| ArtifactError::io(&temp_path, error.into_error()))?;
        file.sync_all()
            .map_err(|source| ArtifactError::io(&temp_path, source))?;
        drop(file);
        fs::rename(&temp_path, &self.target)
            .map_err(|source| ArtifactError::io(&self.target, source))?;
        self.guard.armed = false;
        // The rename itself must reach the disk too, or a power cut could undo it.
        if let Ok(dir_handle) = File::open(&self.dir) {
            let _ = dir_handle.sync_all();
        }
        Ok(())
    }
}

/// Writes `target` atomically: `produce` writes into a hidden temporary file in the same
/// directory, which is flushed to disk and then renamed over `target`.
///
/// If `produce` fails or panics, or the process dies, `target` keeps its previous contents (or
/// stays absent). Parent directories are created.
pub fn write_atomic<F>(target: &Path, produce: F) -> Result<()>
where
    F: FnOnce(
        &mut BufWriter<File>,
    ) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>>,
{
    let (atomic, mut writer) = AtomicFile::create(target)?;
    produce(&mut writer).map_err(|source| ArtifactError::Write {
        path: target.to_path_buf(),
        source,
    })?;
    atomic.commit(writer)
}

/// Writes a byte buffer atomically (see [`write_atomic`]).
pub fn write_bytes_atomic(target: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(target, |writer| Ok(writer.write_all(bytes)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_producer_keeps_the_old_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.bin");
        write_bytes_atomic(&target, b"old").unwrap();
        let result = write_atomic(&target, |writer| {
            writer.write_all(b"half of the new")?;
            Err("producer gave up".into())
        });
        assert!(matches!(result, Err(ArtifactError::Write { .. })));
        assert_eq!(fs::read(&target).unwrap(), b"old");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.bin")]);
    }

    #[test]
    fn panicking_producer_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("b.bin");
        write_bytes_atomic(&target, b"old").unwrap();
        let outcome = std::panic::catch_unwind(|| {
            let _ = write_atomic(&target, |writer| {
                writer.write_all(b"partial")?;
                panic!("simulated crash");
            });
        });
        assert!(outcome.is_err());
        assert_eq!(fs::read(&target).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn stale_temporaries_of_dead_writers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("c.parquet");
        // No process has pid 4000000000 (above Linux's pid_max).
        let stale = dir.path().join(".c.parquet.4000000000.0.tmp");
        fs::write(&stale, b"torn").unwrap();
        write_bytes_atomic(&target, b"new").unwrap();
        assert!(!stale.exists());
        assert_eq!(fs::read(&target).unwrap(), b"new");
    }
}
