//! A read-only view of the host through a root prefix: `/` on a real host, a fixture tree in
//! unit tests. Every probe that reads `/proc`, `/sys`, `/etc` or `/dev` goes through here.

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is malformed: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("invalid pattern \"{pattern}\": {reason}")]
    Pattern { pattern: String, reason: String },
    #[error("cannot get filesystem statistics of {path}: {source}")]
    Statvfs {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub mount_point: PathBuf,
    /// `fs_type` as the kernel names it (`ext4`, `cgroup2`, ...).
    pub fs_type: String,
    pub source: String,
    pub options: String,
    pub super_options: String,
}

impl Mount {
    /// Whether a per-superblock option is set: for cgroup v1 the controllers (`memory`,
    /// `name=systemd`).
    pub fn super_option(&self, name: &str) -> bool {
        self.super_options.split(',').any(|o| o == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsSpace {
    /// Bytes an unprivileged writer can still use (`f_bavail`).
    pub available: u64,
    pub total: u64,
}

/// The host, seen through `root`.
#[derive(Debug, Clone)]
pub struct Host {
    root: PathBuf,
}

impl Default for Host {
    fn default() -> Self {
        Host::real()
    }
}

impl Host {
    pub fn real() -> Self {
        Host {
            root: PathBuf::from("/"),
        }
    }

    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        Host { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn is_real(&self) -> bool {
        self.root == Path::new("/")
    }

    /// Where the host path `p` (absolute, as the host sees it) lies in our view.
    pub fn path(&self, p: impl AsRef<Path>) -> PathBuf {
        let rel: PathBuf = p
            .as_ref()
            .components()
            .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
            .collect();
        self.root.join(rel)
    }

    /// The host path of a path in our view (the inverse of [`Host::path`]).
    pub fn host_path(&self, p: &Path) -> PathBuf {
        match p.strip_prefix(&self.root) {
            Ok(rel) => Path::new("/").join(rel),
            Err(_) => p.to_path_buf(),
        }
    }

    pub fn read(&self, p: impl AsRef<Path>) -> Result<String, HostError> {
        let full = self.path(&p);
        std::fs::read_to_string(&full).map_err(|source| HostError::Read {
            path: p.as_ref().to_path_buf(),
            source,
        })
    }

    /// The file's content without surrounding whitespace, or `None` when it does not exist.
    pub fn read_opt(&self, p: impl AsRef<Path>) -> Result<Option<String>, HostError> {
        match self.read(&p) {
            Ok(s) => Ok(Some(s.trim().to_string())),
            Err(HostError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    pub fn exists(&self, p: impl AsRef<Path>) -> bool {
        self.path(p).exists()
    }

    pub fn metadata(&self, p: impl AsRef<Path>) -> io::Result<std::fs::Metadata> {
        std::fs::metadata(self.path(p))
    }

    pub fn read_link(&self, p: impl AsRef<Path>) -> io::Result<PathBuf> {
        std::fs::read_link(self.path(p))
    }

    /// Names in a directory, sorted; an empty list when it does not exist.
    pub fn list_dir(&self, p: impl AsRef<Path>) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path(p))
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Host paths matching a shell pattern, sorted.
    pub fn glob(&self, pattern: &str) -> Result<Vec<PathBuf>, HostError> {
        let full = self.path(pattern);
        let full = full.to_str().ok_or_else(|| HostError::Pattern {
            pattern: pattern.to_string(),
            reason: "the root path is not UTF-8".into(),
        })?;
        // The root itself may contain pattern characters; escape it and keep the user's part.
        let root = self.root.to_string_lossy();
        let escaped = format!(
            "{}{}",
            glob::Pattern::escape(&root),
            &full[root.len().min(full.len())..]
        );
        let paths = glob::glob(&escaped).map_err(|e| HostError::Pattern {
            pattern: pattern.to_string(),
            reason: e.to_string(),
        })?;
        let mut out: Vec<PathBuf> = paths
            .filter_map(Result::ok)
            .map(|p| self.host_path(&p))
            .collect();
        out.sort();
        Ok(out)
    }

    /// The nearest existing ancestor of a host path (the path itself when it exists).
    pub fn nearest_existing(&self, p: &Path) -> PathBuf {
        let mut cur = p.to_path_buf();
        loop {
            if self.path(&cur).exists() || cur.parent().is_none() {
                return cur;
            }
            cur.pop();
        }
    }

    /// Mounts from `/proc/self/mountinfo`, in mount order.
    pub fn mounts(&self) -> Result<Vec<Mount>, HostError> {
        let p = "/proc/self/mountinfo";
        parse_mountinfo(&self.read(p)?).map_err(|reason| HostError::Malformed {
            path: p.into(),
            reason,
        })
    }

    /// The mount that holds a host path: the last-mounted one with the longest matching mount
    /// point, after resolving symlinks inside the view.
    pub fn mount_of(&self, p: &Path) -> Result<Option<Mount>, HostError> {
        let resolved = std::fs::canonicalize(self.path(p))
            .ok()
            .map(|c| self.host_path(&c))
            .filter(|c| c.is_absolute())
            .unwrap_or_else(|| p.to_path_buf());
        let mounts = self.mounts()?;
        let best = mounts
            .iter()
            .enumerate()
            .filter(|(_, m)| resolved.starts_with(&m.mount_point))
            .max_by_key(|(i, m)| (m.mount_point.components().count(), *i))
            .map(|(_, m)| m.clone());
        Ok(best)
    }

    pub fn statvfs(&self, p: &Path) -> Result<FsSpace, HostError> {
        let st =
            nix::sys::statvfs::statvfs(&self.path(p)).map_err(|source| HostError::Statvfs {
                path: p.to_path_buf(),
                source,
            })?;
        let frsize = st.fragment_size();
        Ok(FsSpace {
            available: st.blocks_available().saturating_mul(frsize),
            total: st.blocks().saturating_mul(frsize),
        })
    }

    /// `/etc/os-release`, or `/usr/lib/os-release` where `/etc` has none.
    pub fn os_release(&self) -> Result<BTreeMap<String, String>, HostError> {
        let text = match self.read("/etc/os-release") {
            Ok(t) => t,
            Err(first) => self.read("/usr/lib/os-release").map_err(|_| first)?,
        };
        Ok(parse_os_release(&text))
    }

    pub fn kernel_release(&self) -> Option<String> {
        self.read_opt("/proc/sys/kernel/osrelease").ok().flatten()
    }
}

/// `KEY=value` lines with optional shell quoting, as os-release(5) defines them.
pub fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let unquoted = if v.len() >= 2
            && ((v.starts_with('"') && v.ends_with('"'))
                || (v.starts_with('\'') && v.ends_with('\'')))
        {
            v[1..v.len() - 1]
                .replace("\\\"", "\"")
                .replace("\\$", "$")
                .replace("\\`", "`")
                .replace("\\\\", "\\")
        } else {
            v.to_string()
        };
        out.insert(k.trim().to_string(), unquoted);
    }
    out
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`; this undoes it.
pub fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse_mountinfo(text: &str) -> Result<Vec<Mount>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(' ').collect();
        let sep = fields
            .iter()
            .position(|f| *f == "-")
            .ok_or_else(|| format!("line {}: no \" - \" separator", n + 1))?;
        if sep < 6 || fields.len() < sep + 3 {
            return Err(format!("line {}: too few fields", n + 1));
        }
        out.push(Mount {
            mount_point: PathBuf::from(unescape_octal(fields[4])),
            options: fields[5].to_string(),
            fs_type: fields[sep + 1].to_string(),
            source: unescape_octal(fields[sep + 2]),
            super_options: fields.get(sep + 3).unwrap_or(&"").to_string(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_with_escapes_and_optional_fields() {
        let text = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
                    40 22 8:2 / /var/lib/my\\040data rw master:2 unbindable - xfs /dev/sdb rw,attr2\n";
        let m = parse_mountinfo(text).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].mount_point, PathBuf::from("/var/lib/my data"));
        assert_eq!(m[1].fs_type, "xfs");
        assert_eq!(m[1].super_options, "rw,attr2");
        assert!(parse_mountinfo("garbage line").is_err());
    }

    #[test]
    fn os_release_quoting() {
        let r =
            parse_os_release("ID=\"centos\"\nVERSION_ID='7'\n# c\nID_LIKE=\"rhel fedora\"\nX\n");
        assert_eq!(r["ID"], "centos");
        assert_eq!(r["VERSION_ID"], "7");
        assert_eq!(r["ID_LIKE"], "rhel fedora");
    }

    #[test]
    fn paths_map_through_the_root() {
        let h = Host::with_root("/tmp/fx");
        assert_eq!(
            h.path("/etc/os-release"),
            PathBuf::from("/tmp/fx/etc/os-release")
        );
        assert_eq!(
            h.host_path(Path::new("/tmp/fx/dev/nvidia0")),
            PathBuf::from("/dev/nvidia0")
        );
        assert_eq!(
            Host::real().path("/proc/meminfo"),
            PathBuf::from("/proc/meminfo")
        );
    }
}
