//! The host's filesystem outside the state directory: volume directories (existence, wildcard
//! expansion, creation with owner and mode, removal of empty ones) and links (gravity on the
//! PATH).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
#[cfg(any(test, feature = "test-util"))]
use std::sync::{Arc, Mutex};

use super::under;

/// What volume preparation needs from the host's filesystem. Paths are host paths; the
/// implementation decides where they really are (a root prefix in tests).
pub trait HostFs {
    fn exists(&self, path: &Path) -> bool;
    /// Host paths matching a shell pattern, sorted.
    fn glob(&self, pattern: &str) -> Result<Vec<PathBuf>, String>;
    /// Creates `path` and missing parents; owner and mode (when given) apply to `path` itself.
    fn create_dir(
        &self,
        path: &Path,
        uid: Option<u32>,
        gid: Option<u32>,
        mode: Option<u32>,
    ) -> std::io::Result<()>;
    /// Removes `dir` if it holds nothing but empty directories; returns whether it is gone.
    fn remove_empty_tree(&self, dir: &Path) -> bool;
    /// Where the symlink `link` points; an error when it is not a symlink.
    fn read_link(&self, link: &Path) -> std::io::Result<PathBuf>;
    /// Whether anything (a dangling symlink too) is at `path`.
    fn occupied(&self, path: &Path) -> bool;
    fn symlink(&self, target: &Path, link: &Path) -> std::io::Result<()>;
    fn remove_file(&self, path: &Path) -> std::io::Result<()>;
}

/// The real filesystem under a root prefix.
pub struct RealFs {
    pub root: PathBuf,
}

impl RealFs {
    pub fn host() -> Self {
        RealFs {
            root: PathBuf::from("/"),
        }
    }
}

impl HostFs for RealFs {
    fn exists(&self, path: &Path) -> bool {
        under(&self.root, path).exists()
    }

    fn glob(&self, pattern: &str) -> Result<Vec<PathBuf>, String> {
        let prefix = glob::Pattern::escape(&self.root.to_string_lossy())
            .trim_end_matches('/')
            .to_string();
        let mut out: Vec<PathBuf> = glob::glob(&format!("{prefix}{pattern}"))
            .map_err(|e| e.to_string())?
            .flatten()
            .map(|p| Path::new("/").join(p.strip_prefix(&self.root).unwrap_or(&p)))
            .collect();
        out.sort();
        Ok(out)
    }

    fn create_dir(
        &self,
        path: &Path,
        uid: Option<u32>,
        gid: Option<u32>,
        mode: Option<u32>,
    ) -> std::io::Result<()> {
        let full = under(&self.root, path);
        std::fs::create_dir_all(&full)?;
        if uid.is_some() || gid.is_some() {
            std::os::unix::fs::chown(&full, uid, gid)?;
        }
        if let Some(mode) = mode {
            std::fs::set_permissions(&full, std::fs::Permissions::from_mode(mode))?;
        }
        Ok(())
    }

    fn remove_empty_tree(&self, dir: &Path) -> bool {
        remove_empty_tree(&under(&self.root, dir))
    }

    fn read_link(&self, link: &Path) -> std::io::Result<PathBuf> {
        std::fs::read_link(under(&self.root, link))
    }

    fn occupied(&self, path: &Path) -> bool {
        under(&self.root, path).symlink_metadata().is_ok()
    }

    fn symlink(&self, target: &Path, link: &Path) -> std::io::Result<()> {
        std::os::unix::fs::symlink(target, under(&self.root, link))
    }

    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        std::fs::remove_file(under(&self.root, path))
    }
}

fn remove_empty_tree(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return !dir.exists();
    };
    let mut empty = true;
    for entry in entries.flatten() {
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if !(is_dir && remove_empty_tree(&entry.path())) {
            empty = false;
        }
    }
    empty && std::fs::remove_dir(dir).is_ok()
}

/// Paths in memory (symlinks as `(link, target)`); records every change. `calls` may be shared
/// with other recorders, for one log of a whole operation.
#[cfg(any(test, feature = "test-util"))]
#[derive(Default)]
pub struct RecordingFs {
    pub existing: Mutex<Vec<PathBuf>>,
    pub links: Mutex<Vec<(PathBuf, PathBuf)>>,
    pub calls: Arc<Mutex<Vec<String>>>,
}

#[cfg(any(test, feature = "test-util"))]
impl RecordingFs {
    pub fn with(existing: &[&str]) -> Self {
        RecordingFs {
            existing: Mutex::new(existing.iter().map(PathBuf::from).collect()),
            ..Default::default()
        }
    }

    /// Records into `log` instead of a log of its own.
    pub fn sharing(mut self, log: Arc<Mutex<Vec<String>>>) -> Self {
        self.calls = log;
        self
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("recorder lock").clone()
    }

    fn record(&self, call: String) {
        self.calls.lock().expect("recorder lock").push(call);
    }
}

#[cfg(any(test, feature = "test-util"))]
impl HostFs for RecordingFs {
    fn exists(&self, path: &Path) -> bool {
        self.existing
            .lock()
            .expect("recorder lock")
            .iter()
            .any(|p| p == path)
    }

    fn glob(&self, pattern: &str) -> Result<Vec<PathBuf>, String> {
        let pat = glob::Pattern::new(pattern).map_err(|e| e.to_string())?;
        let opts = glob::MatchOptions {
            require_literal_separator: true,
            ..Default::default()
        };
        let mut out: Vec<PathBuf> = self
            .existing
            .lock()
            .expect("recorder lock")
            .iter()
            .filter(|p| pat.matches_path_with(p, opts))
            .cloned()
            .collect();
        out.sort();
        Ok(out)
    }

    fn create_dir(
        &self,
        path: &Path,
        uid: Option<u32>,
        gid: Option<u32>,
        mode: Option<u32>,
    ) -> std::io::Result<()> {
        let id = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
        let owner = format!("{}:{}", id(uid), id(gid));
        let mode = mode.map_or("-".to_string(), |m| format!("{m:04o}"));
        self.record(format!("mkdir {} {owner} {mode}", path.display()));
        self.existing
            .lock()
            .expect("recorder lock")
            .push(path.to_path_buf());
        Ok(())
    }

    fn remove_empty_tree(&self, dir: &Path) -> bool {
        // Only directories are recorded, so everything below `dir` is an empty directory.
        self.existing
            .lock()
            .expect("recorder lock")
            .retain(|p| !p.starts_with(dir));
        self.record(format!("remove-empty-tree {}", dir.display()));
        true
    }

    fn read_link(&self, link: &Path) -> std::io::Result<PathBuf> {
        self.links
            .lock()
            .expect("recorder lock")
            .iter()
            .find(|(l, _)| l == link)
            .map(|(_, t)| t.clone())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }

    fn occupied(&self, path: &Path) -> bool {
        self.exists(path) || self.read_link(path).is_ok()
    }

    fn symlink(&self, target: &Path, link: &Path) -> std::io::Result<()> {
        self.record(format!(
            "symlink {} -> {}",
            link.display(),
            target.display()
        ));
        self.links
            .lock()
            .expect("recorder lock")
            .push((link.to_path_buf(), target.to_path_buf()));
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        self.record(format!("rm {}", path.display()));
        self.links
            .lock()
            .expect("recorder lock")
            .retain(|(l, _)| l != path);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_fs_globs_and_creates_under_its_root() {
        let dir = tempfile::tempdir().unwrap();
        let fs = RealFs {
            root: dir.path().to_path_buf(),
        };
        for d in [
            "data/dir-001",
            "data/dir-002",
            "data/dir-1000",
            "data/other",
        ] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        assert_eq!(
            fs.glob("/data/dir-???").unwrap(),
            [
                PathBuf::from("/data/dir-001"),
                PathBuf::from("/data/dir-002")
            ]
        );
        fs.create_dir(Path::new("/new/a"), None, None, Some(0o750))
            .unwrap();
        let meta = std::fs::metadata(dir.path().join("new/a")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o750);
        assert!(fs.exists(Path::new("/new/a")));
    }

    #[test]
    fn only_empty_trees_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let fs = RealFs {
            root: dir.path().to_path_buf(),
        };
        std::fs::create_dir_all(dir.path().join("a/b/c")).unwrap();
        assert!(fs.remove_empty_tree(Path::new("/a")));
        assert!(!dir.path().join("a").exists());

        let full = dir.path().join("x/y");
        std::fs::create_dir_all(&full).unwrap();
        std::fs::write(full.join("data"), b"user data").unwrap();
        assert!(!fs.remove_empty_tree(Path::new("/x")));
        assert!(full.join("data").exists());
    }

    #[test]
    fn links_are_made_read_and_removed_under_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let fs = RealFs {
            root: dir.path().to_path_buf(),
        };
        let link = Path::new("/gravity");
        assert!(!fs.occupied(link));
        fs.symlink(Path::new("/nowhere"), link).unwrap();
        assert!(fs.occupied(link), "a dangling link occupies its path");
        assert_eq!(fs.read_link(link).unwrap(), PathBuf::from("/nowhere"));
        fs.remove_file(link).unwrap();
        assert!(!fs.occupied(link));
    }

    #[test]
    fn recording_fs_matches_like_a_shell() {
        let fs = RecordingFs::with(&["/a/dir-001", "/a/dir-001/x", "/a/b"]);
        assert_eq!(fs.glob("/a/dir-*").unwrap(), [PathBuf::from("/a/dir-001")]);
    }
}
