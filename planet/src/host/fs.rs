//! Host directories for volumes: existence, wildcard expansion, creation with owner and mode.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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
}

/// Directories in memory; records creations.
#[derive(Default)]
pub struct RecordingFs {
    pub existing: Mutex<Vec<PathBuf>>,
    pub calls: Mutex<Vec<String>>,
}

impl RecordingFs {
    pub fn with(existing: &[&str]) -> Self {
        RecordingFs {
            existing: Mutex::new(existing.iter().map(PathBuf::from).collect()),
            calls: Mutex::default(),
        }
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("recorder lock").clone()
    }
}

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
        self.calls
            .lock()
            .expect("recorder lock")
            .push(format!("mkdir {} {owner} {mode}", path.display()));
        self.existing
            .lock()
            .expect("recorder lock")
            .push(path.to_path_buf());
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
    fn recording_fs_matches_like_a_shell() {
        let fs = RecordingFs::with(&["/a/dir-001", "/a/dir-001/x", "/a/b"]);
        assert_eq!(fs.glob("/a/dir-*").unwrap(), [PathBuf::from("/a/dir-001")]);
    }
}
