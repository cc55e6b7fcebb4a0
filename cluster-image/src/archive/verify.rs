//! Checks an unpacked cluster image (the user ran `tar xf`) against its index.

use std::path::Path;
use std::time::{Duration, Instant};

use super::ArchiveError;
use super::index::{ImageIndex, Kind, hash_file};
use crate::layout::INDEX;

#[derive(Debug)]
pub struct VerifyReport {
    pub index: ImageIndex,
    pub files: usize,
    pub bytes: u64,
    pub elapsed: Duration,
}

/// Verifies every file listed in `dir/index.json`: kind, size, SHA-256, and that no symlink
/// leads outside `dir`. Stops at the first problem, naming the file.
pub fn verify_dir(dir: &Path) -> Result<VerifyReport, ArchiveError> {
    let started = Instant::now();
    let index_path = dir.join(INDEX);
    let bytes = std::fs::read(&index_path).map_err(|e| ArchiveError::Index {
        path: index_path.clone(),
        reason: format!("{e}: is {} an unpacked cluster image?", dir.display()),
    })?;
    let index = ImageIndex::from_json(&bytes, &index_path)?;
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    // Largest first, so one big file does not finish alone at the end.
    let mut order: Vec<_> = index.files.iter().collect();
    order.sort_by_key(|f| std::cmp::Reverse(f.size));
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| -> Result<(), ArchiveError> {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(entry) = order.get(i) else {
                            return Ok(());
                        };
                        check_entry(dir, entry)?;
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("verify thread panicked"))
    })?;
    Ok(VerifyReport {
        files: index.files.len(),
        bytes: index.total_size(),
        index,
        elapsed: started.elapsed(),
    })
}

fn check_entry(dir: &Path, entry: &super::IndexEntry) -> Result<(), ArchiveError> {
    let path = dir.join(&entry.path);
    let meta = std::fs::symlink_metadata(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ArchiveError::Missing {
            path: entry.path.clone(),
        },
        _ => ArchiveError::Io {
            path: path.clone(),
            source: e,
        },
    })?;
    match entry.kind {
        Kind::Symlink => {
            let target = std::fs::read_link(&path).map_err(ArchiveError::io(&path))?;
            if !meta.file_type().is_symlink()
                || Some(target.to_string_lossy().as_ref()) != entry.target.as_deref()
            {
                return Err(ArchiveError::unsafe_entry(
                    &entry.path,
                    "this symlink does not match the image index",
                ));
            }
            super::paths::resolve_beneath(dir, &entry.path)
                .map_err(|reason| ArchiveError::unsafe_entry(&entry.path, reason))?;
        }
        Kind::File => {
            if !meta.file_type().is_file() {
                return Err(ArchiveError::unsafe_entry(
                    &entry.path,
                    "the index lists a regular file, but this is not one",
                ));
            }
            if meta.len() != entry.size {
                return Err(ArchiveError::Size {
                    path: entry.path.clone(),
                    expected: entry.size,
                    actual: meta.len(),
                });
            }
            let (actual, _) = hash_file(&path)?;
            if actual != entry.sha256 {
                return Err(ArchiveError::Checksum {
                    path: entry.path.clone(),
                    expected: entry.sha256.clone(),
                    actual,
                });
            }
        }
    }
    Ok(())
}
