//! Deterministic packing: the same inputs give byte-identical tarballs.
//!
//! Entries are sorted, owners are root, mtimes fixed, and `index.json` comes first so the
//! unpacker can check every later entry against it as it streams.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::ArchiveError;
use super::index::{FORMAT, ImageIndex, IndexEntry, Kind, hash_file};
use super::paths::normalize_entry_path;
use crate::layout::INDEX;

#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    Bytes(Vec<u8>),
    Symlink(String),
}

#[derive(Debug, Clone)]
pub struct PackEntry {
    pub path: String,
    /// Permission bits; symlinks ignore them.
    pub mode: u32,
    pub source: Source,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Zstd { level: i32 },
}

impl Compression {
    /// `.tar.zst` means zstd, anything else a plain tar.
    pub fn for_path(path: &Path) -> Compression {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".zst") || name.ends_with(".tzst") {
            Compression::Zstd { level: 3 }
        } else {
            Compression::None
        }
    }
}

pub struct PackOptions<'a> {
    pub name: String,
    pub version: String,
    pub compression: Compression,
    /// The mtime of every entry (seconds since the epoch); `SOURCE_DATE_EPOCH` by convention.
    pub mtime: u64,
    /// Called with (bytes written so far, total bytes) after each entry.
    pub progress: Option<&'a (dyn Fn(u64, u64) + Sync)>,
}

/// 2000-01-01T00:00:00Z: fixed, and not the 1970 that looks like a bug in `ls -l`.
pub const DEFAULT_MTIME: u64 = 946_684_800;

/// Writes `entries` to `out` (atomically: a temporary file renamed into place) and returns the
/// index it embedded.
pub fn pack(
    mut entries: Vec<PackEntry>,
    out: &Path,
    opts: &PackOptions<'_>,
) -> Result<ImageIndex, ArchiveError> {
    for e in &mut entries {
        e.path = normalize_entry_path(&e.path)?;
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    if let Some(w) = entries.windows(2).find(|w| w[0].path == w[1].path) {
        return Err(ArchiveError::unsafe_entry(&w[0].path, "listed twice"));
    }
    if entries.iter().any(|e| e.path == INDEX) {
        return Err(ArchiveError::unsafe_entry(
            INDEX,
            "the index name is reserved",
        ));
    }
    let index = ImageIndex {
        format: FORMAT,
        name: opts.name.clone(),
        version: opts.version.clone(),
        files: index_entries(&entries)?,
    };

    let partial = out.with_file_name(format!(
        ".{}.partial",
        out.file_name().and_then(|n| n.to_str()).unwrap_or("image")
    ));
    let result = write_tar(&entries, &index, &partial, opts)
        .and_then(|()| std::fs::rename(&partial, out).map_err(ArchiveError::io(out)));
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result.map(|()| index)
}

/// Hashes files on all cores: a cluster image is mostly a few large files.
fn index_entries(entries: &[PackEntry]) -> Result<Vec<IndexEntry>, ArchiveError> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = entries.len().div_ceil(workers).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = entries
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || part.iter().map(index_entry).collect::<Result<Vec<_>, _>>())
            })
            .collect();
        let mut all = Vec::with_capacity(entries.len());
        for h in handles {
            all.extend(h.join().expect("hashing thread panicked")?);
        }
        Ok(all)
    })
}

fn index_entry(e: &PackEntry) -> Result<IndexEntry, ArchiveError> {
    let (kind, size, sha256, target) = match &e.source {
        Source::File(p) => {
            let (sha, size) = hash_file(p)?;
            (Kind::File, size, sha, None)
        }
        Source::Bytes(b) => {
            use sha2::Digest;
            (
                Kind::File,
                b.len() as u64,
                hex::encode(sha2::Sha256::digest(b)),
                None,
            )
        }
        Source::Symlink(t) => {
            super::paths::check_symlink_target(&e.path, t)?;
            (Kind::Symlink, 0, String::new(), Some(t.clone()))
        }
    };
    Ok(IndexEntry {
        path: e.path.clone(),
        kind,
        mode: if kind == Kind::Symlink {
            0o777
        } else {
            e.mode & 0o777
        },
        size,
        sha256,
        target,
    })
}

fn write_tar(
    entries: &[PackEntry],
    index: &ImageIndex,
    path: &Path,
    opts: &PackOptions<'_>,
) -> Result<(), ArchiveError> {
    let file = File::create(path).map_err(ArchiveError::io(path))?;
    let sink = match opts.compression {
        Compression::None => Sink::Plain(BufWriter::with_capacity(1 << 20, file)),
        Compression::Zstd { level } => {
            let mut enc = zstd::Encoder::new(file, level).map_err(ArchiveError::io(path))?;
            // zstd's multithreaded output does not depend on the number of workers.
            let workers = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
            enc.multithread(workers).map_err(ArchiveError::io(path))?;
            enc.include_checksum(true).map_err(ArchiveError::io(path))?;
            Sink::Zstd(enc)
        }
    };
    let mut tar = tar::Builder::new(sink);
    let total: u64 = index.total_size();
    let mut done = 0u64;

    let index_json = index.to_json();
    append(
        &mut tar,
        INDEX,
        tar::EntryType::Regular,
        0o644,
        index_json.len() as u64,
        opts.mtime,
        &index_json[..],
    )
    .map_err(ArchiveError::io(path))?;

    let mut dirs_written = BTreeSet::new();
    for (e, meta) in entries.iter().zip(&index.files) {
        // Parent directories first, so `tar xf` gives them sane modes.
        let mut parent = String::new();
        for part in e
            .path
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map(|(_, d)| d.to_vec())
            .unwrap_or_default()
        {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            if dirs_written.insert(parent.clone()) {
                append(
                    &mut tar,
                    &parent,
                    tar::EntryType::Directory,
                    0o755,
                    0,
                    opts.mtime,
                    std::io::empty(),
                )
                .map_err(ArchiveError::io(path))?;
            }
        }
        match &e.source {
            Source::File(src) => {
                let f = File::open(src).map_err(ArchiveError::io(src))?;
                append(
                    &mut tar,
                    &e.path,
                    tar::EntryType::Regular,
                    meta.mode,
                    meta.size,
                    opts.mtime,
                    f,
                )
                .map_err(ArchiveError::io(src))?;
            }
            Source::Bytes(b) => {
                append(
                    &mut tar,
                    &e.path,
                    tar::EntryType::Regular,
                    meta.mode,
                    meta.size,
                    opts.mtime,
                    &b[..],
                )
                .map_err(ArchiveError::io(path))?;
            }
            Source::Symlink(target) => {
                let mut h = header(tar::EntryType::Symlink, 0o777, 0, opts.mtime);
                tar.append_link(&mut h, &e.path, target)
                    .map_err(ArchiveError::io(path))?;
            }
        }
        done += meta.size;
        if let Some(progress) = opts.progress {
            progress(done, total);
        }
    }
    let file = match tar.into_inner().map_err(ArchiveError::io(path))? {
        Sink::Plain(w) => w.into_inner().map_err(|e| e.into_error()),
        Sink::Zstd(enc) => enc.finish(),
    }
    .map_err(ArchiveError::io(path))?;
    file.sync_all().map_err(ArchiveError::io(path))
}

enum Sink {
    Plain(BufWriter<File>),
    Zstd(zstd::Encoder<'static, File>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(buf),
            Sink::Zstd(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Zstd(w) => w.flush(),
        }
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    // Names are cosmetic for `tar tv`; the numeric ids above are what count.
    let _ = h.set_username("root");
    let _ = h.set_groupname("root");
    h
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    kind: tar::EntryType,
    mode: u32,
    size: u64,
    mtime: u64,
    data: impl std::io::Read,
) -> std::io::Result<()> {
    let mut h = header(kind, mode, size, mtime);
    tar.append_data(&mut h, path, data)
}
