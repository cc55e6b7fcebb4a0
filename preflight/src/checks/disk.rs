//! Disk measurements that write real data: sequential O_DIRECT throughput (for a volume's
//! `minTransferRate`), fdatasync latency of small appends (the etcd WAL workload) and d_type
//! support (overlayfs needs it).
//!
//! Each writes a scratch file with a unique name into the directory under test and removes it
//! when done, also on error (the file is owned by a guard).

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cluster_image::units::Rate;

use crate::check::{CheckResult, Status};
use crate::host::Host;

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("cannot create a scratch file in {dir}: {source}")]
    Create {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing to {path} failed after {written} bytes: {source}")]
    Write {
        path: PathBuf,
        written: u64,
        #[source]
        source: io::Error,
    },
    #[error("fdatasync of {path} failed: {source}")]
    Sync {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read directory {path}: {source}")]
    ReadDir {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("{dir} has only {available} bytes free, too little to measure")]
    NoSpace { dir: PathBuf, available: u64 },
}

/// Removes the file when dropped, so that no measurement leaves data behind.
struct Scratch {
    path: PathBuf,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove scratch file");
        }
    }
}

fn scratch_name(dir: &Path, what: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(
        ".gravity-preflight-{what}-{}-{n}",
        std::process::id()
    ))
}

/// A buffer whose start is aligned for O_DIRECT (4 KiB covers 512 B and 4 KiB sectors), filled
/// with pseudo-random bytes so that compressing or deduplicating storage cannot cheat.
struct AlignedBuf {
    storage: Vec<u8>,
    offset: usize,
    len: usize,
}

const ALIGN: usize = 4096;

impl AlignedBuf {
    fn new(len: usize) -> Self {
        let mut storage = vec![0u8; len + ALIGN];
        let offset = storage.as_ptr().align_offset(ALIGN);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ u64::from(std::process::id());
        for chunk in storage.chunks_mut(8) {
            // xorshift64: cheap, and not compressible.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bytes = x.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        AlignedBuf {
            storage,
            offset,
            len,
        }
    }

    fn as_slice(&self) -> &[u8] {
        &self.storage[self.offset..self.offset + self.len]
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    /// Written before the clock starts, so that allocation and queue ramp-up do not count.
    pub warmup_bytes: u64,
    pub warmup_time: Duration,
    /// The measurement stops at whichever of these comes first.
    pub max_bytes: u64,
    pub max_time: Duration,
    pub block: usize,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            warmup_bytes: 16 << 20,
            warmup_time: Duration::from_millis(150),
            max_bytes: 256 << 20,
            max_time: Duration::from_secs(1),
            block: 1 << 20,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateMeasurement {
    /// Bytes written in the timed part (after the warm-up).
    pub bytes: u64,
    /// Time of the timed writes (plus the final fdatasync when not direct).
    pub elapsed: Duration,
    /// False when the filesystem refused O_DIRECT and we fell back to buffered writes with an
    /// fdatasync every 8 MiB.
    pub direct: bool,
}

impl RateMeasurement {
    pub fn rate(&self) -> Rate {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        Rate((self.bytes as f64 / secs) as u64)
    }
}

/// Sequential 1 MiB writes into a new file in `dir`, as `fio --direct=1 --rw=write --bs=1M`
/// does, bounded in bytes and time, after a short warm-up that is not counted. The file is
/// preallocated as fio does. Where the filesystem refuses O_DIRECT, buffered writes with an
/// fdatasync every 8 MiB (counted) stand in, so the figure is still what reached the disk.
pub fn measure_write_rate(dir: &Path, limits: &RateLimits) -> Result<RateMeasurement, DiskError> {
    let space = nix::sys::statvfs::statvfs(dir)
        .map(|s| s.blocks_available().saturating_mul(s.fragment_size()))
        .unwrap_or(u64::MAX);
    // Never take more than half of what is free.
    let budget = (limits.warmup_bytes + limits.max_bytes).min(space / 2);
    let block = limits.block as u64;
    if budget < 4 * block {
        return Err(DiskError::NoSpace {
            dir: dir.to_path_buf(),
            available: space,
        });
    }
    let path = scratch_name(dir, "rate");
    let open = |direct: bool| {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true).mode(0o600);
        if direct {
            o.custom_flags(libc::O_DIRECT);
        }
        o.open(&path)
    };
    let (file, direct) = match open(true) {
        Ok(f) => (f, true),
        // EINVAL: the filesystem (tmpfs before 6.6, some FUSE) has no direct I/O.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            let _ = std::fs::remove_file(&path);
            let f = open(false).map_err(|source| DiskError::Create {
                dir: dir.to_path_buf(),
                source,
            })?;
            (f, false)
        }
        Err(source) => {
            return Err(DiskError::Create {
                dir: dir.to_path_buf(),
                source,
            });
        }
    };
    let _guard = Scratch { path: path.clone() };
    // Preallocation can fail (e.g. on filesystems without fallocate); writing works anyway.
    let _ = nix::fcntl::posix_fallocate(&file, 0, budget as i64);

    let buf = AlignedBuf::new(limits.block);
    let mut offset = 0u64;
    let write = |file: &File, offset: &mut u64| -> Result<(), DiskError> {
        file.write_all_at(buf.as_slice(), *offset)
            .map_err(|source| DiskError::Write {
                path: path.clone(),
                written: *offset,
                source,
            })?;
        *offset += block;
        if !direct && offset.is_multiple_of(8 << 20) {
            sync(file, &path)?;
        }
        Ok(())
    };

    let warm_start = Instant::now();
    while offset < limits.warmup_bytes.min(budget / 4) && warm_start.elapsed() < limits.warmup_time
    {
        write(&file, &mut offset)?;
    }
    if !direct {
        sync(&file, &path)?;
    }
    let start_offset = offset;
    let start = Instant::now();
    let end = budget.min(start_offset + limits.max_bytes);
    while offset + block <= end && start.elapsed() < limits.max_time {
        write(&file, &mut offset)?;
    }
    // With O_DIRECT every write has reached the device when it returns: the rate is over the
    // writes, as fio reports it (and the file is deleted, so its metadata need not be synced).
    // Buffered writes are only on disk after the sync, so there it counts.
    let elapsed = if direct {
        start.elapsed()
    } else {
        sync(&file, &path)?;
        start.elapsed()
    };
    Ok(RateMeasurement {
        bytes: offset - start_offset,
        elapsed,
        direct,
    })
}

fn sync(file: &File, path: &Path) -> Result<(), DiskError> {
    file.sync_data().map_err(|source| DiskError::Sync {
        path: path.to_path_buf(),
        source,
    })
}

#[derive(Debug, Clone, Copy)]
pub struct SyncLimits {
    pub samples: usize,
    pub max_time: Duration,
}

impl Default for SyncLimits {
    fn default() -> Self {
        SyncLimits {
            samples: 300,
            max_time: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SyncLatency {
    pub samples: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

/// The `q`-quantile (0..=1) of sorted samples, nearest-rank.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// What etcd's WAL does: small sequential appends (2-8 KiB) into a preallocated file, each
/// followed by fdatasync. Returns the fdatasync latency distribution.
pub fn measure_fdatasync(dir: &Path, limits: &SyncLimits) -> Result<SyncLatency, DiskError> {
    let path = scratch_name(dir, "fdatasync");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|source| DiskError::Create {
            dir: dir.to_path_buf(),
            source,
        })?;
    let _guard = Scratch { path: path.clone() };
    // etcd preallocates its 64 MB WAL segments; a few MiB covers our appends.
    let _ = nix::fcntl::posix_fallocate(&file, 0, 4 << 20);
    let buf = AlignedBuf::new(8 << 10);
    let sizes = [2300usize, 4096, 2048, 8192, 3000, 6144];
    let mut offset = 0u64;
    let mut lat = Vec::with_capacity(limits.samples);
    let start = Instant::now();
    for i in 0..limits.samples {
        if i >= 20 && start.elapsed() >= limits.max_time {
            break;
        }
        let n = sizes[i % sizes.len()];
        file.write_all_at(&buf.as_slice()[..n], offset)
            .map_err(|source| DiskError::Write {
                path: path.clone(),
                written: offset,
                source,
            })?;
        offset += n as u64;
        let t = Instant::now();
        sync(&file, &path)?;
        lat.push(t.elapsed());
    }
    lat.sort();
    Ok(SyncLatency {
        samples: lat.len(),
        p50: quantile(&lat, 0.50),
        p99: quantile(&lat, 0.99),
        max: *lat.last().unwrap_or(&Duration::ZERO),
    })
}

/// Whether readdir on this filesystem reports file types (`d_type`); overlayfs needs it, and
/// xfs formatted with `ftype=0` lacks it.
pub fn supports_d_type(dir: &Path) -> Result<bool, DiskError> {
    let probe = scratch_name(dir, "dtype");
    std::fs::create_dir(&probe).map_err(|source| DiskError::Create {
        dir: dir.to_path_buf(),
        source,
    })?;
    struct RmDir(PathBuf);
    impl Drop for RmDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _guard = RmDir(probe.clone());
    File::create(probe.join("f")).map_err(|source| DiskError::Create {
        dir: probe.clone(),
        source,
    })?;
    let mut d = nix::dir::Dir::open(
        &probe,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|source| DiskError::ReadDir {
        path: probe.clone(),
        source,
    })?;
    for entry in d.iter() {
        let entry = entry.map_err(|source| DiskError::ReadDir {
            path: probe.clone(),
            source,
        })?;
        if entry.file_name().to_bytes() == b"f" {
            // nix maps DT_UNKNOWN to None.
            return Ok(entry.file_type().is_some());
        }
    }
    Ok(false)
}

/// fdatasync p99 thresholds for the etcd disk. etcd asks for a p99 WAL fsync under 10 ms;
/// far above that, leader elections time out.
#[derive(Debug, Clone, Copy)]
pub struct SyncThresholds {
    pub warn: Duration,
    pub fail: Duration,
}

impl Default for SyncThresholds {
    fn default() -> Self {
        SyncThresholds {
            warn: Duration::from_millis(10),
            fail: Duration::from_millis(50),
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Where state-directory probes write: the directory, or the nearest parent it will be
/// created in.
fn state_target(host: &Host, state_dir: &Path) -> (PathBuf, String) {
    let target = host.nearest_existing(state_dir);
    let shown = if target == state_dir {
        state_dir.display().to_string()
    } else {
        format!("{} (for {})", target.display(), state_dir.display())
    };
    (target, shown)
}

pub fn check_d_type(host: &Host, state_dir: &Path) -> CheckResult {
    let id = "state-dir:d_type";
    let title = "d_type support of the state directory's filesystem (overlayfs needs it)";
    let (target, shown) = state_target(host, state_dir);
    let fs = host
        .mount_of(&target)
        .ok()
        .flatten()
        .map(|m| format!(" on {}", m.fs_type))
        .unwrap_or_default();
    match supports_d_type(&host.path(&target)) {
        Ok(true) => CheckResult::pass(id, title).measured(format!("supported in {shown}{fs}")),
        Ok(false) => CheckResult::fail(id, title)
            .measured(format!("not supported in {shown}{fs}"))
            .fix(format!(
                "put {} on a filesystem with d_type (ext4, or xfs formatted with -n ftype=1), or pick another --state-dir",
                state_dir.display()
            )),
        Err(e) => CheckResult::fail(id, title)
            .measured("not tested")
            .detail(e.to_string())
            .fix(format!("make {} writable by root", target.display())),
    }
    .required("supported")
}

pub fn check_fdatasync(
    host: &Host,
    state_dir: &Path,
    limits: Option<&SyncLimits>,
    t: &SyncThresholds,
) -> CheckResult {
    let id = "state-dir:fdatasync";
    let title = "etcd disk: fdatasync latency of small appends (p99)";
    let required = format!("p99 below {} (fails above {})", ms(t.warn), ms(t.fail));
    let Some(limits) = limits else {
        return CheckResult::skip(id, title)
            .required(required)
            .detail("rate tests are turned off (--skip-rate-tests)");
    };
    let (target, shown) = state_target(host, state_dir);
    let start = Instant::now();
    let r = match measure_fdatasync(&host.path(&target), limits) {
        Ok(l) => {
            let status = if l.p99 >= t.fail {
                Status::Fail
            } else if l.p99 >= t.warn {
                Status::Warn
            } else {
                Status::Pass
            };
            CheckResult::new(id, title, status)
                .measured(format!(
                    "p99 {} (p50 {}, max {}, {} writes in {shown})",
                    ms(l.p99),
                    ms(l.p50),
                    ms(l.max),
                    l.samples
                ))
                .required(required)
                .fix_unless_pass(format!(
                    "etcd will be slow or lose leadership: put {} (etcd's data) on an SSD or a less busy disk",
                    state_dir.display()
                ))
        }
        Err(e) => CheckResult::fail(id, title)
            .measured("not measured")
            .required(required)
            .detail(e.to_string())
            .fix(format!("make {} writable by root", target.display())),
    };
    r.took(start.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(quantile(&v, 0.99), ms(99));
        assert_eq!(quantile(&v, 0.5), ms(50));
        assert_eq!(quantile(&v[..10], 0.99), ms(10));
        assert_eq!(quantile(&[], 0.99), Duration::ZERO);
    }

    #[test]
    fn aligned_buffer_is_aligned_and_not_constant() {
        let b = AlignedBuf::new(1 << 20);
        assert_eq!(b.as_slice().as_ptr() as usize % ALIGN, 0);
        assert_eq!(b.as_slice().len(), 1 << 20);
        assert_ne!(b.as_slice()[..64], b.as_slice()[64..128]);
    }

    #[test]
    fn rate_measurement_writes_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let limits = RateLimits {
            warmup_bytes: 1 << 20,
            warmup_time: ms(50),
            max_bytes: 8 << 20,
            max_time: Duration::from_secs(1),
            block: 1 << 20,
        };
        let m = measure_write_rate(dir.path(), &limits).unwrap();
        assert!(m.bytes > 0 && m.bytes <= 8 << 20, "{m:?}");
        assert!(m.rate().0 > 0);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn fdatasync_latency_and_cleanup() {
        let dir = tempfile::tempdir().unwrap();
        let l = measure_fdatasync(
            dir.path(),
            &SyncLimits {
                samples: 30,
                max_time: Duration::from_secs(2),
            },
        )
        .unwrap();
        assert!(l.samples >= 20 && l.samples <= 30);
        assert!(l.p50 <= l.p99 && l.p99 <= l.max);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn missing_directory_is_an_error_that_names_it() {
        let e =
            measure_fdatasync(Path::new("/nonexistent/dir"), &SyncLimits::default()).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/dir"), "{e}");
        let e = supports_d_type(Path::new("/nonexistent/dir")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/dir"), "{e}");
    }

    #[test]
    fn temp_dirs_report_d_type() {
        let dir = tempfile::tempdir().unwrap();
        assert!(supports_d_type(dir.path()).unwrap());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
