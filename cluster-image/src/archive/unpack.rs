//! Unpacks a cluster image, plain or zstd, verifying every file against the index as it goes.
//!
//! Safety rests on three rules. Entry paths are checked lexically. Files, links and directories
//! are only ever created inside directories this unpacker created itself, in a fresh staging
//! directory nobody else writes to, so nothing can be written through a symlink. Symlinks are
//! checked physically once everything exists. The staging directory becomes the target by one
//! rename at the end; on any error it is removed, so a failed unpack leaves nothing behind.
//!
//! Speed: small files are written by a pool of threads while the reader decompresses, because on
//! most hosts creating a file costs more than decompressing it.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag};
use sha2::{Digest, Sha256};

use super::ArchiveError;
use super::index::{ImageIndex, Kind};
use super::paths::{check_symlink_target, normalize_entry_path, resolve_beneath};
use crate::layout::INDEX;

/// Bounds that make a hostile archive fail fast instead of filling the disk.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most bytes all files may hold together; `None`: the free space at the target.
    pub max_total_bytes: Option<u64>,
    pub max_entries: u64,
    /// Most uncompressed bytes per compressed byte, checked once `ratio_floor` bytes are out.
    pub max_ratio: u64,
    pub ratio_floor: u64,
    pub max_index_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_total_bytes: None,
            max_entries: 1_000_000,
            max_ratio: 1000,
            ratio_floor: 64 << 20,
            max_index_bytes: 64 << 20,
        }
    }
}

#[derive(Debug, Clone)]
pub struct UnpackOptions {
    pub limits: Limits,
    /// Require `index.json` first and check every entry against it (cluster images do).
    pub require_index: bool,
    /// File-writing threads; 0 picks from the number of CPUs.
    pub workers: usize,
    /// `syncfs` before the final rename, so a crash never leaves a target that looks complete.
    pub sync: bool,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        UnpackOptions {
            limits: Limits::default(),
            require_index: true,
            workers: 0,
            sync: true,
        }
    }
}

#[derive(Debug)]
pub struct UnpackReport {
    pub target: PathBuf,
    pub files: u64,
    pub bytes: u64,
    pub index: Option<ImageIndex>,
    pub elapsed: Duration,
}

/// Files up to this size go to the writer pool; larger ones stream from the reader thread.
const SMALL: u64 = 1 << 20;

pub fn unpack(
    archive: &Path,
    target: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackReport, ArchiveError> {
    let started = Instant::now();
    check_target(target)?;
    let staging = staging_dir(target)?;
    let result = unpack_into(archive, &staging, opts);
    match result {
        Ok((files, bytes, index)) => {
            std::fs::rename(&staging, target).map_err(|e| {
                let _ = std::fs::remove_dir_all(&staging);
                ArchiveError::Io {
                    path: target.to_path_buf(),
                    source: e,
                }
            })?;
            Ok(UnpackReport {
                target: target.to_path_buf(),
                files,
                bytes,
                index,
                elapsed: started.elapsed(),
            })
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(e)
        }
    }
}

fn check_target(target: &Path) -> Result<(), ArchiveError> {
    match std::fs::read_dir(target) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(ArchiveError::TargetNotEmpty {
                    path: target.to_path_buf(),
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ArchiveError::Io {
            path: target.to_path_buf(),
            source: e,
        }),
    }
}

/// A private (0700) sibling of the target, on the same filesystem so the final rename is atomic.
fn staging_dir(target: &Path) -> Result<PathBuf, ArchiveError> {
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(ArchiveError::io(&parent))?;
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("image");
    let staging = parent.join(format!(".{name}.unpacking-{}", std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(ArchiveError::io(&staging))?;
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .map_err(ArchiveError::io(&staging))?;
    Ok(staging)
}

use std::os::unix::fs::DirBuilderExt;

/// Counts the compressed bytes read, for the ratio bound.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

fn open_archive(archive: &Path, count: Arc<AtomicU64>) -> Result<Box<dyn Read>, ArchiveError> {
    let mut file = File::open(archive).map_err(ArchiveError::io(archive))?;
    let mut magic = [0u8; 4];
    let n = file.read(&mut magic).map_err(ArchiveError::io(archive))?;
    use std::io::Seek;
    file.rewind().map_err(ArchiveError::io(archive))?;
    let counting = Counting {
        inner: BufReader::with_capacity(1 << 20, file),
        count,
    };
    if n == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
        let dec = zstd::Decoder::new(counting).map_err(|e| ArchiveError::Corrupt {
            archive: archive.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(Box::new(dec))
    } else {
        Ok(Box::new(counting))
    }
}

/// Directories this unpack created, and the only ones it will create anything inside.
struct Tree {
    root: OwnedFd,
    root_path: PathBuf,
    dirs: Mutex<HashSet<String>>,
}

impl Tree {
    fn ensure_dir(&self, path: &str) -> Result<(), ArchiveError> {
        if path.is_empty() || self.dirs.lock().expect("dirs lock").contains(path) {
            return Ok(());
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.ensure_dir(parent)?;
        }
        match nix::sys::stat::mkdirat(self.root.as_fd(), path, Mode::from_bits_truncate(0o700)) {
            Ok(()) => {}
            Err(Errno::EEXIST) => {
                // Another writer thread made it, or an entry put something else here.
                let st =
                    nix::sys::stat::fstatat(self.root.as_fd(), path, AtFlags::AT_SYMLINK_NOFOLLOW)
                        .map_err(|e| self.io_err(path, e))?;
                if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFDIR {
                    return Err(ArchiveError::unsafe_entry(
                        path,
                        "an entry needs this to be a directory, but the archive made it a file or symlink (writing through symlinks is refused)",
                    ));
                }
            }
            Err(e) => return Err(self.io_err(path, e)),
        }
        self.dirs
            .lock()
            .expect("dirs lock")
            .insert(path.to_string());
        Ok(())
    }

    fn ensure_parent(&self, path: &str) -> Result<(), ArchiveError> {
        match path.rsplit_once('/') {
            Some((parent, _)) => self.ensure_dir(parent),
            None => Ok(()),
        }
    }

    fn create_file(&self, path: &str, mode: u32) -> Result<File, ArchiveError> {
        self.ensure_parent(path)?;
        let fd = nix::fcntl::openat(
            self.root.as_fd(),
            path,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode & 0o777),
        )
        .map_err(|e| match e {
            Errno::EEXIST => {
                ArchiveError::unsafe_entry(path, "the path already exists in the archive")
            }
            e => self.io_err(path, e),
        })?;
        Ok(File::from(fd))
    }

    fn io_err(&self, path: &str, e: Errno) -> ArchiveError {
        ArchiveError::Io {
            path: self.root_path.join(path),
            source: std::io::Error::from(e),
        }
    }
}

struct Job {
    path: String,
    mode: u32,
    data: Vec<u8>,
    expected_sha256: Option<String>,
}

/// The first error any thread hits; everyone stops at the next look.
#[derive(Default)]
struct FirstError(Mutex<Option<ArchiveError>>);

impl FirstError {
    fn set(&self, e: ArchiveError) {
        let mut slot = self.0.lock().expect("error lock");
        if slot.is_none() {
            *slot = Some(e);
        }
    }
    fn is_set(&self) -> bool {
        self.0.lock().expect("error lock").is_some()
    }
    fn take(&self) -> Option<ArchiveError> {
        self.0.lock().expect("error lock").take()
    }
}

fn write_small(tree: &Tree, job: Job) -> Result<(), ArchiveError> {
    if let Some(expected) = &job.expected_sha256 {
        let actual = hex::encode(Sha256::digest(&job.data));
        if &actual != expected {
            return Err(ArchiveError::Checksum {
                path: job.path,
                expected: expected.clone(),
                actual,
            });
        }
    }
    let mut f = tree.create_file(&job.path, job.mode)?;
    f.write_all(&job.data)
        .map_err(ArchiveError::io(tree.root_path.join(&job.path)))
}

enum Big {
    Start {
        path: String,
        file: File,
        expected: Option<String>,
    },
    Chunk(Vec<u8>),
    End,
}

/// Hashes and writes large files as the reader hands over their chunks.
fn write_big_files(tree: &Tree, rx: crossbeam_channel::Receiver<Big>, errors: &FirstError) {
    let mut current: Option<(String, Hashing<std::io::BufWriter<File>>, Option<String>)> = None;
    for msg in rx {
        if errors.is_set() {
            continue;
        }
        let result = match msg {
            Big::Start {
                path,
                file,
                expected,
            } => {
                let out = Hashing {
                    inner: std::io::BufWriter::with_capacity(1 << 20, file),
                    hasher: Sha256::new(),
                };
                current = Some((path, out, expected));
                Ok(())
            }
            Big::Chunk(data) => match current.as_mut() {
                Some((path, out, _)) => out
                    .write_all(&data)
                    .map_err(ArchiveError::io(tree.root_path.join(&*path))),
                None => Ok(()),
            },
            Big::End => match current.take() {
                Some((path, mut out, expected)) => finish_big(tree, path, &mut out, expected),
                None => Ok(()),
            },
        };
        if let Err(e) = result {
            errors.set(e);
        }
    }
}

fn finish_big(
    tree: &Tree,
    path: String,
    out: &mut Hashing<std::io::BufWriter<File>>,
    expected: Option<String>,
) -> Result<(), ArchiveError> {
    out.flush()
        .map_err(ArchiveError::io(tree.root_path.join(&path)))?;
    if let Some(expected) = expected {
        let actual = hex::encode(std::mem::take(&mut out.hasher).finalize());
        if actual != expected {
            return Err(ArchiveError::Checksum {
                path,
                expected,
                actual,
            });
        }
    }
    Ok(())
}

/// Reads until `buf` is full or the input ends.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

struct Hashing<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn free_bytes(dir: &Path) -> Option<u64> {
    nix::sys::statvfs::statvfs(dir)
        .ok()
        .map(|s| s.blocks_available() * s.fragment_size())
}

fn unpack_into(
    archive: &Path,
    staging: &Path,
    opts: &UnpackOptions,
) -> Result<(u64, u64, Option<ImageIndex>), ArchiveError> {
    let root = nix::fcntl::open(
        staging,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ArchiveError::Io {
        path: staging.to_path_buf(),
        source: e.into(),
    })?;
    let tree = Tree {
        root,
        root_path: staging.to_path_buf(),
        dirs: Mutex::new(HashSet::new()),
    };
    let compressed = Arc::new(AtomicU64::new(0));
    let reader = open_archive(archive, compressed.clone())?;
    let free = free_bytes(staging);
    let max_total = opts.limits.max_total_bytes.or(free).unwrap_or(u64::MAX);
    let workers = match opts.workers {
        0 => std::thread::available_parallelism()
            .map_or(2, |n| n.get() * 2)
            .min(16),
        n => n,
    };
    let errors = FirstError::default();
    let (tx, rx) = crossbeam_channel::bounded::<Job>(64);
    let (big_tx, big_rx) = crossbeam_channel::bounded::<Big>(8);

    let outcome = std::thread::scope(|s| {
        {
            let (tree, errors) = (&tree, &errors);
            s.spawn(move || write_big_files(tree, big_rx, errors));
        }
        for _ in 0..workers {
            let rx = rx.clone();
            let (tree, errors) = (&tree, &errors);
            s.spawn(move || {
                for job in rx {
                    if errors.is_set() {
                        continue;
                    }
                    if let Err(e) = write_small(tree, job) {
                        errors.set(e);
                    }
                }
            });
        }
        drop(rx);
        let ctx = ReadCtx {
            archive,
            tree: &tree,
            opts,
            max_total,
            free,
            compressed: &compressed,
            errors: &errors,
            big: big_tx,
        };
        let r = ctx.read_all(reader, &tx);
        drop(tx);
        drop(ctx);
        r
    });
    if let Some(e) = errors.take() {
        return Err(e);
    }
    let (files, bytes, index, dir_modes, symlinks, hardlinks) = outcome?;

    // Hard link targets are complete now that the writer pool has finished.
    for (path, target) in hardlinks {
        tree.ensure_parent(&path)?;
        nix::unistd::linkat(
            tree.root.as_fd(),
            target.as_str(),
            tree.root.as_fd(),
            path.as_str(),
            AtFlags::empty(),
        )
        .map_err(|e| match e {
            Errno::EEXIST => {
                ArchiveError::unsafe_entry(&path, "the path already exists in the archive")
            }
            e => tree.io_err(&path, e),
        })?;
    }

    for link in &symlinks {
        resolve_beneath(staging, link)
            .map_err(|reason| ArchiveError::unsafe_entry(link, reason))?;
    }
    // Deepest first, so a read-only directory never blocks setting its children.
    let mut created: Vec<String> = tree
        .dirs
        .lock()
        .expect("dirs lock")
        .iter()
        .cloned()
        .collect();
    created.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
    for dir in &created {
        let mode = dir_modes.get(dir).copied().unwrap_or(0o755) & 0o777;
        // Every directory in the set is a real directory this unpack made, never a symlink.
        nix::sys::stat::fchmodat(
            tree.root.as_fd(),
            dir.as_str(),
            Mode::from_bits_truncate(mode),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(|e| tree.io_err(dir, e))?;
    }
    // The staging directory itself becomes the target: readable like any unpacked tarball.
    nix::sys::stat::fchmod(tree.root.as_fd(), Mode::from_bits_truncate(0o755))
        .map_err(|e| tree.io_err("", e))?;
    if opts.sync {
        nix::unistd::syncfs(tree.root.as_fd()).map_err(|e| tree.io_err("", e))?;
    }
    Ok((files, bytes, index))
}

/// Files, bytes, the index, directory modes, symlinks, and hard links to make once all files exist.
type ReadOutcome = (
    u64,
    u64,
    Option<ImageIndex>,
    HashMap<String, u32>,
    Vec<String>,
    Vec<(String, String)>,
);

struct ReadCtx<'a> {
    archive: &'a Path,
    tree: &'a Tree,
    opts: &'a UnpackOptions,
    max_total: u64,
    free: Option<u64>,
    compressed: &'a AtomicU64,
    errors: &'a FirstError,
    /// Large files go, chunk by chunk, to a writer thread that hashes and writes them while this
    /// thread decompresses the next chunk.
    big: crossbeam_channel::Sender<Big>,
}

impl ReadCtx<'_> {
    fn corrupt(&self, e: impl std::fmt::Display) -> ArchiveError {
        ArchiveError::Corrupt {
            archive: self.archive.to_path_buf(),
            reason: e.to_string(),
        }
    }

    fn read_all(
        &self,
        reader: Box<dyn Read>,
        tx: &crossbeam_channel::Sender<Job>,
    ) -> Result<ReadOutcome, ArchiveError> {
        let mut tar = tar::Archive::new(reader);
        let mut index: Option<ImageIndex> = None;
        let mut seen: HashSet<String> = HashSet::new();
        let mut files_done: HashSet<String> = HashSet::new();
        let mut dir_modes = HashMap::new();
        let mut symlinks = Vec::new();
        let mut hardlinks: Vec<(String, String)> = Vec::new();
        let (mut files, mut bytes, mut entries) = (0u64, 0u64, 0u64);

        for entry in tar.entries().map_err(|e| self.corrupt(e))? {
            if self.errors.is_set() {
                break;
            }
            let mut entry = entry.map_err(|e| self.corrupt(e))?;
            entries += 1;
            if entries > self.opts.limits.max_entries {
                return Err(ArchiveError::Limit {
                    reason: format!("more than {} entries", self.opts.limits.max_entries),
                });
            }
            let raw = {
                let p = entry.path_bytes();
                String::from_utf8(p.into_owned()).map_err(|_| {
                    ArchiveError::unsafe_entry("<non-UTF-8 name>", "entry names must be UTF-8")
                })?
            };
            let path = normalize_entry_path(&raw)?;
            let kind = entry.header().entry_type();
            let size = entry.header().size().map_err(|e| self.corrupt(e))?;
            let mode = entry.header().mode().map_err(|e| self.corrupt(e))? & 0o777;

            if self.opts.require_index && index.is_none() {
                if path != INDEX || !kind.is_file() {
                    return Err(ArchiveError::Index {
                        path: self.archive.to_path_buf(),
                        reason: format!(
                            "the first entry must be {INDEX}, found `{path}`: this is not a cluster image built by tele"
                        ),
                    });
                }
                if size > self.opts.limits.max_index_bytes {
                    return Err(ArchiveError::Limit {
                        reason: format!("{INDEX} is {size} bytes"),
                    });
                }
                let mut buf = Vec::with_capacity(size as usize);
                entry.read_to_end(&mut buf).map_err(|e| self.corrupt(e))?;
                let parsed = ImageIndex::from_json(&buf, &self.archive.join(INDEX))?;
                let declared = parsed.total_size();
                if declared > self.max_total {
                    return Err(ArchiveError::Limit {
                        reason: match self.free {
                            Some(free) if free == self.max_total => format!(
                                "the image needs {} and only {} is free at {}",
                                crate::units::Size(declared),
                                crate::units::Size(free),
                                self.tree
                                    .root_path
                                    .parent()
                                    .unwrap_or(Path::new("."))
                                    .display()
                            ),
                            _ => format!(
                                "the image declares {declared} bytes, over the limit of {}",
                                self.max_total
                            ),
                        },
                    });
                }
                let mut f = self.tree.create_file(INDEX, 0o644)?;
                f.write_all(&buf)
                    .map_err(ArchiveError::io(self.tree.root_path.join(INDEX)))?;
                seen.insert(path);
                index = Some(parsed);
                files += 1;
                continue;
            }
            if !seen.insert(path.clone()) && !kind.is_dir() {
                return Err(ArchiveError::unsafe_entry(
                    &path,
                    "the archive holds this path twice",
                ));
            }
            let listed = index.as_ref().map(|i| i.get(&path));
            match kind {
                tar::EntryType::Directory => {
                    self.tree.ensure_dir(&path)?;
                    dir_modes.insert(path, mode);
                }
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let expected = match listed {
                        None => None,
                        Some(None) => {
                            return Err(ArchiveError::unsafe_entry(
                                &path,
                                "not listed in the image index",
                            ));
                        }
                        Some(Some(e)) if e.kind != Kind::File => {
                            return Err(ArchiveError::unsafe_entry(
                                &path,
                                "the index lists this as a symlink, the archive as a file",
                            ));
                        }
                        Some(Some(e)) if e.size != size => {
                            return Err(ArchiveError::Size {
                                path,
                                expected: e.size,
                                actual: size,
                            });
                        }
                        Some(Some(e)) => Some(e.sha256.clone()),
                    };
                    bytes += size;
                    if bytes > self.max_total {
                        return Err(ArchiveError::Limit {
                            reason: format!(
                                "the files exceed {} in total",
                                crate::units::Size(self.max_total)
                            ),
                        });
                    }
                    let mode = listed.flatten().map_or(mode, |e| e.mode);
                    if size <= SMALL {
                        let mut data = Vec::with_capacity(size as usize);
                        entry.read_to_end(&mut data).map_err(|e| self.corrupt(e))?;
                        if tx
                            .send(Job {
                                path: path.clone(),
                                mode,
                                data,
                                expected_sha256: expected,
                            })
                            .is_err()
                        {
                            break;
                        }
                    } else {
                        self.write_large(&mut entry, &path, mode, size, expected, bytes - size)?;
                    }
                    self.check_ratio(bytes)?;
                    files_done.insert(path);
                    files += 1;
                }
                tar::EntryType::Symlink => {
                    let target = entry
                        .link_name_bytes()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default();
                    check_symlink_target(&path, &target)?;
                    if let Some(listed) = listed {
                        match listed {
                            Some(e)
                                if e.kind == Kind::Symlink
                                    && e.target.as_deref() == Some(target.as_str()) => {}
                            _ => {
                                return Err(ArchiveError::unsafe_entry(
                                    &path,
                                    "this symlink does not match the image index",
                                ));
                            }
                        }
                    }
                    self.tree.ensure_parent(&path)?;
                    nix::unistd::symlinkat(target.as_str(), self.tree.root.as_fd(), path.as_str())
                        .map_err(|e| match e {
                            Errno::EEXIST => ArchiveError::unsafe_entry(
                                &path,
                                "the path already exists in the archive",
                            ),
                            e => self.tree.io_err(&path, e),
                        })?;
                    symlinks.push(path);
                }
                tar::EntryType::Link => {
                    if index.is_some() {
                        return Err(ArchiveError::unsafe_entry(
                            &path,
                            "cluster images never contain hard links",
                        ));
                    }
                    let target = entry
                        .link_name_bytes()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default();
                    let target = normalize_entry_path(&target).map_err(|_| {
                        ArchiveError::unsafe_entry(
                            &path,
                            format!("the hard link target `{target}` is outside the archive"),
                        )
                    })?;
                    if !files_done.contains(&target) {
                        return Err(ArchiveError::unsafe_entry(
                            &path,
                            format!(
                                "the hard link target `{target}` is not a file earlier in the archive"
                            ),
                        ));
                    }
                    hardlinks.push((path, target));
                }
                tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink => {}
                other => {
                    let what = match other {
                        tar::EntryType::Char | tar::EntryType::Block => {
                            "device nodes are not allowed"
                        }
                        tar::EntryType::Fifo => "FIFOs are not allowed",
                        _ => "this kind of entry is not allowed",
                    };
                    return Err(ArchiveError::unsafe_entry(&path, what));
                }
            }
        }
        if let Some(index) = &index {
            if let Some(missing) = index.files.iter().find(|f| !seen.contains(&f.path)) {
                return Err(ArchiveError::Missing {
                    path: missing.path.clone(),
                });
            }
        } else if self.opts.require_index {
            return Err(ArchiveError::Index {
                path: self.archive.to_path_buf(),
                reason: "the archive is empty".into(),
            });
        }
        Ok((files, bytes, index, dir_modes, symlinks, hardlinks))
    }

    fn write_large(
        &self,
        entry: &mut impl Read,
        path: &str,
        mode: u32,
        size: u64,
        expected: Option<String>,
        bytes_before: u64,
    ) -> Result<(), ArchiveError> {
        let file = self.tree.create_file(path, mode)?;
        let started = Big::Start {
            path: path.to_string(),
            file,
            expected,
        };
        if self.big.send(started).is_err() {
            return Ok(());
        }
        let mut written = 0u64;
        loop {
            let mut chunk = vec![0u8; 1 << 20];
            let n = read_full(entry, &mut chunk).map_err(|e| self.corrupt(e))?;
            if n == 0 {
                break;
            }
            chunk.truncate(n);
            written += n as u64;
            // Checked per chunk, so the bound holds inside one huge entry too.
            self.check_ratio(bytes_before + written)?;
            if self.big.send(Big::Chunk(chunk)).is_err() || self.errors.is_set() {
                return Ok(());
            }
        }
        if written != size {
            return Err(self.corrupt(format!("`{path}` ends after {written} of {size} bytes")));
        }
        let _ = self.big.send(Big::End);
        Ok(())
    }

    fn check_ratio(&self, out_bytes: u64) -> Result<(), ArchiveError> {
        let l = &self.opts.limits;
        let input = self.compressed.load(Ordering::Relaxed).max(1);
        if out_bytes > l.ratio_floor && out_bytes / input > l.max_ratio {
            return Err(ArchiveError::Limit {
                reason: format!(
                    "the archive expands more than {}:1 ({} from {input} bytes): a decompression bomb",
                    l.max_ratio,
                    crate::units::Size(out_bytes)
                ),
            });
        }
        Ok(())
    }
}
