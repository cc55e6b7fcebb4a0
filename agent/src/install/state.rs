//! Where an install keeps things under the state directory, and the record of what is installed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::node::NodeIdentity;
pub use crate::state_dir::StateDir;

/// How planet is kept running on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Supervisor {
    /// The host's systemd runs `gravity-planet.service`.
    Systemd,
    /// No systemd as PID 1: gravity's own daemon supervises planet.
    Gravity,
}

/// `<state>/cluster.json`: what is installed here, written by the last install phase. A
/// contract across versions, pinned by a golden file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRecord {
    pub name: String,
    pub version: String,
    pub installed_ms: u64,
    #[serde(flatten)]
    pub node: NodeIdentity,
    pub flavor: String,
    pub service_uid: u32,
    pub service_gid: u32,
    pub supervisor: Supervisor,
    pub image_dir: PathBuf,
}

impl ClusterRecord {
    pub fn load(layout: &StateDir) -> Result<Option<ClusterRecord>, RecordError> {
        read_versioned(&layout.cluster_record())
    }
}

/// The format of the records phases write (`volumes.json`, `kernel.json`,
/// `service-user.json`, `cluster.json`); a gravity that finds a newer one refuses to guess.
pub const RECORD_FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Versioned<T> {
    format: u32,
    #[serde(flatten)]
    record: T,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} is damaged ({reason}): it records what the install changed on this host, so gravity will not guess; restore it from a backup, or move it aside to leave those changes in place",
        path.display()
    )]
    Damaged { path: PathBuf, reason: String },
    #[error(
        "{} has format {found}, newer than this gravity understands ({RECORD_FORMAT}): use the gravity that wrote it",
        path.display()
    )]
    Newer { path: PathBuf, found: u32 },
}

/// A phase's record of what it changed; the empty record when there is none yet. A record that
/// exists but cannot be read is refused, never taken for empty: undoing from it would forget
/// what the install changed.
pub fn read_record<T: serde::de::DeserializeOwned + Default>(
    path: &Path,
) -> Result<T, RecordError> {
    Ok(read_versioned(path)?.unwrap_or_default())
}

/// A record written by [`write_record`], or None when there is none.
pub fn read_versioned<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<Option<T>, RecordError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(RecordError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let damaged = |reason: String| RecordError::Damaged {
        path: path.to_path_buf(),
        reason,
    };
    let found = serde_json::from_slice::<serde_json::Value>(&bytes)
        .map_err(|e| damaged(e.to_string()))?
        .get("format")
        .and_then(|f| f.as_u64())
        .ok_or_else(|| damaged("it has no format".into()))? as u32;
    if found > RECORD_FORMAT {
        return Err(RecordError::Newer {
            path: path.to_path_buf(),
            found,
        });
    }
    serde_json::from_slice::<Versioned<T>>(&bytes)
        .map(|v| Some(v.record))
        .map_err(|e| damaged(e.to_string()))
}

/// Writes a phase's record with its format, atomically and durably.
pub fn write_record<T: Serialize>(path: &Path, record: &T) -> std::io::Result<()> {
    write_json(
        path,
        &Versioned {
            format: RECORD_FORMAT,
            record,
        },
    )
}

/// Writes JSON atomically and durably (see [`durable::write_atomic`]).
pub fn write_json(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    durable::write_atomic(path, &bytes)
}

pub use durable::{remove_dir_all as remove_dir, remove_file};

/// Removes `path` and then its parent directory if that is now empty (a phase's own folder).
pub fn remove_file_and_empty_parent(path: &Path) -> std::io::Result<()> {
    remove_file(path)?;
    if let Some(dir) = path.parent() {
        // Fails harmlessly when the directory still holds something.
        let _ = std::fs::remove_dir(dir);
    }
    Ok(())
}
