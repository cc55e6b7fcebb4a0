//! Device nodes on the host: a rule's glob (`/dev/nvidia*`) expanded to the nodes that exist
//! now, each with its type and numbers.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::under;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    Char,
    Block,
}

impl DeviceKind {
    /// The letter the device cgroup and OCI use: `c` or `b`.
    pub fn letter(self) -> char {
        match self {
            DeviceKind::Char => 'c',
            DeviceKind::Block => 'b',
        }
    }
}

/// One device node found on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceNode {
    /// Host path, which is also the path inside planet.
    pub path: PathBuf,
    pub kind: DeviceKind,
    pub major: u64,
    pub minor: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("invalid device pattern {pattern:?}: {detail}")]
    Pattern { pattern: String, detail: String },
    #[error("cannot read the device {path}: {source}")]
    Stat {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Expands `pattern` (a shell glob of host paths) under `root` to the device nodes that exist.
/// Matches that are not device nodes are skipped with a warning: the glob is the vendor's, the
/// host's `/dev` is not.
pub fn expand(root: &Path, pattern: &str) -> Result<Vec<DeviceNode>, DeviceError> {
    let full = format!(
        "{}{}",
        glob::Pattern::escape(&root.to_string_lossy()).trim_end_matches('/'),
        pattern
    );
    let paths = glob::glob(&full).map_err(|e| DeviceError::Pattern {
        pattern: pattern.to_string(),
        detail: e.to_string(),
    })?;
    let mut nodes = Vec::new();
    for entry in paths {
        let Ok(found) = entry else { continue };
        let meta = std::fs::metadata(&found).map_err(|source| DeviceError::Stat {
            path: found.clone(),
            source,
        })?;
        let ft = meta.file_type();
        let kind = if ft.is_char_device() {
            DeviceKind::Char
        } else if ft.is_block_device() {
            DeviceKind::Block
        } else {
            tracing::warn!(path = %found.display(), "{pattern} matches a file that is not a device node: skipped");
            continue;
        };
        let rel = found.strip_prefix(root).unwrap_or(&found);
        let rdev = meta.rdev();
        nodes.push(DeviceNode {
            path: Path::new("/").join(rel),
            kind,
            major: nix::sys::stat::major(rdev),
            minor: nix::sys::stat::minor(rdev),
        });
    }
    Ok(nodes)
}

/// The host path of `node` under `root` (for tests over fixture trees).
pub fn host_path(root: &Path, node: &DeviceNode) -> PathBuf {
    under(root, &node.path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_globs_to_device_nodes_only() {
        // /dev/null and /dev/zero exist on every Linux host and need no root to stat.
        let nodes = expand(Path::new("/"), "/dev/[nz][ue][lr][lo]").unwrap();
        let paths: Vec<_> = nodes.iter().map(|n| n.path.clone()).collect();
        assert_eq!(
            paths,
            [PathBuf::from("/dev/null"), PathBuf::from("/dev/zero")]
        );
        assert_eq!(
            (nodes[0].kind, nodes[0].major, nodes[0].minor),
            (DeviceKind::Char, 1, 3)
        );

        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("dev")).unwrap();
        std::fs::write(dir.path().join("dev/nvidia0"), "not a device").unwrap();
        assert!(expand(dir.path(), "/dev/nvidia*").unwrap().is_empty());
        assert!(expand(dir.path(), "/dev/none*").unwrap().is_empty());
        assert!(matches!(
            expand(dir.path(), "/dev/[nvidia"),
            Err(DeviceError::Pattern { .. })
        ));
    }
}
