//! One way to write state and configuration files: readers see the old or the new content,
//! never a mix, and the new content survives a power loss (temporary file beside it, fsync,
//! rename, fsync of the directory). Every crate that writes such a file uses this, with the
//! few other file primitives records need: removal that tolerates a crash's leftovers, file
//! checksums and timestamps.

mod checksum;
mod remove;
mod time;

pub use checksum::{sha256_file, sha256_reader};
pub use remove::{remove_dir_all, remove_file};
pub use time::{now_ms, parse_utc};

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically and durably, creating its directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace_with(path, None, |f| f.write_all(bytes))
}

/// [`write_atomic`] with the file at `mode` from its first byte on: a secret written 0o600 is
/// never readable by others, not even as the temporary file.
pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    replace_with(path, Some(mode), |f| f.write_all(bytes))
}

/// Creates `dir` (and its parents) and makes it 0700: a directory of secrets only its owner
/// may list or enter, also when it existed already.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Copies `src` to `dest` atomically and durably, keeping `src`'s permissions (an executable
/// stays executable).
pub fn copy_atomic(src: &Path, dest: &Path) -> std::io::Result<()> {
    let mut from = std::fs::File::open(src)?;
    let perms = from.metadata()?.permissions();
    replace_with(dest, None, |f| {
        std::io::copy(&mut from, f)?;
        f.set_permissions(perms)
    })
}

/// The one mechanism: fill a temporary file beside `path`, fsync it, rename it over `path`,
/// fsync the directory.
fn replace_with(
    path: &Path,
    mode: Option<u32>,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The pid keeps two processes writing the same file from sharing a temporary one.
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    remove_stale_temporaries(dir, &name);
    {
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode.unwrap_or(0o666))
            .open(&tmp)?;
        let filled = match mode {
            // Exactly `mode`, whatever the umask.
            Some(m) => f.set_permissions(std::fs::Permissions::from_mode(m)),
            None => Ok(()),
        }
        .and_then(|()| fill(&mut f))
        .and_then(|()| f.sync_all());
        if let Err(e) = filled {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Removes the temporary files of `name` that writers killed mid-write (kill -9, power cut)
/// left behind: those whose pid no longer runs.
fn remove_stale_temporaries(dir: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(pid) = file
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .and_then(|f| f.strip_suffix(".tmp"))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_written_with_its_mode_whatever_was_there() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.key");
        std::fs::write(&path, b"old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_atomic_mode(&path, b"secret", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"secret");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn replaces_the_file_and_leaves_no_temporary_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        write_atomic(&path, b"old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }

    #[test]
    fn a_killed_writer_s_temporary_file_is_removed_by_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        // pid_max is at most 2^22: this writer is certainly gone.
        let stale = dir.path().join(".state.json.99999999.tmp");
        std::fs::write(&stale, b"half").unwrap();
        let other = dir.path().join(".other.json.99999999.tmp");
        std::fs::write(&other, b"not ours").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert!(!stale.exists());
        assert!(
            other.exists(),
            "another file's temporary is left to its own writer"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
    }

    #[test]
    fn copies_keep_the_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("tool");
        std::fs::write(&src, b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o755)).unwrap();
        let dest = dir.path().join("bin/tool");
        copy_atomic(&src, &dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"#!/bin/sh\n");
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        assert!(copy_atomic(&dir.path().join("missing"), &dest).is_err());
        assert_eq!(
            std::fs::read_dir(dir.path().join("bin")).unwrap().count(),
            1
        );
    }
}
