//! `PlanetConfig`: everything needed to run planet on this node, resolved (by the agent, from
//! the manifest) at install time and kept at `<state>/planet/config.json`, so that `gravity
//! planet run` never needs the manifest (or the cluster image) again. This file is a contract
//! across versions: `tests/golden/planet-config.json` pins its format.
//!
//! What depends on the host at start time stays unexpanded here and is resolved by every run:
//! wildcard volume paths and device globs (a GPU driver loaded later adds `/dev/nvidia1`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::artifact::ImageFormat;
use super::paths::Paths;
use super::write_atomic;
pub use crate::access::{DeviceAccess, FileMode};

/// The version of this file's layout; a gravity that finds a newer one refuses to guess.
pub const FORMAT: u32 = 1;
pub const DEFAULT_STOP_TIMEOUT_SECS: u64 = 60;
pub const DEFAULT_STORAGE_DRIVER: &str = "overlay2";
pub const DEFAULT_HAIRPIN_MODE: &str = "promiscuous-bridge";

/// The persistent data volumes every planet gets, under `<state>/planet/data/<name>`: they
/// outlive planet restarts and image upgrades. A profile volume with the same target (or a
/// `--mount NAME:PATH` with one of these names) replaces the default.
pub const DATA_VOLUMES: &[(&str, &str)] = &[
    ("etcd", "/var/lib/etcd"),
    ("docker", "/var/lib/docker"),
    ("containerd", "/var/lib/containerd"),
    ("registry", "/var/lib/registry"),
    ("kubelet", "/var/lib/kubelet"),
    ("log", "/var/log"),
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid planet configuration: {detail}")]
    Parse { path: PathBuf, detail: String },
    #[error(
        "{path} has format {found}, newer than this gravity understands ({FORMAT}): use the gravity binary that wrote it"
    )]
    Format { path: PathBuf, found: u32 },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the service {what} cannot be 0 (root): choose another with --service-uid / --service-gid"
    )]
    RootService { what: &'static str },
    #[error("node name {0:?} is not a valid host name: use letters, digits, '-' and '.'")]
    NodeName(String),
    #[error(
        "the planet image {0} is neither .erofs nor .squashfs: import it with planet::artifact::import"
    )]
    ImageFormat(PathBuf),
    #[error("volume {volume}: {field} {value:?} must be an absolute path")]
    NotAbsolute {
        volume: String,
        field: &'static str,
        value: String,
    },
    #[error(
        "volume {volume}: the wildcard path {path:?} maps to targetPath {target:?} only if the target ends with the same wildcard components ({suffix:?}); use the same pattern, or leave targetPath out"
    )]
    WildcardTarget {
        volume: String,
        path: String,
        target: String,
        suffix: String,
    },
    #[error(
        "--mount {name}:{path}: there is no volume named {name:?} in node profile {profile:?} (known: {known})"
    )]
    UnknownMount {
        name: String,
        path: String,
        profile: String,
        known: String,
    },
    #[error("two volumes are mounted at {target} in planet: {first} and {second}")]
    DuplicateTarget {
        target: String,
        first: String,
        second: String,
    },
    #[error(
        "device {0:?}: only device nodes under /dev can be passed to planet; write a glob such as /dev/nvidia*"
    )]
    DevicePath(String),
    #[error(
        "systemOptions.{daemon}.args: {arg:?} contains whitespace, but planet's units split the arguments at whitespace: write it as one word (--flag=value)"
    )]
    ArgWhitespace { daemon: &'static str, arg: String },
}

/// How to run planet on this node. Serialized as camelCase JSON, `format` first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanetConfig {
    pub format: u32,
    pub image: PlanetImageRef,
    pub service_uid: u32,
    pub service_gid: u32,
    pub node: NodeInfo,
    /// In mount order: parents before the volumes nested in them.
    pub volumes: Vec<VolumeMount>,
    pub devices: Vec<DeviceRule>,
    pub daemons: DaemonOptions,
    /// More variables for `/etc/container-environment` (e.g. `GRAVITY_SERVICE_USER`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub resources: Resources,
    pub stop_timeout_secs: u64,
    /// Host commands the supervisor runs at an interval while planet is up (the application's
    /// status hook, once a minute); never two of one at a time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub periodic: Vec<Periodic>,
}

/// A host command run every `interval_secs` while planet is up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Periodic {
    pub argv: Vec<String>,
    pub interval_secs: u64,
}

/// The image file to run, under the state directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanetImageRef {
    pub path: PathBuf,
    pub sha256: String,
    pub version: String,
    pub format: ImageFormat,
    /// `systemOptions.baseImage` this profile asked for; none for the default image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_image: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeInfo {
    pub name: String,
    pub advertise_ip: IpAddr,
    pub role: String,
    pub cluster_name: String,
    /// Set where the node runs no control plane (no etcd, apiserver or registry of its own):
    /// the cluster's, which its kubelet and containerd use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_control_plane: Option<RemoteControlPlane>,
    /// Set where the node runs the control plane but not the cluster's registry (a control
    /// plane node that joined): the address of the node that runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_registry: Option<IpAddr>,
}

impl NodeInfo {
    /// Whether this node runs the control plane itself (etcd, apiserver).
    pub fn control_plane(&self) -> bool {
        self.remote_control_plane.is_none()
    }

    /// Whether this node runs the cluster's registry (only its first node does).
    pub fn runs_registry(&self) -> bool {
        self.registry_ip() == self.advertise_ip
    }

    /// Where `registry.local` is: this node, or another that runs the registry.
    pub fn registry_ip(&self) -> IpAddr {
        match (&self.remote_control_plane, self.remote_registry) {
            (Some(r), _) => r.address,
            (None, Some(ip)) => ip,
            (None, None) => self.advertise_ip,
        }
    }
}

/// The control plane a node without one of its own uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoteControlPlane {
    /// The address of a node that runs it (its apiserver and registry answer there).
    pub address: IpAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VolumeKind {
    /// planet's own persistent data (etcd, docker, ...).
    Data,
    /// From the node profile's `requirements.volumes`.
    Profile,
}

/// A host directory bound into planet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeMount {
    pub kind: VolumeKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Host path; a shell pattern when `wildcard`.
    pub source: String,
    /// Path inside planet; for a wildcard, a pattern whose wildcard components are replaced by
    /// the matched ones.
    pub target: String,
    pub wildcard: bool,
    pub read_only: bool,
    /// rbind: submounts of the source appear too.
    pub recursive: bool,
    pub create_if_missing: bool,
    pub skip_if_missing: bool,
    /// Owner and mode for a directory gravity creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<FileMode>,
}

impl VolumeMount {
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("{n} ({})", self.source),
            None => self.source.clone(),
        }
    }
}

/// Devices matching `path` (a glob, expanded at every start) appear in planet with this mode
/// and owner, and the device cgroup allows exactly `permissions` on them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceRule {
    pub path: String,
    pub permissions: DeviceAccess,
    pub file_mode: FileMode,
    pub uid: u32,
    pub gid: u32,
}

/// `systemOptions` rendered for planet's units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DaemonOptions {
    pub etcd_args: Vec<String>,
    pub docker_args: Vec<String>,
    pub docker_storage_driver: String,
    pub kubelet_args: Vec<String>,
    pub kubelet_hairpin_mode: String,
    pub allow_privileged: bool,
}

/// Limits on planet's cgroup; none by default (planet gets the node).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
}

impl PlanetConfig {
    /// Writes `<state>/planet/config.json` atomically (fsynced).
    pub fn save(&self, state_dir: &Path) -> Result<(), ConfigError> {
        let path = Paths::new(state_dir).config();
        let mut json = serde_json::to_vec_pretty(self).expect("a config serialises");
        json.push(b'\n');
        write_atomic(&path, &json).map_err(|source| ConfigError::Write { path, source })
    }

    pub fn load(state_dir: &Path) -> Result<PlanetConfig, ConfigError> {
        let path = Paths::new(state_dir).config();
        let bytes = std::fs::read(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        // Look at the format first, so that a newer file fails on that and not on a field.
        let found = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("format")?.as_u64())
            .unwrap_or(0) as u32;
        if found > FORMAT {
            return Err(ConfigError::Format { path, found });
        }
        serde_json::from_slice(&bytes).map_err(|e| ConfigError::Parse {
            path,
            detail: e.to_string(),
        })
    }

    /// Removes `<state>/planet/config.json` (rollback).
    pub fn remove(state_dir: &Path) -> Result<(), ConfigError> {
        let path = Paths::new(state_dir).config();
        durable::remove_file(&path).map_err(|source| ConfigError::Write { path, source })
    }

    /// A stable id for planet's systemd (`container_uuid`), so its machine id and journal
    /// directory survive restarts: derived from the cluster and node names.
    pub fn container_uuid(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(
            format!("planet:{}:{}", self.node.cluster_name, self.node.name).as_bytes(),
        );
        hex::encode(&digest[..16])
    }
}

/// The components of a pattern from its first wildcard component on: `/a/dir-???/x` gives
/// `dir-???/x`.
pub fn wildcard_suffix(pattern: &str) -> String {
    let parts: Vec<&str> = pattern.split('/').filter(|c| !c.is_empty()).collect();
    let first = parts
        .iter()
        .position(|c| c.contains(['*', '?', '[']))
        .unwrap_or(parts.len());
    parts[first..].join("/")
}

/// Where a host path matched by a wildcard volume appears in planet: the target's prefix plus
/// the matched components.
pub fn wildcard_target(volume: &VolumeMount, matched: &Path) -> PathBuf {
    if volume.target == volume.source {
        return matched.to_path_buf();
    }
    let suffix = wildcard_suffix(&volume.source);
    let depth = suffix.split('/').count();
    let matched_parts: Vec<_> = matched.components().collect();
    let tail: PathBuf = matched_parts[matched_parts.len().saturating_sub(depth)..]
        .iter()
        .collect();
    let prefix = volume
        .target
        .strip_suffix(&suffix)
        .unwrap_or(&volume.target);
    Path::new(prefix).join(tail)
}

pub fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    /// The agent's mapping of `agent/tests/golden/app.yaml`'s gpu profile (the agent's golden
    /// test keeps it in step).
    pub(crate) const GOLDEN: &str = include_str!("../tests/golden/planet-config.json");

    pub(crate) fn fixture() -> PlanetConfig {
        serde_json::from_str(GOLDEN).expect("the golden planet config loads")
    }

    #[test]
    fn saves_and_loads() {
        let c = fixture();
        let dir = tempfile::tempdir().unwrap();
        c.save(dir.path()).unwrap();
        assert_eq!(PlanetConfig::load(dir.path()).unwrap(), c);
        let text = std::fs::read_to_string(dir.path().join("planet/config.json")).unwrap();
        assert_eq!(text, GOLDEN, "the saved record is the golden one");

        let newer = text.replace("\"format\": 1", "\"format\": 99");
        std::fs::write(dir.path().join("planet/config.json"), newer).unwrap();
        let err = PlanetConfig::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("format 99"), "{err}");
        PlanetConfig::remove(dir.path()).unwrap();
        PlanetConfig::remove(dir.path()).unwrap();
    }

    #[test]
    fn wildcard_targets() {
        let v = VolumeMount {
            kind: VolumeKind::Profile,
            name: Some("w".into()),
            source: "/srv/dir-???".into(),
            target: "/data/in/dir-???".into(),
            wildcard: true,
            read_only: false,
            recursive: false,
            create_if_missing: false,
            skip_if_missing: false,
            uid: None,
            gid: None,
            mode: None,
        };
        assert_eq!(
            wildcard_target(&v, Path::new("/srv/dir-001")),
            PathBuf::from("/data/in/dir-001")
        );
        let same = VolumeMount {
            target: v.source.clone(),
            ..v.clone()
        };
        assert_eq!(
            wildcard_target(&same, Path::new("/srv/dir-002")),
            PathBuf::from("/srv/dir-002")
        );
        assert_eq!(wildcard_suffix("/a/b*/c"), "b*/c");
    }

    #[test]
    fn hostnames() {
        assert!(valid_hostname("node-1.example.com"));
        assert!(!valid_hostname("-node"));
        assert!(!valid_hostname("node_1"));
        assert!(!valid_hostname(""));
    }
}
