//! Where an install keeps things under the state directory, and the record of what is installed.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn new(root: &Path) -> Layout {
        Layout {
            root: root.to_path_buf(),
        }
    }
    /// The copy of gravity that the host unit and later commands run.
    pub fn gravity(&self) -> PathBuf {
        self.root.join("bin/gravity")
    }
    pub fn cluster_record(&self) -> PathBuf {
        self.root.join("cluster.json")
    }
    pub fn checks_report(&self) -> PathBuf {
        self.root.join("checks/install.json")
    }
    /// Where the spec says hooks find the merged Helm values.
    pub fn helm_values(&self) -> PathBuf {
        self.root.join("helm/values.yaml")
    }
    /// The cluster resources hooks see at /var/lib/gravity/resources.
    pub fn resources(&self) -> PathBuf {
        self.root.join("resources")
    }
    pub fn service_user_record(&self) -> PathBuf {
        self.root.join("service-user.json")
    }
}

/// How planet is kept running on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Supervisor {
    /// The host's systemd runs `gravity-planet.service`.
    Systemd,
    /// No systemd as PID 1: gravity's own daemon supervises planet.
    Gravity,
}

/// `<state>/cluster.json`: what is installed here, written by the last install phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterRecord {
    pub name: String,
    pub version: String,
    pub installed_ms: u64,
    pub node_name: String,
    pub advertise_ip: IpAddr,
    pub role: String,
    pub flavor: String,
    pub service_uid: u32,
    pub service_gid: u32,
    pub supervisor: Supervisor,
    pub image_dir: PathBuf,
}

impl ClusterRecord {
    pub fn load(layout: &Layout) -> anyhow::Result<Option<ClusterRecord>> {
        match std::fs::read(layout.cluster_record()) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// A phase's record of what it changed; the empty record when there is none yet (or it cannot be
/// read: the phase then records again from what it finds).
pub fn read_record<T: serde::de::DeserializeOwned + Default>(path: &Path) -> T {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Writes JSON atomically and durably (see [`durable::write_atomic`]).
pub fn write_json(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    durable::write_atomic(path, &bytes)
}

/// Removes a file; a missing one is fine.
pub fn remove_file(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes `path` and then its parent directory if that is now empty (a phase's own folder).
pub fn remove_file_and_empty_parent(path: &Path) -> std::io::Result<()> {
    remove_file(path)?;
    if let Some(dir) = path.parent() {
        // Fails harmlessly when the directory still holds something.
        let _ = std::fs::remove_dir(dir);
    }
    Ok(())
}

/// Removes a directory tree; a missing one is fine.
pub fn remove_dir(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
