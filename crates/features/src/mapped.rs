//! Plain (uncompressed) feature files read through a memory mapping, and hashed beside the
//! parse by a thread of their own.
//!
//! Read into buffers, each byte of a plain file was copied by the kernel and hashed before any
//! of its block could be parsed: the read, copy and sha256 chain set the pace of the whole stage
//! (the sixth round in docs/benchmarks.md's history). Through a mapping the parse reads the page cache itself,
//! and the sha256, which only the footer needs, runs behind it on [`MappedHasher`]'s thread.
//!
//! The mapping holds only what is being parsed or waits to be hashed: pages both have passed
//! are handed back ([`MappedText::release_to`]), so the stage's resident memory does not grow
//! with the file. A file that changes size or modification time while it is read is an error
//! ([`MappedText::check_unchanged`]). One that is truncated meanwhile stops the process with
//! `SIGBUS`, as with any mapped file; [`crate::ReadOptions::memory_map`] turns mapping off.

use std::cell::Cell;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;
use std::thread::JoinHandle;
use std::time::SystemTime;

use memmap2::Mmap;
use sha2::{Digest, Sha256};

use emocycle_artifact::hex;

use crate::error::{FeatureError, Result};

/// Ranges waiting for the hash thread, beyond the one it works on. When the parse is this far
/// ahead it waits, so that the mapped pages waiting for the hash stay a few blocks.
const HASH_QUEUE: usize = 2;

/// A plain file's bytes, mapped.
pub(crate) struct MappedText {
    path: PathBuf,
    file: File,
    map: Arc<Mmap>,
    modified: Option<SystemTime>,
    /// Where the pages not yet handed back start (a multiple of [`RELEASE_GRAIN`]).
    released: Cell<usize>,
}

impl MappedText {
    /// Maps `file` when it is a regular file with bytes in it; gives the file back when it is
    /// not, or the system will not map it (the caller reads it instead).
    pub(crate) fn open(path: &Path, file: File) -> std::result::Result<Self, File> {
        let Ok(metadata) = file.metadata() else {
            return Err(file);
        };
        if !metadata.is_file() || metadata.len() == 0 {
            return Err(file);
        }
        // SAFETY: the mapping is read-only, and the bytes are only read through the slices
        // `bytes` hands out. Another process truncating the file meanwhile would make a read
        // of its lost pages raise SIGBUS (documented above); other changes show in its size or
        // modification time, which `check_unchanged` compares before the hash is used.
        #[allow(unsafe_code)]
        let map = match unsafe { Mmap::map(&file) } {
            Ok(map) => map,
            Err(_) => return Err(file),
        };
        Ok(Self {
            path: path.to_path_buf(),
            modified: metadata.modified().ok(),
            file,
            map: Arc::new(map),
            released: Cell::new(0),
        })
    }

    /// The whole file.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Starts the thread that hashes the file's bytes, range by range.
    pub(crate) fn hasher(&self) -> Result<MappedHasher> {
        MappedHasher::start(Arc::clone(&self.map), &self.path)
    }

    /// Hands back the pages before `end` (they stay in the page cache), which nothing reads
    /// any more; the one `end` falls in is kept.
    pub(crate) fn release_to(&self, end: usize) {
        let start = self.released.get();
        let end = end / RELEASE_GRAIN * RELEASE_GRAIN;
        if end <= start {
            return;
        }
        self.released.set(end);
        #[cfg(unix)]
        {
            // SAFETY: the mapping is shared and read-only: a dropped page is the file's page
            // again on its next read, so no byte anyone sees changes. The caller passes only
            // offsets that both the parse and the hash have passed.
            #[allow(unsafe_code)]
            let _ = unsafe {
                self.map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    start,
                    end - start,
                )
            };
        }
    }

    /// Fails when the file's size or modification time changed since it was mapped: its bytes
    /// may then differ from those parsed and hashed.
    pub(crate) fn check_unchanged(&self) -> Result<()> {
        let metadata = self
            .file
            .metadata()
            .map_err(|source| FeatureError::io(&self.path, source))?;
        if metadata.len() != self.map.len() as u64 || metadata.modified().ok() != self.modified {
            return Err(FeatureError::io(
                &self.path,
                std::io::Error::other("the file changed while it was read; read it again"),
            ));
        }
        Ok(())
    }
}

/// The grain pages are handed back in: a multiple of every page size Linux uses (releasing at
/// a coarser grain only keeps a little more mapped).
const RELEASE_GRAIN: usize = 64 << 10;

/// The sha256 of a mapped file, computed on a thread of its own from the ranges it is given,
/// which must follow each other from the file's first byte to its last.
pub(crate) struct MappedHasher {
    ranges: Option<SyncSender<Range<usize>>>,
    hashed: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<String>>,
    next: usize,
}

impl MappedHasher {
    fn start(map: Arc<Mmap>, path: &Path) -> Result<Self> {
        let (sender, ranges) = std::sync::mpsc::sync_channel::<Range<usize>>(HASH_QUEUE);
        let hashed = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (hashed, stop) = (Arc::clone(&hashed), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("sha256".to_string())
                .spawn(move || {
                    let mut hasher = Sha256::new();
                    for range in ranges {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let end = range.end;
                        update_prefetching(&mut hasher, &map[range]);
                        hashed.store(end, Ordering::Release);
                    }
                    hex(&hasher.finalize())
                })
                .map_err(|source| FeatureError::io(path, source))?
        };
        Ok(Self {
            ranges: Some(sender),
            hashed,
            stop,
            thread: Some(thread),
            next: 0,
        })
    }

    /// Queues the bytes up to `end` (from where the last call stopped); waits while
    /// [`HASH_QUEUE`] ranges are queued already.
    pub(crate) fn hash_to(&mut self, end: usize) {
        if end <= self.next {
            return;
        }
        let range = self.next..end;
        self.next = end;
        if let Some(ranges) = &self.ranges {
            // A send fails only if the thread is gone, which `finish` reports.
            let _ = ranges.send(range);
        }
    }

    /// Bytes hashed so far, from the file's start.
    pub(crate) fn hashed(&self) -> usize {
        self.hashed.load(Ordering::Acquire)
    }

    /// The hash of everything queued, once the thread has got through it.
    pub(crate) fn finish(mut self) -> String {
        self.ranges = None;
        let thread = self.thread.take().expect("finish runs once");
        thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

impl Drop for MappedHasher {
    fn drop(&mut self) {
        // Stopped early (an error in the file): the queued ranges need no hash.
        self.stop.store(true, Ordering::Relaxed);
        self.ranges = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Hashes `bytes`, prefetching ahead of the hash. The mapped page cache is in no cache, and
/// the hardware prefetcher stops at each 4 KiB page, so without this sha256 waits at every
/// page: 0.31 s against 0.23 s for the benchmark's 388 MB (the sixth round in docs/benchmarks.md's history).
fn update_prefetching(hasher: &mut Sha256, bytes: &[u8]) {
    const STEP: usize = 4 << 10;
    const AHEAD: usize = 8 << 10;
    for (index, piece) in bytes.chunks(STEP).enumerate() {
        prefetch(bytes, index * STEP + AHEAD..index * STEP + AHEAD + STEP);
        hasher.update(piece);
    }
}

/// Asks for the cache lines of `bytes[range]` (clipped to `bytes`) to be loaded.
#[inline]
fn prefetch(bytes: &[u8], range: Range<usize>) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let end = range.end.min(bytes.len());
        for offset in (range.start..end).step_by(64) {
            // SAFETY: a prefetch only hints the cache; the address is inside `bytes`.
            #[allow(unsafe_code)]
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(bytes[offset..].as_ptr().cast());
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (bytes, range);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(bytes: &[u8]) -> (tempfile::TempDir, MappedText) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("text.csv");
        std::fs::write(&path, bytes).unwrap();
        let file = File::open(&path).unwrap();
        let mapped = MappedText::open(&path, file).expect("a regular file maps");
        (dir, mapped)
    }

    /// Bytes that differ from offset to offset, so that a skipped or repeated range shows.
    fn varied(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 131 % 251) as u8).collect()
    }

    #[test]
    fn the_prefetching_hash_is_sha256() {
        let bytes = varied(100_003);
        for len in [0, 1, 63, 4095, 4096, 4097, 8192, 12_289, 100_003] {
            let mut hasher = Sha256::new();
            update_prefetching(&mut hasher, &bytes[..len]);
            assert_eq!(
                hex(&hasher.finalize()),
                hex(&Sha256::digest(&bytes[..len])),
                "{len} bytes"
            );
        }
    }

    #[test]
    fn ranges_in_any_steps_hash_to_the_files_sha256() {
        let bytes = varied(300_000);
        let (_dir, mapped) = mapped(&bytes);
        let mut hasher = mapped.hasher().unwrap();
        for end in [0, 1, 5000, 5000, 4999, 77_777, 200_000, 300_000] {
            hasher.hash_to(end);
        }
        let hash = hasher.finish();
        assert_eq!(hash, hex(&Sha256::digest(&bytes)));
    }

    #[test]
    fn a_hasher_dropped_unfinished_stops() {
        let (_dir, mapped) = mapped(&varied(1 << 20));
        let mut hasher = mapped.hasher().unwrap();
        hasher.hash_to(1000);
        hasher.hash_to(1 << 20);
        drop(hasher);
    }

    #[test]
    fn released_pages_read_the_same_and_go_in_whole_grains() {
        let bytes = varied(5 * RELEASE_GRAIN + 123);
        let (_dir, mapped) = mapped(&bytes);
        assert_eq!(mapped.bytes(), &bytes[..]);
        mapped.release_to(RELEASE_GRAIN - 1);
        assert_eq!(mapped.released.get(), 0, "a partial grain is kept");
        mapped.release_to(2 * RELEASE_GRAIN + 7);
        assert_eq!(mapped.released.get(), 2 * RELEASE_GRAIN);
        mapped.release_to(RELEASE_GRAIN);
        assert_eq!(mapped.released.get(), 2 * RELEASE_GRAIN, "never backwards");
        mapped.release_to(bytes.len());
        // Handed back, the pages are the file's again on the next read.
        assert_eq!(mapped.bytes(), &bytes[..]);
    }

    #[test]
    fn only_regular_files_with_bytes_are_mapped() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.csv");
        std::fs::write(&empty, "").unwrap();
        assert!(MappedText::open(&empty, File::open(&empty).unwrap()).is_err());
        assert!(MappedText::open(dir.path(), File::open(dir.path()).unwrap()).is_err());
    }

    #[test]
    fn a_file_that_changes_while_mapped_is_an_error() {
        let (dir, mapped) = mapped(b"name;a\n'u1';1\n");
        mapped.check_unchanged().unwrap();
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("text.csv"))
            .unwrap();
        std::io::Write::write_all(&mut file, b"'u2';2\n").unwrap();
        let error = mapped.check_unchanged().unwrap_err().to_string();
        assert!(
            error.contains("text.csv") && error.contains("changed while it was read"),
            "{error}"
        );
    }
}
